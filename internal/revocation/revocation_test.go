package revocation

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/cryptobyte"
	casn1 "golang.org/x/crypto/cryptobyte/asn1"
	"golang.org/x/crypto/ocsp"

	"github.com/cqgate/cqgate/internal/clocktest"
	"github.com/cqgate/cqgate/internal/pkitest"
)

var start = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

type world struct {
	clock *clocktest.Clock
	pki   *pkitest.PKI
	rc    *Checker
}

func newWorld(t *testing.T, cfg Config) *world {
	t.Helper()
	clock := clocktest.New(start)
	p := pkitest.New(t, pkitest.Options{Clock: clock.Now, HugeSize: 4 << 20})
	if cfg.Client == nil {
		cfg.Client = &http.Client{}
	}
	cfg.Clock = clock.Now
	rc, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &world{clock: clock, pki: p, rc: rc}
}

func TestNewNeedsClient(t *testing.T) {
	if _, err := New(Config{}); err == nil || !strings.HasPrefix(err.Error(), "revocation: ") {
		t.Fatalf("New without client: %v", err)
	}
}

func TestParsePolicy(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Policy
		ok   bool
	}{{"hard", Hard, true}, {" Soft ", Soft, true}, {"", "", false}, {"lenient", "", false}} {
		got, err := ParsePolicy(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParsePolicy(%q) = %q, %v", tc.in, got, err)
		}
	}
}

