package gateway

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/cqgate/cqgate/config"
)

// Every metric the chart's Grafana dashboard queries is one cqgate
// exports: the names are checked against a running gateway's registry
// after a request, so a renamed metric breaks this test, not the
// dashboard.
func TestDashboardQueriesExportedMetrics(t *testing.T) {
	raw, err := os.ReadFile("../deploy/helm/cqgate/dashboards/cqgate.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("the dashboard is not JSON: %v", err)
	}

	lt := newLoopbackTenant(t)
	g := lt.gateway(t, nil)
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/fhir/1.2.3/Patient/1", nil)
	req.RemoteAddr = "127.0.0.1:5000"
	g.Handler.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("request: %d %s", rec.Code, rec.Body)
	}
	// The API listener's gauges come with the listener.
	ln, _, err := Listen("127.0.0.1:0", config.Default().Server, g.Metrics)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	families, err := g.Metrics.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	exported := map[string]bool{}
	for _, f := range families {
		exported[f.GetName()] = true
		if f.GetType().String() == "HISTOGRAM" {
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				exported[f.GetName()+suffix] = true
			}
		}
	}

	name := regexp.MustCompile(`\bcqgate_[a-z_]+\b`)
	queried := map[string]bool{}
	check := func(where, expr string) {
		for _, n := range name.FindAllString(expr, -1) {
			queried[n] = true
			if !exported[n] {
				t.Errorf("%s queries %s, which cqgate does not export", where, n)
			}
		}
	}
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			check("panel "+p.Title, tg.Expr)
		}
	}
	for _, v := range dash.Templating.List {
		check("variable", v.Definition)
	}
	// What the issue asks the dashboard to show.
	for _, want := range []string{"cqgate_requests_total", "cqgate_upstream_duration_seconds_bucket", "cqgate_token_exchanges_total",
		"cqgate_token_cache_requests_total", "cqgate_signing_certificate_not_after_seconds", "cqgate_vault_logged_in", "cqgate_vault_errors_total", "cqgate_build_info"} {
		if !queried[want] {
			t.Errorf("the dashboard does not show %s", want)
		}
	}
	var names []string
	for n := range exported {
		if strings.HasPrefix(n, "cqgate_") && !queried[n] && !strings.HasSuffix(n, "_sum") && !strings.HasSuffix(n, "_count") && !strings.HasSuffix(n, "_bucket") {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	t.Logf("exported but not on the dashboard: %v", names)
}
