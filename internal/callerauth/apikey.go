package callerauth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// HeaderAPIKey is the header that may carry an API key instead of
// "Authorization: Bearer <key>".
const HeaderAPIKey = "X-API-Key"

// canonicalAPIKeyHeader is HeaderAPIKey as net/http stores it.
const canonicalAPIKeyHeader = "X-Api-Key"

const (
	// maxKeyLen bounds a presented key; longer values are refused
	// without hashing them.
	maxKeyLen = 512
	// maxCallerLen bounds a configured caller name.
	maxCallerLen = 256
	// DefaultRefreshTimeout bounds Refresh when its context has no
	// deadline.
	DefaultRefreshTimeout = 30 * time.Second
)

// Source loads API key hashes from somewhere that can change while cqgate
// runs, e.g. the fields of a Vault KV v2 secret. The map is caller name →
// hex SHA-256 of the caller's key, in the same form as the static map
// given to NewAPIKeys.
type Source interface {
	Load(ctx context.Context) (map[string]string, error)
}

// APIKeys authenticates callers by API key. Only hex SHA-256 hashes of
// the keys are configured: a caller name maps to one hash, or to several
// separated by commas or spaces so that a caller can hold an old and a new
// key while it rotates.
//
// The keys in service are the static ones given to NewAPIKeys (or last
// set by ReplaceStatic) plus the ones last set by Replace or loaded by
// Refresh. Each swaps the whole set atomically; a request sees either the
// old set or the new one. Two callers may not share a key.
//
// An APIKeys is safe for concurrent use.
type APIKeys struct {
	src     Source
	static  []keyEntry // guarded by mu
	dynamic []keyEntry // guarded by mu; the last set by Replace

	refreshMu sync.Mutex // serializes Refresh so an older load never overwrites a newer one
	mu        sync.Mutex // serializes building and swapping sets
	set       atomic.Pointer[keySet]
}

var _ Authenticator = (*APIKeys)(nil)

type keyEntry struct {
	caller string
	hash   [sha256.Size]byte
	// id is the identity of every request with the key (Subject:
	// "sha256:" + 12 hex digits, safe to log), shared between them and
	// never modified.
	id Identity
}

type keySet struct {
	byHash  map[[sha256.Size]byte]*keyEntry
	callers []string // sorted, unique
}

// NewAPIKeys returns an APIKeys holding the static keys (caller name → hex
// SHA-256; may be empty) and, if src is not nil, able to Refresh more from
// src. It does not call src: call Refresh before serving. An invalid entry
// is an error naming the caller, never showing the configured value.
func NewAPIKeys(static map[string]string, src Source) (*APIKeys, error) {
	entries, err := parseKeyMap(static)
	if err != nil {
		return nil, err
	}
	k := &APIKeys{src: src, static: entries}
	set, err := buildSet(entries, nil)
	if err != nil {
		return nil, err
	}
	k.set.Store(set)
	return k, nil
}

// HashKey returns the hex SHA-256 of key, the form APIKeys is configured
// with (the same as `printf %s "$KEY" | sha256sum`).
func HashKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// Authenticate finds the caller whose key the request presents in
// "Authorization: Bearer <key>" or "X-API-Key: <key>". Sending both is
// allowed when they carry the same key. No header is ErrUnauthenticated;
// a malformed header, two different keys or an unknown key is
// ErrBadCredentials. The key itself never appears in the error.
func (k *APIKeys) Authenticate(r *http.Request) (*Identity, error) {
	key, err := presentedKey(r.Header)
	if err != nil {
		return nil, err
	}
	// Hashed from a copy on the stack: the key's bytes are not left on
	// the heap, and []byte(key) would allocate (validKey bounds its
	// length).
	var buf [maxKeyLen]byte
	sum := sha256.Sum256(append(buf[:0], key...))
	e, ok := k.set.Load().byHash[sum]
	// The lookup is by hash, which tells an attacker nothing about any
	// key; the final comparison is constant-time all the same.
	if !ok || subtle.ConstantTimeCompare(e.hash[:], sum[:]) != 1 {
		return nil, apiKeyError(ErrBadCredentials, "unknown key")
	}
	return &e.id, nil
}

// Replace swaps in m (caller name → hex SHA-256) as the non-static keys.
// If m is invalid, or would give one key to two callers, the keys in
// service stay and the error says why.
func (k *APIKeys) Replace(m map[string]string) error {
	entries, err := parseKeyMap(m)
	if err != nil {
		return err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	set, err := buildSet(k.static, entries)
	if err != nil {
		return err
	}
	k.dynamic = entries
	k.set.Store(set)
	return nil
}

// ReplaceStatic swaps in m (caller name → hex SHA-256) as the static
// keys, e.g. inbound.api_keys re-read from the configuration file on
// SIGHUP; the keys last set by Replace or Refresh stay. If m is invalid,
// or would give one key to two callers, the keys in service stay and the
// error names every problem (never a configured value).
func (k *APIKeys) ReplaceStatic(m map[string]string) error {
	entries, err := parseKeyMap(m)
	if err != nil {
		return err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	set, err := buildSet(entries, k.dynamic)
	if err != nil {
		return err
	}
	k.static = entries
	k.set.Store(set)
	return nil
}

// Refresh loads the non-static keys from the Source and swaps them in
// with Replace. On any failure the keys in service stay and the error
// says so. Without a Source it does nothing. A ctx without a deadline is
// bounded by DefaultRefreshTimeout.
func (k *APIKeys) Refresh(ctx context.Context) error {
	if k.src == nil {
		return nil
	}
	k.refreshMu.Lock()
	defer k.refreshMu.Unlock()
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultRefreshTimeout)
		defer cancel()
	}
	m, err := k.src.Load(ctx)
	if err != nil {
		return fmt.Errorf("callerauth: loading API keys (the %d keys in service stay): %w", k.Len(), err)
	}
	if err := k.Replace(m); err != nil {
		return fmt.Errorf("%w (the %d keys in service stay)", err, k.Len())
	}
	return nil
}

