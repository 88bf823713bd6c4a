package callerauth_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/cqgate/cqgate/internal/callerauth"
)

const (
	billingKey    = "bk_live_7f3c9a1e5d2b8c4f6a0e1d3b5c7a9f2e"
	billingKeyNew = "bk_live_0a1b2c3d4e5f60718293a4b5c6d7e8f9"
	reportKey     = "rk_live_91d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6"
	unknownKey    = "xx_live_deadbeefdeadbeefdeadbeefdeadbeef"
)

func newKeys(t *testing.T, static map[string]string, src callerauth.Source) *callerauth.APIKeys {
	t.Helper()
	k, err := callerauth.NewAPIKeys(static, src)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestHashKey(t *testing.T) {
	// The configuration example's hash: printf %s test | sha256sum
	if got, want := callerauth.HashKey("test"), "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"; got != want {
		t.Fatalf("HashKey = %s, want %s", got, want)
	}
}

func TestAPIKeysAuthenticate(t *testing.T) {
	k := newKeys(t, map[string]string{
		"billing-svc": callerauth.HashKey(billingKey) + ", " + strings.ToUpper(callerauth.HashKey(billingKeyNew)),
		"reports":     callerauth.HashKey(reportKey),
	}, nil)

	tests := []struct {
		name       string
		headers    [][2]string
		wantCaller string
		wantErr    error
		wantReason string
		challenge  string
	}{
		{name: "no credentials", wantErr: callerauth.ErrUnauthenticated, wantReason: "no Authorization or X-API-Key header", challenge: `Bearer realm="cqgate"`},
		{name: "bearer", headers: [][2]string{{"Authorization", "Bearer " + billingKey}}, wantCaller: "billing-svc"},
		{name: "bearer scheme in lower case", headers: [][2]string{{"Authorization", "bearer " + reportKey}}, wantCaller: "reports"},
		{name: "bearer with extra spaces", headers: [][2]string{{"Authorization", "Bearer   " + reportKey + "  "}}, wantCaller: "reports"},
		{name: "x-api-key", headers: [][2]string{{"X-API-Key", reportKey}}, wantCaller: "reports"},
		{name: "x-api-key any case", headers: [][2]string{{"x-api-key", billingKey}}, wantCaller: "billing-svc"},
		{name: "second key of a rotating caller", headers: [][2]string{{"X-API-Key", billingKeyNew}}, wantCaller: "billing-svc"},
		{name: "both headers, same key", headers: [][2]string{{"Authorization", "Bearer " + billingKey}, {"X-API-Key", billingKey}}, wantCaller: "billing-svc"},
		{name: "both headers, different keys", headers: [][2]string{{"Authorization", "Bearer " + billingKey}, {"X-API-Key", reportKey}},
			wantErr: callerauth.ErrBadCredentials, wantReason: "different keys", challenge: `Bearer realm="cqgate", error="invalid_token"`},
		{name: "wrong bearer key", headers: [][2]string{{"Authorization", "Bearer " + unknownKey}}, wantErr: callerauth.ErrBadCredentials, wantReason: "unknown key"},
		{name: "wrong x-api-key", headers: [][2]string{{"X-API-Key", unknownKey}}, wantErr: callerauth.ErrBadCredentials, wantReason: "unknown key"},
		{name: "the hash itself is not the key", headers: [][2]string{{"X-API-Key", callerauth.HashKey(billingKey)}}, wantErr: callerauth.ErrBadCredentials, wantReason: "unknown key"},
		{name: "key with a suffix", headers: [][2]string{{"X-API-Key", billingKey + "x"}}, wantErr: callerauth.ErrBadCredentials},
		{name: "basic scheme", headers: [][2]string{{"Authorization", "Basic " + billingKey}}, wantErr: callerauth.ErrBadCredentials, wantReason: "not \"Bearer <key>\""},
		{name: "basic scheme next to a good x-api-key", headers: [][2]string{{"Authorization", "Basic " + billingKey}, {"X-API-Key", billingKey}}, wantErr: callerauth.ErrBadCredentials},
		{name: "bearer without key", headers: [][2]string{{"Authorization", "Bearer"}}, wantErr: callerauth.ErrBadCredentials},
		{name: "bearer with blank key", headers: [][2]string{{"Authorization", "Bearer    "}}, wantErr: callerauth.ErrBadCredentials},
		{name: "key without scheme", headers: [][2]string{{"Authorization", billingKey}}, wantErr: callerauth.ErrBadCredentials},
		{name: "key with inner space", headers: [][2]string{{"Authorization", "Bearer " + billingKey + " more"}}, wantErr: callerauth.ErrBadCredentials, wantReason: "malformed bearer key"},
		{name: "empty x-api-key", headers: [][2]string{{"X-API-Key", ""}}, wantErr: callerauth.ErrBadCredentials, wantReason: "malformed X-API-Key"},
		{name: "control character", headers: [][2]string{{"X-API-Key", billingKey + "\x01"}}, wantErr: callerauth.ErrBadCredentials},
		{name: "non-ASCII key", headers: [][2]string{{"X-API-Key", billingKey + "é"}}, wantErr: callerauth.ErrBadCredentials},
		{name: "overlong key", headers: [][2]string{{"X-API-Key", strings.Repeat("k", 513)}}, wantErr: callerauth.ErrBadCredentials},
		{name: "two authorization headers", headers: [][2]string{{"Authorization", "Bearer " + billingKey}, {"Authorization", "Bearer " + billingKey}},
			wantErr: callerauth.ErrBadCredentials, wantReason: "more than one Authorization"},
		{name: "two x-api-key headers", headers: [][2]string{{"X-API-Key", billingKey}, {"X-API-Key", billingKey}},
			wantErr: callerauth.ErrBadCredentials, wantReason: "more than one X-API-Key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/fhir/1.2.3.4/Patient/1", nil)
			for _, h := range tt.headers {
				r.Header.Add(h[0], h[1])
			}
			id, err := k.Authenticate(r)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				if id != nil {
					t.Errorf("identity %v returned with an error", id)
				}
				if !strings.Contains(err.Error(), tt.wantReason) {
					t.Errorf("err = %q, want it to contain %q", err, tt.wantReason)
				}
				ch := callerauth.Challenge(err)
				if tt.challenge != "" && ch != tt.challenge {
					t.Errorf("Challenge = %q, want %q", ch, tt.challenge)
				}
				if !strings.HasPrefix(ch, "Bearer ") {
					t.Errorf("Challenge = %q, want a Bearer challenge", ch)
				}
				for _, key := range []string{billingKey, billingKeyNew, reportKey, unknownKey} {
					if strings.Contains(err.Error(), key) || strings.Contains(ch, key) {
						t.Errorf("the presented key appears in %q / %q", err, ch)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("Authenticate: %v", err)
			}
			if id.Name != tt.wantCaller || id.Method != callerauth.MethodAPIKey {
				t.Errorf("identity = %+v, want caller %q by api_key", id, tt.wantCaller)
			}
			if !strings.HasPrefix(id.Subject, "sha256:") || len(id.Subject) != len("sha256:")+12 {
				t.Errorf("Subject = %q, want sha256: and 12 hex digits", id.Subject)
			}
			if got := id.String(); got != tt.wantCaller+" (api_key)" {
				t.Errorf("String = %q", got)
			}
		})
	}
}

