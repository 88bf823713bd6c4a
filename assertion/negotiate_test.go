package assertion

import (
	"context"
	"crypto"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/cryptosigner"
	"github.com/go-jose/go-jose/v4/jwt"
)

func TestNegotiate(t *testing.T) {
	tests := []struct {
		name       string
		key        crypto.Signer
		configured jose.SignatureAlgorithm
		accepted   []string
		want       jose.SignatureAlgorithm
		wantErr    []string // substrings of the error; nil: success
	}{
		{"RSA follows the key", rsaKey(), "", nil, jose.RS384, nil},
		{"RSA, server lists only RS256", rsaKey(), "", []string{"RS256"}, jose.RS256, nil},
		{"RSA, server prefers ES256 but takes RS256", rsaKey(), "", []string{"ES256", "RS256"}, jose.RS256, nil},
		{"RSA, server takes both: our preference wins", rsaKey(), "", []string{"RS256", "RS384"}, jose.RS384, nil},
		{"RSA, server takes only PS256", rsaKey(), "", []string{"PS256"}, jose.PS256, nil},
		{"RSA, unknown names ignored", rsaKey(), "", []string{"rs384", "EdDSA", "RS256"}, jose.RS256, nil},
		{"RSA configured RS256, no constraint", rsaKey(), jose.RS256, nil, jose.RS256, nil},
		{"RSA configured RS256, accepted", rsaKey(), jose.RS256, []string{"ES256", "RS256"}, jose.RS256, nil},
		{"P-256 follows the key", p256Key(), "", nil, jose.ES256, nil},
		{"P-256, server takes RS256 and ES256", p256Key(), "", []string{"RS256", "ES256"}, jose.ES256, nil},
		{"P-384 follows the key", p384Key(), "", nil, jose.ES384, nil},
		{"P-384 configured ES384, accepted", p384Key(), jose.ES384, []string{"ES384"}, jose.ES384, nil},

		{"configured RS384 not accepted", rsaKey(), jose.RS384, []string{"ES256", "RS256"}, "",
			[]string{"server accepts [ES256 RS256]", "we can sign [RS384 RS256 RS512 PS384 PS256 PS512]", "RSA-2048", "configured RS384"}},
		{"nothing in common, none configured", rsaKey(), "", []string{"ES256", "ES384"}, "",
			[]string{"server accepts [ES256 ES384]", "RSA-2048", "none configured"}},
		{"P-256 and an RS256-only server", p256Key(), "", []string{"RS256"}, "",
			[]string{"server accepts [RS256]", "we can sign [ES256]", "ECDSA P-256"}},
		{"configured ES256 with RSA", rsaKey(), jose.ES256, nil, "", []string{`"ES256" cannot be used with a RSA-2048 key`}},
		{"configured ES384 with P-256", p256Key(), jose.ES384, nil, "", []string{"ECDSA P-256"}},
		{"configured unsupported", rsaKey(), jose.HS256, nil, "", []string{`unsupported signing algorithm "HS256"`}},
		{"P-521 cannot sign", p521Key(), "", nil, "", []string{"ECDSA P-521 key cannot sign"}},
		{"Ed25519 cannot sign", edKey(), "", nil, "", []string{"Ed25519 key cannot sign"}},
		{"RSA-1024 refused", smallRSAKey(), "", nil, "", []string{"RSA-1024 key is too small"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Negotiate(tc.key.Public(), tc.configured, tc.accepted)
			if tc.wantErr == nil {
				if err != nil || got != tc.want {
					t.Fatalf("Negotiate = %q, %v; want %q", got, err, tc.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("Negotiate = %q, want an error", got)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "assertion: ") {
				t.Errorf("error %q lacks the package prefix", msg)
			}
			for _, s := range tc.wantErr {
				if !strings.Contains(msg, s) {
					t.Errorf("error %q does not mention %q", msg, s)
				}
			}
			var ae *AlgorithmError
			if !strings.Contains(msg, "too small") && !errors.As(err, &ae) {
				t.Errorf("err %T is not an *AlgorithmError", err)
			}
			if ae != nil && len(tc.accepted) > 0 && !slices.Equal(ae.Accepted, tc.accepted) && ae.KeyType != "" {
				t.Errorf("AlgorithmError.Accepted = %v, want %v", ae.Accepted, tc.accepted)
			}
		})
	}
}

// limitedSigner is a remote-style opaque signer (like Vault transit): it
// signs with key but only offers algs, and the Material has no
// crypto.Signer.
type limitedSigner struct {
	jose.OpaqueSigner
	algs []jose.SignatureAlgorithm
}

func (l limitedSigner) Algs() []jose.SignatureAlgorithm { return l.algs }

type noPublicSigner struct{ jose.OpaqueSigner }

func (noPublicSigner) Public() *jose.JSONWebKey { return nil }

func TestSignThroughOpaqueSigner(t *testing.T) {
	m := newMaterial(t, rsaKey())
	m.Opaque = limitedSigner{OpaqueSigner: cryptosigner.Opaque(rsaKey()), algs: []jose.SignatureAlgorithm{jose.RS256, jose.RS384}}
	m.Signer = nil
	clock := newFakeClock()
	s := &Signer{Keys: staticKeys{m}, Clock: clock.Now}

	tests := []struct {
		name       string
		configured jose.SignatureAlgorithm
		accepted   []string
		want       jose.SignatureAlgorithm
		wantErr    string
	}{
		{"default", "", nil, jose.RS384, ""},
		{"server takes PS256 or RS256", "", []string{"PS256", "RS256"}, jose.RS256, ""},
		{"configured RS256", jose.RS256, nil, jose.RS256, ""},
		{"configured PS256 the signer cannot do", jose.PS256, nil, "", `"PS256" cannot be used with a RSA-2048 key (usable: RS384, RS256)`},
		{"server takes only PS256", "", []string{"PS256"}, "", "we can sign [RS384 RS256]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := s.Sign(context.Background(), Claims{ClientID: "c", Audience: testAud, Algorithm: tc.configured, Accepted: tc.accepted})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			verifyAssertion(t, tok, m, tc.want, "c", testAud, backdated(clock.Now()), MaxLifetime)
		})
	}

	m2 := newMaterial(t, rsaKey())
	m2.Signer, m2.Opaque = nil, noPublicSigner{cryptosigner.Opaque(rsaKey())}
	if _, err := (&Signer{Keys: staticKeys{m2}}).Sign(context.Background(), Claims{ClientID: "c", Audience: testAud}); err == nil || !strings.Contains(err.Error(), "no public key") {
		t.Errorf("opaque signer without public key: err = %v", err)
	}
	m3 := newMaterial(t, rsaKey())
	m3.Signer, m3.Opaque = nil, cryptosigner.Opaque(p256Key())
	if _, err := (&Signer{Keys: staticKeys{m3}}).Sign(context.Background(), Claims{ClientID: "c", Audience: testAud}); err == nil || !strings.Contains(err.Error(), "does not match the leaf") {
		t.Errorf("opaque signer for another key: err = %v", err)
	}
}

func TestSignSkew(t *testing.T) {
	clock := newFakeClock()
	clock.Advance(400 * time.Millisecond)
	m := newMaterial(t, p256Key())
	tests := []struct {
		name     string
		skew     time.Duration
		lifetime time.Duration
		wantBack time.Duration // how far iat is before now (before truncation)
		wantLife time.Duration
	}{
		{"default 5s", 0, 0, 5 * time.Second, MaxLifetime},
		{"30s", 30 * time.Second, 0, 30 * time.Second, MaxLifetime},
		{"none", -1, 0, 0, MaxLifetime},
		{"capped at half the lifetime", 10 * time.Minute, 60 * time.Second, 30 * time.Second, 60 * time.Second},
		{"lifetime over the maximum still 300s", 5 * time.Second, time.Hour, 5 * time.Second, MaxLifetime},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := &Signer{Keys: staticKeys{m}, Clock: clock.Now, Skew: tc.skew, Lifetime: tc.lifetime}
			tok, err := s.Sign(context.Background(), Claims{ClientID: "c", Audience: testAud})
			if err != nil {
				t.Fatal(err)
			}
			wantIAT := time.Unix(clock.Now().Add(-tc.wantBack).Unix(), 0)
			c := verifyAssertion(t, tok, m, jose.ES256, "c", testAud, wantIAT, tc.wantLife)
			if exp := c.Expiry.Time(); exp.Sub(c.IssuedAt.Time()) > MaxLifetime || !exp.After(clock.Now()) {
				t.Errorf("exp %v: more than 300s after iat or not after now", exp)
			}
		})
	}
}

// TestSignAccepted checks that Claims.Accepted reaches the negotiation.
func TestSignAccepted(t *testing.T) {
	m := newMaterial(t, rsaKey())
	tok, err := (&Signer{Keys: staticKeys{m}}).Sign(context.Background(), Claims{ClientID: "c", Audience: testAud, Accepted: []string{"RS256"}})
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := jwt.ParseSigned(tok, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil || parsed.Headers[0].Algorithm != "RS256" {
		t.Fatalf("alg: %v %v", parsed, err)
	}
}
