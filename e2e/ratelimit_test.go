package e2e

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/cqgate/cqgate/config"
	"github.com/cqgate/cqgate/internal/outcome"
)

// organizations.<oid>.rate_limit keeps cqgate under the tenant's quota:
// the burst goes through, the next request is answered 429 with
// Retry-After by cqgate itself, and the FHIR server never sees it.
func TestOrganizationRateLimit(t *testing.T) {
	w := newWorld(t, worldOptions{flavor: "r4", tune: func(c *config.Config, _ *world) {
		org := c.Organizations[cernerOID]
		// One request per minute after a burst of two: the test cannot
		// earn a new turn while it runs.
		org.RateLimit = &config.RateLimit{RequestsPerSecond: 1.0 / 60, Burst: 2}
		c.Organizations[cernerOID] = org
	}})
	path := "/fhir/" + cernerOID + "/Patient/1316024"
	for i := range 2 {
		if resp, body := w.do("GET", path, nil, nil); resp.StatusCode != http.StatusOK {
			t.Fatalf("request %d within the burst: %d %s", i, resp.StatusCode, body)
		}
	}
	resp, body := w.do("GET", path, nil, nil)
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("request over the limit: %d %s, want 429", resp.StatusCode, body)
	}
	if ra := resp.Header.Get("Retry-After"); ra == "" || ra == "0" {
		t.Errorf("Retry-After %q, want the seconds until the next turn", ra)
	}
	var oo outcome.OperationOutcome
	if err := json.Unmarshal(body, &oo); err != nil || oo.Issue[0].Code != outcome.Throttled {
		t.Errorf("body %s, want an OperationOutcome with a throttled issue", body)
	}
	if n := len(w.fhir.seen()); n != 2 {
		t.Errorf("the FHIR server saw %d requests, want 2", n)
	}
}

// Without a limit, a quick series of requests all goes through.
func TestNoRateLimitByDefault(t *testing.T) {
	w := newWorld(t, worldOptions{flavor: "r4"})
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; i < 20 && time.Now().Before(deadline); i++ {
		if resp, body := w.do("GET", "/fhir/"+cernerOID+"/Patient/1316024", nil, nil); resp.StatusCode != http.StatusOK {
			t.Fatalf("request %d: %d %s", i, resp.StatusCode, body)
		}
	}
}