// TestAPIKeysSubjectsDiffer checks that the Subject tells a rotating
// caller's keys apart, and that it is a prefix of the configured hash.
func TestAPIKeysSubjectsDiffer(t *testing.T) {
	k := newKeys(t, map[string]string{"billing-svc": callerauth.HashKey(billingKey) + " " + callerauth.HashKey(billingKeyNew)}, nil)
	subject := func(key string) string {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header.Set("X-API-Key", key)
		id, err := k.Authenticate(r)
		if err != nil {
			t.Fatal(err)
		}
		return id.Subject
	}
	a, b := subject(billingKey), subject(billingKeyNew)
	if a == b {
		t.Fatalf("both keys have Subject %q", a)
	}
	if want := "sha256:" + callerauth.HashKey(billingKey)[:12]; a != want {
		t.Errorf("Subject = %q, want %q", a, want)
	}
}

// TestAPIKeysOverHTTP authenticates through a real server, as the
// router's middleware will.
func TestAPIKeysOverHTTP(t *testing.T) {
	k := newKeys(t, map[string]string{"billing-svc": callerauth.HashKey(billingKey)}, nil)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := k.Authenticate(r)
		if err != nil {
			w.Header().Set("WWW-Authenticate", callerauth.Challenge(err))
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		fmt.Fprint(w, id.Name)
	}))
	defer srv.Close()

	tests := []struct {
		name       string
		header     [2]string
		wantStatus int
		wantBody   string
		wantAuth   string
	}{
		{name: "no key", wantStatus: 401, wantAuth: `Bearer realm="cqgate"`},
		{name: "bearer", header: [2]string{"Authorization", "Bearer " + billingKey}, wantStatus: 200, wantBody: "billing-svc"},
		{name: "x-api-key", header: [2]string{"X-API-Key", billingKey}, wantStatus: 200, wantBody: "billing-svc"},
		{name: "wrong key", header: [2]string{"X-API-Key", unknownKey}, wantStatus: 401, wantAuth: `Bearer realm="cqgate", error="invalid_token"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodGet, srv.URL+"/fhir/1.2.3.4/metadata", nil)
			if err != nil {
				t.Fatal(err)
			}
			if tt.header[0] != "" {
				req.Header.Set(tt.header[0], tt.header[1])
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d (%s)", resp.StatusCode, tt.wantStatus, body)
			}
			if tt.wantBody != "" && string(body) != tt.wantBody {
				t.Errorf("body %q, want %q", body, tt.wantBody)
			}
			if got := resp.Header.Get("WWW-Authenticate"); got != tt.wantAuth {
				t.Errorf("WWW-Authenticate %q, want %q", got, tt.wantAuth)
			}
			for _, key := range []string{billingKey, unknownKey} {
				if strings.Contains(string(body), key) {
					t.Errorf("response body shows the key: %q", body)
				}
			}
		})
	}
}

func TestNewAPIKeysErrors(t *testing.T) {
	tests := []struct {
		name    string
		keys    map[string]string
		wantErr []string // substrings; nil: no error
	}{
		{name: "empty is fine", keys: nil},
		{name: "upper-case hex", keys: map[string]string{"a": strings.ToUpper(callerauth.HashKey("k"))}},
		{name: "several hashes", keys: map[string]string{"a": callerauth.HashKey("k1") + "," + callerauth.HashKey("k2") + "\n" + callerauth.HashKey("k3")}},
		{name: "same hash twice for one caller", keys: map[string]string{"a": callerauth.HashKey("k1") + "," + callerauth.HashKey("k1")}},
		{name: "raw key instead of hash", keys: map[string]string{"billing-svc": billingKey},
			wantErr: []string{`api key 1 of caller "billing-svc": not a hex SHA-256`, "not the key"}},
		{name: "64 characters, not hex", keys: map[string]string{"a": strings.Repeat("z", 64)}, wantErr: []string{`caller "a": not a hex SHA-256`}},
		{name: "empty value", keys: map[string]string{"a": " , "}, wantErr: []string{`caller "a": empty`}},
		{name: "empty caller name", keys: map[string]string{"": callerauth.HashKey("k")}, wantErr: []string{"empty caller name"}},
		{name: "control character in caller name", keys: map[string]string{"a\nb": callerauth.HashKey("k")}, wantErr: []string{"control character"}},
		{name: "two callers, one key", keys: map[string]string{"a": callerauth.HashKey("shared"), "b": callerauth.HashKey("shared")},
			wantErr: []string{`callers "a" and "b" have the same api key`}},
		{name: "all errors at once", keys: map[string]string{"a": "x", "b": "y"}, wantErr: []string{`caller "a"`, `caller "b"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := callerauth.NewAPIKeys(tt.keys, nil)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("NewAPIKeys: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("NewAPIKeys = %v, want an error", k)
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("err = %q, want it to contain %q", err, want)
				}
			}
			if strings.Contains(err.Error(), billingKey) {
				t.Errorf("err shows the configured value: %q", err)
			}
		})
	}
}

