package fhirstub

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
)

const oid = "2.999.7.1"

func newStub(t *testing.T, cfg Config) (*Server, *httptest.Server) {
	t.Helper()
	s := New(cfg)
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return s, srv
}

func get(t *testing.T, u string, header http.Header) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

func TestDirectory(t *testing.T) {
	_, srv := newStub(t, Config{APIKey: "dir-key"})
	tests := []struct {
		name   string
		path   string
		header http.Header
		want   int
	}{
		{"key in header", "/directory/Organization/" + oid, http.Header{"Authorization": {"api-key dir-key"}}, 200},
		{"urn:oid prefix", "/directory/Organization/urn:oid:" + oid, http.Header{"Authorization": {"api-key dir-key"}}, 200},
		{"key in query", "/directory/Organization/" + oid + "?_apiKey=dir-key", nil, 200},
		{"no key", "/directory/Organization/" + oid, nil, 401},
		{"wrong key", "/directory/Organization/" + oid, http.Header{"Authorization": {"api-key nope"}}, 401},
		{"outside the prefix", "/directory/Organization/1.2.3", http.Header{"Authorization": {"api-key dir-key"}}, 404},
		{"not an OID", "/directory/Organization/2.999.7.x", http.Header{"Authorization": {"api-key dir-key"}}, 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, h, body := get(t, srv.URL+tt.path, tt.header)
			if code != tt.want {
				t.Fatalf("status %d, want %d: %s", code, tt.want, body)
			}
			if code != 200 {
				return
			}
			if ct := h.Get("Content-Type"); ct != "application/fhir+json" {
				t.Errorf("Content-Type %q", ct)
			}
			var org struct {
				ID        string `json:"id"`
				Contained []struct {
					Address string `json:"address"`
				} `json:"contained"`
			}
			if err := json.Unmarshal(body, &org); err != nil {
				t.Fatal(err)
			}
			if org.ID != oid || len(org.Contained) != 1 || org.Contained[0].Address != srv.URL+"/o/"+oid+"/fhir" {
				t.Errorf("organization %+v, want id %s and endpoint %s", org, oid, srv.URL+"/o/"+oid+"/fhir")
			}
		})
	}
}

func TestMetadataAdvertisesTokenURL(t *testing.T) {
	_, srv := newStub(t, Config{})
	code, _, body := get(t, srv.URL+"/o/"+oid+"/fhir/metadata", nil)
	if code != 200 {
		t.Fatalf("status %d: %s", code, body)
	}
	want := srv.URL + "/o/" + oid + "/token"
	for _, sub := range []string{`"url":"token","valueUri":"` + want + `"`, `"url":"carequality-token","valueUri":"` + want + `"`} {
		if !strings.Contains(string(body), sub) {
			t.Errorf("metadata lacks %s:\n%s", sub, body)
		}
	}
}

func assertionFor(aud string, iss string) string {
	enc := base64.RawURLEncoding
	claims, _ := json.Marshal(map[string]any{"iss": iss, "aud": aud})
	return enc.EncodeToString([]byte(`{"alg":"RS384"}`)) + "." + enc.EncodeToString(claims) + ".c2ln"
}

func TestTokenEndpoint(t *testing.T) {
	_, srv := newStub(t, Config{})
	tokenURL := srv.URL + "/o/" + oid + "/token"
	good := url.Values{
		"grant_type":            {"client_credentials"},
		"client_assertion_type": {clientAssertionType},
		"client_assertion":      {assertionFor(tokenURL, "gw.example")},
	}
	with := func(k, v string) url.Values {
		f := url.Values{}
		for kk, vv := range good {
			f[kk] = vv
		}
		f.Set(k, v)
		return f
	}
	tests := []struct {
		name     string
		form     url.Values
		want     int
		wantCode string
	}{
		{"valid", good, 200, ""},
		{"wrong grant", with("grant_type", "password"), 400, "unsupported_grant_type"},
		{"wrong assertion type", with("client_assertion_type", "x"), 400, "invalid_client"},
		{"not a JWT", with("client_assertion", "abc"), 401, "invalid_client"},
		{"other audience", with("client_assertion", assertionFor("http://127.0.0.1:1/token", "gw")), 401, "invalid_client"},
		{"no issuer", with("client_assertion", assertionFor(tokenURL, "")), 401, "invalid_client"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := http.PostForm(tokenURL, tt.form)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var tr struct {
				AccessToken string `json:"access_token"`
				ExpiresIn   int    `json:"expires_in"`
				Error       string `json:"error"`
			}
			if err := json.NewDecoder(resp.Body).Decode(&tr); err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.want || tr.Error != tt.wantCode {
				t.Fatalf("got %d %q, want %d %q", resp.StatusCode, tr.Error, tt.want, tt.wantCode)
			}
			if tt.want == 200 && (len(tr.AccessToken) < 32 || tr.ExpiresIn != 3600) {
				t.Errorf("token response %+v", tr)
			}
		})
	}
}

