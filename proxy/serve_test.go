package proxy

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
)

// These tests check serve, the forwarder, on what httputil.ReverseProxy
// did for cqgate before: hop-by-hop headers both ways, trailers,
// streaming, aborting a broken body, interim responses, cancellation.

// syncBuffer is a log sink the proxy's goroutines and the test share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// gatewayFor serves p for tn on a real server (as the gateway does, so
// that an aborted response is what a caller sees on the wire); every
// request's path after /fhir/1.2.3 is the FHIR path. It returns the
// server's URL and the proxy's log.
func gatewayFor(t *testing.T, tenantURL string, transport http.RoundTripper) (string, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	log := logrus.New()
	log.SetOutput(logs)
	p := New(Config{Credentials: &fakeCredentials{}, Logger: log, MaxReplayBody: 1 << 20, Transport: transport})
	tn := testTenant(t, tenantURL)
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(StaleHeader, "directory") // as the router sets it
		p.Forward(w, r, tn, strings.TrimPrefix(r.URL.EscapedPath(), "/fhir/1.2.3"))
	}))
	t.Cleanup(gw.Close)
	return gw.URL + "/fhir/1.2.3", logs
}

// tenantServer is a FHIR server answering with handler, behind the
// token check.
func tenantServer(t *testing.T, handler http.HandlerFunc) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok-1" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		handler(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/r4"
}

func TestServeDropsHopByHopRequestHeaders(t *testing.T) {
	for _, tt := range []struct {
		name   string
		header http.Header
		gone   []string
		kept   map[string]string
	}{
		{
			name: "hop-by-hop names",
			header: http.Header{"Keep-Alive": {"timeout=5"}, "Proxy-Connection": {"keep-alive"},
				"Proxy-Authorization": {"Basic c2VjcmV0"}, "Te": {"gzip"}, "Trailer": {"X-Sum"}, "Upgrade": {"h2c"},
				"Prefer": {"return=minimal"}},
			gone: []string{"Keep-Alive", "Proxy-Connection", "Proxy-Authorization", "Te", "Trailer", "Upgrade"},
			kept: map[string]string{"Prefer": "return=minimal"},
		},
		{
			name:   "named by Connection",
			header: http.Header{"Connection": {"X-Hop, x-other"}, "X-Hop": {"1"}, "X-Other": {"2"}, "X-End": {"3"}},
			gone:   []string{"Connection", "X-Hop", "X-Other"},
			kept:   map[string]string{"X-End": "3"},
		},
		{
			name:   "Connection cannot remove cqgate's own",
			header: http.Header{"Connection": {"Authorization, X-Request-Id, Accept"}},
			kept:   map[string]string{"Authorization": "Bearer tok-1", "Accept": FHIRJSON},
		},
		{
			name:   "Te: trailers passes",
			header: http.Header{"Te": {"trailers, deflate"}},
			kept:   map[string]string{"Te": "trailers"},
		},
		{
			name:   "no User-Agent of Go's own",
			header: http.Header{},
			kept:   map[string]string{"User-Agent": ""},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var got http.Header
			transport := roundTripFunc(func(r *http.Request) (*http.Response, error) {
				got = r.Header.Clone()
				return textResponse(r, http.StatusOK, "ok"), nil
			})
			p := newProxy(&fakeCredentials{}, 1<<20)
			p.transport.base = transport
			req := httptest.NewRequest("GET", "/fhir/1.2.3/Patient/1", nil)
			for k, v := range tt.header {
				req.Header[k] = v
			}
			rec := httptest.NewRecorder()
			p.Forward(rec, req, testTenant(t, "https://fhir.example/r4"), "/Patient/1")
			if rec.Code != http.StatusOK {
				t.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
			for _, k := range tt.gone {
				if v, ok := got[k]; ok {
					t.Errorf("%s reached the tenant: %q", k, v)
				}
			}
			for k, want := range tt.kept {
				if v, ok := got[k]; !ok || len(v) != 1 || v[0] != want {
					t.Errorf("%s = %q, want %q", k, v, want)
				}
			}
			if got.Get(RequestIDHeader) == "" {
				t.Error("no request id sent")
			}
		})
	}
}