func TestCheck(t *testing.T) {
	type setup func(w *world, leaf *pkitest.Leaf)
	none := func(*world, *pkitest.Leaf) {}
	tests := []struct {
		name   string
		certs  pkitest.CertOptions
		setup  setup
		policy Policy
		// want is the leaf's and the intermediate's status.
		want       [2]Status
		wantSource [2]string // prefix: "ocsp" or "crl" or ""
		wantErr    error     // ErrRevoked, ErrUnavailable or nil
		errHas     string
	}{
		{name: "good by OCSP", setup: none, policy: Hard,
			want: [2]Status{Good, Good}, wantSource: [2]string{"ocsp", "ocsp"}},
		{name: "good by CRL", certs: pkitest.CertOptions{NoOCSP: true}, setup: none, policy: Hard,
			want: [2]Status{Good, Good}, wantSource: [2]string{"crl", "ocsp"}},
		{name: "revoked leaf by OCSP", policy: Soft,
			setup: func(w *world, l *pkitest.Leaf) { w.pki.Revoke(l.Cert, 1) },
			want:  [2]Status{Revoked}, wantSource: [2]string{"ocsp"},
			wantErr: ErrRevoked, errHas: "reason keyCompromise, according to ocsp http://"},
		{name: "revoked leaf by CRL", certs: pkitest.CertOptions{NoOCSP: true}, policy: Soft,
			setup: func(w *world, l *pkitest.Leaf) { w.pki.Revoke(l.Cert, 4) },
			want:  [2]Status{Revoked}, wantSource: [2]string{"crl"},
			wantErr: ErrRevoked, errHas: "reason superseded, according to crl http://"},
		{name: "revoked intermediate", policy: Soft,
			setup: func(w *world, l *pkitest.Leaf) {
				w.pki.Revoke(w.pki.Intermediate.Cert, 2)
			},
			want: [2]Status{Good, Revoked}, wantSource: [2]string{"ocsp", "ocsp"},
			wantErr: ErrRevoked, errHas: `"CN=pkitest intermediate,O=cqgate tests"`},
		{name: "revoked intermediate by the root's CRL", policy: Hard,
			setup: func(w *world, l *pkitest.Leaf) {
				w.pki.SetOCSP(w.pki.Root, pkitest.Down)
				w.pki.Revoke(w.pki.Intermediate.Cert, 2)
			},
			want: [2]Status{Good, Revoked}, wantSource: [2]string{"ocsp", "crl"},
			wantErr: ErrRevoked, errHas: "cACompromise"},
		{name: "unreachable CRL, hard", certs: pkitest.CertOptions{NoOCSP: true}, policy: Hard,
			setup: func(w *world, l *pkitest.Leaf) { w.pki.SetCRL(w.pki.Intermediate, pkitest.Down) },
			want:  [2]Status{Unknown}, wantErr: ErrUnavailable, errHas: "HTTP status 503"},
		{name: "unreachable CRL, soft", certs: pkitest.CertOptions{NoOCSP: true}, policy: Soft,
			setup: func(w *world, l *pkitest.Leaf) { w.pki.SetCRL(w.pki.Intermediate, pkitest.Down) },
			want:  [2]Status{Unknown, Good}, wantSource: [2]string{"", "ocsp"}},
		{name: "revoked under soft even when the CRL is down", policy: Soft,
			setup: func(w *world, l *pkitest.Leaf) {
				w.pki.SetCRL(w.pki.Intermediate, pkitest.Down)
				w.pki.Revoke(l.Cert, 0)
			},
			want: [2]Status{Revoked}, wantSource: [2]string{"ocsp"}, wantErr: ErrRevoked, errHas: "reason unspecified"},
		{name: "OCSP unknown falls back to the CRL", policy: Hard,
			setup: func(w *world, l *pkitest.Leaf) { w.pki.SetOCSP(w.pki.Intermediate, pkitest.UnknownStatus) },
			want:  [2]Status{Good, Good}, wantSource: [2]string{"crl", "ocsp"}},
		{name: "OCSP unknown and no CRL, hard", certs: pkitest.CertOptions{NoCRL: true}, policy: Hard,
			setup: func(w *world, l *pkitest.Leaf) { w.pki.SetOCSP(w.pki.Intermediate, pkitest.UnknownStatus) },
			want:  [2]Status{Unknown}, wantErr: ErrUnavailable, errHas: "does not know the certificate"},
		{name: "OCSP revoked wins over a good CRL", policy: Hard,
			setup: func(w *world, l *pkitest.Leaf) { w.pki.Revoke(l.Cert, 1) },
			want:  [2]Status{Revoked}, wantSource: [2]string{"ocsp"}, wantErr: ErrRevoked},
		{name: "delegated OCSP responder", certs: pkitest.CertOptions{NoCRL: true}, policy: Hard,
			setup: func(w *world, l *pkitest.Leaf) {
				w.pki.SetOCSP(w.pki.Intermediate, pkitest.Delegated)
				w.pki.Revoke(l.Cert, 1)
			},
			want: [2]Status{Revoked}, wantSource: [2]string{"ocsp"}, wantErr: ErrRevoked},
		{name: "delegated OCSP responder without the EKU", certs: pkitest.CertOptions{NoCRL: true}, policy: Hard,
			setup: func(w *world, l *pkitest.Leaf) { w.pki.SetOCSP(w.pki.Intermediate, pkitest.DelegatedNoEKU) },
			want:  [2]Status{Unknown}, wantErr: ErrUnavailable, errHas: "lacks the OCSP-signing extended key usage"},
		{name: "OCSP signed by another key", certs: pkitest.CertOptions{NoCRL: true}, policy: Hard,
			setup: func(w *world, l *pkitest.Leaf) {
				w.pki.SetOCSP(w.pki.Intermediate, pkitest.WrongSigner)
				w.pki.Revoke(l.Cert, 1) // a forged "good" must not count, nor anything else
			},
			want: [2]Status{Unknown}, wantErr: ErrUnavailable, errHas: "signature does not verify"},
		{name: "CRL signed by another key", certs: pkitest.CertOptions{NoOCSP: true}, policy: Hard,
			setup: func(w *world, l *pkitest.Leaf) { w.pki.SetCRL(w.pki.Intermediate, pkitest.WrongSigner) },
			want:  [2]Status{Unknown}, wantErr: ErrUnavailable, errHas: "the CRL's signature does not verify"},
		{name: "stale CRL", certs: pkitest.CertOptions{NoOCSP: true}, policy: Hard,
			setup: func(w *world, l *pkitest.Leaf) { w.pki.SetCRL(w.pki.Intermediate, pkitest.Stale) },
			want:  [2]Status{Unknown}, wantErr: ErrUnavailable, errHas: "the CRL is stale"},
		{name: "stale OCSP", certs: pkitest.CertOptions{NoCRL: true}, policy: Hard,
			setup: func(w *world, l *pkitest.Leaf) { w.pki.SetOCSP(w.pki.Intermediate, pkitest.Stale) },
			want:  [2]Status{Unknown}, wantErr: ErrUnavailable, errHas: "the OCSP response is stale"},
		{name: "garbage CRL", certs: pkitest.CertOptions{NoOCSP: true}, policy: Hard,
			setup: func(w *world, l *pkitest.Leaf) { w.pki.SetCRL(w.pki.Intermediate, pkitest.Garbage) },
			want:  [2]Status{Unknown}, wantErr: ErrUnavailable, errHas: "not a CRL"},
		{name: "garbage OCSP", certs: pkitest.CertOptions{NoCRL: true}, policy: Hard,
			setup: func(w *world, l *pkitest.Leaf) { w.pki.SetOCSP(w.pki.Intermediate, pkitest.Garbage) },
			want:  [2]Status{Unknown}, wantErr: ErrUnavailable, errHas: "not an OCSP response"},
		{name: "huge CRL", certs: pkitest.CertOptions{NoOCSP: true}, policy: Hard,
			setup: func(w *world, l *pkitest.Leaf) { w.pki.SetCRL(w.pki.Intermediate, pkitest.Huge) },
			want:  [2]Status{Unknown}, wantErr: ErrTooLarge, errHas: "more than 1048576 bytes"},
		{name: "no revocation information, hard", certs: pkitest.CertOptions{NoOCSP: true, NoCRL: true}, policy: Hard,
			setup: none, want: [2]Status{Unknown}, wantErr: ErrUnavailable, errHas: "names no OCSP responder"},
		{name: "no revocation information, soft", certs: pkitest.CertOptions{NoOCSP: true, NoCRL: true}, policy: Soft,
			setup: none, want: [2]Status{Unknown, Good}, wantSource: [2]string{"", "ocsp"}},
		{name: "zero policy is hard", certs: pkitest.CertOptions{NoOCSP: true}, policy: "",
			setup: func(w *world, l *pkitest.Leaf) { w.pki.SetCRL(w.pki.Intermediate, pkitest.Down) },
			want:  [2]Status{Unknown}, wantErr: ErrUnavailable},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, Config{MaxCRLBytes: 1 << 20})
			leaf := w.pki.Issue(t, w.pki.Intermediate, tc.certs)
			tc.setup(w, leaf)
			st, err := w.rc.Check(context.Background(), w.pki.Chain(leaf), tc.policy)
			if tc.wantErr == nil && err != nil {
				t.Fatalf("Check: %v", err)
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("Check error = %v, want %v", err, tc.wantErr)
			}
			if err != nil && (!strings.HasPrefix(err.Error(), "revocation: ") || !strings.Contains(err.Error(), tc.errHas)) {
				t.Errorf("error %q lacks the prefix or %q", err, tc.errHas)
			}
			n := 0
			for _, s := range tc.want {
				if s != "" {
					n++
				}
			}
			if len(st) != n {
				t.Fatalf("statuses = %+v, want %d", st, n)
			}
			for i := range st {
				if st[i].Status != tc.want[i] || !strings.HasPrefix(st[i].Source, tc.wantSource[i]) || (tc.wantSource[i] == "" && st[i].Source != "") {
					t.Errorf("status %d = %s from %q, want %s from %s…", i, st[i].Status, st[i].Source, tc.want[i], tc.wantSource[i])
				}
			}
			if !strings.Contains(st[0].Serial, "1000000000000000") {
				t.Errorf("leaf serial = %q, want hex", st[0].Serial)
			}
		})
	}
}

func TestRevokedErrorFields(t *testing.T) {
	w := newWorld(t, Config{})
	leaf := w.pki.Issue(t, w.pki.Intermediate, pkitest.CertOptions{CommonName: "partner.example", NoOCSP: true})
	w.pki.Revoke(leaf.Cert, 1)
	_, err := w.rc.Check(context.Background(), w.pki.Chain(leaf), Soft)
	var re *RevokedError
	if !errors.As(err, &re) {
		t.Fatalf("error %v is not a *RevokedError", err)
	}
	if re.Subject != leaf.Cert.Subject.String() || re.Reason != 1 || re.Source != "crl "+w.pki.CRLURL(w.pki.Intermediate) ||
		re.RevokedAt.IsZero() || re.Serial == "" {
		t.Errorf("RevokedError = %+v", re)
	}
}

