package metrics

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

const (
	oidA = "2.16.840.1.113883.3.13.1"
	oidB = "1.2.3.4"
)

// scrape serves m's handler on a loopback test server and returns the body
// of one GET.
func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		t.Fatalf("reading scrape: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape status %d: %s", resp.StatusCode, body)
	}
	return string(body)
}

func TestScrapeAfterCalls(t *testing.T) {
	m := New()
	m.ObserveRequest(oidA, http.MethodGet, 200)
	m.ObserveRequest(oidA, http.MethodGet, 204)
	m.ObserveRequest(oidA, http.MethodPost, 502)
	m.ObserveRequest("", http.MethodGet, 404)
	m.ObserveUpstream(oidA, 7*time.Millisecond)
	m.ObserveUpstream(oidA, 2*time.Second)
	m.InflightInc()
	m.InflightInc()
	m.InflightDec()
	m.TokenExchange(ExchangeSuccess)
	m.TokenExchange(ExchangeSuccess)
	m.TokenExchange(ExchangeThrottled)
	m.TokenCache(CacheHit)
	m.TokenCache(CacheMiss)
	m.TokenCache(CacheHit)
	m.DirectoryLookup(LookupStale)
	m.DiscoveryLookup(LookupNotFound)
	m.VaultError(VaultTransitSign)
	m.SigningKeyReload(ReloadFailure)
	m.SetSigningCertificateNotAfter(time.Unix(1893456000, 0))
	m.AuditWriteError()
	m.InflightRejected(RejectQueueFull)
	m.InflightRejected(RejectQueueFull)
	m.InflightRejected(RejectWaitExpired)

	srv := httptest.NewServer(m.Handler())
	defer srv.Close()

	want := `
# HELP cqgate_requests_total FHIR requests answered, by organization OID ("unknown" if it did not resolve), method and status class.
# TYPE cqgate_requests_total counter
cqgate_requests_total{code_class="2xx",method="GET",org="2.16.840.1.113883.3.13.1"} 2
cqgate_requests_total{code_class="4xx",method="GET",org="unknown"} 1
cqgate_requests_total{code_class="5xx",method="POST",org="2.16.840.1.113883.3.13.1"} 1
# HELP cqgate_upstream_duration_seconds Time until a partner's FHIR server answered with response headers, by organization OID.
# TYPE cqgate_upstream_duration_seconds histogram
cqgate_upstream_duration_seconds_bucket{org="2.16.840.1.113883.3.13.1",le="0.005"} 0
cqgate_upstream_duration_seconds_bucket{org="2.16.840.1.113883.3.13.1",le="0.01"} 1
cqgate_upstream_duration_seconds_bucket{org="2.16.840.1.113883.3.13.1",le="0.025"} 1
cqgate_upstream_duration_seconds_bucket{org="2.16.840.1.113883.3.13.1",le="0.05"} 1
cqgate_upstream_duration_seconds_bucket{org="2.16.840.1.113883.3.13.1",le="0.1"} 1
cqgate_upstream_duration_seconds_bucket{org="2.16.840.1.113883.3.13.1",le="0.25"} 1
cqgate_upstream_duration_seconds_bucket{org="2.16.840.1.113883.3.13.1",le="0.5"} 1
cqgate_upstream_duration_seconds_bucket{org="2.16.840.1.113883.3.13.1",le="1"} 1
cqgate_upstream_duration_seconds_bucket{org="2.16.840.1.113883.3.13.1",le="2.5"} 2
cqgate_upstream_duration_seconds_bucket{org="2.16.840.1.113883.3.13.1",le="5"} 2
cqgate_upstream_duration_seconds_bucket{org="2.16.840.1.113883.3.13.1",le="10"} 2
cqgate_upstream_duration_seconds_bucket{org="2.16.840.1.113883.3.13.1",le="30"} 2
cqgate_upstream_duration_seconds_bucket{org="2.16.840.1.113883.3.13.1",le="+Inf"} 2
cqgate_upstream_duration_seconds_sum{org="2.16.840.1.113883.3.13.1"} 2.007
cqgate_upstream_duration_seconds_count{org="2.16.840.1.113883.3.13.1"} 2
# HELP cqgate_inflight_requests FHIR requests being served.
# TYPE cqgate_inflight_requests gauge
cqgate_inflight_requests 1
# HELP cqgate_token_exchanges_total Client-credentials token exchanges, by outcome.
# TYPE cqgate_token_exchanges_total counter
cqgate_token_exchanges_total{outcome="http_error"} 0
cqgate_token_exchanges_total{outcome="network_error"} 0
cqgate_token_exchanges_total{outcome="oauth_error"} 0
cqgate_token_exchanges_total{outcome="success"} 2
cqgate_token_exchanges_total{outcome="throttled"} 1
# HELP cqgate_token_cache_requests_total Access token requests to the token cache, by result.
# TYPE cqgate_token_cache_requests_total counter
cqgate_token_cache_requests_total{result="hit"} 2
cqgate_token_cache_requests_total{result="miss"} 1
# HELP cqgate_directory_lookups_total Carequality directory lookups, by result.
# TYPE cqgate_directory_lookups_total counter
cqgate_directory_lookups_total{result="error"} 0
cqgate_directory_lookups_total{result="hit"} 0
cqgate_directory_lookups_total{result="miss"} 0
cqgate_directory_lookups_total{result="not_found"} 0
cqgate_directory_lookups_total{result="stale"} 1
# HELP cqgate_discovery_lookups_total Token URL discovery lookups, by result.
# TYPE cqgate_discovery_lookups_total counter
cqgate_discovery_lookups_total{result="error"} 0
cqgate_discovery_lookups_total{result="hit"} 0
cqgate_discovery_lookups_total{result="miss"} 0
cqgate_discovery_lookups_total{result="not_found"} 1
cqgate_discovery_lookups_total{result="stale"} 0
# HELP cqgate_vault_errors_total Failed Vault requests, by operation.
# TYPE cqgate_vault_errors_total counter
cqgate_vault_errors_total{op="kv_metadata"} 0
cqgate_vault_errors_total{op="kv_read"} 0
cqgate_vault_errors_total{op="kv_write"} 0
cqgate_vault_errors_total{op="login"} 0
cqgate_vault_errors_total{op="renew"} 0
cqgate_vault_errors_total{op="transit_key"} 0
cqgate_vault_errors_total{op="transit_sign"} 1
# HELP cqgate_signing_key_reloads_total Signing key reloads that put new material in service (success) or failed (failure).
# TYPE cqgate_signing_key_reloads_total counter
cqgate_signing_key_reloads_total{result="failure"} 1
cqgate_signing_key_reloads_total{result="success"} 0
# HELP cqgate_signing_certificate_not_after_seconds NotAfter of the signing certificate in service, in seconds since the Unix epoch (0 before a key is loaded).
# TYPE cqgate_signing_certificate_not_after_seconds gauge
cqgate_signing_certificate_not_after_seconds 1.893456e+09
# HELP cqgate_audit_write_errors_total Audit records that could not be written.
# TYPE cqgate_audit_write_errors_total counter
cqgate_audit_write_errors_total 1
# HELP cqgate_inflight_rejected_total FHIR requests answered 503 at server.max_inflight, by reason (queue_full, wait_expired).
# TYPE cqgate_inflight_rejected_total counter
cqgate_inflight_rejected_total{reason="queue_full"} 2
cqgate_inflight_rejected_total{reason="wait_expired"} 1
`
	names := []string{
		"cqgate_requests_total", "cqgate_upstream_duration_seconds", "cqgate_inflight_requests",
		"cqgate_token_exchanges_total", "cqgate_token_cache_requests_total",
		"cqgate_directory_lookups_total", "cqgate_discovery_lookups_total",
		"cqgate_vault_errors_total", "cqgate_signing_key_reloads_total",
		"cqgate_signing_certificate_not_after_seconds", "cqgate_audit_write_errors_total",
		"cqgate_inflight_rejected_total",
	}
	if err := testutil.ScrapeAndCompare(srv.URL, strings.NewReader(want), names...); err != nil {
		t.Fatal(err)
	}
}