// Len returns the number of keys in service.
func (k *APIKeys) Len() int { return len(k.set.Load().byHash) }

// Callers returns the sorted names of the callers that hold a key in
// service, e.g. to check each has a rule in the Policy.
func (k *APIKeys) Callers() []string { return slices.Clone(k.set.Load().callers) }

// String describes the key set without any key material.
func (k *APIKeys) String() string {
	return fmt.Sprintf("access.APIKeys{%d keys, callers %v}", k.Len(), k.set.Load().callers)
}

// GoString is String, so %#v shows no more.
func (k *APIKeys) GoString() string { return k.String() }

func apiKeyError(sentinel error, reason string) error {
	return &AuthError{Method: MethodAPIKey, Reason: reason, Err: sentinel}
}

// presentedKey returns the key a request presents. Its errors are fixed
// strings: nothing of the header values reaches them.
func presentedKey(h http.Header) (string, error) {
	// Looked up by canonical name: no canonicalization per request.
	auths, xs := h["Authorization"], h[canonicalAPIKeyHeader]
	switch {
	case len(auths) == 0 && len(xs) == 0:
		return "", apiKeyError(ErrUnauthenticated, "no Authorization or X-API-Key header")
	case len(auths) > 1:
		return "", apiKeyError(ErrBadCredentials, "more than one Authorization header")
	case len(xs) > 1:
		return "", apiKeyError(ErrBadCredentials, "more than one X-API-Key header")
	}
	var fromAuth, fromHeader string
	if len(auths) == 1 {
		scheme, tok, ok := strings.Cut(strings.TrimSpace(auths[0]), " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			return "", apiKeyError(ErrBadCredentials, `Authorization header is not "Bearer <key>"`)
		}
		fromAuth = strings.TrimLeft(tok, " ")
		if !validKey(fromAuth) {
			return "", apiKeyError(ErrBadCredentials, "malformed bearer key")
		}
	}
	if len(xs) == 1 {
		fromHeader = strings.TrimSpace(xs[0])
		if !validKey(fromHeader) {
			return "", apiKeyError(ErrBadCredentials, "malformed X-API-Key header")
		}
	}
	switch {
	case fromAuth == "":
		return fromHeader, nil
	case fromHeader == "":
		return fromAuth, nil
	case subtle.ConstantTimeCompare([]byte(fromAuth), []byte(fromHeader)) != 1:
		return "", apiKeyError(ErrBadCredentials, "Authorization and X-API-Key carry different keys")
	}
	return fromAuth, nil
}

// validKey accepts 1 to maxKeyLen visible ASCII characters.
func validKey(s string) bool {
	if s == "" || len(s) > maxKeyLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// parseKeyMap parses caller name → hex SHA-256 list. Errors name the
// caller and never quote the value: a value that is not a hash may well be
// a key pasted where its hash belongs.
func parseKeyMap(m map[string]string) ([]keyEntry, error) {
	var (
		entries []keyEntry
		errs    []error
	)
	for _, caller := range sortedKeys(m) {
		if err := checkCallerName(caller); err != nil {
			errs = append(errs, fmt.Errorf("callerauth: api key caller %q: %w", truncate(caller), err))
			continue
		}
		hashes := strings.FieldsFunc(m[caller], func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' })
		if len(hashes) == 0 {
			errs = append(errs, fmt.Errorf("callerauth: api key of caller %q: empty", caller))
		}
		for i, h := range hashes {
			var sum [sha256.Size]byte
			if len(h) != 2*sha256.Size {
				errs = append(errs, fmt.Errorf("callerauth: api key %d of caller %q: not a hex SHA-256 (64 hex digits; configure the key's hash, not the key)", i+1, caller))
				continue
			}
			if _, err := hex.Decode(sum[:], []byte(h)); err != nil {
				errs = append(errs, fmt.Errorf("callerauth: api key %d of caller %q: not a hex SHA-256 (64 hex digits; configure the key's hash, not the key)", i+1, caller))
				continue
			}
			entries = append(entries, keyEntry{caller: caller, hash: sum,
				id: Identity{Name: caller, Method: MethodAPIKey, Subject: "sha256:" + hex.EncodeToString(sum[:6])}})
		}
	}
	return entries, errors.Join(errs...)
}

// buildSet merges key entries; one hash held by two callers is an error.
func buildSet(lists ...[]keyEntry) (*keySet, error) {
	set := &keySet{byHash: make(map[[sha256.Size]byte]*keyEntry)}
	var errs []error
	for _, list := range lists {
		for i := range list {
			e := &list[i]
			if prev, ok := set.byHash[e.hash]; ok {
				if prev.caller != e.caller {
					errs = append(errs, fmt.Errorf("callerauth: callers %q and %q have the same api key", prev.caller, e.caller))
				}
				continue
			}
			set.byHash[e.hash] = e
			set.callers = append(set.callers, e.caller)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	slices.Sort(set.callers)
	set.callers = slices.Compact(set.callers)
	return set, nil
}

func checkCallerName(name string) error {
	if name == "" {
		return errors.New("empty caller name")
	}
	if len(name) > maxCallerLen {
		return fmt.Errorf("caller name longer than %d bytes", maxCallerLen)
	}
	for i := 0; i < len(name); i++ {
		if name[i] < 0x20 || name[i] == 0x7f {
			return errors.New("control character in caller name")
		}
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// truncate shortens a configured name for an error message.
func truncate(s string) string {
	if len(s) <= 64 {
		return s
	}
	return s[:64] + "..."
}