func TestCachedUntilNextUpdate(t *testing.T) {
	for _, kind := range []string{"crl", "ocsp"} {
		t.Run(kind, func(t *testing.T) {
			w := newWorld(t, Config{})
			co := pkitest.CertOptions{NoOCSP: kind == "crl", NoCRL: kind == "ocsp"}
			leaf := w.pki.Issue(t, w.pki.Intermediate, co)
			chain := w.pki.Chain(leaf)
			check := func() error { _, err := w.rc.Check(context.Background(), chain, Hard); return err }
			if err := check(); err != nil {
				t.Fatal(err)
			}
			w.clock.Advance(59 * time.Minute) // nextUpdate is an hour after thisUpdate
			if err := check(); err != nil {
				t.Fatal(err)
			}
			if n := w.pki.Hits(kind, w.pki.Intermediate); n != 1 {
				t.Fatalf("%s fetched %d times before nextUpdate, want 1", kind, n)
			}
			w.pki.Revoke(leaf.Cert, 1)
			if err := check(); err != nil {
				t.Fatalf("a cached good answer still serves: %v", err)
			}
			w.clock.Advance(time.Minute)
			if err := check(); !errors.Is(err, ErrRevoked) {
				t.Fatalf("after nextUpdate: %v, want revoked", err)
			}
			if n := w.pki.Hits(kind, w.pki.Intermediate); n != 2 {
				t.Fatalf("%s fetched %d times, want 2", kind, n)
			}
		})
	}
}

func TestMaxCacheAgeCapsNextUpdate(t *testing.T) {
	w := newWorld(t, Config{MaxCacheAge: 10 * time.Minute})
	leaf := w.pki.Issue(t, w.pki.Intermediate, pkitest.CertOptions{NoOCSP: true})
	for range 2 {
		if _, err := w.rc.Check(context.Background(), w.pki.Chain(leaf), Hard); err != nil {
			t.Fatal(err)
		}
		w.clock.Advance(10 * time.Minute)
	}
	if n := w.pki.Hits("crl", w.pki.Intermediate); n != 2 {
		t.Fatalf("CRL fetched %d times, want 2 (cache capped at 10 minutes)", n)
	}
}

func TestFailureRememberedForFailureTTL(t *testing.T) {
	w := newWorld(t, Config{FailureTTL: 30 * time.Second})
	leaf := w.pki.Issue(t, w.pki.Intermediate, pkitest.CertOptions{NoOCSP: true})
	w.pki.SetCRL(w.pki.Intermediate, pkitest.Down)
	chain := w.pki.Chain(leaf)
	for range 3 {
		if _, err := w.rc.Check(context.Background(), chain, Hard); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("CRL down: %v", err)
		}
	}
	if n := w.pki.Hits("crl", w.pki.Intermediate); n != 1 {
		t.Fatalf("a failing CRL server was asked %d times within FailureTTL, want 1", n)
	}
	w.pki.SetCRL(w.pki.Intermediate, pkitest.Normal)
	w.clock.Advance(30 * time.Second)
	if _, err := w.rc.Check(context.Background(), chain, Hard); err != nil {
		t.Fatalf("after FailureTTL, with the CRL back: %v", err)
	}
}

func TestConcurrentChecksShareOneFetch(t *testing.T) {
	w := newWorld(t, Config{})
	leaf := w.pki.Issue(t, w.pki.Intermediate, pkitest.CertOptions{NoOCSP: true})
	chain := w.pki.Chain(leaf)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Go(func() {
			_, err := w.rc.Check(context.Background(), chain, Hard)
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := w.pki.Hits("crl", w.pki.Intermediate); n != 1 {
		t.Fatalf("16 concurrent checks fetched the CRL %d times, want 1", n)
	}
}

func TestSlowSourceTimesOut(t *testing.T) {
	w := newWorld(t, Config{Timeout: 200 * time.Millisecond})
	leaf := w.pki.Issue(t, w.pki.Intermediate, pkitest.CertOptions{NoOCSP: true})
	w.pki.SetCRL(w.pki.Intermediate, pkitest.Slow)
	began := time.Now()
	_, err := w.rc.Check(context.Background(), w.pki.Chain(leaf), Hard)
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("slow CRL: %v", err)
	}
	if d := time.Since(began); d > 5*time.Second {
		t.Fatalf("the check took %v despite a 200ms timeout", d)
	}
}

// TestCheckOutOfTime: a check that runs past its context's deadline
// (the discovery flight's, say) leaves what it has not found unknown,
// which Soft accepts and Hard refuses naming the certificate and the
// source cut short; no fetch starts once the deadline has passed, but
// cached answers still count. A canceled context ends the check with its
// error.
func TestCheckOutOfTime(t *testing.T) {
	past := func() (context.Context, context.CancelFunc) {
		return context.WithDeadline(context.Background(), time.Now().Add(-time.Hour))
	}
	for _, tc := range []struct {
		name string
		// ctx is the context of the check; slow makes the leaf's CRL
		// server hang; warm checks the chain once beforehand.
		ctx         func() (context.Context, context.CancelFunc)
		slow, warm  bool
		policy      Policy
		want        [2]Status
		wantErr     error // also wrapped by the leaf's status error
		unavailable bool  // the error is an *UnavailableError
		crlHits     int
	}{
		{name: "deadline during the CRL fetch, soft", slow: true, policy: Soft, crlHits: 1,
			ctx: func() (context.Context, context.CancelFunc) {
				return context.WithTimeout(context.Background(), 50*time.Millisecond)
			},
			want: [2]Status{Unknown, Unknown}},
		{name: "deadline during the CRL fetch, hard", slow: true, policy: Hard, crlHits: 1,
			ctx: func() (context.Context, context.CancelFunc) {
				return context.WithTimeout(context.Background(), 50*time.Millisecond)
			},
			want: [2]Status{Unknown}, wantErr: context.DeadlineExceeded, unavailable: true},
		{name: "deadline passed before the check, hard: nothing fetched", ctx: past, policy: Hard,
			want: [2]Status{Unknown}, wantErr: context.DeadlineExceeded, unavailable: true},
		{name: "deadline passed, cached answers count", ctx: past, warm: true, policy: Hard, crlHits: 1,
			want: [2]Status{Good, Good}},
		{name: "canceled", policy: Soft,
			ctx: func() (context.Context, context.CancelFunc) {
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				return ctx, cancel
			},
			want: [2]Status{Unknown}, wantErr: context.Canceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, Config{Timeout: 200 * time.Millisecond})
			leaf := w.pki.Issue(t, w.pki.Intermediate, pkitest.CertOptions{NoOCSP: true})
			if tc.warm {
				if _, err := w.rc.Check(context.Background(), w.pki.Chain(leaf), Hard); err != nil {
					t.Fatal(err)
				}
			}
			if tc.slow {
				w.pki.SetCRL(w.pki.Intermediate, pkitest.Slow)
			}
			ctx, cancel := tc.ctx()
			defer cancel()
			st, err := w.rc.Check(ctx, w.pki.Chain(leaf), tc.policy)
			if (tc.wantErr == nil) != (err == nil) || (tc.wantErr != nil && !errors.Is(err, tc.wantErr)) {
				t.Fatalf("Check = %v, want %v", err, tc.wantErr)
			}
			if ue := (*UnavailableError)(nil); errors.As(err, &ue) != tc.unavailable ||
				(tc.unavailable && (ue.Subject != leaf.Cert.Subject.String() || !strings.Contains(err.Error(), "crl "+w.pki.CRLURL(w.pki.Intermediate)))) {
				t.Fatalf("Check = %v: an *UnavailableError naming the leaf and its CRL: %v", err, tc.unavailable)
			}
			if len(st) != 2 && tc.want[1] != "" || len(st) != 1 && tc.want[1] == "" {
				t.Fatalf("statuses %+v, want %v", st, tc.want)
			}
			for i := range st {
				if st[i].Status != tc.want[i] {
					t.Errorf("status %d = %s, want %s", i, st[i].Status, tc.want[i])
				}
			}
			if tc.want[0] == Unknown && tc.policy == Soft && tc.wantErr == nil && !errors.Is(st[0].Err, context.DeadlineExceeded) {
				t.Errorf("the leaf's unknown status says %v, not that the deadline passed", st[0].Err)
			}
			if n := w.pki.Hits("crl", w.pki.Intermediate); n != tc.crlHits {
				t.Errorf("CRL fetched %d times, want %d", n, tc.crlHits)
			}
		})
	}
}

