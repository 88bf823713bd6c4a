package api

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/sirupsen/logrus"

	"github.com/cqgate/cqgate/directory"
	"github.com/cqgate/cqgate/internal/callerauth"
	"github.com/cqgate/cqgate/internal/failure"
	"github.com/cqgate/cqgate/internal/outcome"
	"github.com/cqgate/cqgate/internal/ratelimit"
	"github.com/cqgate/cqgate/proxy"
	"github.com/cqgate/cqgate/tenant"
)

// newCall is a fhirCall for a request, as the chain's first step sees it.
func newCall(method, target string, header http.Header) *fhirCall {
	c, _ := gin.CreateTestContext(httptest.NewRecorder())
	c.Request = httptest.NewRequest(method, target, nil)
	for k, v := range header {
		c.Request.Header[k] = v
	}
	return &fhirCall{c: c, id: &callerauth.Identity{Name: "billing"}}
}

// kindOf is the kind the boundary would answer err with.
func kindOf(err error) failure.Kind {
	k, _ := outcome.Classify(err)
	return k
}

// TestStepsOrder sends requests that two neighbouring steps would both
// refuse: the earlier step must answer, so the path runs in its
// documented order (nothing reaches the directory before the caller is
// authenticated and allowed; nothing is rate-limited that was refused).
func TestStepsOrder(t *testing.T) {
	keys, err := callerauth.NewAPIKeys(map[string]string{"billing": callerauth.HashKey("billing-key-0123456789abcdef")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	policy, err := callerauth.NewPolicy(map[string]callerauth.Rule{"billing": {Organizations: []string{"1.2.3", "1.2.404"}, Methods: []string{"GET", "POST"}}})
	if err != nil {
		t.Fatal(err)
	}
	limited := &ratelimit.LimitedError{OID: "1.2.3", Limit: ratelimit.Limit{RequestsPerSecond: 1, Burst: 1}, Wait: time.Second}
	fwd := &recordingForwarder{}
	h := New(Config{Tenants: orderTenants{}, Proxy: fwd, Auth: keys, Policy: policy, MaxBodyBytes: 10,
		Limiter: waitLimiter{limited}, Logger: logrus.New()})
	for _, tt := range []struct {
		name, method, target string
		key                  bool
		length               int64
		want                 int
		form                 string // a form body (POST _search), instead of length bytes
	}{
		{"unauthenticated before hostile", http.MethodTrace, "/fhir/1.2.3/Patient", false, 0, http.StatusUnauthorized, ""},
		{"hostile before target", http.MethodTrace, "/fhir/1.2.x/Patient", true, 0, http.StatusMethodNotAllowed, ""},
		{"target before policy", http.MethodGet, "/fhir/1.2.x/Patient", true, 0, http.StatusBadRequest, ""},
		{"policy before body", http.MethodPost, "/fhir/1.2.4/Patient", true, 11, http.StatusForbidden, ""},
		{"body before tenant", http.MethodPost, "/fhir/1.2.404/Patient", true, 11, http.StatusRequestEntityTooLarge, ""},
		{"search body before tenant", http.MethodPost, "/fhir/1.2.404/Patient/_search", true, 0, http.StatusBadRequest, "_format=x"},
		{"tenant before rate limit", http.MethodGet, "/fhir/1.2.404/Patient", true, 0, http.StatusNotFound, ""},
		{"rate limit before forwarding", http.MethodGet, "/fhir/1.2.3/Patient", true, 0, http.StatusTooManyRequests, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(tt.method, tt.target, strings.NewReader(strings.Repeat("x", int(tt.length))))
			if tt.form != "" {
				req = httptest.NewRequest(tt.method, tt.target, strings.NewReader(tt.form))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			}
			if tt.key {
				req.Header.Set(callerauth.HeaderAPIKey, "billing-key-0123456789abcdef")
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != tt.want || fwd.oid != "" {
				t.Fatalf("status %d (want %d), forwarded to %q: %s", w.Code, tt.want, fwd.oid, w.Body)
			}
		})
	}
}

// orderTenants knows 1.2.3 and no other organization.
type orderTenants struct{ stubTenants }

func (orderTenants) Resolve(_ context.Context, oid string) (*tenant.Tenant, error) {
	if oid != "1.2.3" {
		return nil, directory.ErrNotFound
	}
	return &tenant.Tenant{OID: oid}, nil
}

func TestRefuseHostile(t *testing.T) {
	for _, tt := range []struct {
		name   string
		method string
		header http.Header
		want   failure.Kind
	}{
		{"GET passes", http.MethodGet, nil, failure.Internal},
		{"TRACE", http.MethodTrace, nil, failure.MethodNotAllowed},
		{"override", http.MethodPost, http.Header{"X-Http-Method-Override": {"DELETE"}}, failure.Unsupported},
	} {
		t.Run(tt.name, func(t *testing.T) {
			call := newCall(tt.method, "/fhir/1.2.3/Patient", tt.header)
			err := refuseHostile(call)
			if (err == nil) != (tt.want == failure.Internal) || (err != nil && kindOf(err) != tt.want) {
				t.Fatalf("err %v (kind %v), want kind %v", err, kindOf(err), tt.want)
			}
			if tt.want == failure.MethodNotAllowed && call.c.Writer.Header().Get("Allow") == "" {
				t.Error("405 without Allow")
			}
		})
	}
}

func TestParseTarget(t *testing.T) {
	for _, tt := range []struct {
		target   string
		header   http.Header
		wantOID  string
		wantPath string
		want     failure.Kind
	}{
		{"/fhir/urn:oid:1.2.3/Patient/1", http.Header{ScopeHeader: {" system/Patient.read "}, PurposeOfUseHeader: {"a, b", "c"},
			ExchangePurposeHeader: {" T-TREAT "}}, "1.2.3", "/Patient/1", failure.Internal},
		{"/fhir/1.2.x/Patient", nil, "", "", failure.Malformed},
		{"/fhir/1.2.3/Patient/%2e%2e/x", nil, "1.2.3", "", failure.Invalid},
		{"/fhir/1.2.3/Patient?ACCESS_TOKEN=x", nil, "1.2.3", "/Patient", failure.Insecure},
	} {
		t.Run(tt.target, func(t *testing.T) {
			call := newCall(http.MethodGet, tt.target, tt.header)
			err := parseTarget(call)
			if kindOf(err) != tt.want || (err == nil) != (tt.want == failure.Internal) {
				t.Fatalf("err %v, want kind %v", err, tt.want)
			}
			if call.rec.OID != tt.wantOID {
				t.Errorf("OID %q, want %q", call.rec.OID, tt.wantOID)
			}
			if err == nil && (call.path != tt.wantPath || call.scope != "system/Patient.read" || strings.Join(call.purposes, "|") != "a|b|c") {
				t.Errorf("path %q scope %q purposes %q", call.path, call.scope, call.purposes)
			}
			if err == nil && call.rec.ExchangePurpose != "T-TREAT" {
				t.Errorf("audited exchange purpose %q, want T-TREAT", call.rec.ExchangePurpose)
			}
			if err == nil && (call.xp != "T-TREAT" || call.c.Request.Header.Get(ExchangePurposeHeader) != "") {
				t.Errorf("exchange purpose %q, header left for the tenant: %q", call.xp, call.c.Request.Header.Get(ExchangePurposeHeader))
			}
		})
	}
}

func TestAuthorize(t *testing.T) {
	policy, err := callerauth.NewPolicy(map[string]callerauth.Rule{"billing": {Organizations: []string{"1.2.3"}, Methods: []string{"GET"}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name          string
		method, scope string
		oid           string
		want          failure.Kind
	}{
		{"allowed", http.MethodGet, "", "1.2.3", failure.Internal},
		{"narrower scope", http.MethodGet, "system/Patient.read", "1.2.3", failure.Internal},
		{"wider scope", http.MethodGet, "system/*.write", "1.2.3", failure.Forbidden},
		{"method", http.MethodDelete, "", "1.2.3", failure.Forbidden},
		{"organization", http.MethodGet, "", "1.2.4", failure.Forbidden},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := &handlers{Config: Config{Tenants: stubTenants{}, Policy: policy}}
			call := newCall(tt.method, "/fhir/"+tt.oid+"/Patient", nil)
			call.rec.OID, call.path, call.scope = tt.oid, "/Patient", tt.scope
			err := h.authorize(call)
			if kindOf(err) != tt.want || (err == nil) != (tt.want == failure.Internal) {
				t.Fatalf("err %v, want kind %v", err, tt.want)
			}
		})
	}
}

func TestLimitBody(t *testing.T) {
	h := &handlers{Config: Config{MaxBodyBytes: 10}}
	for _, tt := range []struct {
		length int64
		want   failure.Kind
	}{{10, failure.Internal}, {-1, failure.Internal}, {11, failure.TooLarge}} {
		call := newCall(http.MethodPost, "/fhir/1.2.3/Patient", nil)
		call.c.Request.ContentLength = tt.length
		if err := h.limitBody(call); kindOf(err) != tt.want {
			t.Errorf("length %d: %v, want kind %v", tt.length, err, tt.want)
		}
	}
}

type purposeTenants struct{ stubTenants }

func (purposeTenants) Resolve(_ context.Context, oid string) (*tenant.Tenant, error) {
	return &tenant.Tenant{OID: oid, DirectoryStale: true}, nil
}

func TestResolveTenant(t *testing.T) {
	for _, tt := range []struct {
		name     string
		tenants  Tenants
		purposes []string
		want     failure.Kind
	}{
		{"resolved", purposeTenants{}, nil, failure.Internal},
		{"unknown", stubTenants{err: directory.ErrNotFound}, nil, failure.NotFound},
		{"purpose without UDAP", purposeTenants{}, []string{"urn:x#TREAT"}, failure.Unsupported},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := &handlers{Config: Config{Tenants: tt.tenants}}
			call := newCall(http.MethodGet, "/fhir/1.2.3/Patient", nil)
			call.rec.OID, call.purposes = "1.2.3", tt.purposes
			err := h.resolveTenant(call)
			if kindOf(err) != tt.want {
				t.Fatalf("err %v, want kind %v", err, tt.want)
			}
			if (call.tenant != nil) != (err == nil) {
				t.Errorf("tenant %v after %v", call.tenant, err)
			}
		})
	}
}

