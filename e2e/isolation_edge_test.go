package e2e

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http/httpproxy"

	"github.com/cqgate/cqgate/config"
	"github.com/cqgate/cqgate/gateway"
	"github.com/cqgate/cqgate/internal/upstream"
	"github.com/cqgate/cqgate/keys"
)

// Tests of issue 12's transport and message properties (2, 4, 5, 6, 9
// and the 101 half of 10): hostile partners and callers on loopback.

// hostileAnswer is how the recording FHIR server answers the paths that
// test what cqgate lets back to the caller.
func hostileAnswer(w http.ResponseWriter, r *http.Request) {
	token := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	jsonSlash := strings.ReplaceAll(token, "/", `\/`)
	errorBody := `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"processing",` +
		`"diagnostics":"refused Authorization: Bearer ` + jsonSlash + `; as a query: access_token=` + url.QueryEscape(token) +
		`; escaped: ` + escapeAllJSON(token) + `; as Basic: ` + basicEcho(token) + `"}]}`
	switch p := r.URL.Path; {
	case strings.HasSuffix(p, "/switch-101"):
		tenantRaw(w, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
	case strings.HasSuffix(p, "/huge-headers"):
		w.Header().Set("X-Padding", strings.Repeat("a", 100<<10))
		w.Header().Set("Content-Type", "application/fhir+json")
		io.WriteString(w, patientJSON)
	case strings.HasSuffix(p, "/echo-token"):
		w.Header().Set("X-Echo-Authorization", r.Header.Get("Authorization"))
		w.Header().Set("Link", `<https://tenant.example/next?access_token=`+url.QueryEscape(token)+`>; rel="next"`)
		w.Header().Set("Content-Type", "application/fhir+json")
		io.WriteString(w, patientJSON)
	case strings.HasSuffix(p, "/echo-token-error"):
		w.Header().Set("Content-Type", "application/fhir+json")
		w.Header().Set("X-Echo-Authorization", r.Header.Get("Authorization"))
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, errorBody)
	case strings.HasSuffix(p, "/echo-token-error-chunked"):
		w.Header().Set("Content-Type", "application/fhir+json")
		w.Header().Set("Trailer", "X-Echo")
		w.WriteHeader(http.StatusInternalServerError)
		io.WriteString(w, errorBody)
		w.(http.Flusher).Flush()
		w.Header().Set("X-Echo", r.Header.Get("Authorization"))
	case strings.HasSuffix(p, "/echo-token-error-gzip"):
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		io.WriteString(zw, errorBody)
		zw.Close()
		w.Header().Set("Content-Type", "application/fhir+json")
		w.Header().Set("Content-Encoding", "gzip")
		w.WriteHeader(http.StatusForbidden)
		w.Write(b.Bytes())
	case strings.HasSuffix(p, "/echo-token-error-huge"):
		w.Header().Set("Content-Type", "application/fhir+json")
		w.WriteHeader(http.StatusInternalServerError)
		io.WriteString(w, errorBody+strings.Repeat(" ", 300<<10)+token)
	default:
		http.NotFound(w, r)
	}
}

// basicEcho is token as a Basic credential with no user would carry it:
// base64(":" + token).
func basicEcho(token string) string {
	return base64.StdEncoding.EncodeToString([]byte(":" + token))
}

// escapeAllJSON writes every byte of s other than letters and digits as
// a JSON \u00XX escape.
func escapeAllJSON(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, `\u%04x`, c)
		}
	}
	return b.String()
}

// TestIsolationUnsolicitedUpgrade (property 10, the 101 half): a tenant
// answering 101 Switching Protocols to a request that asked for no
// upgrade gets the caller a 502 OperationOutcome, not a 500.
func TestIsolationUnsolicitedUpgrade(t *testing.T) {
	hw := newHostileWorld(t)
	for _, hdr := range []map[string]string{nil, {"Upgrade": "websocket", "Connection": "Upgrade"}} {
		resp, body := hw.do("GET", cernerPath+"/Patient/switch-101", nil, hdr)
		if resp.StatusCode != http.StatusBadGateway {
			t.Fatalf("caller headers %v: status %d, want 502: %s", hdr, resp.StatusCode, body)
		}
		oo := decodeOutcome(t, resp, body)
		if !strings.Contains(oo.Issue[0].Diagnostics, "101") {
			t.Errorf("diagnostics %q do not say what the tenant did", oo.Issue[0].Diagnostics)
		}
	}
	hw.assertNoSecrets()
}

