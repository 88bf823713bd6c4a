package discovery

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/cqgate/cqgate/internal/clocktest"
	"github.com/cqgate/cqgate/internal/pkitest"
	"github.com/cqgate/cqgate/internal/revocation"
)

// communityServer serves {base}/.well-known/udap: per community query
// value a signed_metadata document, and records the queries it saw.
type communityServer struct {
	*httptest.Server
	mu      sync.Mutex
	docs    map[string]string // community query ("" for none) -> body
	queries []string
}

func newCommunityServer(t *testing.T) *communityServer {
	s := &communityServer{docs: map[string]string{}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/r4/.well-known/udap" {
			http.NotFound(w, r)
			return
		}
		c := r.URL.Query().Get("community")
		s.mu.Lock()
		s.queries = append(s.queries, c)
		body, ok := s.docs[c]
		s.mu.Unlock()
		if !ok {
			w.WriteHeader(http.StatusNoContent) // no metadata for that community
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *communityServer) base() string { return s.URL + "/r4" }

func (s *communityServer) set(community, body string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.docs[community] = body
}

// signPKI signs signed_metadata for base with leaf, x5c holding x5c.
func signPKI(t *testing.T, leaf *pkitest.Leaf, base string, now time.Time, x5c ...*x509.Certificate) string {
	return signPKIToken(t, leaf, base, base+"/token", now, x5c...)
}

func signPKIToken(t *testing.T, leaf *pkitest.Leaf, base, tokenURL string, now time.Time, x5c ...*x509.Certificate) string {
	t.Helper()
	enc := make([]string, len(x5c))
	for i, c := range x5c {
		enc[i] = base64.StdEncoding.EncodeToString(c.Raw)
	}
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: leaf.Key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("x5c", enc))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.Signed(sig).Claims(udapClaims(base, now, tokenURL)).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

type trustWorld struct {
	clock *clocktest.Clock
	a, b  *pkitest.PKI // two communities' CAs
	srv   *communityServer
	rc    *revocation.Checker
}

func newTrustWorld(t *testing.T) *trustWorld {
	clock := clocktest.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	w := &trustWorld{
		clock: clock,
		a:     pkitest.New(t, pkitest.Options{Clock: clock.Now}),
		b:     pkitest.New(t, pkitest.Options{Clock: clock.Now}),
		srv:   newCommunityServer(t),
	}
	var err error
	if w.rc, err = revocation.New(revocation.Config{Client: &http.Client{}, Clock: clock.Now}); err != nil {
		t.Fatal(err)
	}
	return w
}

func (w *trustWorld) discoverer(policyA revocation.Policy) *Discoverer {
	return New(Config{
		HTTPClient: w.srv.Client(),
		Clock:      w.clock.Now,
		Revocation: w.rc,
		Communities: map[string]Community{
			"carequality": {URI: "urn:oid:2.16.840.1.113883.3.7204.1.1", TrustAnchors: w.a.Roots(), Revocation: policyA},
			"tefca":       {URI: "urn:oid:2.16.840.1.113883.3.7204.1.5", TrustAnchors: w.b.Roots(), Revocation: revocation.Hard},
		},
	})
}

func (w *trustWorld) discover(d *Discoverer, community string) (*Result, error) {
	return d.Discover(context.Background(), Request{FHIRBase: w.srv.base(), Order: []Source{SourceUDAP, SourceSMARTConfiguration}, Community: community})
}

func TestUDAPRevocation(t *testing.T) {
	const cq = "urn:oid:2.16.840.1.113883.3.7204.1.1"
	tests := []struct {
		name    string
		policy  revocation.Policy
		setup   func(w *trustWorld, leaf *pkitest.Leaf)
		wantErr string // "" accepts
		revoked bool
	}{
		{name: "good chain", policy: revocation.Hard, setup: func(*trustWorld, *pkitest.Leaf) {}},
		{
			name: "revoked leaf", policy: revocation.Soft, revoked: true,
			setup:   func(w *trustWorld, leaf *pkitest.Leaf) { w.a.Revoke(leaf.Cert, 1) },
			wantErr: "was revoked",
		},
		{
			name: "revoked intermediate", policy: revocation.Hard, revoked: true,
			setup:   func(w *trustWorld, _ *pkitest.Leaf) { w.a.Revoke(w.a.Intermediate.Cert, 2) },
			wantErr: "was revoked",
		},
		{
			name: "unreachable CRL and OCSP, hard", policy: revocation.Hard,
			setup: func(w *trustWorld, _ *pkitest.Leaf) {
				w.a.SetCRL(w.a.Intermediate, pkitest.Down)
				w.a.SetOCSP(w.a.Intermediate, pkitest.Down)
			},
			wantErr: "cannot tell whether certificate",
		},
		{
			name: "unreachable CRL and OCSP, soft", policy: revocation.Soft,
			setup: func(w *trustWorld, _ *pkitest.Leaf) {
				w.a.SetCRL(w.a.Intermediate, pkitest.Down)
				w.a.SetOCSP(w.a.Intermediate, pkitest.Down)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newTrustWorld(t)
			leaf := w.a.Issue(t, w.a.Intermediate, pkitest.CertOptions{URIs: []string{w.srv.base()}})
			// Only the leaf in x5c: the intermediate comes through AIA.
			w.srv.set(cq, udapDoc(w.srv.base()+"/token", signPKI(t, leaf, w.srv.base(), w.clock.Now(), leaf.Cert)))
			tt.setup(w, leaf)
			res, err := w.discover(w.discoverer(tt.policy), "carequality")
			if tt.wantErr == "" {
				if err != nil || res.Source != SourceUDAP || res.TokenURL != w.srv.base()+"/token" {
					t.Fatalf("Discover = %+v, %v", res, err)
				}
				return
			}
			var te *TrustError
			if !errors.As(err, &te) || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), `"carequality"`) {
				t.Fatalf("Discover error = %v, want a TrustError with %q", err, tt.wantErr)
			}
			// The smart-configuration source (404 here) was not tried:
			// a refused UDAP server is not reached another way.
			if strings.Contains(err.Error(), "smart-configuration") {
				t.Fatalf("fell through to another source: %v", err)
			}
			var re *revocation.RevokedError
			if got := errors.As(err, &re); got != tt.revoked {
				t.Fatalf("errors.As(RevokedError) = %v, want %v", got, tt.revoked)
			}
			if tt.revoked && !errors.Is(err, revocation.ErrRevoked) {
				t.Fatalf("errors.Is(ErrRevoked) false: %v", err)
			}
			if !tt.revoked && !errors.Is(err, revocation.ErrUnavailable) {
				t.Fatalf("errors.Is(ErrUnavailable) false: %v", err)
			}
			var ne interface{ Timeout() bool }
			if errors.As(err, &ne) {
				t.Fatalf("a transport error of a revocation source leaks out: %v", err)
			}
		})
	}
}