func TestHandlerServesRuntimeCollectors(t *testing.T) {
	body := scrape(t, New())
	for _, name := range []string{"go_goroutines", "go_memstats_alloc_bytes", "process_start_time_seconds"} {
		if !regexp.MustCompile(`(?m)^` + name + ` `).MatchString(body) {
			t.Errorf("scrape has no %s", name)
		}
	}
}

func TestRequestLabels(t *testing.T) {
	tests := []struct {
		name            string
		org, method     string
		code            int
		wantOrg, wantMe string
		wantClass       string
	}{
		{"resolved GET 200", oidA, "GET", 200, oidA, "GET", "2xx"},
		{"resolved HEAD 304", oidB, "HEAD", 304, oidB, "HEAD", "3xx"},
		{"unresolved", "", "GET", 404, OrgUnknown, "GET", "4xx"},
		{"urn form is not canonical", "urn:oid:" + oidA, "GET", 400, OrgUnknown, "GET", "4xx"},
		{"malformed OID", "2.16..840", "GET", 400, OrgUnknown, "GET", "4xx"},
		{"leading zero arc", "2.016.840", "GET", 400, OrgUnknown, "GET", "4xx"},
		{"first arc 3", "3.1.2", "GET", 400, OrgUnknown, "GET", "4xx"},
		{"too long", "2." + strings.Repeat("1", 127), "GET", 400, OrgUnknown, "GET", "4xx"},
		{"custom method", oidA, "PROPFIND", 405, oidA, "other", "4xx"},
		{"lower-case method", oidA, "get", 405, oidA, "other", "4xx"},
		{"PUT", oidA, "PUT", 201, oidA, "PUT", "2xx"},
		{"PATCH", oidA, "PATCH", 200, oidA, "PATCH", "2xx"},
		{"DELETE", oidA, "DELETE", 204, oidA, "DELETE", "2xx"},
		{"OPTIONS", oidA, "OPTIONS", 200, oidA, "OPTIONS", "2xx"},
		{"POST 504", oidA, "POST", 504, oidA, "POST", "5xx"},
		{"1xx", oidA, "GET", 101, oidA, "GET", "1xx"},
		{"status 0", oidA, "GET", 0, oidA, "GET", "other"},
		{"status 600", oidA, "GET", 600, oidA, "GET", "other"},
		{"status 599", oidA, "GET", 599, oidA, "GET", "5xx"},
		{"status 99", oidA, "GET", 99, oidA, "GET", "other"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := New()
			m.ObserveRequest(tt.org, tt.method, tt.code)
			if n := testutil.CollectAndCount(m.requests); n != 1 {
				t.Fatalf("%d series, want 1", n)
			}
			got := testutil.ToFloat64(m.requests.WithLabelValues(tt.wantOrg, tt.wantMe, tt.wantClass))
			if got != 1 {
				t.Errorf("requests_total{org=%q,method=%q,code_class=%q} = %v, want 1", tt.wantOrg, tt.wantMe, tt.wantClass, got)
			}
		})
	}
}

