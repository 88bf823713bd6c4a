package jwks

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/cqgate/cqgate/internal/outcome"
	"github.com/cqgate/cqgate/keys"
)

// Defaults for Options.
const (
	// DefaultOverlap is how long a rotated-out key stays listed.
	DefaultOverlap = 24 * time.Hour
	// DefaultMaxAge is the Cache-Control max-age of the served set. It
	// is short, so that partners see a new key soon after a rotation.
	DefaultMaxAge = 5 * time.Minute
)

// KeyProvider supplies an identity's current signing material;
// *keys.Holder implements it. Current returns nil before the first load.
type KeyProvider interface {
	Current() *keys.Material
}

// Identity is one signing identity whose keys the set lists.
type Identity struct {
	// Name identifies the identity in errors and orders the set.
	Name string
	Keys KeyProvider
	// Algorithm is the JWK "alg". Empty derives it from the key: RS384
	// for RSA (cqgate's default), ES256 for P-256, ES384 for P-384. An
	// identity that signs with several RSA algorithms (negotiated per
	// partner) should name the one its jku partners expect.
	Algorithm jose.SignatureAlgorithm
}

// Options configures a Set. The zero value is usable.
type Options struct {
	// Clock tells the time; time.Now if nil.
	Clock func() time.Time
	// Overlap is how long a rotated-out key stays listed after the Set
	// first saw it retired; DefaultOverlap if zero, negative lists only
	// current keys.
	Overlap time.Duration
	// MaxAge is the Cache-Control max-age; DefaultMaxAge if zero.
	MaxAge time.Duration
}

// Set is the JWK Set of a group of identities. It is safe for concurrent
// use.
type Set struct {
	ids     []Identity
	clock   func() time.Time
	overlap time.Duration
	maxAge  time.Duration

	mu      sync.Mutex
	retired map[string]*retiredKey // by identity name + kid
	current map[string]jose.JSONWebKey
}

type retiredKey struct {
	key   jose.JSONWebKey
	ident string
	since time.Time // when the Set first saw it no longer current
}

// New returns the Set of ids.
func New(opts Options, ids ...Identity) (*Set, error) {
	seen := map[string]bool{}
	for i, id := range ids {
		switch {
		case id.Keys == nil:
			return nil, fmt.Errorf("jwks: identity %d (%q) has no key provider", i, id.Name)
		case seen[id.Name]:
			return nil, fmt.Errorf("jwks: identity %q listed twice", id.Name)
		}
		seen[id.Name] = true
	}
	s := &Set{
		ids:     slices.Clone(ids),
		clock:   opts.Clock,
		overlap: opts.Overlap,
		maxAge:  opts.MaxAge,
		retired: map[string]*retiredKey{},
		current: map[string]jose.JSONWebKey{},
	}
	if s.clock == nil {
		s.clock = time.Now
	}
	if s.overlap == 0 {
		s.overlap = DefaultOverlap
	}
	if s.maxAge <= 0 {
		s.maxAge = DefaultMaxAge
	}
	return s, nil
}

// ErrNoKeys is Keys' error when no identity has a key loaded yet.
var ErrNoKeys = errors.New("jwks: no signing key is loaded yet")

// Keys returns the set now: every identity's current key, then the keys
// retired less than Overlap ago, each group ordered by identity name.
// Calling it also notices rotations (the server calls it per request;
// call it after a reload too, for exact overlap times).
func (s *Set) Keys() (jose.JSONWebKeySet, error) {
	now := s.clock()
	s.mu.Lock()
	defer s.mu.Unlock()

	var cur []jose.JSONWebKey
	var errs []error
	for _, id := range s.ids {
		m := id.Keys.Current()
		if m == nil {
			continue
		}
		k, err := publicJWK(m, id.Algorithm)
		if err != nil {
			errs = append(errs, fmt.Errorf("jwks: identity %q: %w", id.Name, err))
			continue
		}
		if prev, ok := s.current[id.Name]; ok && prev.KeyID != k.KeyID {
			s.retired[id.Name+"\x00"+prev.KeyID] = &retiredKey{key: prev, ident: id.Name, since: now}
		}
		delete(s.retired, id.Name+"\x00"+k.KeyID) // rotated back
		s.current[id.Name] = k
		cur = append(cur, k)
	}
	var old []*retiredKey
	for key, r := range s.retired {
		if s.overlap < 0 || !now.Before(r.since.Add(s.overlap)) {
			delete(s.retired, key)
			continue
		}
		old = append(old, r)
	}
	slices.SortFunc(old, func(a, b *retiredKey) int {
		if c := strings.Compare(a.ident, b.ident); c != 0 {
			return c
		}
		return b.since.Compare(a.since)
	})
	out := jose.JSONWebKeySet{Keys: cur}
	for _, r := range old {
		out.Keys = append(out.Keys, r.key)
	}
	// Two identities may share a key, a retired one too: one entry each,
	// saying only what holds for all of them.
	out.Keys = dedupe(out.Keys)
	if len(out.Keys) == 0 {
		if len(errs) > 0 {
			return out, errors.Join(errs...)
		}
		return out, ErrNoKeys
	}
	return out, nil
}

