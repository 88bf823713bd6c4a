package setup

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// Both ceiling forwarders (net/http's and fasthttp's) pass method, path,
// query, headers and body on, set the fixed Authorization, drop
// hop-by-hop headers both ways, and pass the answer's status, headers
// and body back.
func TestForwarder(t *testing.T) {
	serve := map[string]func(t *testing.T, u *url.URL) string{
		"net/http": func(t *testing.T, u *url.URL) string {
			fwd := httptest.NewServer(NewForwarder(u, "Bearer fixed"))
			t.Cleanup(fwd.Close)
			return fwd.URL
		},
		"fasthttp": func(t *testing.T, u *url.URL) string {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			srv := NewFastServer(NewFastForwarder(u, "Bearer fixed"))
			done := make(chan struct{})
			go func() { defer close(done); _ = srv.Serve(ln) }()
			t.Cleanup(func() { _ = srv.Shutdown(); <-done })
			return "http://" + ln.Addr().String()
		},
	}
	for name, start := range serve {
		t.Run(name, func(t *testing.T) { testForwarder(t, start) })
	}
}

func testForwarder(t *testing.T, start func(t *testing.T, u *url.URL) string) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Seen", strings.Join([]string{r.Method, r.URL.RequestURI(), r.Header.Get("Authorization"),
			r.Header.Get("X-Caller"), r.Header.Get("Keep-Alive"), r.Header.Get("Proxy-Authorization"), string(body)}, "|"))
		w.Header().Set("Keep-Alive", "timeout=5")
		w.Header().Set("Content-Type", "application/fhir+json")
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, strings.Repeat("x", 70<<10)) // more than one copy buffer
	}))
	defer up.Close()
	u, _ := url.Parse(up.URL)
	fwdURL := start(t, u)

	for _, tt := range []struct{ method, body, want string }{
		{http.MethodGet, "", "GET|/fhir/Patient/1?_format=json&a=%2F|Bearer fixed|c1|||"},
		{http.MethodPost, `{"resourceType":"Patient"}`, `POST|/fhir/Patient/1?_format=json&a=%2F|Bearer fixed|c1|||{"resourceType":"Patient"}`},
	} {
		req, _ := http.NewRequest(tt.method, fwdURL+"/fhir/Patient/1?_format=json&a=%2F", strings.NewReader(tt.body))
		req.Header.Set("Authorization", "Bearer caller")
		req.Header.Set("X-Caller", "c1")
		req.Header.Set("Keep-Alive", "timeout=1")
		req.Header.Set("Proxy-Authorization", "Basic x")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated || len(b) != 70<<10 || resp.Header.Get("Content-Type") != "application/fhir+json" {
			t.Errorf("%s: %d, %d bytes, %q", tt.method, resp.StatusCode, len(b), resp.Header.Get("Content-Type"))
		}
		if got := resp.Header.Get("X-Seen"); got != tt.want {
			t.Errorf("%s: upstream saw %q, want %q", tt.method, got, tt.want)
		}
		if resp.Header.Get("Keep-Alive") != "" {
			t.Errorf("%s: hop-by-hop Keep-Alive passed back", tt.method)
		}
	}
}