func TestValidOID(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"1.2", true},
		{"0.0", true},
		{"1.2.3.4", true},
		{oidA, true},
		{"2.999.1.1", true},
		{"2.0.10", true},
		{"2." + strings.Repeat("1", 126), true},
		{"2." + strings.Repeat("1", 127), false},
		{"", false},
		{"1", false},
		{"1.", false},
		{"1..2", false},
		{".1.2", false},
		{"1.2.", false},
		{"3.1", false},
		{"12.1", false},
		{"1.02", false},
		{"1.2a", false},
		{"1.2 ", false},
		{"1.2\n", false},
		{"urn:oid:1.2", false},
		{"unknown", false},
		{"Bearer 1.2", false},
	}
	for _, tt := range tests {
		if got := validOID(tt.in); got != tt.want {
			t.Errorf("validOID(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestMaxOrgs(t *testing.T) {
	m := New(WithMaxOrgs(2))
	for _, org := range []string{"1.2.1", "1.2.2", "1.2.3", "1.2.4", "1.2.1"} {
		m.ObserveRequest(org, "GET", 200)
		m.ObserveUpstream(org, time.Millisecond)
	}
	want := map[string]float64{"1.2.1": 2, "1.2.2": 1, OrgOther: 2}
	for org, n := range want {
		if got := testutil.ToFloat64(m.requests.WithLabelValues(org, "GET", "2xx")); got != n {
			t.Errorf("requests_total{org=%q} = %v, want %v", org, got, n)
		}
	}
	if n := testutil.CollectAndCount(m.requests); n != len(want) {
		t.Errorf("%d request series, want %d", n, len(want))
	}
	if n := testutil.CollectAndCount(m.upstream); n != len(want) {
		t.Errorf("%d upstream series, want %d", n, len(want))
	}
}

func TestMaxOrgsDefault(t *testing.T) {
	for _, n := range []int{0, -1} {
		if got := New(WithMaxOrgs(n)).maxOrgs; got != DefaultMaxOrgs {
			t.Errorf("WithMaxOrgs(%d): maxOrgs = %d, want %d", n, got, DefaultMaxOrgs)
		}
	}
}

// allowedLabelValues lists every value each cqgate_ label may take; org
// may also be a valid OID.
var allowedLabelValues = map[string][]string{
	"org":        {OrgUnknown, OrgOther},
	"method":     methodNames[:],
	"code_class": codeClassNames[:],
	"outcome":    exchangeOutcomeNames[:],
	"result":     append(append(append([]string{}, cacheResultNames[:]...), lookupResultNames[:]...), reloadResultNames[:]...),
	"op":         vaultOpNames[:],
	"reason":     rejectReasonNames[:],
	"state":      connStateNames[:],
	"le":         nil, // histogram buckets: numbers
}

func TestLabelValuesBoundedNoSecrets(t *testing.T) {
	secrets := []string{
		"sk_live_0123456789abcdef",
		"Bearer eyJhbGciOiJSUzM4NCJ9.eyJzdWIiOiJnYXRld2F5In0.c2lnbmF0dXJl",
		"-----BEGIN PRIVATE KEY-----",
		"s.VaultTokenabcdef",
	}
	m := New(WithMaxOrgs(3))
	for _, s := range secrets {
		m.ObserveRequest(s, s, 200)
		m.ObserveRequest(oidA+"?_apiKey="+s, s, 401)
		m.ObserveUpstream(s, time.Second)
	}
	m.ObserveRequest(oidA, "GET", 200)
	// Out-of-range enum values are ignored, not turned into labels.
	m.TokenExchange(ExchangeOutcome(200))
	m.TokenCache(CacheResult(200))
	m.DirectoryLookup(LookupResult(200))
	m.DiscoveryLookup(LookupResult(200))
	m.VaultError(VaultOp(200))
	m.SigningKeyReload(ReloadResult(200))
	m.InflightRejected(RejectReason(200))

	mfs, err := m.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	number := regexp.MustCompile(`^(\+Inf|[0-9.e+-]+)$`)
	checked := 0
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), Namespace+"_") {
			continue
		}
		for _, metric := range mf.GetMetric() {
			for _, lp := range metric.GetLabel() {
				checked++
				name, value := lp.GetName(), lp.GetValue()
				allowed, ok := allowedLabelValues[name]
				if !ok {
					t.Errorf("%s: unexpected label %q", mf.GetName(), name)
					continue
				}
				switch {
				case name == "le" && number.MatchString(value):
				case name == "org" && validOID(value):
				case contains(allowed, value):
				default:
					t.Errorf("%s: label %s=%q is outside the known set", mf.GetName(), name, value)
				}
			}
		}
	}
	if checked == 0 {
		t.Fatal("no labels checked")
	}
	body := scrape(t, m)
	for _, s := range secrets {
		if strings.Contains(body, s) {
			t.Errorf("scrape contains secret %q", s)
		}
	}
	if strings.Contains(body, "_apiKey") {
		t.Error("scrape contains a query string")
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func TestEnumStrings(t *testing.T) {
	tests := []struct {
		got, want string
	}{
		{ExchangeSuccess.String(), "success"},
		{ExchangeOAuthError.String(), "oauth_error"},
		{ExchangeHTTPError.String(), "http_error"},
		{ExchangeNetworkError.String(), "network_error"},
		{ExchangeThrottled.String(), "throttled"},
		{ExchangeOutcome(99).String(), "invalid"},
		{CacheHit.String(), "hit"},
		{CacheMiss.String(), "miss"},
		{CacheResult(99).String(), "invalid"},
		{LookupHit.String(), "hit"},
		{LookupMiss.String(), "miss"},
		{LookupStale.String(), "stale"},
		{LookupNotFound.String(), "not_found"},
		{LookupError.String(), "error"},
		{LookupResult(99).String(), "invalid"},
		{VaultLogin.String(), "login"},
		{VaultRenew.String(), "renew"},
		{VaultKVRead.String(), "kv_read"},
		{VaultKVMetadata.String(), "kv_metadata"},
		{VaultKVWrite.String(), "kv_write"},
		{VaultTransitKey.String(), "transit_key"},
		{VaultTransitSign.String(), "transit_sign"},
		{VaultOp(99).String(), "invalid"},
		{ReloadSuccess.String(), "success"},
		{ReloadFailure.String(), "failure"},
		{ReloadResult(99).String(), "invalid"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("String() = %q, want %q", tt.got, tt.want)
		}
	}
}

func TestSigningCertificateNotAfterZero(t *testing.T) {
	m := New()
	m.SetSigningCertificateNotAfter(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC))
	if got, want := testutil.ToFloat64(m.certNotAfter), float64(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC).Unix()); got != want {
		t.Errorf("not_after = %v, want %v", got, want)
	}
	m.SetSigningCertificateNotAfter(time.Time{})
	if got := testutil.ToFloat64(m.certNotAfter); got != 0 {
		t.Errorf("not_after after zero time = %v, want 0", got)
	}
}