func TestPatientNeedsTheOrganizationsToken(t *testing.T) {
	s, srv := newStub(t, Config{})
	ctx := context.Background()
	tok, err := FetchToken(ctx, srv.Client(), srv.URL, oid)
	if err != nil {
		t.Fatal(err)
	}
	other, err := FetchToken(ctx, srv.Client(), srv.URL, "2.999.7.2")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		path string
		auth string
		want int
	}{
		{"own token", "/o/" + oid + "/fhir/Patient/123", "Bearer " + tok, 200},
		{"no token", "/o/" + oid + "/fhir/Patient/123", "", 401},
		{"unknown token", "/o/" + oid + "/fhir/Patient/123", "Bearer nope", 401},
		{"another organization's token", "/o/" + oid + "/fhir/Patient/123", "Bearer " + other, 401},
		{"malformed id", "/o/" + oid + "/fhir/Patient/a_b", "Bearer " + tok, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			if tt.auth != "" {
				h.Set("Authorization", tt.auth)
			}
			code, hdr, body := get(t, srv.URL+tt.path, h)
			if code != tt.want {
				t.Fatalf("status %d, want %d: %s", code, tt.want, body)
			}
			if code != 200 {
				return
			}
			if ct := hdr.Get("Content-Type"); ct != "application/fhir+json" {
				t.Errorf("Content-Type %q", ct)
			}
			if n := len(body); n < 1900 || n > 2300 {
				t.Errorf("Patient is %d bytes, want about 2 KB", n)
			}
			var p struct {
				ResourceType, ID string
			}
			if err := json.Unmarshal(body, &p); err != nil || p.ResourceType != "Patient" || p.ID != "123" {
				t.Errorf("Patient %+v (%v)", p, err)
			}
		})
	}
	st := s.Stats()
	if st.PatientOK != 1 || st.PatientUnauthorized != 3 || st.PatientBad != 1 {
		t.Errorf("counters %+v", st)
	}
}

func TestStatsCountPerOrganization(t *testing.T) {
	_, srv := newStub(t, Config{})
	get(t, srv.URL+"/directory/Organization/"+oid, nil)
	get(t, srv.URL+"/directory/Organization/"+oid, nil)
	get(t, srv.URL+"/o/"+oid+"/fhir/metadata", nil)
	get(t, srv.URL+"/o/"+oid+"/fhir/.well-known/udap", nil)
	if _, err := FetchToken(context.Background(), srv.Client(), srv.URL, oid); err != nil {
		t.Fatal(err)
	}
	st, err := FetchStats(context.Background(), srv.Client(), srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		got  int64
		want int64
	}{
		{"directory", st.Directory[oid], 2},
		{"metadata", st.Metadata[oid], 1},
		{"token", st.Token[oid], 1},
		{"other", st.Other[oid], 1},
	} {
		if c.got != c.want {
			t.Errorf("%s count %d, want %d", c.name, c.got, c.want)
		}
	}
}

func TestClientsRefuseNonLoopback(t *testing.T) {
	ctx := context.Background()
	if _, err := FetchStats(ctx, nil, "http://192.0.2.1:80"); err == nil {
		t.Error("FetchStats accepted a non-loopback base")
	}
	if _, err := FetchToken(ctx, nil, "http://example.org", oid); err == nil {
		t.Error("FetchToken accepted a non-loopback base")
	}
}