// TestIsolationResponseHeaderBound (property 4): a tenant's response
// header block larger than proxy.max_response_header_bytes is a 502.
func TestIsolationResponseHeaderBound(t *testing.T) {
	hw := newHostileWorld(t)
	resp, body := hw.do("GET", cernerPath+"/Patient/huge-headers", nil, nil)
	if resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("100 KiB of response headers: status %d, want 502 (limit %d bytes)", resp.StatusCode, hw.cfg.Proxy.MaxResponseHeaderBytes)
	}
	oo := decodeOutcome(t, resp, body)
	t.Logf("diagnostics: %s", oo.Issue[0].Diagnostics)
	if resp, body := hw.do("GET", cernerPath+"/Patient/1316024", nil, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("an ordinary answer: %d %s", resp.StatusCode, body)
	}
}

// TestIsolationDirectoryConnectionsCapped (property 4): 1,000 requests
// for distinct unknown OIDs at once open at most upstream.max_conns_per_host
// connections to the directory (each would carry the API key).
func TestIsolationDirectoryConnectionsCapped(t *testing.T) {
	const requests = 1000
	var open, maxOpen, served atomic.Int64
	dir := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		time.Sleep(5 * time.Millisecond) // a directory that takes a moment
		w.Header().Set("Content-Type", "application/fhir+json")
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"not-found"}]}`)
	}))
	dir.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			n := open.Add(1)
			for m := maxOpen.Load(); n > m && !maxOpen.CompareAndSwap(m, n); m = maxOpen.Load() {
			}
		case http.StateClosed, http.StateHijacked:
			open.Add(-1)
		}
	}
	dir.Start()
	t.Cleanup(dir.Close)
	var cfg *config.Config
	w := newWorld(t, worldOptions{flavor: "r4", tune: func(c *config.Config, _ *world) {
		c.Directory.URL = dir.URL + "/fhir"
		c.Directory.Timeout = 60 * time.Second
		c.Directory.Retry.Attempts = 1
		cfg = c
	}})
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 100}, Timeout: 2 * time.Minute}
	t.Cleanup(client.CloseIdleConnections)
	var wg sync.WaitGroup
	var notFound atomic.Int64
	sem := make(chan struct{}, 200) // the caller's own sockets stay bounded
	for i := range requests {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			resp, err := client.Get(fmt.Sprintf("%s/fhir/2.16.840.1.113883.3.%d.77/Patient/1", w.gateway.URL, 5000+i))
			if err != nil {
				t.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusNotFound {
				notFound.Add(1)
			}
		})
	}
	wg.Wait()
	t.Logf("%d requests: %d 404s, %d directory requests, at most %d directory connections open at once (cap %d)",
		requests, notFound.Load(), served.Load(), maxOpen.Load(), cfg.Upstream.MaxConnsPerHost)
	if notFound.Load() != requests {
		t.Errorf("%d of %d requests got 404", notFound.Load(), requests)
	}
	if got := maxOpen.Load(); got > int64(cfg.Upstream.MaxConnsPerHost) {
		t.Errorf("%d directory connections open at once, want at most upstream.max_conns_per_host = %d", got, cfg.Upstream.MaxConnsPerHost)
	}
}

// TestIsolationRequestTrailers (property 5): credentials a caller sends
// as request trailers never reach the tenant.
func TestIsolationRequestTrailers(t *testing.T) {
	hw := newHostileWorld(t)
	const callerSecret = "caller-trailer-secret-77"
	for _, size := range []int{64, 32 << 10} {
		before := len(hw.fhir.seen())
		pr, pw := io.Pipe()
		req, err := http.NewRequest("POST", hw.gateway.URL+cernerPath+"/Patient", pr)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/fhir+json")
		req.Trailer = http.Header{"Authorization": nil, "X-Api-Key": nil, "Cookie": nil, "X-Checksum": nil}
		go func() {
			io.WriteString(pw, `{"resourceType":"Patient","text":"`+strings.Repeat("x", size)+`"}`)
			req.Trailer.Set("Authorization", "Bearer "+callerSecret)
			req.Trailer.Set("X-Api-Key", callerSecret)
			req.Trailer.Set("Cookie", "session="+callerSecret)
			req.Trailer.Set("X-Checksum", "abc")
			pw.Close()
		}()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		seen := hw.fhir.seen()
		if len(seen) != before+1 {
			t.Fatalf("size %d: status %d; the tenant got %d requests, want 1", size, resp.StatusCode, len(seen)-before)
		}
		got := seen[len(seen)-1]
		var dump strings.Builder
		got.Trailer.Write(&dump)
		got.Header.Write(&dump)
		if strings.Contains(dump.String(), callerSecret) {
			t.Errorf("size %d: the caller's trailer credentials reached the tenant:\n%s", size, dump.String())
		}
		t.Logf("size %d: the tenant got trailers %v", size, got.Trailer)
	}
}

// TestIsolationHTTP2TargetWithSpace (property 5): over HTTP/2, a path or
// query with a space or control character is refused with 400 before
// anything is forwarded (HTTP/1.1 cannot even carry it).
func TestIsolationHTTP2TargetWithSpace(t *testing.T) {
	hw := newHostileWorld(t)
	srv := httptest.NewUnstartedServer(hw.gw.Handler)
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	client := srv.Client()
	client.Timeout = 10 * time.Second
	for _, target := range []struct{ path, query string }{
		{cernerPath + "/Patient", "name=peters HTTP/1.1"},
		{cernerPath + "/Patient/a b", ""},
		{cernerPath + "/Patient", "name=a b&_count=1"},
		{cernerPath + "/Patient/1316024 ", ""},
	} {
		before := len(hw.fhir.seen())
		req, err := http.NewRequest("GET", srv.URL+"/", nil)
		if err != nil {
			t.Fatal(err)
		}
		// Opaque: the :path is sent exactly as given, unescaped.
		req.URL.Opaque, req.URL.RawQuery = target.path, target.query
		resp, err := client.Do(req)
		if err != nil {
			// net/http's HTTP/2 server refuses some targets itself
			// (control characters); then nothing was forwarded either.
			t.Logf("%q over HTTP/2: %v", target, err)
			if n := len(hw.fhir.seen()) - before; n != 0 {
				t.Errorf("%q over HTTP/2: the tenant got %d requests", target, n)
			}
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.ProtoMajor != 2 {
			t.Fatalf("spoke %s", resp.Proto)
		}
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%q over HTTP/2: status %d, want 400: %s", target, resp.StatusCode, body)
		}
		if n := len(hw.fhir.seen()) - before; n != 0 {
			t.Errorf("%q over HTTP/2: the tenant got %d requests: %+v", target, n, hw.fhir.seen()[before:])
		}
	}
	// An ordinary request over HTTP/2 still goes through.
	resp, err := client.Get(srv.URL + cernerPath + "/Patient/1316024")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("ordinary request over HTTP/2: %d", resp.StatusCode)
	}
}

// TestIsolationTokenEcho (property 6): a tenant that echoes cqgate's
// bearer token in a response header, a response trailer or an error body
// (raw, percent-encoded, JSON-escaped, gzipped) gets it redacted before
// the caller sees it; an error body beyond the bound is a 502; success
// bodies stream as they were.
func TestIsolationTokenEcho(t *testing.T) {
	hw := newHostileWorld(t)
	addr := hw.gateway.Listener.Addr().String()
	for _, tc := range []struct {
		path string
		want int
	}{
		{"/Patient/echo-token", http.StatusOK},
		{"/Patient/echo-token-error", http.StatusBadRequest},
		{"/Patient/echo-token-error-chunked", http.StatusInternalServerError},
		{"/Patient/echo-token-error-gzip", http.StatusForbidden},
		{"/Patient/echo-token-error-huge", http.StatusBadGateway},
	} {
		t.Run(tc.path, func(t *testing.T) {
			resp := sendRaw(t, addr, rawGET(cernerPath+tc.path, "Accept-Encoding: gzip").build(addr))
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d: %.300s", resp.StatusCode, tc.want, resp.Body)
			}
			body := resp.Body
			if resp.Header.Get("Content-Encoding") == "gzip" {
				zr, err := gzip.NewReader(bytes.NewReader(body))
				if err != nil {
					t.Fatal(err)
				}
				body, _ = io.ReadAll(zr)
			}
			var seen strings.Builder
			resp.Header.Write(&seen)
			resp.Trailer.Write(&seen)
			seen.Write(body)
			tokens := hw.auth.AccessTokens()
			if len(tokens) == 0 {
				t.Fatal("no token was issued")
			}
			for _, tok := range tokens {
				if upstream.Contains(seen.String(), tok) {
					t.Errorf("cqgate's access token reached the caller:\n%.2000s", seen.String())
				}
				if b64 := basicEcho(tok); tc.want != http.StatusOK && strings.Contains(seen.String(), b64[len(b64)/4:3*len(b64)/4]) {
					t.Errorf("cqgate's access token reached the caller base64-encoded:\n%.2000s", seen.String())
				}
			}
			switch tc.want {
			case http.StatusOK:
				if string(body) != patientJSON {
					t.Errorf("success body changed: %s", body)
				}
				if !strings.Contains(resp.Header.Get("X-Echo-Authorization"), upstream.Redacted) {
					t.Errorf("X-Echo-Authorization = %q, want it redacted", resp.Header.Get("X-Echo-Authorization"))
				}
			case http.StatusBadGateway:
				oo := decodeOutcome(t, resp.Response, body)
				if !strings.Contains(oo.Issue[0].Diagnostics, "larger than") {
					t.Errorf("diagnostics %q", oo.Issue[0].Diagnostics)
				}
			default:
				if !strings.Contains(string(body), upstream.Redacted) || !json.Valid(body) {
					t.Errorf("error body not redacted in place: %s", body)
				}
			}
		})
	}
	hw.assertNoSecrets()
}

// fakeDNS resolves the partners' names as the test wants; anything
// else does not resolve.
type fakeDNS map[string]netip.Addr

func (f fakeDNS) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if a, ok := f[host]; ok {
		return []netip.Addr{a}, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

// TestIsolationProxyKeepsSSRFGuard (property 2): with an HTTPS proxy
// and NO_PROXY configured (as the environment would), three partners
// that are not allowed private addresses:
//
//   - A's name resolves to loopback; reached through the proxy it would
//     tunnel to a loopback service: refused (403) before the proxy is asked;
//   - B's name resolves to a public address; it goes through the proxy
//     (and reaches its server, whose token endpoint refuses us: 502);
//   - C is in NO_PROXY and resolves to loopback: the direct connection is
//     refused at connect time (403), as without a proxy.
func TestIsolationProxyKeepsSSRFGuard(t *testing.T) {
	const (
		partnerA = "fhir.partner-a.example"
		partnerB = "fhir.partner-b.example"
		partnerC = "fhir.partner-c.example"
		oidA     = "2.16.840.1.113883.3.13.301"
		oidB     = "2.16.840.1.113883.3.13.302"
		oidC     = "2.16.840.1.113883.3.13.303"
	)
	// The loopback service all three names would lead to.
	var hitsMu sync.Mutex
	hits := map[string]int{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /r4/metadata", func(w http.ResponseWriter, r *http.Request) {
		hitsMu.Lock()
		hits[r.Host]++
		hitsMu.Unlock()
		w.Header().Set("Content-Type", "application/fhir+json")
		io.WriteString(w, tokenCapabilityStatement("https://"+r.Host+"/token"))
	})
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		hitsMu.Lock()
		hits[r.Host+" token"]++
		hitsMu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"error":"invalid_client","error_description":"partner test server"}`)
	})
	partnerSrv := httptest.NewUnstartedServer(mux)
	certPEM, keyPEM, err := keys.GenerateSelfSigned(keys.SelfSignedOptions{CommonName: partnerB, DNSNames: []string{partnerA, partnerB, partnerC}, KeyType: keys.KeyTypeECP256})
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	partnerSrv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}}
	partnerSrv.StartTLS()
	t.Cleanup(partnerSrv.Close)
	block, _ := pem.Decode(certPEM)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	_, partnerPort, _ := net.SplitHostPort(partnerSrv.Listener.Addr().String())

	// A forward proxy on loopback that tunnels every CONNECT to the
	// partner service, as an egress proxy inside the network would.
	var connectsMu sync.Mutex
	var connects []string
	fwd := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodConnect {
			http.Error(w, "CONNECT only", http.StatusMethodNotAllowed)
			return
		}
		connectsMu.Lock()
		connects = append(connects, r.Host)
		connectsMu.Unlock()
		up, err := net.DialTimeout("tcp", partnerSrv.Listener.Addr().String(), 5*time.Second)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		conn, buf, err := http.NewResponseController(w).Hijack()
		if err != nil {
			up.Close()
			return
		}
		buf.WriteString("HTTP/1.1 200 Connection established\r\n\r\n")
		buf.Flush()
		go func() { io.Copy(up, buf); up.Close() }()
		io.Copy(conn, up)
		conn.Close()
	}))
	t.Cleanup(fwd.Close)

	var cfg *config.Config
	w := newWorld(t, worldOptions{flavor: "r4", tune: func(c *config.Config, _ *world) {
		c.Organizations[oidA] = config.Organization{Name: "Partner A", FHIRBase: "https://" + partnerA + "/r4"}
		c.Organizations[oidB] = config.Organization{Name: "Partner B", FHIRBase: "https://" + partnerB + "/r4"}
		c.Organizations[oidC] = config.Organization{Name: "Partner C", FHIRBase: "https://" + partnerC + ":" + partnerPort + "/r4"}
		cfg = c
	}})
	// HTTPS_PROXY=<fwd> NO_PROXY=fhir.partner-c.example, given to the
	// transport rather than set in the process environment.
	env := &httpproxy.Config{HTTPSProxy: fwd.URL, NoProxy: partnerC}
	proxyFunc := env.ProxyFunc()
	transport := gateway.NewTransport(gateway.TransportOptions{
		ResponseHeaderTimeout: 5 * time.Second,
		Guard:                 true,
		Proxy:                 func(r *http.Request) (*url.URL, error) { return proxyFunc(r.URL) },
		Resolver: fakeDNS{
			partnerA: netip.MustParseAddr("127.0.0.1"),
			partnerB: netip.MustParseAddr("93.184.215.14"),
			partnerC: netip.MustParseAddr("127.0.0.1"),
		},
	})
	transport.TLSClientConfig = &tls.Config{RootCAs: roots}
	t.Cleanup(transport.CloseIdleConnections)
	w.start(cfg, gateway.Options{Transport: transport}, 10*time.Second)

	for _, tc := range []struct {
		oid, host string
		want      int
		proxied   bool
	}{
		{oidA, partnerA, http.StatusForbidden, false},
		{oidB, partnerB, http.StatusBadGateway, true},
		{oidC, partnerC + ":" + partnerPort, http.StatusForbidden, false},
	} {
		t.Run(tc.host, func(t *testing.T) {
			connectsMu.Lock()
			before := len(connects)
			connectsMu.Unlock()
			resp, body := w.do("GET", "/fhir/"+tc.oid+"/Patient/1", nil, nil)
			connectsMu.Lock()
			through := append([]string(nil), connects[before:]...)
			connectsMu.Unlock()
			hitsMu.Lock()
			metadata, tokens := hits[tc.host], hits[tc.host+" token"]
			hitsMu.Unlock()
			t.Logf("status %d, CONNECTs %v, metadata requests %d, token requests %d: %.300s", resp.StatusCode, through, metadata, tokens, body)
			if resp.StatusCode != tc.want {
				t.Errorf("status %d, want %d", resp.StatusCode, tc.want)
			}
			if tc.want == http.StatusForbidden {
				oo := decodeOutcome(t, resp, body)
				if oo.Issue[0].Code != "security" || !strings.Contains(oo.Issue[0].Diagnostics, "egress: refusing") {
					t.Errorf("issue = %+v", oo.Issue[0])
				}
				if metadata != 0 || tokens != 0 || len(through) != 0 {
					t.Errorf("the loopback service was reached: %d metadata, %d token requests, CONNECTs %v", metadata, tokens, through)
				}
				return
			}
			if !tc.proxied || len(through) == 0 || metadata != 1 || tokens != 1 || !strings.Contains(string(body), "invalid_client") {
				t.Errorf("a public partner behind the proxy: CONNECTs %v, %d metadata, %d token requests", through, metadata, tokens)
			}
		})
	}
}