func TestServeDropsHopByHopResponseHeaders(t *testing.T) {
	transport := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		resp := textResponse(r, http.StatusOK, "ok")
		for k, v := range map[string]string{
			"Connection": "X-Hop, x-lower", "X-Hop": "1", "X-Lower": "2", "Keep-Alive": "timeout=5",
			"Proxy-Connection": "keep-alive", "Proxy-Authenticate": `Basic realm="p"`, "Te": "trailers",
			"Trailer": "X-Sum", "Transfer-Encoding": "chunked", "Upgrade": "h2c", "X-End": "kept",
			StaleHeader: "forged",
		} {
			resp.Header.Set(k, v)
		}
		return resp, nil
	})
	p := newProxy(&fakeCredentials{}, 1<<20)
	p.transport.base = transport
	rec := httptest.NewRecorder()
	rec.Header().Set(StaleHeader, "directory")
	p.Forward(rec, httptest.NewRequest("GET", "/fhir/1.2.3/Patient/1", nil), testTenant(t, "https://fhir.example/r4"), "/Patient/1")
	h := rec.Result().Header
	for _, k := range []string{"Connection", "X-Hop", "X-Lower", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate",
		"Te", "Trailer", "Transfer-Encoding", "Upgrade"} {
		if v, ok := h[k]; ok {
			t.Errorf("%s reached the caller: %q", k, v)
		}
	}
	if got := h.Get("X-End"); got != "kept" {
		t.Errorf("X-End = %q", got)
	}
	// A header cqgate set itself keeps its value first (as Header.Add
	// would have it).
	if got := h.Values(StaleHeader); len(got) != 2 || got[0] != "directory" {
		t.Errorf("%s = %q, want cqgate's value first", StaleHeader, got)
	}
}

// TestServeLeavesTheCallersHeaderAlone: a transport below that sets a
// value in place (the tracing transport's traceparent) does not change
// the caller's request.
func TestServeLeavesTheCallersHeaderAlone(t *testing.T) {
	transport := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		for _, k := range ownedValues {
			if v := r.Header[k]; len(v) == 1 {
				v[0] = "overwritten"
			}
		}
		return textResponse(r, http.StatusOK, "ok"), nil
	})
	p := newProxy(&fakeCredentials{}, 1<<20)
	p.transport.base = transport
	req := httptest.NewRequest("GET", "/fhir/1.2.3/Patient/1", nil)
	req.Header.Set("Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	req.Header.Set("Tracestate", "caller=1")
	p.Forward(httptest.NewRecorder(), req, testTenant(t, "https://fhir.example/r4"), "/Patient/1")
	if got := req.Header.Get("Traceparent"); got != "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" {
		t.Errorf("the caller's traceparent became %q", got)
	}
	if got := req.Header.Get("Tracestate"); got != "caller=1" {
		t.Errorf("the caller's tracestate became %q", got)
	}
}

func TestServeTrailers(t *testing.T) {
	for _, tt := range []struct {
		name    string
		tenant  http.HandlerFunc
		status  int // 200 when 0
		want    map[string]string
		notWant []string
	}{
		{
			name: "announced",
			tenant: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Trailer", "X-Checksum, Set-Cookie")
				w.Header().Set("Content-Type", "application/fhir+ndjson")
				io.WriteString(w, "{}\n")
				w.Header().Set("X-Checksum", "abc")
				w.Header().Set("Set-Cookie", "session=tenant-secret")
			},
			want:    map[string]string{"X-Checksum": "abc"},
			notWant: []string{"Set-Cookie"},
		},
		{
			name: "unannounced",
			tenant: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/fhir+ndjson")
				io.WriteString(w, "{}\n")
				w.(http.Flusher).Flush()
				w.Header().Set(http.TrailerPrefix+"X-Late", "late")
				w.Header().Set(http.TrailerPrefix+"Set-Cookie", "session=tenant-secret")
			},
			want:    map[string]string{"X-Late": "late"},
			notWant: []string{"Set-Cookie"},
		},
		{
			name: "token echo scrubbed",
			tenant: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Trailer", "X-Echo")
				w.Header().Set("Content-Type", "application/fhir+ndjson")
				io.WriteString(w, "{}\n")
				w.Header().Set("X-Echo", r.Header.Get("Authorization"))
			},
			want: map[string]string{"X-Echo": "Bearer REDACTED"},
		},
		{
			// An error answer is read whole (to redact cqgate's token)
			// before it goes on, chunked when it has trailers.
			name: "error answer",
			tenant: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Trailer", "X-Checksum, X-Echo")
				w.Header().Set("Content-Type", "application/fhir+ndjson")
				w.WriteHeader(http.StatusNotFound)
				io.WriteString(w, "{}\n")
				w.(http.Flusher).Flush()
				w.Header().Set("X-Checksum", "abc")
				w.Header().Set("X-Echo", r.Header.Get("Authorization"))
			},
			status: http.StatusNotFound,
			want:   map[string]string{"X-Checksum": "abc", "X-Echo": "Bearer REDACTED"},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			gw, _ := gatewayFor(t, tenantServer(t, tt.tenant), nil)
			resp, err := http.Get(gw + "/Patient/1")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil || string(body) != "{}\n" || resp.StatusCode != max(tt.status, http.StatusOK) {
				t.Fatalf("%d, body %q, %v", resp.StatusCode, body, err)
			}
			for k, want := range tt.want {
				if got := resp.Trailer.Get(k); got != want {
					t.Errorf("trailer %s = %q, want %q (trailers %v)", k, got, want, resp.Trailer)
				}
			}
			for _, k := range tt.notWant {
				if v, ok := resp.Trailer[k]; ok {
					t.Errorf("trailer %s reached the caller: %q", k, v)
				}
			}
			if strings.Contains(resp.Trailer.Get("X-Echo"), "tok-1") {
				t.Error("the token reached the caller in a trailer")
			}
		})
	}
}