func TestRegisterFuncs(t *testing.T) {
	m := New()
	var mu sync.Mutex
	entries := 3.0
	if err := m.RegisterGaugeFunc("token_cache_entries", "Tokens in the cache.", func() float64 {
		mu.Lock()
		defer mu.Unlock()
		return entries
	}); err != nil {
		t.Fatal(err)
	}
	if err := m.RegisterCounterFunc("directory_fetches_total", "Directory fetches.", func() float64 { return 42 }); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	entries = 5
	mu.Unlock()
	want := `
# HELP cqgate_token_cache_entries Tokens in the cache.
# TYPE cqgate_token_cache_entries gauge
cqgate_token_cache_entries 5
# HELP cqgate_directory_fetches_total Directory fetches.
# TYPE cqgate_directory_fetches_total counter
cqgate_directory_fetches_total 42
`
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	if err := testutil.ScrapeAndCompare(srv.URL, strings.NewReader(want), "cqgate_token_cache_entries", "cqgate_directory_fetches_total"); err != nil {
		t.Fatal(err)
	}
}

func TestRegisterFuncErrors(t *testing.T) {
	f := func() float64 { return 1 }
	tests := []struct {
		name, metric, help string
		f                  func() float64
		wantIn             []string
	}{
		{"duplicate of a built-in", "requests_total", "dup", f, []string{"metrics: registering", "cqgate_requests_total"}},
		{"invalid name", "bad-name", "help", f, []string{`metrics: invalid metric name "bad-name"`}},
		{"upper case", "Entries", "help", f, []string{`invalid metric name "Entries"`}},
		{"leading digit", "9lives", "help", f, []string{`invalid metric name "9lives"`}},
		{"UTF-8", "größe", "help", f, []string{`invalid metric name`}},
		{"empty name", "", "help", f, []string{"needs a name"}},
		{"no help", "x", "", f, []string{`metric "x" needs help text`}},
		{"no function", "x", "help", nil, []string{`metric "x" needs a function`}},
		{"everything missing", "", "", nil, []string{"needs a name", "needs help text", "needs a function"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for kind, register := range map[string]func(string, string, func() float64) error{
				"gauge":   New().RegisterGaugeFunc,
				"counter": New().RegisterCounterFunc,
			} {
				err := register(tt.metric, tt.help, tt.f)
				if err == nil {
					t.Fatalf("%s: no error", kind)
				}
				for _, s := range tt.wantIn {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("%s: error %q does not contain %q", kind, err, s)
					}
				}
			}
		})
	}
}

