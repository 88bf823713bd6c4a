package proxy

import (
	"net/http"
	"strings"
	"testing"

	"github.com/cqgate/cqgate/assertion"
)

// TestScrubTokensAllocationFree: checking a tenant's response headers for
// an echo of cqgate's token costs no allocation when there is none, and
// redacts it (raw or percent-encoded) when there is.
func TestScrubTokensAllocationFree(t *testing.T) {
	const tok = "ory_at_sZ2NQuqVdyXu6DYyOfmsRz3_i0_Qc81UD4J7j6Qb3xo.k7KFNP4tyLWu124m1YWuiu"
	rt := &route{token: &assertion.Token{AccessToken: tok}}
	h := http.Header{
		"Content-Type":   {"application/fhir+json"},
		"Content-Length": {"1234"},
		"Date":           {"Sun, 06 Dec 2026 04:00:00 GMT"},
		"Etag":           {`W/"3"`},
		"Last-Modified":  {"Sun, 06 Dec 2026 03:00:00 GMT"},
		"X-Request-Id":   {"tenant-5d0c2b0e-8a3f-4a51-9d0e-2f6c1d7e9b11"},
	}
	if n := testing.AllocsPerRun(100, func() { rt.scrubTokens(h) }); n != 0 {
		t.Errorf("scrubTokens allocated %v times on clean headers", n)
	}
	h.Set("X-Echo", "Bearer "+tok)
	h.Set("Link", "<https://t.example/?access_token="+strings.ReplaceAll(tok, "_", "%5F")+">")
	rt.scrubTokens(h)
	for name, vs := range h {
		for _, v := range vs {
			if strings.Contains(v, tok) || strings.Contains(v, "%5F") {
				t.Errorf("%s = %q still holds the token", name, v)
			}
		}
	}
}
