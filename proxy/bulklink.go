package proxy

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/cqgate/cqgate/internal/failure"
)

// DownloadSegment is the FHIR path segment of cqgate's own sealed
// links, download and status links alike:
// {public}/fhir/{oid}/$cqgate-download/{sealed}.
const DownloadSegment = "$cqgate-download"

// LinkKeySize is the size of a bulk link key (AES-256).
const LinkKeySize = 32

// ErrBadLink: a download link cqgate did not make (or made under another
// key, before a restart, or for another organization).
var ErrBadLink = errors.New("proxy: not a download link cqgate made for this organization (links from before a restart are void: poll the status URL again)")

// ErrLinkExpired: a download or status link cqgate made for this
// organization, past its expiry (bulk.link_ttl after the manifest, or
// the kick-off's answer, was read). It is of kind Gone (410): the link
// was genuine, and asking again with it will never work; for a file,
// the caller polls the status URL again for fresh links.
var ErrLinkExpired = failure.New(failure.Gone, "proxy: the "+DownloadSegment+" link has expired")

// DefaultLinkTTL is how long a download link is valid when bulk.link_ttl
// is not set.
const DefaultLinkTTL = 24 * time.Hour

// Links seals the URLs of bulk files on other origins into opaque
// download links, and the status URLs of bulk exports outside the FHIR
// base into status links, and opens them again: AES-256-GCM over the
// URL, with the organization's OID as associated data, so a link only
// opens under the organization it was made for and a caller can never
// make cqgate fetch a URL it did not itself hand out.
//
// Each link carries its expiry inside the sealed payload, so a link
// leaked from a manifest (a log, a browser history) stops working after
// the TTL even when the key lives on.
type Links struct {
	aead  cipher.AEAD
	ttl   time.Duration
	clock func() time.Time
}

// A LinkOption tunes NewLinks.
type LinkOption func(*Links)

// LinkTTL makes links valid for ttl after they are sealed (bulk.link_ttl);
// zero or less keeps DefaultLinkTTL.
func LinkTTL(ttl time.Duration) LinkOption {
	return func(ls *Links) {
		if ttl > 0 {
			ls.ttl = ttl
		}
	}
}

// LinkClock sets the clock links are sealed and judged by (tests).
func LinkClock(now func() time.Time) LinkOption {
	return func(ls *Links) {
		if now != nil {
			ls.clock = now
		}
	}
}

// NewLinks returns Links sealing under key (LinkKeySize bytes), or under
// a random key when key is nil: links then die with the process.
func NewLinks(key []byte, opts ...LinkOption) (*Links, error) {
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
	ls := &Links{aead: aead, ttl: DefaultLinkTTL, clock: time.Now}
	for _, o := range opts {
		o(ls)
	}
	return ls, nil
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
	// Status says the link is a status link: URL is the status URL a
	// kick-off's 202 named outside the FHIR base, polled (GET) and
	// cancelled (DELETE) through cqgate as a FHIR request, rather than a
	// file. Sealed in the payload, so neither kind of link can be used
	// as the other.
	Status bool
}

// The sealed payload, version 2:
//
//	version (1) | flags (1) | expiry, Unix seconds, big-endian (8) |
//	type length (1) | type | URL
//
// Flags: linkRequiresToken, linkStatus. The status flag came later
// without a new version: a link sealed before it has the bit clear and
// opens as the file link it was. A link with a flag cqgate does not know
// is refused as one it did not make.
//
// Version 1 (no expiry) is refused like any link cqgate did not make:
// such links were handed out before expiry existed, never expired, and
// are not granted one now; their callers poll the status URL again, as
// after a restart without bulk.link_key.
const (
	linkVersion    = 2
	linkHeaderSize = 1 + 1 + 8 + 1
)

// The flags of the sealed payload.
const (
	linkRequiresToken byte = 1 << iota
	linkStatus
	linkFlags = linkRequiresToken | linkStatus
)

// expiry is when a link sealed now stops working, to the second Seal
// keeps (a link sealed a moment later expires no earlier).
func (ls *Links) expiry() time.Time {
	return time.Unix(ls.clock().Add(ls.ttl).Unix(), 0)
}

// Seal returns the opaque, URL-safe form of l for organization oid,
// valid until the TTL has passed.
func (ls *Links) Seal(oid string, l Link) (string, error) {
	if len(l.Type) > 255 {
		l.Type = l.Type[:255]
	}
	plain := make([]byte, 0, linkHeaderSize+len(l.Type)+len(l.URL))
	flags := byte(0)
	if l.RequiresToken {
		flags |= linkRequiresToken
	}
	if l.Status {
		flags |= linkStatus
	}
	plain = append(plain, linkVersion, flags)
	plain = binary.BigEndian.AppendUint64(plain, uint64(ls.clock().Add(ls.ttl).Unix()))
	plain = append(plain, byte(len(l.Type)))
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

// Open returns the Link sealed in s for organization oid; ErrBadLink
// when cqgate did not make it (for oid, under this key, in this format),
// an error wrapping ErrLinkExpired when it did but its time has passed.
// The expiry is only read once the seal is verified: a forged link
// learns nothing of it.
func (ls *Links) Open(oid, s string) (Link, error) {
	raw, err := base64.RawURLEncoding.DecodeString(s)
	ns := ls.aead.NonceSize()
	if err != nil || len(raw) < ns+ls.aead.Overhead()+linkHeaderSize {
		return Link{}, ErrBadLink
	}
	plain, err := ls.aead.Open(nil, raw[:ns], raw[ns:], []byte(oid))
	if err != nil || len(plain) < linkHeaderSize || plain[0] != linkVersion || plain[1]&^linkFlags != 0 ||
		len(plain) < linkHeaderSize+int(plain[10]) {
		return Link{}, ErrBadLink
	}
	flags := plain[1]
	expires := time.Unix(int64(binary.BigEndian.Uint64(plain[2:10])), 0)
	if !ls.clock().Before(expires) {
		if flags&linkStatus != 0 {
			return Link{}, fmt.Errorf("%w at %s (bulk.link_ttl after the kick-off was answered): it was a bulk export's status link, "+
				"and the export can no longer be polled or cancelled through it", ErrLinkExpired, expires.UTC().Format(time.RFC3339))
		}
		return Link{}, fmt.Errorf("%w at %s (bulk.link_ttl after the manifest was read): poll the status URL again for fresh links",
			ErrLinkExpired, expires.UTC().Format(time.RFC3339))
	}
	n := int(plain[10])
	return Link{RequiresToken: flags&linkRequiresToken != 0, Status: flags&linkStatus != 0,
		Type: string(plain[linkHeaderSize : linkHeaderSize+n]), URL: string(plain[linkHeaderSize+n:])}, nil
}