func TestRegisterCollector(t *testing.T) {
	m := New()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "cqgate_extra_total", Help: "Extra."})
	if err := m.Register(c); err != nil {
		t.Fatal(err)
	}
	c.Add(2)
	if err := m.Register(c); err == nil || !strings.HasPrefix(err.Error(), "metrics: ") {
		t.Fatalf("registering twice: err = %v, want a metrics: error", err)
	} else {
		var are prometheus.AlreadyRegisteredError
		if !errors.As(err, &are) {
			t.Errorf("error %v does not wrap AlreadyRegisteredError", err)
		}
	}
	if got := testutil.ToFloat64(c); got != 2 {
		t.Errorf("extra = %v", got)
	}
	if !strings.Contains(scrape(t, m), "cqgate_extra_total 2") {
		t.Error("scrape lacks the registered collector")
	}
}

// TestIndependentRegistries checks that nothing is registered globally:
// two Metrics coexist and count separately.
func TestIndependentRegistries(t *testing.T) {
	a, b := New(), New()
	a.TokenExchange(ExchangeSuccess)
	if got := testutil.ToFloat64(a.exchanges[ExchangeSuccess]); got != 1 {
		t.Errorf("a = %v", got)
	}
	if got := testutil.ToFloat64(b.exchanges[ExchangeSuccess]); got != 0 {
		t.Errorf("b = %v", got)
	}
	mfs, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if strings.HasPrefix(mf.GetName(), Namespace+"_") {
			t.Errorf("%s is in the default registry", mf.GetName())
		}
	}
}

