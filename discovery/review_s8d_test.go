package discovery

// Review rev-s8d.

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cqgate/cqgate/internal/pkitest"
	"github.com/cqgate/cqgate/internal/revocation"
)

// TestSoftPolicyWhenRevocationOutlastsTheDiscoveryBudget: the discovery
// flight's deadline (discoverer.go: 3 × the HTTP client's timeout + 1 s,
// "three documents at most") does not count revocation fetches (each
// udap.revocation.timeout, up to 2 OCSP + 2 CRL URLs per certificate and
// 4 AIA fetches per chain). When the CA's sources hang, the deadline
// ends revocation.Check with a bare context error, which verifyChain
// does not recognize as an unknown status: under a soft community the
// metadata is refused (docs/udap-trust.md: soft accepts "status unknown
// (source down, …)") with a TrustError saying the metadata "is not
// signed under trust community", naming no certificate and no CRL/OCSP
// URL (the docs promise both in the 502). Here the budget is 1.9 s
// (client timeout 300 ms), the leaf's OCSP responder is down and its CRL
// server hangs past the flight's deadline (revocation timeout 2 s); with
// the defaults (discovery.timeout 10s → 31 s, revocation.timeout 5s) a
// chain whose CA sources hang needs 7 fetches, e.g. two certificates
// with one OCSP URL and two CRL DPs each plus an AIA fetch.
func TestSoftPolicyWhenRevocationOutlastsTheDiscoveryBudget(t *testing.T) {
	const cq = "urn:oid:2.16.840.1.113883.3.7204.1.1"
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
		Revocation: w.rc,
		Communities: map[string]Community{
			"carequality": {URI: cq, TrustAnchors: w.a.Roots(), Revocation: revocation.Soft},
		},
	})
	res, err := w.discover(d, "carequality")
	if err != nil {
		t.Fatalf("soft community, the leaf's OCSP is down and its CRL hangs (status unknown): Discover = %v\n"+
			"names the certificate: %v", err, strings.Contains(err.Error(), "CN=pkitest leaf"))
	}
	if res.Source != SourceUDAP {
		t.Fatalf("source %s, want udap", res.Source)
	}
}