func TestServeDoesNotForwardRequestTrailers(t *testing.T) {
	var got http.Header
	gw, _ := gatewayFor(t, tenantServer(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		got = r.Trailer.Clone()
		w.WriteHeader(http.StatusCreated)
	}), nil)
	pr, pw := io.Pipe()
	req, err := http.NewRequest("POST", gw+"/Patient", pr)
	if err != nil {
		t.Fatal(err)
	}
	req.Trailer = http.Header{"Authorization": nil, "X-Checksum": nil}
	go func() {
		io.WriteString(pw, `{"resourceType":"Patient"}`)
		req.Trailer.Set("Authorization", "Bearer caller-secret")
		req.Trailer.Set("X-Checksum", "abc")
		pw.Close()
	}()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if len(got) != 0 {
		t.Errorf("the tenant got the caller's trailers %v", got)
	}
}

// TestServeStreams: an answer of unknown length, or an event stream,
// reaches the caller chunk by chunk: the tenant sends its second chunk
// only once the caller has had (some of) the first.
func TestServeStreams(t *testing.T) {
	// A JSON answer is looked at for a bulk manifest (its first 512
	// bytes are read, more when its keys do not settle it) before it
	// goes on: the first chunk is longer.
	bundle := `{"resourceType":"Bundle","type":"searchset","entry":[` + strings.Repeat(`{"search":{"mode":"match"}},`, 30)
	for _, tt := range []struct {
		name         string
		contentType  string
		knownLength  bool // else chunked
		first, later string
	}{
		{"chunked NDJSON", "application/fhir+ndjson", false, `{"resourceType":"Patient"}` + "\n", `{"resourceType":"Patient"}` + "\n"},
		{"chunked FHIR JSON, rewritten", "application/fhir+json", false, bundle, `{}]}`},
		{"event stream of known length", "text/event-stream; charset=utf-8", true, "data: 1\n\n", "x\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			firstSeen := make(chan struct{})
			gw, _ := gatewayFor(t, tenantServer(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", tt.contentType)
				if tt.knownLength {
					w.Header().Set("Content-Length", strconv.Itoa(len(tt.first)+len(tt.later)))
				}
				io.WriteString(w, tt.first)
				w.(http.Flusher).Flush()
				select {
				case <-firstSeen:
				case <-time.After(10 * time.Second):
				}
				io.WriteString(w, tt.later)
			}), nil)
			start := time.Now()
			resp, err := http.Get(gw + "/Binary/1")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			head := make([]byte, len(tt.first)/2)
			if _, err := io.ReadFull(resp.Body, head); err != nil {
				t.Fatal(err)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("the first chunk came after %v: held until the tenant finished", d)
			}
			close(firstSeen)
			rest, err := io.ReadAll(resp.Body)
			if got := string(head) + string(rest); err != nil || got != tt.first+tt.later {
				t.Errorf("body %q, %v", got, err)
			}
		})
	}
}

// TestServeAbortsABrokenBody: a tenant's body that breaks off after the
// header went out aborts the caller's response, so that the caller never
// sees a truncated body as complete.
func TestServeAbortsABrokenBody(t *testing.T) {
	for _, tt := range []struct {
		name          string
		contentLength string
	}{
		{"known length", "1000"},
		{"chunked", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			gw, logs := gatewayFor(t, tenantServer(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/octet-stream")
				if tt.contentLength != "" {
					w.Header().Set("Content-Length", tt.contentLength)
				}
				io.WriteString(w, strings.Repeat("x", 100))
				w.(http.Flusher).Flush()
				conn, _, err := http.NewResponseController(w).Hijack()
				if err == nil {
					conn.Close() // mid-body
				}
			}), nil)
			// A header still in the server's buffer goes nowhere: the
			// request fails; a header already sent is followed by a body
			// that fails.
			resp, err := http.Get(gw + "/Binary/1")
			if err == nil {
				defer resp.Body.Close()
				body, err := io.ReadAll(resp.Body)
				if err == nil {
					t.Fatalf("the caller read %d bytes as a complete body (status %d)", len(body), resp.StatusCode)
				}
			}
			if !strings.Contains(logs.String(), "broke off mid-body") {
				t.Errorf("the broken body was not logged: %s", logs)
			}
		})
	}
}

