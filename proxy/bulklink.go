package proxy

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
)

// DownloadSegment is the FHIR path segment of cqgate's own download
// links: {public}/fhir/{oid}/$cqgate-download/{sealed}.
const DownloadSegment = "$cqgate-download"

// LinkKeySize is the size of a bulk link key (AES-256).
const LinkKeySize = 32

// ErrBadLink: a download link cqgate did not make (or made under another
// key, before a restart, or for another organization).
var ErrBadLink = errors.New("proxy: not a download link cqgate made for this organization (links from before a restart are void: poll the status URL again)")

// Links seals the URLs of bulk files on other origins into opaque
// download links and opens them again: AES-256-GCM over the URL, with
// the organization's OID as associated data, so a link only opens under
// the organization it was made for and a caller can never make cqgate
// fetch a URL it did not itself hand out.
type Links struct {
	aead cipher.AEAD
}

// NewLinks returns Links sealing under key (LinkKeySize bytes), or under
// a random key when key is nil: links then die with the process.
func NewLinks(key []byte) (*Links, error) {
	if key == nil {
		key = make([]byte, LinkKeySize)
		if _, err := rand.Read(key); err != nil {
			return nil, fmt.Errorf("proxy: making a bulk link key: %w", err)
		}
	}
	if len(key) != LinkKeySize {
		return nil, fmt.Errorf("proxy: a bulk link key has %d bytes, not %d", len(key), LinkKeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("proxy: bulk link key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("proxy: bulk link key: %w", err)
	}
	return &Links{aead: aead}, nil
}

// Link is what a download link carries.
type Link struct {
	// URL is the file's URL as the partner's manifest gave it.
	URL string
	// Type is the manifest entry's resource type (for the audit), at
	// most 255 bytes.
	Type string
	// RequiresToken is the manifest's requiresAccessToken.
	RequiresToken bool
}

const linkVersion = 1

// Seal returns the opaque, URL-safe form of l for organization oid.
func (ls *Links) Seal(oid string, l Link) (string, error) {
	if len(l.Type) > 255 {
		l.Type = l.Type[:255]
	}
	plain := make([]byte, 0, 3+len(l.Type)+len(l.URL))
	flags := byte(0)
	if l.RequiresToken {
		flags = 1
	}
	plain = append(plain, linkVersion, flags, byte(len(l.Type)))
	plain = append(plain, l.Type...)
	plain = append(plain, l.URL...)
	ns := ls.aead.NonceSize()
	out := make([]byte, ns, ns+len(plain)+ls.aead.Overhead())
	if _, err := rand.Read(out); err != nil {
		return "", fmt.Errorf("proxy: sealing a download link: %w", err)
	}
	out = ls.aead.Seal(out, out[:ns], plain, []byte(oid))
	return base64.RawURLEncoding.EncodeToString(out), nil
}

// Open returns the Link sealed in s for organization oid, or ErrBadLink.
func (ls *Links) Open(oid, s string) (Link, error) {
	raw, err := base64.RawURLEncoding.DecodeString(s)
	ns := ls.aead.NonceSize()
	if err != nil || len(raw) < ns+ls.aead.Overhead()+3 {
		return Link{}, ErrBadLink
	}
	plain, err := ls.aead.Open(nil, raw[:ns], raw[ns:], []byte(oid))
	if err != nil || len(plain) < 3 || plain[0] != linkVersion || len(plain) < 3+int(plain[2]) {
		return Link{}, ErrBadLink
	}
	n := int(plain[2])
	return Link{RequiresToken: plain[1]&1 != 0, Type: string(plain[3 : 3+n]), URL: string(plain[3+n:])}, nil
}