func TestLinksOnlyToLoopbackHosts(t *testing.T) {
	s := New(Config{})
	req := httptest.NewRequest(http.MethodGet, "/directory/Organization/"+oid, nil)
	req.Host = "evil.example:80"
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	if rec.Code != http.StatusBadRequest {
		t.Fatalf("status %d for a non-loopback Host, want 400", rec.Code)
	}
}

// Error answers never echo what the client sent: not the assertion, not a
// presented token.
func TestErrorsDoNotEchoSecrets(t *testing.T) {
	_, srv := newStub(t, Config{APIKey: "dir-secret"})
	const assertion = "eyJhbGciOiJSUzM4NCJ9.eyJpc3MiOiJ4IiwiYXVkIjoiaHR0cDovL2Vsc2V3aGVyZSJ9.c2VjcmV0LXNpZ25hdHVyZQ"
	resp, err := http.PostForm(srv.URL+"/o/"+oid+"/token", url.Values{
		"grant_type":            {"client_credentials"},
		"client_assertion_type": {clientAssertionType},
		"client_assertion":      {assertion},
	})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || strings.Contains(string(body), assertion) || strings.Contains(string(body), "c2VjcmV0") {
		t.Errorf("token error %d echoes the assertion: %s", resp.StatusCode, body)
	}
	const token = "presented-token-value"
	code, _, body := get(t, srv.URL+"/o/"+oid+"/fhir/Patient/1", http.Header{"Authorization": {"Bearer " + token}})
	if code != http.StatusUnauthorized || strings.Contains(string(body), token) {
		t.Errorf("401 echoes the token: %d %s", code, body)
	}
	code, _, body = get(t, srv.URL+"/directory/Organization/"+oid, http.Header{"Authorization": {"api-key wrong-key-value"}})
	if code != http.StatusUnauthorized || strings.Contains(string(body), "wrong-key-value") || strings.Contains(string(body), "dir-secret") {
		t.Errorf("directory 401 echoes a key: %d %s", code, body)
	}
}

// With FHIRHosts, the directory spreads the organizations' FHIR bases
// over those hosts by the OID's last arc, and refuses to point one at a
// host that is not loopback.
func TestDirectorySpreadsOverFHIRHosts(t *testing.T) {
	hosts := []string{"127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"}
	s := New(Config{FHIRHosts: hosts})
	address := func(oid string) (int, string) {
		req := httptest.NewRequest(http.MethodGet, "/directory/Organization/"+oid, nil)
		req.Host = "127.0.0.1:7000"
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		var org struct {
			Contained []struct {
				Address string `json:"address"`
			} `json:"contained"`
		}
		if rec.Code == http.StatusOK {
			if err := json.Unmarshal(rec.Body.Bytes(), &org); err != nil || len(org.Contained) != 1 {
				t.Fatalf("%s: %v %s", oid, err, rec.Body)
			}
			return rec.Code, org.Contained[0].Address
		}
		return rec.Code, ""
	}
	for _, tt := range []struct {
		oid, host string
	}{
		{"2.999.7.1000", hosts[1]}, // 1000 mod 3 = 1
		{"2.999.7.1001", hosts[2]},
		{"2.999.7.1002", hosts[0]},
		{"2.999.7.1003", hosts[1]},
	} {
		code, addr := address(tt.oid)
		if want := "http://" + tt.host + "/o/" + tt.oid + "/fhir"; code != http.StatusOK || addr != want {
			t.Errorf("%s: %d %q, want %q", tt.oid, code, addr, want)
		}
	}
	seen := map[string]bool{}
	for i := range 30 {
		_, addr := address("2.999.7." + strconv.Itoa(i))
		seen[strings.SplitN(strings.TrimPrefix(addr, "http://"), "/", 2)[0]] = true
	}
	if len(seen) != len(hosts) {
		t.Errorf("30 organizations on hosts %v, want all of %v", seen, hosts)
	}

	s = New(Config{FHIRHosts: []string{"evil.example:80"}})
	req := httptest.NewRequest(http.MethodGet, "/directory/Organization/"+oid, nil)
	req.Host = "127.0.0.1:7000"
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	if rec.Code != http.StatusBadRequest || strings.Contains(rec.Body.String(), "http://evil") {
		t.Errorf("a non-loopback FHIR host: status %d %s, want 400 without a link", rec.Code, rec.Body)
	}
}