// TestServeInterimResponses: a tenant's 1xx answers are not passed on,
// and their headers do not leak into the final answer.
func TestServeInterimResponses(t *testing.T) {
	gw, _ := gatewayFor(t, tenantServer(t, func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Link", "</style.css>; rel=preload")
		h.Set("Set-Cookie", "early=tenant-early-cookie")
		h.Set("X-Request-Id", "tenant-early-id")
		h.Set("X-Early", "1")
		w.WriteHeader(http.StatusEarlyHints)
		clear(h)
		h.Set("Content-Type", "application/fhir+json")
		io.WriteString(w, `{"resourceType":"Patient"}`)
	}), nil)
	var interim []int
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, _ textproto.MIMEHeader) error {
		interim = append(interim, code)
		return nil
	}}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", gw+"/Patient/1", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(RequestIDHeader, "caller-id")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if len(interim) != 0 {
		t.Errorf("the caller got interim responses %v", interim)
	}
	for _, k := range []string{"Link", "Set-Cookie", "X-Early", UpstreamRequestIDHeader} {
		if v := resp.Header.Values(k); len(v) > 0 {
			t.Errorf("the interim response's %s reached the caller: %q", k, v)
		}
	}
	if got := resp.Header.Values(RequestIDHeader); len(got) != 1 || got[0] != "caller-id" {
		t.Errorf("X-Request-Id = %q", got)
	}
	if got := resp.Header.Get(StaleHeader); got != "directory" {
		t.Errorf("%s = %q, cqgate's own header lost", StaleHeader, got)
	}
}

// TestServeCancelsWhenTheCallerLeaves: the outbound request carries the
// caller's context.
func TestServeCancelsWhenTheCallerLeaves(t *testing.T) {
	arrived, cancelled := make(chan struct{}), make(chan struct{})
	gw, _ := gatewayFor(t, tenantServer(t, func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		select {
		case <-r.Context().Done():
			close(cancelled)
		case <-time.After(10 * time.Second):
		}
	}), nil)
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "GET", gw+"/Patient/1", nil)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		<-arrived
		cancel()
	}()
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatal("the request was answered")
	}
	select {
	case <-cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("the tenant's request was not cancelled when the caller left")
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func textResponse(r *http.Request, status int, body string) *http.Response {
	return &http.Response{
		StatusCode: status, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:        http.Header{"Content-Type": {"text/plain"}},
		ContentLength: int64(len(body)), Body: io.NopCloser(strings.NewReader(body)), Request: r,
	}
}

// TestOutboundHeaderIsMadeOnce: the outbound header map is made at the
// size it ends at, so that it costs a small map's two allocations (and
// one more for the copy of a caller's traceparent) however many headers
// the caller sent, as long as at most 8 go out.
func TestOutboundHeaderIsMadeOnce(t *testing.T) {
	rt := &route{requestID: "rid-1", bearer: []string{"Bearer tok-1"}}
	for _, tt := range []struct {
		name   string
		in     http.Header
		allocs float64
	}{
		{"as the benchmark sends", http.Header{"Accept": {FHIRJSON}, "User-Agent": {"bench/1.0"}, RequestIDHeader: {"rid-1"}}, 2},
		{"a client with an API key", http.Header{"Accept": {FHIRJSON}, "User-Agent": {"client/2"}, RequestIDHeader: {"rid-1"},
			"Accept-Encoding": {"gzip"}, "X-Api-Key": {"k"}, "Connection": {"keep-alive"}, "Cookie": {"c=1"}}, 2},
		// The router always sets the caller's X-Request-Id, which is
		// shared then; without one, its value slice is made here.
		{"nothing sent", http.Header{}, 3},
		{"a traced client", http.Header{"Accept": {FHIRJSON}, "User-Agent": {"client/2"}, RequestIDHeader: {"rid-1"},
			"Traceparent": {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}, "Authorization": {"Bearer caller"}}, 3},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := rt.header(tt.in)
			if len(h) > headerSize(tt.in) || len(h) > 8 {
				t.Errorf("%d headers out, made for %d", len(h), headerSize(tt.in))
			}
			if n := testing.AllocsPerRun(100, func() { rt.header(tt.in) }); n != tt.allocs {
				t.Errorf("%v allocations, want %v", n, tt.allocs)
			}
		})
	}
}