// TestUDAPRevokedAfterCaching: a result cached before the revocation is
// not served stale once a refresh finds the certificate revoked.
func TestUDAPRevokedAfterCaching(t *testing.T) {
	const cq = "urn:oid:2.16.840.1.113883.3.7204.1.1"
	w := newTrustWorld(t)
	leaf := w.a.Issue(t, w.a.Intermediate, pkitest.CertOptions{URIs: []string{w.srv.base()}})
	w.srv.set(cq, udapDoc(w.srv.base()+"/token", signPKI(t, leaf, w.srv.base(), w.clock.Now(), leaf.Cert, w.a.Intermediate.Cert)))
	d := w.discoverer(revocation.Hard)
	if _, err := w.discover(d, "carequality"); err != nil {
		t.Fatal(err)
	}
	w.a.Revoke(leaf.Cert, 1)
	w.clock.Advance(2 * time.Hour) // past the result's TTL and the cached answers
	if res, err := w.discover(d, "carequality"); !errors.Is(err, revocation.ErrRevoked) {
		t.Fatalf("after revocation: %+v, %v", res, err)
	}
}

func TestUDAPCommunities(t *testing.T) {
	const cq, tefca = "urn:oid:2.16.840.1.113883.3.7204.1.1", "urn:oid:2.16.840.1.113883.3.7204.1.5"
	w := newTrustWorld(t)
	leafA := w.a.Issue(t, w.a.Intermediate, pkitest.CertOptions{URIs: []string{w.srv.base()}})
	leafB := w.b.Issue(t, w.b.Intermediate, pkitest.CertOptions{URIs: []string{w.srv.base()}})
	w.srv.set(cq, udapDoc(w.srv.base()+"/token", signPKI(t, leafA, w.srv.base(), w.clock.Now(), leafA.Cert, w.a.Intermediate.Cert)))
	w.srv.set(tefca, udapDoc(w.srv.base()+"/tefca-token", signPKIToken(t, leafB, w.srv.base(), w.srv.base()+"/tefca-token", w.clock.Now(), leafB.Cert, w.b.Intermediate.Cert)))
	d := w.discoverer(revocation.Hard)

	res, err := w.discover(d, "carequality")
	if err != nil || res.TokenURL != w.srv.base()+"/token" {
		t.Fatalf("carequality: %+v, %v", res, err)
	}
	res, err = w.discover(d, "tefca")
	if err != nil || res.TokenURL != w.srv.base()+"/tefca-token" {
		t.Fatalf("tefca: %+v, %v", res, err)
	}
	if !strings.Contains(res.Attempts[0].URL, "community=urn%3Aoid%3A2.16.840.1.113883.3.7204.1.5") {
		t.Fatalf("udap URL %s lacks the community parameter", res.Attempts[0].URL)
	}

	// The Carequality answer signed under TEFCA's CA: refused, naming both.
	w.srv.set(cq, udapDoc(w.srv.base()+"/token", signPKI(t, leafB, w.srv.base(), w.clock.Now(), leafB.Cert, w.b.Intermediate.Cert)))
	d = w.discoverer(revocation.Hard)
	_, err = w.discover(d, "carequality")
	var te *TrustError
	if !errors.As(err, &te) || te.SignedUnder != "tefca" || te.Community != "carequality" ||
		!strings.Contains(err.Error(), `signed under trust community "tefca", not under "carequality"`) {
		t.Fatalf("metadata under the other community: %v", err)
	}

	// Signed by a CA of no configured community: refused, naming the
	// organization's community.
	stranger := pkitest.New(t, pkitest.Options{Clock: w.clock.Now})
	leafC := stranger.Issue(t, stranger.Intermediate, pkitest.CertOptions{URIs: []string{w.srv.base()}})
	w.srv.set(cq, udapDoc(w.srv.base()+"/token", signPKI(t, leafC, w.srv.base(), w.clock.Now(), leafC.Cert, stranger.Intermediate.Cert)))
	_, err = w.discover(w.discoverer(revocation.Hard), "carequality")
	if !errors.As(err, &te) || te.SignedUnder != "" || !strings.Contains(err.Error(), `not signed under trust community "carequality"`) {
		t.Fatalf("metadata under an unknown CA: %v", err)
	}

	if _, err := w.discover(d, "nowhere"); err == nil || !strings.Contains(err.Error(), `trust community "nowhere" is not configured`) {
		t.Fatalf("unknown community: %v", err)
	}
	w.srv.mu.Lock()
	defer w.srv.mu.Unlock()
	for _, q := range w.srv.queries {
		if q != cq && q != tefca {
			t.Fatalf("a .well-known/udap request carried community %q", q)
		}
	}
}