// refusing is a transport standing for the SSRF guard: it refuses every
// request, so any fetch that bypassed the injected client would succeed.
type refusing struct{ n int }

var errRefused = errors.New("refused by the test transport")

func (r *refusing) RoundTrip(*http.Request) (*http.Response, error) { r.n++; return nil, errRefused }

func TestFetchesGoThroughTheInjectedClient(t *testing.T) {
	tr := &refusing{}
	w := newWorld(t, Config{Client: &http.Client{Transport: tr}})
	leaf := w.pki.Issue(t, w.pki.Intermediate, pkitest.CertOptions{})
	_, err := w.rc.Check(context.Background(), w.pki.Chain(leaf), Hard)
	if !errors.Is(err, errRefused) || !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Check = %v, want the transport's refusal", err)
	}
	if tr.n != 2 { // the leaf's OCSP responder and CRL
		t.Errorf("transport saw %d requests, want 2", tr.n)
	}
	if h := w.pki.Hits("crl", w.pki.Intermediate) + w.pki.Hits("ocsp", w.pki.Intermediate); h != 0 {
		t.Errorf("the PKI server was reached %d times around the client", h)
	}
}

func TestVerifyFetchesMissingIntermediate(t *testing.T) {
	w := newWorld(t, Config{})
	leaf := w.pki.Issue(t, w.pki.Intermediate, pkitest.CertOptions{URIs: []string{"https://fhir.example.org/r4"}})
	opts := x509.VerifyOptions{Roots: w.pki.Roots(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}

	if _, err := leaf.Cert.Verify(opts); err == nil {
		t.Fatal("the leaf verifies without its intermediate; the test proves nothing")
	}
	chain, st, err := w.rc.VerifyAndCheck(context.Background(), []*x509.Certificate{leaf.Cert}, opts, Hard)
	if err != nil {
		t.Fatalf("VerifyAndCheck: %v", err)
	}
	if len(chain) != 3 || !chain[1].Equal(w.pki.Intermediate.Cert) || len(st) != 2 {
		t.Fatalf("chain of %d, statuses %+v", len(chain), st)
	}
	if n := w.pki.Hits("ca", w.pki.Intermediate); n != 1 {
		t.Errorf("intermediate fetched %d times, want 1", n)
	}
	// Cached: a second verification does not fetch again.
	if _, err := w.rc.Verify(context.Background(), leaf.Cert, opts); err != nil {
		t.Fatal(err)
	}
	if n := w.pki.Hits("ca", w.pki.Intermediate); n != 1 {
		t.Errorf("intermediate fetched %d times after a second Verify, want 1", n)
	}
}

func TestVerifyAIAFailures(t *testing.T) {
	tests := []struct {
		name   string
		co     pkitest.CertOptions
		mode   pkitest.Mode
		errHas string
	}{
		{"no AIA", pkitest.CertOptions{NoAIA: true}, pkitest.Normal, "names no AIA caIssuers URL"},
		{"down", pkitest.CertOptions{}, pkitest.Down, "HTTP status 503"},
		{"garbage", pkitest.CertOptions{}, pkitest.Garbage, "not a DER or PEM certificate"},
		{"huge", pkitest.CertOptions{}, pkitest.Huge, "more than 65536 bytes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, Config{})
			leaf := w.pki.Issue(t, w.pki.Intermediate, tc.co)
			w.pki.SetCert(w.pki.Intermediate, tc.mode)
			_, err := w.rc.Verify(context.Background(), leaf.Cert, x509.VerifyOptions{Roots: w.pki.Roots()})
			var ua x509.UnknownAuthorityError
			if !errors.As(err, &ua) || !strings.Contains(err.Error(), tc.errHas) {
				t.Fatalf("Verify = %v, want an unknown authority error mentioning %q", err, tc.errHas)
			}
		})
	}
}