type waitLimiter struct{ err error }

func (l waitLimiter) Wait(context.Context, string) error { return l.err }

func TestRateLimitStep(t *testing.T) {
	limited := &ratelimit.LimitedError{OID: "1.2.3", Limit: ratelimit.Limit{RequestsPerSecond: 1, Burst: 1}, Wait: 1500 * time.Millisecond}
	for _, tt := range []struct {
		name    string
		limiter Limiter
		want    failure.Kind
	}{
		{"no limiter", nil, failure.Internal},
		{"a turn", waitLimiter{}, failure.Internal},
		{"limited", waitLimiter{limited}, failure.Throttled},
		{"caller gone while waiting", waitLimiter{context.Canceled}, failure.Canceled},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := &handlers{Config: Config{Limiter: tt.limiter}}
			call := newCall(http.MethodGet, "/fhir/1.2.3/Patient", nil)
			call.tenant = &tenant.Tenant{OID: "1.2.3"}
			err := h.rateLimit(call)
			if kindOf(err) != tt.want {
				t.Fatalf("err %v, want kind %v", err, tt.want)
			}
			var ra failure.RetryAfter
			if tt.want == failure.Throttled && (!errors.As(err, &ra) || ra.RetryAfter() != limited.Wait) {
				t.Error("Retry-After lost")
			}
		})
	}
}