func TestNilMetrics(t *testing.T) {
	var m *Metrics
	m.ObserveRequest(oidA, "GET", 200)
	m.ObserveUpstream(oidA, time.Second)
	m.InflightInc()
	m.InflightDec()
	m.TokenExchange(ExchangeSuccess)
	m.TokenCache(CacheHit)
	m.DirectoryLookup(LookupHit)
	m.DiscoveryLookup(LookupHit)
	m.VaultError(VaultLogin)
	m.SigningKeyReload(ReloadSuccess)
	m.SetSigningCertificateNotAfter(time.Now())
	m.AuditWriteError()
}

func TestConcurrentFirstUse(t *testing.T) {
	m := New()
	const workers, each = 16, 200
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				org := fmt.Sprintf("1.2.%d", i%5)
				m.ObserveRequest(org, "GET", 200+w%2)
				m.ObserveUpstream(org, time.Millisecond)
				m.InflightInc()
				m.InflightDec()
			}
		}()
	}
	wg.Wait()
	var total float64
	for i := range 5 {
		total += testutil.ToFloat64(m.requests.WithLabelValues(fmt.Sprintf("1.2.%d", i), "GET", "2xx"))
	}
	if total != workers*each {
		t.Errorf("total = %v, want %d", total, workers*each)
	}
	if got := testutil.ToFloat64(m.inflight); got != 0 {
		t.Errorf("inflight = %v", got)
	}
	if got := m.orgCount.Load(); got != 5 {
		t.Errorf("orgCount = %d, want 5", got)
	}
}