func TestVerifyAIAFetchesAreBounded(t *testing.T) {
	w := newWorld(t, Config{MaxAIAFetches: 2})
	// root → a → b → c → leaf: three missing intermediates, two fetches
	// allowed.
	a := w.pki.NewCA(t, w.pki.Root, "a", pkitest.CertOptions{})
	b := w.pki.NewCA(t, a, "b", pkitest.CertOptions{})
	c := w.pki.NewCA(t, b, "c", pkitest.CertOptions{})
	leaf := w.pki.Issue(t, c, pkitest.CertOptions{})
	_, err := w.rc.Verify(context.Background(), leaf.Cert, x509.VerifyOptions{Roots: w.pki.Roots(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	if err == nil || !strings.Contains(err.Error(), "AIA fetch limit reached") {
		t.Fatalf("Verify = %v, want the AIA limit", err)
	}
	if n := w.pki.Hits("ca", c) + w.pki.Hits("ca", b) + w.pki.Hits("ca", a); n != 2 {
		t.Errorf("%d AIA fetches, want 2", n)
	}
	w2 := newWorld(t, Config{MaxAIAFetches: 3})
	a2 := w2.pki.NewCA(t, w2.pki.Root, "a", pkitest.CertOptions{})
	b2 := w2.pki.NewCA(t, a2, "b", pkitest.CertOptions{})
	c2 := w2.pki.NewCA(t, b2, "c", pkitest.CertOptions{})
	leaf2 := w2.pki.Issue(t, c2, pkitest.CertOptions{})
	chains, err := w2.rc.Verify(context.Background(), leaf2.Cert, x509.VerifyOptions{Roots: w2.pki.Roots(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	if err != nil || len(chains[0]) != 5 {
		t.Fatalf("three fetches allowed: %v", err)
	}
}

func TestVerifyNeverTrustsAFetchedRoot(t *testing.T) {
	w := newWorld(t, Config{})
	other := pkitest.New(t, pkitest.Options{Clock: w.clock.Now})
	leaf := other.Issue(t, other.Intermediate, pkitest.CertOptions{})
	// The other PKI's intermediate comes through AIA, and its root is
	// self-signed and reachable, but it is not a configured root.
	_, err := w.rc.Verify(context.Background(), leaf.Cert, x509.VerifyOptions{Roots: w.pki.Roots()})
	var ua x509.UnknownAuthorityError
	if !errors.As(err, &ua) {
		t.Fatalf("Verify = %v, want an unknown authority error", err)
	}
}

func TestOwn(t *testing.T) {
	t.Run("good, complete chain", func(t *testing.T) {
		w := newWorld(t, Config{})
		leaf := w.pki.Issue(t, w.pki.Intermediate, pkitest.CertOptions{NotAfter: start.Add(100*24*time.Hour + time.Hour)})
		st := w.rc.Own(context.Background(), w.pki.Chain(leaf), 30*24*time.Hour)
		if st.Status != Good || st.DaysToExpiry != 100 || st.Expiring || st.Problem() != "" || len(st.Certificates) != 2 {
			t.Fatalf("Own = %+v", st)
		}
	})
	t.Run("leaf only: issuer through AIA", func(t *testing.T) {
		w := newWorld(t, Config{})
		leaf := w.pki.Issue(t, w.pki.Intermediate, pkitest.CertOptions{})
		st := w.rc.Own(context.Background(), []*x509.Certificate{leaf.Cert}, 0)
		if st.Status != Good || len(st.Certificates) != 2 || w.pki.Hits("ca", w.pki.Intermediate) != 1 {
			t.Fatalf("Own = %+v, AIA hits %d", st, w.pki.Hits("ca", w.pki.Intermediate))
		}
	})
	t.Run("revoked", func(t *testing.T) {
		w := newWorld(t, Config{})
		leaf := w.pki.Issue(t, w.pki.Intermediate, pkitest.CertOptions{})
		w.pki.Revoke(leaf.Cert, 1)
		st := w.rc.Own(context.Background(), w.pki.Chain(leaf)[:2], 0)
		if st.Status != Revoked || !errors.Is(st.Err, ErrRevoked) || !strings.Contains(st.Problem(), "is revoked") {
			t.Fatalf("Own = %+v, problem %q", st, st.Problem())
		}
	})
	t.Run("expiring", func(t *testing.T) {
		w := newWorld(t, Config{})
		leaf := w.pki.Issue(t, w.pki.Intermediate, pkitest.CertOptions{NotAfter: start.Add(10*24*time.Hour + time.Hour)})
		st := w.rc.Own(context.Background(), w.pki.Chain(leaf), 30*24*time.Hour)
		if st.Status != Good || !st.Expiring || st.DaysToExpiry != 10 || !strings.Contains(st.Problem(), "expires in 10 days") {
			t.Fatalf("Own = %+v, problem %q", st, st.Problem())
		}
	})
	t.Run("unknown", func(t *testing.T) {
		w := newWorld(t, Config{})
		leaf := w.pki.Issue(t, w.pki.Intermediate, pkitest.CertOptions{NoAIA: true})
		w.pki.SetOCSP(w.pki.Intermediate, pkitest.Down)
		w.pki.SetCRL(w.pki.Intermediate, pkitest.Down)
		st := w.rc.Own(context.Background(), []*x509.Certificate{leaf.Cert, w.pki.Intermediate.Cert}, 0)
		if st.Status != Unknown || !errors.Is(st.Err, ErrUnavailable) || st.Problem() != "" {
			t.Fatalf("Own = %+v", st)
		}
		st = w.rc.Own(context.Background(), []*x509.Certificate{leaf.Cert}, 0)
		if st.Status != Unknown || !strings.Contains(st.Err.Error(), "could not be fetched through AIA") {
			t.Fatalf("Own without issuer = %+v", st)
		}
	})
	t.Run("self-signed development certificate", func(t *testing.T) {
		w := newWorld(t, Config{})
		st := w.rc.Own(context.Background(), []*x509.Certificate{w.pki.Root.Cert}, 0)
		if st.Status != Good || len(st.Certificates) != 0 {
			t.Fatalf("Own(self-signed) = %+v", st)
		}
	})
}

func TestCacheIsBounded(t *testing.T) {
	w := newWorld(t, Config{MaxCacheEntries: 3})
	for range 6 {
		leaf := w.pki.Issue(t, w.pki.Intermediate, pkitest.CertOptions{NoCRL: true})
		if _, err := w.rc.Check(context.Background(), w.pki.Chain(leaf), Hard); err != nil {
			t.Fatal(err)
		}
	}
	if n := w.rc.cache.len(); n > 3 {
		t.Fatalf("cache holds %d entries, bound 3", n)
	}
}

// served is an HTTP server answering every request with the body set
// last, so that a test chooses what a CRL server or OCSP responder says.
type served struct {
	srv  *httptest.Server
	mu   sync.Mutex
	body []byte
}

func newServed(t *testing.T) *served {
	s := &served{}
	s.srv = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		b := s.body
		s.mu.Unlock()
		_, _ = rw.Write(b)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *served) set(b []byte) {
	s.mu.Lock()
	s.body = b
	s.mu.Unlock()
}

// partnerCert issues under issuer a certificate whose CRL distribution
// point and OCSP responder are the URLs given (none when empty): a CA
// certificate when ca is set, else an end-entity one.
func partnerCert(t *testing.T, w *world, issuer *pkitest.CA, ca bool, crlURL, ocspURL string) *x509.Certificate {
	t.Helper()
	key := w.pki.Issue(t, w.pki.Intermediate, pkitest.CertOptions{}).Key // a fresh key
	now := w.clock.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(0x5eed),
		Subject:      pkix.Name{CommonName: "fhir.partner.example"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.AddDate(1, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	if ca {
		tmpl.Subject.CommonName = "partner sub-CA"
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage |= x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	}
	if crlURL != "" {
		tmpl.CRLDistributionPoints = []string{crlURL}
	}
	if ocspURL != "" {
		tmpl.OCSPServer = []string{ocspURL}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuer.Cert, key.Public(), issuer.Key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// idp is an Issuing Distribution Point extension (RFC 5280 §5.2.5).
type idp struct {
	uris                                  []string
	user, ca, reasons, indirect, attrOnly bool
}

func (p idp) ext() pkix.Extension {
	var b cryptobyte.Builder
	flag := func(b *cryptobyte.Builder, tag uint8, on bool) {
		if on {
			b.AddASN1(casn1.Tag(tag).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddUint8(0xff) })
		}
	}
	b.AddASN1(casn1.SEQUENCE, func(b *cryptobyte.Builder) {
		if len(p.uris) > 0 {
			b.AddASN1(casn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
				b.AddASN1(casn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
					for _, u := range p.uris {
						b.AddASN1(casn1.Tag(6).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes([]byte(u)) })
					}
				})
			})
		}
		flag(b, 1, p.user)
		flag(b, 2, p.ca)
		if p.reasons { // keyCompromise only
			b.AddASN1(casn1.Tag(3).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes([]byte{0x06, 0x40}) })
		}
		flag(b, 4, p.indirect)
		flag(b, 5, p.attrOnly)
	})
	return pkix.Extension{Id: oidIssuingDistributionPoint, Critical: true, Value: b.BytesOrPanic()}
}

// TestCRLExtensionsAndScope: a CRL with a critical extension cqgate does
// not process must not be used (RFC 5280 §5.2), nor one whose entries
// have one (§5.3), nor one whose Issuing Distribution Point does not
// cover the certificate checked. Each CRL here is validly signed by the
// issuer and current, and, unless it lists the certificate, would make a
// revoked certificate read good (a delta CRL lists only what changed, a
// partition only its part): such a CRL leaves the status unknown, so
// Hard refuses it.
func TestCRLExtensionsAndScope(t *testing.T) {
	deltaBase, _ := asn1.Marshal(big.NewInt(41))
	delta := pkix.Extension{Id: oidDeltaCRLIndicator, Critical: true, Value: deltaBase}
	unknown := pkix.Extension{Id: asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 99999, 7}, Critical: true, Value: []byte{0x05, 0x00}}
	invalidity, _ := asn1.MarshalWithParams(start.Add(-time.Hour), "generalized")
	certIssuer, _ := asn1.Marshal([]asn1.RawValue{{Class: asn1.ClassContextSpecific, Tag: 6, Bytes: []byte("urn:other-ca")}})
	// exts makes the CRL's extensions; u is the certificate's CRL URL.
	fixed := func(e ...pkix.Extension) func(string) []pkix.Extension {
		return func(string) []pkix.Extension { return e }
	}
	point := func(p idp) func(string) []pkix.Extension {
		return func(u string) []pkix.Extension {
			for i := range p.uris {
				if p.uris[i] == "" {
					p.uris[i] = u
				}
			}
			return []pkix.Extension{p.ext()}
		}
	}
	for _, tc := range []struct {
		name string
		// ca checks a CA certificate the root issued instead of a leaf.
		ca   bool
		exts func(u string) []pkix.Extension
		// entryExts are the extensions of the certificate's own entry
		// (listed says it is on the CRL) or of another serial's.
		entryExts []pkix.Extension
		listed    bool
		// noNextUpdate signs the CRL without a nextUpdate.
		noNextUpdate bool
		want         Status
		errHas       string
	}{
		{name: "no nextUpdate", exts: fixed(), noNextUpdate: true, want: Unknown, errHas: "no nextUpdate"},
		{name: "delta CRL indicator", exts: fixed(delta), want: Unknown, errHas: "delta CRL"},
		{name: "delta CRL indicator, not marked critical", exts: fixed(pkix.Extension{Id: delta.Id, Value: delta.Value}), want: Unknown, errHas: "delta CRL"},
		{name: "unknown critical extension", exts: fixed(unknown), want: Unknown, errHas: "critical extension 1.3.6.1.4.1.99999.7"},
		{name: "unknown non-critical extension", exts: fixed(pkix.Extension{Id: unknown.Id, Value: unknown.Value}), listed: true, want: Revoked},
		{name: "plain issuing distribution point", exts: point(idp{uris: []string{""}}), listed: true, want: Revoked},
		{name: "plain issuing distribution point, not listed", exts: point(idp{uris: []string{"ldap://ca.example/cn=part1", ""}}), want: Good},
		{name: "issuing distribution point of another partition", exts: point(idp{uris: []string{"http://ca.example/part2.crl"}}),
			want: Unknown, errHas: "none of the certificate's CRL distribution points"},
		{name: "onlyContainsCACerts, leaf", exts: point(idp{ca: true}), want: Unknown, errHas: "onlyContainsCACerts"},
		{name: "onlyContainsCACerts, CA certificate", ca: true, exts: point(idp{uris: []string{""}, ca: true}), listed: true, want: Revoked},
		{name: "onlyContainsUserCerts, leaf", exts: point(idp{user: true}), listed: true, want: Revoked},
		{name: "onlyContainsUserCerts, CA certificate", ca: true, exts: point(idp{user: true}), want: Unknown, errHas: "onlyContainsUserCerts"},
		{name: "onlySomeReasons", exts: point(idp{reasons: true}), want: Unknown, errHas: "onlySomeReasons"},
		{name: "indirectCRL", exts: point(idp{indirect: true}), want: Unknown, errHas: "indirectCRL"},
		{name: "onlyContainsAttributeCerts", exts: point(idp{attrOnly: true}), want: Unknown, errHas: "onlyContainsAttributeCerts"},
		{name: "malformed issuing distribution point", exts: fixed(pkix.Extension{Id: oidIssuingDistributionPoint, Critical: true, Value: []byte{0x30, 0x03, 0x81, 0x02, 0xff}}),
			want: Unknown, errHas: "Issuing Distribution Point is malformed"},
		{name: "entry naming a certificate issuer", exts: fixed(), entryExts: []pkix.Extension{{Id: oidCertificateIssuer, Critical: true, Value: certIssuer}},
			want: Unknown, errHas: "indirect CRL"},
		{name: "entry with an unknown critical extension", exts: fixed(), entryExts: []pkix.Extension{unknown}, want: Unknown, errHas: "CRL entry has a critical extension"},
		{name: "entry with an invalidity date", exts: fixed(), entryExts: []pkix.Extension{{Id: oidInvalidityDate, Value: invalidity}}, listed: true, want: Revoked},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, Config{})
			crlSrv := newServed(t)
			crlURL := crlSrv.srv.URL + "/part1.crl"
			issuer := w.pki.Intermediate
			if tc.ca {
				issuer = w.pki.Root
			}
			cert := partnerCert(t, w, issuer, tc.ca, crlURL, "")
			chain := []*x509.Certificate{cert, w.pki.Intermediate.Cert, w.pki.Root.Cert}
			if tc.ca {
				chain = []*x509.Certificate{cert, w.pki.Root.Cert}
			}
			serial := big.NewInt(7) // another certificate
			if tc.listed {
				serial = cert.SerialNumber
			}
			now := w.clock.Now()
			der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
				Number:     big.NewInt(42),
				ThisUpdate: now,
				NextUpdate: now.Add(time.Hour),
				RevokedCertificateEntries: []x509.RevocationListEntry{{
					SerialNumber: serial, RevocationTime: now.Add(-time.Minute), ReasonCode: 1, ExtraExtensions: tc.entryExts}},
				ExtraExtensions: tc.exts(crlURL),
			}, issuer.Cert, issuer.Key)
			if err != nil {
				t.Fatal(err)
			}
			if tc.noNextUpdate {
				der = withoutNextUpdate(t, der, issuer.Key)
			}
			crlSrv.set(der)
			st, err := w.rc.Check(context.Background(), chain, Hard)
			if len(st) == 0 || st[0].Status != tc.want {
				t.Fatalf("statuses %+v (err %v), want the certificate %s", st, err, tc.want)
			}
			switch tc.want {
			case Unknown:
				if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "crl "+crlURL+": ") || !strings.Contains(err.Error(), tc.errHas) {
					t.Fatalf("Check = %v, want ErrUnavailable saying %q", err, tc.errHas)
				}
			case Revoked:
				if !errors.Is(err, ErrRevoked) || st[0].Source != "crl "+crlURL {
					t.Fatalf("Check = %v from %q, want revoked by the CRL", err, st[0].Source)
				}
			}
		})
	}
}