// budgetBlind is a ChainChecker that does not tell its fetch timeout, so
// that the discovery's budget does not allow for it.
type budgetBlind struct{ ChainChecker }

// TestUDAPRevocationOutOfTime: a revocation check still running when the
// discovery flight's deadline passes leaves the status unknown: a soft
// community accepts the metadata, a hard one refuses it with a
// TrustError naming the certificate and the source cut short (not a bare
// context error). The leaf's OCSP responder is down and its CRL server
// hangs past the flight's deadline: 1.9 s (client timeout 300 ms), while
// a revocation fetch may take 2 s and the checker does not tell it.
func TestUDAPRevocationOutOfTime(t *testing.T) {
	const cq = "urn:oid:2.16.840.1.113883.3.7204.1.1"
	for _, policy := range []revocation.Policy{revocation.Soft, revocation.Hard} {
		t.Run(string(policy), func(t *testing.T) {
			w := newTrustWorld(t)
			var err error
			if w.rc, err = revocation.New(revocation.Config{Client: &http.Client{}, Clock: w.clock.Now, Timeout: 2 * time.Second}); err != nil {
				t.Fatal(err)
			}
			leaf := w.a.Issue(t, w.a.Intermediate, pkitest.CertOptions{URIs: []string{w.srv.base()}})
			w.srv.set(cq, udapDoc(w.srv.base()+"/token", signPKI(t, leaf, w.srv.base(), w.clock.Now(), leaf.Cert, w.a.Intermediate.Cert)))
			w.a.SetCRL(w.a.Intermediate, pkitest.Slow)
			w.a.SetOCSP(w.a.Intermediate, pkitest.Down)
			hc := w.srv.Client()
			hc.Timeout = 300 * time.Millisecond
			d := New(Config{
				HTTPClient: hc,
				Clock:      w.clock.Now,
				Revocation: budgetBlind{w.rc},
				Communities: map[string]Community{
					"carequality": {URI: cq, TrustAnchors: w.a.Roots(), Revocation: policy},
				},
			})
			res, err := w.discover(d, "carequality")
			if policy == revocation.Soft {
				if err != nil || res.Source != SourceUDAP {
					t.Fatalf("soft community, the leaf's status unknown: Discover = %+v, %v; want the udap source", res, err)
				}
				return
			}
			var te *TrustError
			if !errors.As(err, &te) || !errors.Is(err, revocation.ErrUnavailable) ||
				!strings.Contains(err.Error(), `"CN=pkitest leaf`) || !strings.Contains(err.Error(), "crl "+w.a.CRLURL(w.a.Intermediate)) {
				t.Fatalf("hard community: Discover = %v, want a TrustError naming the leaf and its CRL", err)
			}
		})
	}
}

// TestDiscoveryBudgetAllowsForRevocation: one discovery is given the time
// of its three documents and of four revocation fetches.
func TestDiscoveryBudgetAllowsForRevocation(t *testing.T) {
	rc, err := revocation.New(revocation.Config{Client: &http.Client{}, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		client  time.Duration
		checker ChainChecker
		want    time.Duration
	}{
		{"no revocation checks", 10 * time.Second, nil, 31 * time.Second},
		{"revocation checks", 10 * time.Second, rc, 51 * time.Second},
		{"a checker that does not tell its timeout", 10 * time.Second, budgetBlind{rc}, 31 * time.Second},
		{"a client without timeout", 0, rc, defaultDiscoveryTimeout + 20*time.Second},
		{"a nil checker", 10 * time.Second, (*revocation.Checker)(nil), 31 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := New(Config{HTTPClient: &http.Client{Timeout: tc.client}, Revocation: tc.checker})
			if d.fetchTimeout != tc.want {
				t.Fatalf("discovery budget %v, want %v", d.fetchTimeout, tc.want)
			}
		})
	}
}