func TestLint(t *testing.T) {
	m := New()
	m.ObserveRequest(oidA, "GET", 200)
	m.ObserveUpstream(oidA, time.Millisecond)
	if err := m.RegisterGaugeFunc("token_cache_entries", "Tokens in the cache.", func() float64 { return 1 }); err != nil {
		t.Fatal(err)
	}
	problems, err := testutil.GatherAndLint(m.Gatherer())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

func TestScrapeFormats(t *testing.T) {
	m := New()
	m.ObserveRequest(oidA, "GET", 200)
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	tests := []struct {
		accept, wantType string
	}{
		{"", "text/plain"},
		{"application/openmetrics-text;version=1.0.0", "text/plain"}, // OpenMetrics not enabled
		{"application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited", "application/vnd.google.protobuf"},
	}
	for _, tt := range tests {
		req, err := http.NewRequest(http.MethodGet, srv.URL, nil)
		if err != nil {
			t.Fatal(err)
		}
		if tt.accept != "" {
			req.Header.Set("Accept", tt.accept)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), tt.wantType) {
			t.Errorf("Accept %q: status %d, Content-Type %q", tt.accept, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		if !bytes.Contains(body, []byte("cqgate_requests_total")) {
			t.Errorf("Accept %q: body lacks cqgate_requests_total", tt.accept)
		}
	}
}

// TestHandlerErrorLog checks that a failing scrape-time function reaches
// the error log and the scrape still serves the other metrics.
func TestHandlerErrorLog(t *testing.T) {
	log := &recordingLog{}
	m := New(WithErrorLog(log))
	bad := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "cqgate_bad", Help: "Bad."}, func() float64 { return 1 })
	if err := m.Register(bad); err != nil {
		t.Fatal(err)
	}
	// A second collector with the same name but different help makes
	// Gather fail for that family.
	if err := m.Register(inconsistent{}); err != nil {
		t.Fatal(err)
	}
	body := scrape(t, m)
	if !strings.Contains(body, "cqgate_requests_total") && !strings.Contains(body, "cqgate_inflight_requests") {
		t.Error("scrape lost the healthy metrics")
	}
	if log.count() == 0 {
		t.Error("nothing logged")
	}
}

type recordingLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *recordingLog) Println(v ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintln(v...))
}

func (l *recordingLog) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.lines)
}

// inconsistent is an unchecked collector (no Describe output) whose metric
// clashes with cqgate_bad's help text at gather time.
type inconsistent struct{}

func (inconsistent) Describe(chan<- *prometheus.Desc) {}

func (inconsistent) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(prometheus.NewDesc("cqgate_bad", "Other help.", nil, nil), prometheus.GaugeValue, 2)
}

var _ prometheus.Collector = inconsistent{}

func TestSetOwnCertificate(t *testing.T) {
	m := New()
	m.SetOwnCertificate("default", "revoked", 12, true)
	m.SetOwnCertificate("tefca", "good", 300, false)
	want := `
# HELP cqgate_signing_certificate_revocation_status Revocation status of each identity's signing certificate chain (CRL/OCSP): 1 for the status found (good, revoked, unknown), 0 for the others.
# TYPE cqgate_signing_certificate_revocation_status gauge
cqgate_signing_certificate_revocation_status{identity="default",status="good"} 0
cqgate_signing_certificate_revocation_status{identity="default",status="revoked"} 1
cqgate_signing_certificate_revocation_status{identity="default",status="unknown"} 0
cqgate_signing_certificate_revocation_status{identity="tefca",status="good"} 1
cqgate_signing_certificate_revocation_status{identity="tefca",status="revoked"} 0
cqgate_signing_certificate_revocation_status{identity="tefca",status="unknown"} 0
`
	if err := testutil.GatherAndCompare(m.Gatherer(), strings.NewReader(want), "cqgate_signing_certificate_revocation_status"); err != nil {
		t.Fatal(err)
	}
	if err := testutil.GatherAndCompare(m.Gatherer(), strings.NewReader(`
# HELP cqgate_signing_certificate_expiring 1 when an identity's signing certificate expires within keys.expiry_warning_days (or has expired), else 0.
# TYPE cqgate_signing_certificate_expiring gauge
cqgate_signing_certificate_expiring{identity="default"} 1
cqgate_signing_certificate_expiring{identity="tefca"} 0
`), "cqgate_signing_certificate_expiring"); err != nil {
		t.Fatal(err)
	}
	var nilM *Metrics
	nilM.SetOwnCertificate("x", "good", 1, false) // no panic
}