// TestOCSPCertIDIssuer: RFC 6960 §3.2 item 1, the certificate a response
// identifies must be the one asked about, issuer name and key hashes as
// well as serial. A responder key certified (id-kp-OCSPSigning) by two
// CAs, the leaf's issuer and another one, answers "good" about the other
// CA's certificate of the leaf's serial; the certs field of a
// BasicOCSPResponse is not signed, so the answer can carry the responder
// certificate the leaf's issuer issued. It must not count for the leaf,
// though it is signed by a valid delegated responder of the leaf's
// issuer; answers naming the leaf's issuer count whichever hash the
// CertID uses.
func TestOCSPCertIDIssuer(t *testing.T) {
	for _, tc := range []struct {
		name      string
		otherCA   bool // the CertID names another CA than the leaf's issuer
		hash      crypto.Hash
		want      Status
		wantError string
	}{
		{name: "another issuer's certificate of the same serial", otherCA: true, want: Unknown, wantError: "for a certificate of another issuer"},
		{name: "the leaf's issuer, SHA-1 CertID", hash: crypto.SHA1, want: Good},
		{name: "the leaf's issuer, SHA-256 CertID", hash: crypto.SHA256, want: Good},
		{name: "the leaf's issuer, SHA-512 CertID", hash: crypto.SHA512, want: Good},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, Config{})
			other := w.pki.NewCA(t, w.pki.Root, "other", pkitest.CertOptions{})
			responderKey := w.pki.Issue(t, w.pki.Intermediate, pkitest.CertOptions{}).Key
			now := w.clock.Now()
			responder := func(ca *pkitest.CA) *x509.Certificate {
				der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
					SerialNumber: big.NewInt(now.UnixNano()),
					Subject:      pkix.Name{CommonName: "shared OCSP responder"},
					NotBefore:    now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
					KeyUsage:    x509.KeyUsageDigitalSignature,
					ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageOCSPSigning},
				}, ca.Cert, responderKey.Public(), ca.Key)
				if err != nil {
					t.Fatal(err)
				}
				c, err := x509.ParseCertificate(der)
				if err != nil {
					t.Fatal(err)
				}
				return c
			}
			forIntermediate := responder(w.pki.Intermediate)
			_ = responder(other) // the same key also answers for "other"
			ocspSrv := newServed(t)
			leaf := partnerCert(t, w, w.pki.Intermediate, false, "", ocspSrv.srv.URL+"/ocsp")
			named := w.pki.Intermediate.Cert
			if tc.otherCA {
				named = other.Cert
			}
			der, err := ocsp.CreateResponse(named, forIntermediate, ocsp.Response{
				Status:       ocsp.Good,
				SerialNumber: leaf.SerialNumber,
				ThisUpdate:   now,
				NextUpdate:   now.Add(time.Hour),
				Certificate:  forIntermediate,
				IssuerHash:   tc.hash,
			}, responderKey)
			if err != nil {
				t.Fatal(err)
			}
			ocspSrv.set(der)
			st, err := w.rc.Check(context.Background(), []*x509.Certificate{leaf, w.pki.Intermediate.Cert, w.pki.Root.Cert}, Hard)
			if len(st) == 0 || st[0].Status != tc.want {
				t.Fatalf("statuses %+v (err %v), want the leaf %s", st, err, tc.want)
			}
			if tc.want == Unknown && (!errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), tc.wantError)) {
				t.Fatalf("Check = %v, want ErrUnavailable saying %q", err, tc.wantError)
			}
		})
	}
}

