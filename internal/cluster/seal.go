package cluster

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
)

// sealVersion is the first byte of every sealed value.
const sealVersion = 1

// Errors of Keyring.Open, matched with errors.Is.
var (
	// ErrNotSealed: the value is not in the sealed format (or a version
	// this cqgate does not know).
	ErrNotSealed = errors.New("cluster: not a sealed value")
	// ErrUnknownKey: the value was sealed under a key id this keyring
	// does not hold (a key rotated out, or a replica configured with
	// another key).
	ErrUnknownKey = errors.New("cluster: sealed under an unknown key")
	// ErrTampered: the value does not open under its key: it was
	// altered, or it was sealed for another key name.
	ErrTampered = errors.New("cluster: sealed value does not open (altered, or moved from another key)")
)

// KeyIDError says which key id a value names; it matches ErrUnknownKey.
type KeyIDError struct{ ID string }

func (e *KeyIDError) Error() string {
	return fmt.Sprintf("cluster: sealed under key id %q, which is not configured (cluster.encryption_key, cluster.previous_encryption_keys)", e.ID)
}

// Is makes errors.Is(err, ErrUnknownKey) true.
func (e *KeyIDError) Is(target error) bool { return target == ErrUnknownKey }

var keyIDPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,32}$`)

// KeyID is the id of key when none is configured: 8 hex digits of a
// SHA-256 over a fixed label and the key. It identifies the key without
// revealing anything usable about it.
func KeyID(key []byte) string {
	h := sha256.New()
	h.Write([]byte("cqgate cluster key id\x00"))
	h.Write(key)
	return hex.EncodeToString(h.Sum(nil)[:4])
}

type sealKey struct {
	id   string
	aead cipher.AEAD
}

// Keyring seals values with AES-256-GCM under its current key and opens
// values sealed under any of its keys. It is safe for concurrent use.
//
// A sealed value is
//
//	version (1 byte, 1) | id length (1 byte) | key id | nonce (12 bytes) | ciphertext and tag
//
// and the GCM associated data is the header (version, id length, id)
// followed by the name the value is sealed for (its Redis key or
// channel), so a value copied to another key does not open.
type Keyring struct {
	current *sealKey
	byID    map[string]*sealKey
}

// NewKeyring returns a keyring sealing with current and opening with
// current and previous. Each is 32 bytes of standard base64, optionally
// preceded by "id:". Errors name the configuration key and never contain
// a key.
func NewKeyring(current string, previous ...string) (*Keyring, error) {
	k := &Keyring{byID: map[string]*sealKey{}}
	var problems []error
	add := func(name, s string) *sealKey {
		id, key, err := decodeKey(s)
		if err != nil {
			problems = append(problems, fmt.Errorf("%s: %w", name, err))
			return nil
		}
		if _, dup := k.byID[id]; dup {
			problems = append(problems, fmt.Errorf("%s: key id %q is used twice", name, id))
			return nil
		}
		block, err := aes.NewCipher(key)
		if err != nil {
			problems = append(problems, fmt.Errorf("%s: %w", name, err))
			return nil
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			problems = append(problems, fmt.Errorf("%s: %w", name, err))
			return nil
		}
		sk := &sealKey{id: id, aead: aead}
		k.byID[id] = sk
		return sk
	}
	k.current = add("cluster.encryption_key", current)
	for i, p := range previous {
		add(fmt.Sprintf("cluster.previous_encryption_keys[%d]", i), p)
	}
	if err := errors.Join(problems...); err != nil {
		return nil, err
	}
	return k, nil
}

// CurrentID is the id of the key new values are sealed with.
func (k *Keyring) CurrentID() string { return k.current.id }

// IDs are the ids of every key the keyring opens with, the current first.
func (k *Keyring) IDs() []string {
	ids := []string{k.current.id}
	for id := range k.byID {
		if id != k.current.id {
			ids = append(ids, id)
		}
	}
	return ids
}

func header(id string) []byte {
	return append([]byte{sealVersion, byte(len(id))}, id...)
}

// Seal encrypts plaintext for name under the current key.
func (k *Keyring) Seal(name string, plaintext []byte) ([]byte, error) {
	sk := k.current
	hdr := header(sk.id)
	nonceSize := sk.aead.NonceSize()
	out := make([]byte, len(hdr)+nonceSize, len(hdr)+nonceSize+len(plaintext)+sk.aead.Overhead())
	copy(out, hdr)
	nonce := out[len(hdr):]
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("cluster: nonce: %w", err)
	}
	return sk.aead.Seal(out, nonce, plaintext, aad(hdr, name)), nil
}

// Open decrypts a value Seal made for name. Its errors are ErrNotSealed,
// a *KeyIDError (ErrUnknownKey) or ErrTampered; on error no plaintext is
// returned.
func (k *Keyring) Open(name string, sealed []byte) ([]byte, error) {
	if len(sealed) < 2 || sealed[0] != sealVersion {
		return nil, ErrNotSealed
	}
	n := int(sealed[1])
	if len(sealed) < 2+n {
		return nil, ErrNotSealed
	}
	id := string(sealed[2 : 2+n])
	sk := k.byID[id]
	if sk == nil {
		if !keyIDPattern.MatchString(id) {
			return nil, ErrNotSealed
		}
		return nil, &KeyIDError{ID: id}
	}
	hdr, rest := sealed[:2+n], sealed[2+n:]
	if len(rest) < sk.aead.NonceSize()+sk.aead.Overhead() {
		return nil, ErrNotSealed
	}
	nonce, ct := rest[:sk.aead.NonceSize()], rest[sk.aead.NonceSize():]
	pt, err := sk.aead.Open(nil, nonce, ct, aad(hdr, name))
	if err != nil {
		return nil, ErrTampered
	}
	return pt, nil
}

func aad(hdr []byte, name string) []byte {
	return append(append(make([]byte, 0, len(hdr)+len(name)), hdr...), name...)
}