// TestIsolationBatchPolicy (property 9): a caller allowed GET and POST
// but not DELETE or PUT cannot send them inside a batch or transaction
// Bundle POSTed to the base: the whole Bundle is refused with 403 before
// anything goes out. A caller allowed every method is not held back, and
// an allowed Bundle reaches the tenant byte for byte.
func TestIsolationBatchPolicy(t *testing.T) {
	hw := newHostileWorld(t)
	const writerKey, adminKey = "writer-api-key-0123456789", "admin-api-key-0123456789"
	hash := func(k string) string { s := sha256.Sum256([]byte(k)); return hex.EncodeToString(s[:]) }
	cfg := hw.cfg
	cfg.Inbound.Auth = "api_key"
	cfg.Inbound.APIKeys = map[string]string{"writer": hash(writerKey), "admin": hash(adminKey)}
	cfg.Inbound.Callers = map[string]config.Caller{
		"writer": {Organizations: []string{"*"}, Methods: []string{"GET", "POST"}},
		"admin":  {Organizations: []string{"*"}, Methods: []string{"*"}},
	}
	hw.world.start(cfg, gateway.Options{}, 10*time.Second)

	bundle := func(typ string, entries ...string) string {
		var es []string
		for _, e := range entries {
			method, u, _ := strings.Cut(e, " ")
			es = append(es, fmt.Sprintf(`{"resource":{"resourceType":"Patient"},"request":{"method":%q,"url":%q}}`, method, u))
		}
		return `{"resourceType":"Bundle","type":"` + typ + `","entry":[` + strings.Join(es, ",") + `]}`
	}
	const xmlBundle = `<Bundle xmlns="http://hl7.org/fhir"><type value="transaction"/><entry><request><method value="DELETE"/><url value="Patient/1"/></request></entry></Bundle>`
	for _, tc := range []struct {
		name, key, path, contentType, body string
		want                               int
	}{
		{"allowed batch", writerKey, "/", "application/fhir+json", bundle("batch", "GET Patient/1316024", "POST Patient", "POST Observation/_search"), 0},
		{"DELETE in a transaction", writerKey, "/", "application/fhir+json", bundle("transaction", "POST Patient", "DELETE Patient/1316024"), http.StatusForbidden},
		{"DELETE, base without slash", writerKey, "", "application/fhir+json", bundle("transaction", "DELETE Patient/1316024"), http.StatusForbidden},
		{"PUT in a batch", writerKey, "/", "application/json", bundle("batch", "GET Patient/1", "PUT Patient/1"), http.StatusForbidden},
		{"lower-case delete", writerKey, "/", "application/fhir+json; charset=utf-8", bundle("batch", "delete Patient/1"), http.StatusForbidden},
		{"absolute entry URL", writerKey, "/", "application/fhir+json", bundle("batch", "DELETE https://elsewhere.example/fhir/Patient/1"), http.StatusForbidden},
		{"DELETE in a collection", writerKey, "/", "application/fhir+json", bundle("collection", "DELETE Patient/1"), http.StatusForbidden},
		{"XML transaction", writerKey, "/", "application/fhir+xml", xmlBundle, http.StatusUnsupportedMediaType},
		{"too large", writerKey, "/", "application/fhir+json", bundle("batch", "GET Patient/"+strings.Repeat("1", hostileMaxBodyBytes)), http.StatusRequestEntityTooLarge},
		{"admin may DELETE", adminKey, "/", "application/fhir+json", bundle("transaction", "DELETE Patient/1316024"), 0},
		{"admin XML", adminKey, "/", "application/fhir+xml", xmlBundle, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(hw.fhir.seen())
			resp, body := hw.do("POST", cernerPath+tc.path, []byte(tc.body), map[string]string{"X-API-Key": tc.key, "Content-Type": tc.contentType})
			if tc.want != 0 && resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d: %.400s", resp.StatusCode, tc.want, body)
			}
			seen := hw.fhir.seen()[before:]
			if tc.want != 0 {
				if len(seen) != 0 {
					t.Errorf("the tenant got %d requests", len(seen))
				}
				oo := decodeOutcome(t, resp, body)
				t.Logf("%d: %s", resp.StatusCode, oo.Issue[0].Diagnostics)
				return
			}
			if len(seen) != 1 || string(seen[0].Body) != tc.body || seen[0].Method != "POST" {
				t.Errorf("status %d: the tenant got %d requests, want the Bundle as sent: %.300s", resp.StatusCode, len(seen), body)
			}
		})
	}
}