// scriptedSource returns its results in order, repeating the last one,
// and records whether each call's context had a deadline.
type scriptedSource struct {
	mu        sync.Mutex
	results   []loadResult
	calls     int
	deadlines []bool
}

type loadResult struct {
	m   map[string]string
	err error
}

func (s *scriptedSource) Load(ctx context.Context) (map[string]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := ctx.Deadline()
	s.deadlines = append(s.deadlines, ok)
	r := s.results[min(s.calls, len(s.results)-1)]
	s.calls++
	return r.m, r.err
}

func authAs(t *testing.T, k *callerauth.APIKeys, key string) (string, error) {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("Authorization", "Bearer "+key)
	id, err := k.Authenticate(r)
	if err != nil {
		return "", err
	}
	return id.Name, nil
}

func TestAPIKeysRotation(t *testing.T) {
	vaultDown := errors.New("vault: Get \"https://vault.example:8200/v1/secret/data/cqgate/api-keys\": connection refused")
	src := &scriptedSource{results: []loadResult{
		{m: map[string]string{"billing-svc": callerauth.HashKey(billingKey)}},
		{err: vaultDown},
		{m: map[string]string{"billing-svc": billingKeyNew}},                 // a key pasted where its hash belongs
		{m: map[string]string{"billing-svc": callerauth.HashKey(reportKey)}}, // the static caller's key
		{m: map[string]string{"billing-svc": callerauth.HashKey(billingKey) + "," + callerauth.HashKey(billingKeyNew)}},
		{m: map[string]string{"billing-svc": callerauth.HashKey(billingKeyNew)}},
	}}
	k := newKeys(t, map[string]string{"reports": callerauth.HashKey(reportKey)}, src)
	ctx := context.Background()

	type want struct {
		key    string
		caller string // "" for refused
	}
	steps := []struct {
		name       string
		wantErr    []string
		wantLen    int
		wantAccess []want
	}{
		{name: "first load", wantLen: 2, wantAccess: []want{{billingKey, "billing-svc"}, {reportKey, "reports"}, {billingKeyNew, ""}}},
		{name: "vault down keeps the keys", wantErr: []string{"loading API keys", "2 keys in service stay", "connection refused"}, wantLen: 2,
			wantAccess: []want{{billingKey, "billing-svc"}, {reportKey, "reports"}}},
		{name: "invalid secret keeps the keys", wantErr: []string{`caller "billing-svc": not a hex SHA-256`, "2 keys in service stay"}, wantLen: 2,
			wantAccess: []want{{billingKey, "billing-svc"}}},
		{name: "a key of another caller is refused", wantErr: []string{`callers "reports" and "billing-svc" have the same api key`}, wantLen: 2,
			wantAccess: []want{{billingKey, "billing-svc"}, {reportKey, "reports"}}},
		{name: "overlap: old and new key", wantLen: 3, wantAccess: []want{{billingKey, "billing-svc"}, {billingKeyNew, "billing-svc"}, {reportKey, "reports"}}},
		{name: "old key retired", wantLen: 2, wantAccess: []want{{billingKey, ""}, {billingKeyNew, "billing-svc"}, {reportKey, "reports"}}},
	}
	for _, st := range steps {
		err := k.Refresh(ctx)
		if st.wantErr == nil && err != nil {
			t.Fatalf("%s: Refresh: %v", st.name, err)
		}
		if st.wantErr != nil {
			if err == nil {
				t.Fatalf("%s: Refresh succeeded, want an error", st.name)
			}
			for _, w := range st.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%s: err = %q, want it to contain %q", st.name, err, w)
				}
			}
			for _, key := range []string{billingKey, billingKeyNew, reportKey} {
				if strings.Contains(err.Error(), key) {
					t.Errorf("%s: err shows a key: %q", st.name, err)
				}
			}
		}
		if got := k.Len(); got != st.wantLen {
			t.Errorf("%s: Len = %d, want %d", st.name, got, st.wantLen)
		}
		for _, w := range st.wantAccess {
			got, err := authAs(t, k, w.key)
			if w.caller == "" {
				if !errors.Is(err, callerauth.ErrBadCredentials) {
					t.Errorf("%s: key of %q: got %q, %v; want ErrBadCredentials", st.name, w.caller, got, err)
				}
				continue
			}
			if err != nil || got != w.caller {
				t.Errorf("%s: got %q, %v; want %q", st.name, got, err, w.caller)
			}
		}
	}
	for i, ok := range src.deadlines {
		if !ok {
			t.Errorf("Load call %d had no deadline", i+1)
		}
	}
	if got := k.Callers(); strings.Join(got, ",") != "billing-svc,reports" {
		t.Errorf("Callers = %v", got)
	}
}