func TestTokenContext(t *testing.T) {
	call := newCall(http.MethodGet, "/fhir/1.2.3/Patient", nil)
	call.tenant = &tenant.Tenant{OID: "1.2.3", Scope: "system/*.read", DirectoryStale: true}
	call.scope = "system/Patient.read  system/Patient.read"
	if err := tokenContext(call); err != nil {
		t.Fatal(err)
	}
	if call.tenant.Scope != "system/Patient.read" {
		t.Errorf("scope %q", call.tenant.Scope)
	}
	if call.c.Writer.Header().Get(StaleHeader) != "directory" {
		t.Error("stale directory entry not said")
	}
}

func TestForwardBoundsBodyAndDropsUpgrade(t *testing.T) {
	var got *http.Request
	fwd := forwardFunc(func(w http.ResponseWriter, r *http.Request, _ *tenant.Tenant, _ string) {
		got = r
		_, err := io.ReadAll(r.Body)
		var mbe *http.MaxBytesError
		if !errors.As(err, &mbe) {
			t.Errorf("body read: %v", err)
		}
		w.WriteHeader(http.StatusNoContent)
	})
	h := &handlers{Config: Config{Proxy: fwd, MaxBodyBytes: 4}}
	call := newCall(http.MethodPost, "/fhir/1.2.3/Patient", http.Header{"Upgrade": {"h2c"}})
	call.c.Request.Body = io.NopCloser(strings.NewReader("longer than four"))
	call.tenant, call.path = &tenant.Tenant{OID: "1.2.3"}, "/Patient"
	h.forward(call)
	if got == nil || got.Header.Get("Upgrade") != "" {
		t.Fatalf("forwarded %v", got)
	}
}

type forwardFunc func(http.ResponseWriter, *http.Request, *tenant.Tenant, string)

func (f forwardFunc) Forward(w http.ResponseWriter, r *http.Request, t *tenant.Tenant, p string) {
	f(w, r, t, p)
}

func TestFailIsTheBoundary(t *testing.T) {
	var logs strings.Builder
	log := logrus.New()
	log.SetOutput(&logs)
	h := &handlers{log: log}
	c, _ := gin.CreateTestContext(httptest.NewRecorder())
	c.Request = httptest.NewRequest(http.MethodGet, "/fhir/1.2.3/Patient", nil)
	code := h.fail(c, "1.2.3", directory.ErrNotFound)
	if code != outcome.NotFound || c.Writer.Status() != http.StatusNotFound {
		t.Fatalf("%v %d", code, c.Writer.Status())
	}
	if !strings.Contains(logs.String(), "request refused") {
		t.Errorf("refusal not logged: %s", logs.String())
	}
}

// headerValue looks header names up without canonicalizing them: every
// name it is given must already be canonical, or a caller's header would
// be missed.
func TestHeaderValueNamesAreCanonical(t *testing.T) {
	for _, name := range []string{ScopeHeader, PurposeOfUseHeader, ExchangePurposeHeader, proxy.RequestIDHeader, proxy.UpstreamRequestIDHeader, "Upgrade"} {
		if c := http.CanonicalHeaderKey(name); c != name {
			t.Errorf("%q is looked up as it is, but its canonical form is %q", name, c)
		}
		h := http.Header{}
		h.Set(strings.ToLower(name), "v")
		if headerValue(h, name) != "v" {
			t.Errorf("headerValue(%q) misses a header set in lower case", name)
		}
	}
}
