package e2e

import (
	"bufio"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cqgate/cqgate/config"
)

// A resolved organization is reused on the hot path for as long as the
// cached directory entry and discovery result it was built from are
// current, whatever proxy.reuse_resolved says: that bounds only the
// reuse of a tenant nothing vouches for (built from a stale answer, or
// waiting for a UDAP registration; tenant/reuse_test.go covers those).
// Five requests cost one directory and one discovery lookup, with
// metrics on, which wrap both caches to count their lookups: the
// wrappers once hid what vouches for a tenant, and every organization
// was then resolved again once reuse_resolved passed (with 0, on every
// request).
func TestResolvedOrganizationIsReused(t *testing.T) {
	for _, tt := range []struct {
		reuse         time.Duration
		wantLookups   float64 // directory + discovery lookups for 5 requests
		wantDirectory float64
	}{
		{time.Minute, 2, 1},
		{0, 2, 1},
	} {
		t.Run(fmt.Sprintf("reuse_resolved=%s", tt.reuse), func(t *testing.T) {
			w := newWorld(t, worldOptions{flavor: "r4", tune: func(c *config.Config, _ *world) {
				c.Proxy.ReuseResolved = tt.reuse
			}})
			for i := range 5 {
				if resp, body := w.do("GET", "/fhir/"+cernerOID+"/Patient/1316024", nil, nil); resp.StatusCode != http.StatusOK {
					t.Fatalf("request %d: %d %s", i, resp.StatusCode, body)
				}
			}
			_, body := w.do("GET", "/metrics", nil, nil)
			dir, disc := metricSum(string(body), "cqgate_directory_lookups_total"), metricSum(string(body), "cqgate_discovery_lookups_total")
			if dir != tt.wantDirectory || dir+disc != tt.wantLookups {
				t.Errorf("%g directory and %g discovery lookups, want %g and %g", dir, disc, tt.wantDirectory, tt.wantLookups-tt.wantDirectory)
			}
			if w.dir.requests.Load() != 1 || w.fhir.metadataCalls.Load() != 1 {
				t.Errorf("%d directory requests, %d metadata fetches; want 1 each", w.dir.requests.Load(), w.fhir.metadataCalls.Load())
			}
		})
	}
}

// metricSum adds up every sample of a counter in a Prometheus scrape.
func metricSum(scrape, name string) float64 {
	var sum float64
	sc := bufio.NewScanner(strings.NewReader(scrape))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		if v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64); err == nil {
			sum += v
		}
	}
	return sum
}