// dedupe drops repeated kids (identities sharing one key), keeping the
// first, which then says only what holds for every identity: no "alg"
// when they sign with different algorithms (a verifier may refuse a JWS
// whose alg is not the key's), no x5c or x5t#S256 when they hold
// different certificates for it (one JWK carries one chain; each
// assertion carries its own in its header).
func dedupe(ks []jose.JSONWebKey) []jose.JSONWebKey {
	first := map[string]int{}
	for i := range ks {
		j, seen := first[ks[i].KeyID]
		if !seen {
			first[ks[i].KeyID] = i
			continue
		}
		k := &ks[j]
		if k.Algorithm != ks[i].Algorithm {
			k.Algorithm = ""
		}
		if !bytes.Equal(k.CertificateThumbprintSHA256, ks[i].CertificateThumbprintSHA256) {
			k.Certificates, k.CertificateThumbprintSHA256, k.CertificateThumbprintSHA1 = nil, nil, nil
		}
	}
	out := ks[:0]
	for i, k := range ks {
		if first[k.KeyID] == i {
			out = append(out, k)
		}
	}
	return out
}

// publicJWK is m's public key as a JWK.
func publicJWK(m *keys.Material, alg jose.SignatureAlgorithm) (jose.JSONWebKey, error) {
	pub := m.Public()
	if len(m.Chain) > 0 && m.Chain[0] != nil {
		pub = m.Chain[0].PublicKey // the certified key, which the signer's must equal
	}
	if alg == "" {
		var err error
		if alg, err = defaultAlgorithm(pub); err != nil {
			return jose.JSONWebKey{}, err
		}
	}
	kid := m.KeyID
	if kid == "" {
		var err error
		if kid, err = keys.KeyIDFor(pub); err != nil {
			return jose.JSONWebKey{}, fmt.Errorf("computing the key id: %w", err)
		}
	}
	k := jose.JSONWebKey{Key: pub, KeyID: kid, Algorithm: string(alg), Use: "sig"}
	if len(m.Chain) > 0 && m.Chain[0] != nil {
		k.Certificates = slices.Clone(m.Chain)
		sum := sha256.Sum256(m.Chain[0].Raw)
		k.CertificateThumbprintSHA256 = sum[:]
	}
	if !k.IsPublic() || !k.Valid() {
		return jose.JSONWebKey{}, errors.New("refusing a key that is not a valid public key")
	}
	return k, nil
}

func defaultAlgorithm(pub crypto.PublicKey) (jose.SignatureAlgorithm, error) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return jose.RS384, nil
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return jose.ES256, nil
		case elliptic.P384():
			return jose.ES384, nil
		}
		return "", fmt.Errorf("unsupported ECDSA curve %s", k.Curve.Params().Name)
	}
	return "", fmt.Errorf("unsupported key type %T", pub)
}

// ServeHTTP serves the set (GET and HEAD).
func (s *Set) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		outcome.Write(w, http.StatusMethodNotAllowed, outcome.New(outcome.NotSupported, "jwks: the JWK Set is read with GET"))
		return
	}
	set, err := s.Keys()
	if err != nil {
		w.Header().Set("Retry-After", "5")
		outcome.Write(w, http.StatusServiceUnavailable, outcome.New(outcome.Transient, "jwks: no signing key is loaded yet"))
		return
	}
	body, err := json.Marshal(set)
	if err != nil {
		outcome.Write(w, http.StatusInternalServerError, outcome.New(outcome.Exception, "jwks: the key set cannot be serialized"))
		return
	}
	sum := sha256.Sum256(body)
	etag := `"` + base64.RawURLEncoding.EncodeToString(sum[:18]) + `"`
	h := w.Header()
	h.Set("Cache-Control", "public, max-age="+strconv.Itoa(int(s.maxAge/time.Second)))
	h.Set("ETag", etag)
	h.Set("X-Content-Type-Options", "nosniff")
	if inm := r.Header.Get("If-None-Match"); inm != "" && etagMatch(inm, etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

// etagMatch reports whether an If-None-Match value lists etag (or "*").
func etagMatch(header, etag string) bool {
	for _, v := range strings.Split(header, ",") {
		v = strings.TrimPrefix(strings.TrimSpace(v), "W/")
		if v == "*" || v == etag {
			return true
		}
	}
	return false
}