func TestAPIKeysReplace(t *testing.T) {
	k := newKeys(t, map[string]string{"reports": callerauth.HashKey(reportKey)}, nil)
	if err := k.Refresh(context.Background()); err != nil {
		t.Fatalf("Refresh without a source: %v", err)
	}
	if err := k.Replace(map[string]string{"billing-svc": callerauth.HashKey(billingKey)}); err != nil {
		t.Fatal(err)
	}
	if got, err := authAs(t, k, billingKey); err != nil || got != "billing-svc" {
		t.Fatalf("after Replace: %q, %v", got, err)
	}
	if err := k.Replace(map[string]string{"billing-svc": "not-a-hash"}); err == nil {
		t.Fatal("Replace accepted an invalid map")
	}
	if got, err := authAs(t, k, billingKey); err != nil || got != "billing-svc" {
		t.Fatalf("after a failed Replace: %q, %v", got, err)
	}
	if err := k.Replace(nil); err != nil {
		t.Fatal(err)
	}
	if _, err := authAs(t, k, billingKey); !errors.Is(err, callerauth.ErrBadCredentials) {
		t.Fatalf("replaced key still accepted: %v", err)
	}
	if got, err := authAs(t, k, reportKey); err != nil || got != "reports" {
		t.Fatalf("static key lost: %q, %v", got, err)
	}
}