// TestCertIDForRefusesWhatItCannotRead: the CertID reader refuses
// truncated or foreign data without panicking.
func TestCertIDForRefusesWhatItCannotRead(t *testing.T) {
	w := newWorld(t, Config{})
	leaf := w.pki.Issue(t, w.pki.Intermediate, pkitest.CertOptions{})
	der, err := ocsp.CreateResponse(w.pki.Intermediate.Cert, w.pki.Intermediate.Cert, ocsp.Response{
		Status: ocsp.Good, SerialNumber: leaf.Cert.SerialNumber, ThisUpdate: start, NextUpdate: start.Add(time.Hour),
	}, w.pki.Intermediate.Key)
	if err != nil {
		t.Fatal(err)
	}
	r, err := ocsp.ParseResponse(der, nil)
	if err != nil {
		t.Fatal(err)
	}
	tbs := r.TBSResponseData
	if _, err := certIDFor(tbs, leaf.Cert.SerialNumber); err != nil {
		t.Fatalf("certIDFor(a valid ResponseData) = %v", err)
	}
	for _, tc := range []struct {
		name string
		tbs  []byte
	}{
		{"empty", nil},
		{"truncated", tbs[:len(tbs)/2]},
		{"trailing data", append(bytes.Clone(tbs), 0)},
		{"a certificate", leaf.Cert.Raw},
		{"one byte", []byte{0x30}},
		{"no single response for the serial", bytes.Clone(tbs)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			serial := leaf.Cert.SerialNumber
			if tc.name == "no single response for the serial" {
				serial = big.NewInt(1)
			}
			if _, err := certIDFor(tc.tbs, serial); err == nil {
				t.Fatal("certIDFor accepted it")
			}
		})
	}
}