// TestIsolationDirectoryEchoesAPIKeyEncoded (property 8): a directory
// that echoes cqgate's API key back in an error, raw, percent-encoded
// byte by byte or JSON \u-escaped, gets it redacted from the caller's
// OperationOutcome and from the logs.
func TestIsolationDirectoryEchoesAPIKeyEncoded(t *testing.T) {
	forms := map[string]string{
		"raw":                dirAPIKey,
		"percent every byte": encodeEveryByte(dirAPIKey, "%%%02X"),
		"percent lower hex":  encodeEveryByte(dirAPIKey, "%%%02x"),
		"json \\u escapes":   encodeEveryByte(dirAPIKey, `\u%04x`),
		"json mixed":         `dir-api-key-e2e-\u0053\u0033CRET`,
		"base64":             base64.StdEncoding.EncodeToString([]byte("api-key " + dirAPIKey)),
	}
	for name, form := range forms {
		t.Run(name, func(t *testing.T) {
			dir := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusBadRequest)
				io.WriteString(w, `{"error":"bad request","detail":"api key `+form+` is not valid for this query"}`)
			}))
			t.Cleanup(dir.Close)
			w := newWorld(t, worldOptions{flavor: "r4", tune: func(c *config.Config, _ *world) {
				c.Directory.URL = dir.URL + "/fhir"
			}})
			resp, body := w.do("GET", "/fhir/2.16.840.1.113883.3.13.999/Patient/1", nil, nil)
			if resp.StatusCode < 400 {
				t.Fatalf("status %d", resp.StatusCode)
			}
			t.Logf("%d: %s", resp.StatusCode, body)
			for where, text := range map[string]string{"OperationOutcome": string(body), "logs": w.logs.String()} {
				if upstream.Contains(text, dirAPIKey) || strings.Contains(text, form) {
					t.Errorf("the directory API key (%s) reached the %s", name, where)
				}
			}
		})
	}
}

// encodeEveryByte writes every byte of s with format.
func encodeEveryByte(s, format string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		fmt.Fprintf(&b, format, s[i])
	}
	return b.String()
}