// ReplaceStatic swaps the static keys (inbound.api_keys re-read on
// SIGHUP) and keeps the ones Replace set (Vault's); an invalid map keeps
// every key in service.
func TestAPIKeysReplaceStatic(t *testing.T) {
	k := newKeys(t, map[string]string{"billing-svc": callerauth.HashKey(billingKey)}, nil)
	if err := k.Replace(map[string]string{"reports": callerauth.HashKey(reportKey)}); err != nil {
		t.Fatal(err)
	}
	if err := k.ReplaceStatic(map[string]string{"billing-svc": callerauth.HashKey(billingKeyNew)}); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		key, caller string
	}{
		{billingKey, ""}, // revoked
		{billingKeyNew, "billing-svc"},
		{reportKey, "reports"}, // Replace's keys stay
	} {
		got, err := authAs(t, k, tt.key)
		if tt.caller == "" && !errors.Is(err, callerauth.ErrBadCredentials) || tt.caller != "" && (err != nil || got != tt.caller) {
			t.Errorf("after ReplaceStatic, a key of %q: %q, %v", tt.caller, got, err)
		}
	}
	for name, bad := range map[string]map[string]string{
		"not a hash":         {"billing-svc": "not-a-hash", "": callerauth.HashKey(billingKey)},
		"key of two callers": {"billing-svc": callerauth.HashKey(billingKeyNew), "thief": callerauth.HashKey(reportKey)},
	} {
		err := k.ReplaceStatic(bad)
		if err == nil {
			t.Fatalf("%s: ReplaceStatic accepted it", name)
		}
		if name == "not a hash" && (!strings.Contains(err.Error(), `"billing-svc"`) || !strings.Contains(err.Error(), "empty caller name")) {
			t.Errorf("%s: %v, want every problem named", name, err)
		}
		if got, err := authAs(t, k, billingKeyNew); err != nil || got != "billing-svc" {
			t.Errorf("%s: the key in service was dropped: %q, %v", name, got, err)
		}
	}
}

// TestAPIKeysConcurrentReplace runs under -race: requests see the old
// set or the new one, never a mix or a torn map.
func TestAPIKeysConcurrentReplace(t *testing.T) {
	k := newKeys(t, nil, nil)
	sets := []map[string]string{
		{"billing-svc": callerauth.HashKey(billingKey)},
		{"billing-svc": callerauth.HashKey(billingKey), "reports": callerauth.HashKey(reportKey)},
	}
	if err := k.Replace(sets[0]); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	errc := make(chan error, 8)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if got, err := authAs(t, k, billingKey); err != nil || got != "billing-svc" {
					errc <- fmt.Errorf("billing key: %q, %v", got, err)
					return
				}
			}
		}()
	}
	for i := range 200 {
		if err := k.Replace(sets[i%2]); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
}

// A known key costs no allocation: it is hashed from a copy on the stack
// and its caller's identity is made once per key set. The identity is
// the same for every request with the key, and a long key (up to the
// 512 bytes allowed) is hashed whole.
func TestAPIKeysAuthenticateAllocatesNothing(t *testing.T) {
	long := strings.Repeat("k", 512)
	k := newKeys(t, map[string]string{"billing-svc": callerauth.HashKey(billingKey), "long": callerauth.HashKey(long)}, nil)
	for _, tc := range []struct{ key, caller string }{{billingKey, "billing-svc"}, {long, "long"}} {
		r := httptest.NewRequest(http.MethodGet, "/fhir/1.2.3/Patient", nil)
		r.Header.Set("X-API-Key", tc.key)
		first, err := k.Authenticate(r)
		if err != nil || first.Name != tc.caller || first.Method != callerauth.MethodAPIKey || !strings.HasPrefix(first.Subject, "sha256:") {
			t.Fatalf("%s: %+v, %v", tc.caller, first, err)
		}
		if n := testing.AllocsPerRun(100, func() {
			if id, err := k.Authenticate(r); err != nil || id != first {
				t.Fatalf("%s: %+v, %v; want the same identity", tc.caller, id, err)
			}
		}); n != 0 {
			t.Errorf("%s: a known key costs %v allocations, want 0", tc.caller, n)
		}
	}
	r := httptest.NewRequest(http.MethodGet, "/fhir/1.2.3/Patient", nil)
	r.Header.Set("X-API-Key", long[:511]+"x")
	if id, err := k.Authenticate(r); !errors.Is(err, callerauth.ErrBadCredentials) {
		t.Errorf("a key differing in its 512th byte: %+v, %v", id, err)
	}
}