// TestOCSPWithoutNextUpdateIsRejected: RFC 5019 §4, "If the nextUpdate
// field is absent, the client MUST reject the response." An OCSP "good"
// from 299 days ago without nextUpdate, replayed on the plain-http OCSP
// URL after the certificate's revocation, must not count: the issuer's
// current CRL, which lists the leaf, is read instead.
func TestOCSPWithoutNextUpdateIsRejected(t *testing.T) {
	w := newWorld(t, Config{})
	ocspSrv := newServed(t)
	leaf := partnerCert(t, w, w.pki.Intermediate, false, w.pki.CRLURL(w.pki.Intermediate), ocspSrv.srv.URL+"/ocsp")
	w.clock.Advance(300 * 24 * time.Hour) // the leaf is valid for a year
	der, err := ocsp.CreateResponse(w.pki.Intermediate.Cert, w.pki.Intermediate.Cert, ocsp.Response{
		Status:       ocsp.Good,
		SerialNumber: leaf.SerialNumber,
		ThisUpdate:   w.clock.Now().Add(-299 * 24 * time.Hour), // no NextUpdate
	}, w.pki.Intermediate.Key)
	if err != nil {
		t.Fatal(err)
	}
	ocspSrv.set(der)
	w.pki.Revoke(leaf, 1) // on the intermediate's CRL from now on

	chain := []*x509.Certificate{leaf, w.pki.Intermediate.Cert, w.pki.Root.Cert}
	st, err := w.rc.Check(context.Background(), chain, Hard)
	if len(st) == 0 || st[0].Status != Revoked || st[0].Source != "crl "+w.pki.CRLURL(w.pki.Intermediate) || !errors.Is(err, ErrRevoked) {
		t.Fatalf("statuses %+v (err %v), want the leaf revoked by its CRL", st, err)
	}

	// Without a CRL to fall back on, the status is unknown and says why.
	w.pki.SetCRL(w.pki.Intermediate, pkitest.Down)
	w.clock.Advance(DefaultMaxCacheAge)
	if _, err := w.rc.Check(context.Background(), chain, Hard); !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "has no nextUpdate") {
		t.Fatalf("Check = %v, want ErrUnavailable naming the missing nextUpdate", err)
	}
}

// withoutNextUpdate returns the CRL der with its nextUpdate taken out of
// the signed list and signed again by key (x509.CreateRevocationList
// always writes one).
func withoutNextUpdate(t *testing.T, der []byte, key crypto.Signer) []byte {
	t.Helper()
	list, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatal(err)
	}
	var outer, certList, tbs, sigAlg, version, alg, issuer, thisUpdate, nextUpdate cryptobyte.String
	input := cryptobyte.String(der)
	var tag casn1.Tag
	if !input.ReadASN1(&certList, casn1.SEQUENCE) ||
		!certList.ReadASN1(&outer, casn1.SEQUENCE) ||
		!certList.ReadASN1Element(&sigAlg, casn1.SEQUENCE) ||
		!outer.ReadASN1Element(&version, casn1.INTEGER) ||
		!outer.ReadASN1Element(&alg, casn1.SEQUENCE) ||
		!outer.ReadASN1Element(&issuer, casn1.SEQUENCE) ||
		!outer.ReadAnyASN1Element(&thisUpdate, &tag) ||
		!outer.ReadAnyASN1Element(&nextUpdate, &tag) {
		t.Fatal("cannot take the CRL apart")
	}
	b := cryptobyte.NewBuilder(nil)
	b.AddASN1(casn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(version)
		b.AddBytes(alg)
		b.AddBytes(issuer)
		b.AddBytes(thisUpdate)
		b.AddBytes(outer) // the entries and extensions, as they were
	})
	tbs = b.BytesOrPanic()
	h := crypto.SHA256
	switch list.SignatureAlgorithm {
	case x509.SHA384WithRSA, x509.ECDSAWithSHA384:
		h = crypto.SHA384
	case x509.SHA512WithRSA, x509.ECDSAWithSHA512:
		h = crypto.SHA512
	}
	d := h.New()
	d.Write(tbs)
	sig, err := key.Sign(rand.Reader, d.Sum(nil), h)
	if err != nil {
		t.Fatal(err)
	}
	out := cryptobyte.NewBuilder(nil)
	out.AddASN1(casn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(tbs)
		b.AddBytes(sigAlg)
		b.AddASN1BitString(sig)
	})
	der = out.BytesOrPanic()
	if got, err := x509.ParseRevocationList(der); err != nil || !got.NextUpdate.IsZero() {
		t.Fatalf("rebuilt CRL: %v, nextUpdate %v", err, got.NextUpdate)
	}
	return der
}
