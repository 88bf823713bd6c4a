package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/cqgate/cqgate/config"
	"github.com/cqgate/cqgate/gateway"
	"github.com/cqgate/cqgate/internal/egress"
	"github.com/cqgate/cqgate/internal/fositetest"
	"github.com/cqgate/cqgate/keys"
)

// The hostile-input tests send requests through the whole gateway, most
// of them as raw bytes over TCP so that nothing normalizes them on the
// way, and check that each is refused before anything reaches the
// directory's tenant, its token endpoint or its FHIR server, or that it is
// confined to the tenant: forwarded to the tenant's host, under its FHIR
// base, with cqgate's bearer token and none of the caller's credentials.

const (
	// tenantPrefix is where the recording FHIR server's base lives.
	tenantPrefix = "/beta/" + tenantGUID
	// hostileMaxHeaderBytes and hostileMaxBodyBytes are the server limits
	// of the hostile world (server.max_header_bytes, max_body_bytes).
	hostileMaxHeaderBytes = 16 << 10
	hostileMaxBodyBytes   = 64 << 10
)

// ssrfOrgs are directory entries whose FHIR endpoint an organization that
// is not allowed private addresses must never be reached at.
var ssrfOrgs = map[string]string{
	"2.16.840.1.113883.3.13.101": "http://fhir.partner.example/r4",
	"2.16.840.1.113883.3.13.102": "https://127.0.0.1/r4",
	"2.16.840.1.113883.3.13.103": "https://localhost/r4",
	"2.16.840.1.113883.3.13.104": "https://169.254.169.254/latest/meta-data",
	"2.16.840.1.113883.3.13.105": "https://[::1]/r4",
	"2.16.840.1.113883.3.13.106": "https://10.0.0.5/r4",
	"2.16.840.1.113883.3.13.107": "https://2130706433/r4",
	"2.16.840.1.113883.3.13.108": "https://metadata.google.internal/computeMetadata/v1",
	"2.16.840.1.113883.3.13.109": "https://[::ffff:127.0.0.1]/r4",
	"2.16.840.1.113883.3.13.110": "https://0.0.0.0/r4",
	"2.16.840.1.113883.3.13.111": "https://[fe80::1]/r4",
	"2.16.840.1.113883.3.13.112": "https://192.168.1.20:8443/r4",
	"2.16.840.1.113883.3.13.113": "file:///etc/passwd",
}

// hostileWorld is the e2e world with a directory of several organizations
// (the sandbox one, allowed private addresses, plus ssrfOrgs), a FHIR
// server that records everything it is sent, and the gateway also served
// by gateway.Serve with the configured server limits.
type hostileWorld struct {
	*world
	cfg  *config.Config
	fhir *recordingFHIR
	dir  *orgDirectory
	// served is the address of the gateway behind gateway.Serve, which
	// applies server.max_header_bytes (httptest's server does not).
	served string
}

func newHostileWorld(t *testing.T) *hostileWorld {
	t.Helper()
	hw := &hostileWorld{}
	hw.world = newWorld(t, worldOptions{flavor: "r4", tune: func(c *config.Config, w *world) {
		hw.fhir = newRecordingFHIR(t, w.auth)
		hw.dir = newOrgDirectory(t)
		hw.dir.set(cernerOID, hw.fhir.base())
		for oid, addr := range ssrfOrgs {
			hw.dir.set(oid, addr)
		}
		c.Directory.URL = hw.dir.URL + "/fhir"
		c.Server.MaxHeaderBytes = hostileMaxHeaderBytes
		c.Server.MaxBodyBytes = hostileMaxBodyBytes
		// A refused token is replaced at once, so that one row's 401
		// cannot throttle the next row.
		c.Tokens.MinInterval = 0
		c.Inbound.Callers = map[string]config.Caller{"anonymous": {Organizations: []string{"*"}, Methods: []string{"*"}}}
		hw.cfg = c
	}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	log := logrus.New()
	log.SetOutput(hw.logs)
	log.SetFormatter(&logrus.JSONFormatter{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- gateway.Serve(ctx, ln, hw.gw.Handler, hw.cfg.Server, log) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("gateway.Serve: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("gateway.Serve did not stop")
		}
	})
	hw.served = ln.Addr().String()
	return hw
}

// recorded is one request as the FHIR server received it.
type recorded struct {
	Method, RequestURI, Path, RawQuery, Host string
	Header                                   http.Header
	Body                                     []byte
	Authorized                               bool
	// Trailer holds the request's trailers, as the tenant got them.
	Trailer http.Header
}

// recordingFHIR is a FHIR server for the sandbox tenant that records every
// request that is not for its CapabilityStatement, wherever it points,
// and answers a few paths in ways that test the gateway.
type recordingFHIR struct {
	*httptest.Server
	auth          *fositetest.Server
	metadataCalls atomic.Int64
	mu            sync.Mutex
	reqs          []recorded
}

func newRecordingFHIR(t *testing.T, auth *fositetest.Server) *recordingFHIR {
	f := &recordingFHIR{auth: auth}
	f.Server = httptest.NewServer(f)
	t.Cleanup(f.Close)
	return f
}

func (f *recordingFHIR) base() string { return f.URL + tenantPrefix }

// host is what a request to the tenant must carry as Host.
func (f *recordingFHIR) host() string { return strings.TrimPrefix(f.URL, "http://") }

func (f *recordingFHIR) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet && r.URL.Path == tenantPrefix+"/metadata" {
		f.metadataCalls.Add(1)
		w.Header().Set("Content-Type", "application/fhir+json")
		fmt.Fprint(w, tokenCapabilityStatement(f.auth.TokenURL))
		return
	}
	body, _ := io.ReadAll(io.LimitReader(r.Body, 16<<20))
	rec := recorded{
		Method: r.Method, RequestURI: r.RequestURI, Path: r.URL.Path, RawQuery: r.URL.RawQuery, Host: r.Host,
		Header: r.Header.Clone(), Body: body, Authorized: f.auth.ValidateRequest(r) == nil,
		Trailer: r.Trailer.Clone(),
	}
	f.mu.Lock()
	f.reqs = append(f.reqs, rec)
	f.mu.Unlock()

	switch {
	case !strings.HasPrefix(r.URL.Path, tenantPrefix+"/"):
		http.NotFound(w, r)
	case !rec.Authorized || strings.HasSuffix(r.URL.Path, "/always-401"):
		w.Header().Set("WWW-Authenticate", `Bearer realm="tenant", error="invalid_token"`)
		w.Header().Set("Content-Type", "application/fhir+json")
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"login"}]}`)
	case r.Method == http.MethodTrace:
		// A TRACE echoes the request it received, headers included, as
		// servers that have not turned it off do.
		w.Header().Set("Content-Type", "message/http")
		fmt.Fprintf(w, "TRACE %s HTTP/1.1\r\n", r.RequestURI)
		r.Header.Write(w)
	case strings.HasSuffix(r.URL.Path, "/hostile-headers"):
		tenantRaw(w, "HTTP/1.1 200 OK\r\nConnection: X-Hop\r\nX-Hop: listed-in-connection\r\n"+hostileHeaders)
	case strings.HasSuffix(r.URL.Path, "/hostile-headers-close"):
		tenantRaw(w, "HTTP/1.1 200 OK\r\nConnection: X-Hop, close\r\nX-Hop: listed-in-connection\r\n"+hostileHeaders)
	case strings.HasSuffix(r.URL.Path, "/switch-101") || strings.HasSuffix(r.URL.Path, "/huge-headers") ||
		strings.Contains(r.URL.Path, "/echo-token"):
		hostileAnswer(w, r)
	case strings.HasSuffix(r.URL.Path, "/early-hints"):
		tenantRaw(w, "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\nSet-Cookie: early=tenant-early-cookie\r\n\r\n"+
			"HTTP/1.1 200 OK\r\nContent-Type: application/fhir+json\r\nContent-Length: 2\r\n\r\n{}")
	default:
		w.Header().Set("Content-Type", "application/fhir+json")
		w.Header().Set("X-Request-Id", "tenant-"+r.Header.Get("X-Request-Id"))
		io.WriteString(w, patientJSON)
	}
}

// hostileHeaders are response headers a tenant could send that would
// leak something to the caller or confuse it. The tenant answers
// .../hostile-headers with them, a chunked body and a trailer.
const hostileHeaders = "Content-Type: application/fhir+json\r\n" +
	"Keep-Alive: timeout=5, max=100\r\n" +
	"Proxy-Connection: keep-alive\r\n" +
	"Proxy-Authenticate: Basic realm=\"tenant-proxy\"\r\n" +
	"Upgrade: h2c\r\n" +
	"Te: trailers\r\n" +
	"Set-Cookie: tenant-session=tenant-session-cookie; Path=/; HttpOnly\r\n" +
	"Set-Cookie: second=tenant-second-cookie\r\n" +
	"Set-Cookie2: legacy=tenant-legacy-cookie\r\n" +
	"WWW-Authenticate: Bearer realm=\"tenant\"\r\n" +
	"Alt-Svc: h2=\"evil.example:443\"; ma=86400\r\n" +
	"Strict-Transport-Security: max-age=63072000; includeSubDomains\r\n" +
	"Access-Control-Allow-Origin: *\r\n" +
	"Access-Control-Allow-Credentials: true\r\n" +
	"Access-Control-Expose-Headers: *\r\n" +
	"Content-Location: https://tenant.example/internal/Patient/1\r\n" +
	"Location: https://tenant.example/internal/Patient/1\r\n" +
	"Server: TenantFHIR/9.9\r\n" +
	"X-Request-Id: tenant-own-id\r\n" +
	"Trailer: X-Checksum, Set-Cookie\r\n" +
	"Transfer-Encoding: chunked\r\n" +
	"\r\n" +
	"2\r\n{}\r\n" +
	"0\r\n" +
	"X-Checksum: tenant-trailer\r\n" +
	"Set-Cookie: trailer=tenant-trailer-cookie\r\n" +
	"\r\n"

// tenantRaw answers with raw bytes the tenant chooses, on a connection it
// then closes.
func tenantRaw(w http.ResponseWriter, raw string) {
	conn, buf, err := http.NewResponseController(w).Hijack()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	defer conn.Close()
	buf.WriteString(raw)
	buf.Flush()
}

func (f *recordingFHIR) seen() []recorded {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]recorded(nil), f.reqs...)
}

func tokenCapabilityStatement(tokenURL string) string {
	return fmt.Sprintf(`{"resourceType":"CapabilityStatement","status":"active","fhirVersion":"4.0.1","format":["json"],
 "rest":[{"mode":"server","security":{"extension":[{"url":"http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
  "extension":[{"url":"carequality-token","valueUri":%q}]}]}}]}`, tokenURL)
}

// orgDirectory is an R4 directory (the shape of r4Organization) that
// knows any number of organizations, each with one FHIR REST endpoint.
type orgDirectory struct {
	*httptest.Server
	requests atomic.Int64
	mu       sync.Mutex
	orgs     map[string]string // OID -> FHIR endpoint address
}

func newOrgDirectory(t *testing.T) *orgDirectory {
	d := &orgDirectory{orgs: map[string]string{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /fhir/Organization/{oid}", func(w http.ResponseWriter, r *http.Request) {
		d.requests.Add(1)
		if r.Header.Get("Authorization") != "api-key "+dirAPIKey {
			http.Error(w, `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"security"}]}`, http.StatusForbidden)
			return
		}
		oid := r.PathValue("oid")
		d.mu.Lock()
		addr, ok := d.orgs[oid]
		d.mu.Unlock()
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		doc := strings.ReplaceAll(r4Organization, cernerOID, oid)
		// The address goes into a JSON string.
		quoted, _ := json.Marshal(addr)
		doc = strings.ReplaceAll(doc, `"{{FHIR_BASE}}"`, string(quoted))
		w.Header().Set("Content-Type", "application/fhir+json")
		io.WriteString(w, doc)
	})
	d.Server = httptest.NewServer(mux)
	t.Cleanup(d.Close)
	return d
}

func (d *orgDirectory) set(oid, address string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.orgs[oid] = address
}

// rawResponse is what came back for a raw request: any interim (1xx)
// responses, then the final one with its body read.
type rawResponse struct {
	*http.Response
	Interim []*http.Response
	Body    []byte
}

// sendRaw writes raw to addr over a fresh TCP connection and reads the
// answer. Nothing normalizes the request on the way.
func sendRaw(t *testing.T, addr, raw string) *rawResponse {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	errc := make(chan error, 1)
	go func() {
		_, err := io.WriteString(conn, raw)
		errc <- err
	}()
	br := bufio.NewReader(conn)
	out := &rawResponse{}
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("reading the answer to %.120q: %v", raw, err)
		}
		if resp.StatusCode >= 100 && resp.StatusCode < 200 && resp.StatusCode != http.StatusSwitchingProtocols {
			out.Interim = append(out.Interim, resp)
			continue
		}
		out.Response = resp
		break
	}
	out.Body, err = io.ReadAll(out.Response.Body)
	if err != nil {
		t.Fatalf("reading the body of the answer to %.120q: %v", raw, err)
	}
	out.Response.Body.Close()
	if err := <-errc; err != nil {
		// The server may answer and close before it read everything.
		t.Logf("writing the request: %v (the server answered first)", err)
	}
	return out
}

// rawRequest builds an HTTP/1.1 request. Each header is written as given
// (so it may hold CR or LF); Host is added unless one is given or noHost.
type rawRequest struct {
	method, target string
	headers        []string
	body           string
	// chunked sends body with Transfer-Encoding: chunked (in 8 KiB
	// chunks) instead of Content-Length.
	chunked bool
	noHost  bool
}

func (r rawRequest) build(host string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\n", r.method, r.target)
	hasHost := r.noHost
	for _, h := range r.headers {
		if strings.HasPrefix(strings.ToLower(h), "host:") {
			hasHost = true
		}
	}
	if !hasHost {
		fmt.Fprintf(&b, "Host: %s\r\n", host)
	}
	for _, h := range r.headers {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("Connection: close\r\n")
	switch {
	case r.chunked:
		b.WriteString("Transfer-Encoding: chunked\r\n\r\n")
		for rest := r.body; rest != ""; {
			n := min(len(rest), 8<<10)
			fmt.Fprintf(&b, "%x\r\n%s\r\n", n, rest[:n])
			rest = rest[n:]
		}
		b.WriteString("0\r\n\r\n")
	case r.body != "":
		fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n%s", len(r.body), r.body)
	default:
		b.WriteString("\r\n")
	}
	return b.String()
}

// Who answered a refused request.
const (
	byCqgate  = "cqgate"   // an OperationOutcome
	byNetHTTP = "net/http" // Go's HTTP server itself, plain text, before cqgate's handler runs
)

type hostileCase struct {
	name string
	req  rawRequest
	// want is the status; 0 means the request is confined: forwarded to
	// the tenant, under its base, and answered by it.
	want int
	// by says who produces a refusal (byCqgate unless set).
	by string
	// served sends the request to the gateway behind gateway.Serve (the
	// production server with server.max_header_bytes) instead of the
	// httptest server.
	served bool
	// check looks further at a confined request as the tenant saw it.
	check func(t *testing.T, got recorded, resp *rawResponse)
}

var (
	cernerPath  = "/fhir/" + cernerOID
	requestIDRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	longOID     = "2." + strings.TrimSuffix(strings.Repeat("1.", 149), ".")
)

func rawGET(target string, headers ...string) rawRequest {
	return rawRequest{method: "GET", target: target, headers: headers}
}

func hostileCases() []hostileCase {
	query := func(want string) func(*testing.T, recorded, *rawResponse) {
		return func(t *testing.T, got recorded, _ *rawResponse) {
			if got.RawQuery != want {
				t.Errorf("the tenant got query %q, want %q", got.RawQuery, want)
			}
		}
	}
	requestID := func(t *testing.T, got recorded, resp *rawResponse) {
		id := got.Header.Get("X-Request-Id")
		if !requestIDRE.MatchString(id) || resp.Header.Get("X-Request-Id") != id {
			t.Errorf("a hostile X-Request-Id was not replaced by a fresh one: tenant got %q, caller got %q", id, resp.Header.Get("X-Request-Id"))
		}
	}
	noHeader := func(names ...string) func(*testing.T, recorded, *rawResponse) {
		return func(t *testing.T, got recorded, _ *rawResponse) {
			for _, n := range names {
				if v, ok := got.Header[http.CanonicalHeaderKey(n)]; ok {
					t.Errorf("the tenant got the caller's %s: %q", n, v)
				}
			}
		}
	}
	bigBody := strings.Repeat(`{"resourceType":"Patient"}`, hostileMaxBodyBytes/26+100)

	cases := []hostileCase{
		// Path traversal and smuggling: refused by proxy.ParsePath.
		{name: "dot-dot raw", req: rawGET(cernerPath + "/Patient/../../admin"), want: 400},
		{name: "dot-dot right after the OID", req: rawGET(cernerPath + "/../other-tenant/Patient"), want: 400},
		{name: "single dot segment", req: rawGET(cernerPath + "/./Patient/1316024"), want: 400},
		{name: "%2e%2e", req: rawGET(cernerPath + "/Patient/%2e%2e/%2e%2e/admin"), want: 400},
		{name: "%2E%2e mixed case", req: rawGET(cernerPath + "/Patient/%2E%2e/admin"), want: 400},
		{name: ".%2e", req: rawGET(cernerPath + "/Patient/.%2e/admin"), want: 400},
		{name: "%2e.", req: rawGET(cernerPath + "/Patient/%2e./admin"), want: 400},
		{name: "dot-dot with a trailing space (Windows trims it)", req: rawGET(cernerPath + "/Patient/..%20/admin"), want: 400},
		{name: "three dots", req: rawGET(cernerPath + "/Patient/.../admin"), want: 400},
		{name: "dot-dot with a path parameter (Tomcat ..;)", req: rawGET(cernerPath + "/Patient/..;/..;/admin"), want: 400},
		{name: "%2e%2e with a path parameter", req: rawGET(cernerPath + "/Patient/%2e%2e;x=1/admin"), want: 400},
		{name: "overlong UTF-8 dots %c0%ae", req: rawGET(cernerPath + "/Patient/%c0%ae%c0%ae/admin"), want: 400},
		{name: "%2f inside a segment", req: rawGET(cernerPath + "/Patient%2f..%2f..%2fadmin"), want: 400},
		{name: "%2F upper case", req: rawGET(cernerPath + "/Patient/1%2F..%2F..%2Fadmin"), want: 400},
		{name: "%5c backslash", req: rawGET(cernerPath + "/Patient/..%5c..%5cadmin"), want: 400},
		{name: "raw backslash", req: rawGET(cernerPath + `/Patient\..\..\admin`), want: 400},
		{name: "//host in the FHIR path", req: rawGET(cernerPath + "//evil.example/Patient"), want: 400},
		{name: "absolute URL in the FHIR path", req: rawGET(cernerPath + "/https://evil.example/x"), want: 400},
		{name: "absolute URL with encoded slashes", req: rawGET(cernerPath + "/https:%2F%2Fevil.example/x"), want: 400},
		{name: "request target //host", req: rawGET("//evil.example/Patient"), want: 404},
		{name: "NUL byte %00", req: rawGET(cernerPath + "/Patient/1316024%00.json"), want: 400},
		{name: "encoded CRLF in the path", req: rawGET(cernerPath + "/Patient/%0d%0aX-Injected:%201"), want: 400},
		{name: "raw control character in the path", req: rawGET(cernerPath + "/Patient/\x01"), want: 400, by: byNetHTTP},
		{name: "overlong FHIR path", req: rawGET(cernerPath + "/Patient/" + strings.Repeat("a", 3000)), want: 400},
		{name: "bad percent-encoding", req: rawGET(cernerPath + "/Patient/%zz"), want: 400, by: byNetHTTP},
		{
			name: "absolute-form request target naming another host", want: 0,
			req: rawGET("http://evil.example" + cernerPath + "/Patient/1316024"),
		},
		{
			name: "Host header of another host", want: 0,
			req: rawGET(cernerPath+"/Patient/1316024", "Host: evil.example"),
		},
		{
			name: "forwarding headers", want: 0,
			req: rawGET(cernerPath+"/Patient/1316024", "X-Forwarded-Host: evil.example", "X-Forwarded-Proto: http",
				"X-Forwarded-For: 10.0.0.1", "Forwarded: for=10.0.0.1;host=evil.example;proto=http", "X-Real-Ip: 10.0.0.1"),
			check: noHeader("X-Forwarded-Host", "X-Forwarded-Proto", "X-Forwarded-For", "Forwarded", "X-Real-Ip"),
		},

		// OIDs.
		{name: "OID abc", req: rawGET("/fhir/abc/Patient/1"), want: 400},
		{name: "OID 1..2", req: rawGET("/fhir/1..2/Patient/1"), want: 400},
		{name: "OID 01.2", req: rawGET("/fhir/01.2/Patient/1"), want: 400},
		{name: "OID with a leading dot", req: rawGET("/fhir/.2.16.840/Patient/1"), want: 400},
		{name: "OID with a trailing dot", req: rawGET("/fhir/" + cernerOID + "./Patient/1"), want: 400},
		{name: "OID of 300 characters", req: rawGET("/fhir/" + longOID + "/Patient/1"), want: 400},
		{name: "OID in Arabic-Indic digits", req: rawGET("/fhir/%D9%A2.%D9%A1%D9%A6/Patient/1"), want: 400},
		{name: "OID with an encoded slash", req: rawGET("/fhir/2.16%2F..%2Fadmin/Patient/1"), want: 400},
		{name: "OID with an encoded space", req: rawGET("/fhir/2.16.840%201/Patient/1"), want: 400},
		{name: "urn:oid: with nothing after it", req: rawGET("/fhir/urn:oid:/Patient/1"), want: 400},
		{name: "urn:oid:urn:oid:", req: rawGET("/fhir/urn:oid:urn:oid:" + cernerOID + "/Patient/1316024"), want: 400},
		{name: "urn:oid: prefix", req: rawGET("/fhir/urn:oid:" + cernerOID + "/Patient/1316024"), want: 0},
		// RFC 8141: the "urn" scheme and the "oid" namespace identifier
		// are case-insensitive, so this is the same URN.
		{name: "URN:OID: upper case", req: rawGET("/fhir/URN:OID:" + cernerOID + "/Patient/1316024"), want: 0},
		{name: "urn%3Aoid%3A percent-encoded", req: rawGET("/fhir/urn%3Aoid%3A" + cernerOID + "/Patient/1316024"), want: 0},
		{name: "valid OID unknown to the directory", req: rawGET("/fhir/2.16.840.1.113883.3.99999/Patient/1"), want: 404},

		// Query parameters go through as they are, except credentials.
		{name: "_format=xml", req: rawGET(cernerPath + "/Patient/1316024?_format=xml"), want: 0, check: query("_format=xml")},
		{name: "_auth", req: rawGET(cernerPath + "/Patient/1316024?_auth=caller-secret"), want: 0, check: query("_auth=caller-secret")},
		{name: "access_token in the query", req: rawGET(cernerPath + "/Patient/1316024?access_token=caller-token"), want: 400},
		{name: "Access_Token mixed case", req: rawGET(cernerPath + "/Patient?name=x&Access_Token=caller-token"), want: 400},
		{name: "access%5Ftoken encoded", req: rawGET(cernerPath + "/Patient?access%5Ftoken=caller-token"), want: 400},
		{name: "access_token after a semicolon", req: rawGET(cernerPath + "/Patient?name=x;access_token=caller-token"), want: 400},

		// Headers.
		{
			name: "caller Authorization", want: 0,
			req:   rawGET(cernerPath+"/Patient/1316024", "Authorization: Bearer caller-own-token"),
			check: noCallerToken,
		},
		{
			name: "two Authorization headers", want: 0,
			req:   rawGET(cernerPath+"/Patient/1316024", "Authorization: Bearer caller-own-token", "Authorization: Basic Y2FsbGVyOnNlY3JldA=="),
			check: noCallerToken,
		},
		{
			name: "Cookie, Proxy-Authorization and X-Api-Key", want: 0,
			req:   rawGET(cernerPath+"/Patient/1316024", "Cookie: caller-session=1", "Proxy-Authorization: Basic eDp5", "X-Api-Key: caller-key"),
			check: noHeader("Cookie", "Proxy-Authorization", "X-Api-Key"),
		},
		{
			name: "Connection naming Authorization", want: 0,
			req:   rawGET(cernerPath+"/Patient/1316024", "Connection: Authorization, X-Request-Id", "Authorization: Bearer caller-own-token"),
			check: noCallerToken,
		},
		{
			name: "CRLF in X-Request-Id injecting Authorization", want: 0,
			req:   rawGET(cernerPath+"/Patient/1316024", "X-Request-Id: abc\r\nAuthorization: Bearer injected-token"),
			check: noCallerToken,
		},
		{name: "bare CR in a header value", req: rawGET(cernerPath+"/Patient/1316024", "X-Request-Id: abc\rX-Injected: 1"), want: 400, by: byNetHTTP},
		{name: "NUL in a header value", req: rawGET(cernerPath+"/Patient/1316024", "X-Request-Id: abc\x00def"), want: 400, by: byNetHTTP},
		{
			// net/http unfolds the continuation into X-Request-Id's value,
			// which then has spaces and is replaced.
			name: "obsolete line folding", want: 0,
			req: rawGET(cernerPath+"/Patient/1316024", "X-Request-Id: abc", " Authorization: Bearer folded"),
			check: func(t *testing.T, got recorded, resp *rawResponse) {
				requestID(t, got, resp)
				noCallerToken(t, got, resp)
			},
		},
		{name: "space in a header name", req: rawGET(cernerPath+"/Patient/1316024", "X Request Id: abc"), want: 400, by: byNetHTTP},
		{
			name: "overlong X-Request-Id", want: 0,
			req:   rawGET(cernerPath+"/Patient/1316024", "X-Request-Id: "+strings.Repeat("r", 300)),
			check: requestID,
		},
		{
			name: "X-Request-Id with a space", want: 0,
			req:   rawGET(cernerPath+"/Patient/1316024", "X-Request-Id: a b"),
			check: requestID,
		},
		{
			name: "Upgrade: websocket", want: 0,
			req:   rawGET(cernerPath+"/Patient/1316024", "Connection: Upgrade", "Upgrade: websocket", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13"),
			check: noHeader("Upgrade", "Connection"),
		},
		{
			name: "method override header", want: 400,
			req: rawGET(cernerPath+"/Patient/1316024", "X-HTTP-Method-Override: DELETE"),
		},
		{name: "header larger than server.max_header_bytes", req: rawGET(cernerPath+"/Patient/1316024", "X-Big: "+strings.Repeat("b", 4*hostileMaxHeaderBytes)), want: 431, by: byNetHTTP, served: true},
		{name: "many headers larger than server.max_header_bytes", req: rawGET(cernerPath+"/Patient/1316024", manyHeaders(2000)...), want: 431, by: byNetHTTP, served: true},
		{name: "no Host header", req: rawRequest{method: "GET", target: cernerPath + "/Patient/1316024", noHost: true}, want: 400, by: byNetHTTP},
		{name: "two Host headers", req: rawGET(cernerPath+"/Patient/1316024", "Host: a.example", "Host: b.example"), want: 400, by: byNetHTTP},
		{
			name: "X-Cqgate-Scope wider than configured", want: 403,
			req: rawGET(cernerPath+"/Patient/1316024", "X-Cqgate-Scope: system/*.*"),
		},
		{
			name: "X-Cqgate-Scope asking for write", want: 403,
			req: rawGET(cernerPath+"/Patient/1316024", "X-Cqgate-Scope: system/Observation.write"),
		},
		{
			name: "X-Cqgate-Scope as configured", want: 0,
			req:   rawGET(cernerPath+"/Patient/1316024", "X-Cqgate-Scope: "+scope),
			check: noHeader("X-Cqgate-Scope"),
		},
		{
			name: "X-Purpose-Of-Use the policy does not allow", want: 403,
			req: rawGET(cernerPath+"/Patient/1316024", "X-Purpose-Of-Use: urn:oid:2.16.840.1.113883.5.8#TREAT"),
		},

		// Methods.
		{name: "TRACE", req: rawRequest{method: "TRACE", target: cernerPath + "/Patient/1316024"}, want: 405},
		{name: "CONNECT with a path", req: rawRequest{method: "CONNECT", target: cernerPath + "/Patient/1316024"}, want: 405},
		{name: "CONNECT to a host", req: rawRequest{method: "CONNECT", target: "evil.example:443"}, want: 404},
		{name: "unknown method", req: rawRequest{method: "PROPFIND", target: cernerPath + "/Patient/1316024"}, want: 405},

		// Bodies.
		{name: "body larger than server.max_body_bytes", req: rawRequest{method: "POST", target: cernerPath + "/Patient", headers: []string{"Content-Type: application/fhir+json"}, body: bigBody}, want: 413},
		{name: "chunked body larger than server.max_body_bytes", req: rawRequest{method: "POST", target: cernerPath + "/Patient", headers: []string{"Content-Type: application/fhir+json"}, body: bigBody, chunked: true}, want: 413},
		{name: "two different Content-Lengths", req: rawRequest{method: "POST", target: cernerPath + "/Patient", headers: []string{"Content-Length: 2", "Content-Length: 3"}}, want: 400, by: byNetHTTP},
		{
			// net/http reads the chunked body and drops Content-Length
			// (RFC 9112 section 6.3); the tenant gets one request with
			// exactly that body, so nothing can be smuggled behind it.
			name: "Content-Length and Transfer-Encoding", want: 0,
			req: rawRequest{method: "POST", target: cernerPath + "/Patient", headers: []string{"Content-Length: 4"}, chunked: true,
				body: `{"resourceType":"Patient"}` + "\r\n\r\nGET /beta/admin HTTP/1.1\r\nHost: x\r\n\r\n"},
			check: func(t *testing.T, got recorded, _ *rawResponse) {
				if want := `{"resourceType":"Patient"}` + "\r\n\r\nGET /beta/admin HTTP/1.1\r\nHost: x\r\n\r\n"; string(got.Body) != want || got.Method != "POST" {
					t.Errorf("the tenant got %s with body %q", got.Method, got.Body)
				}
			},
		},
	}
	// SSRF: directory entries pointing where cqgate must not go.
	for _, oid := range sortedOIDs(ssrfOrgs) {
		want := 403
		if !strings.HasPrefix(ssrfOrgs[oid], "http") {
			want = 502 // not a FHIR base at all: the directory's data is bad
		}
		cases = append(cases, hostileCase{name: "SSRF " + ssrfOrgs[oid], req: rawGET("/fhir/" + oid + "/Patient/1"), want: want})
	}
	return cases
}

func manyHeaders(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("X-H%d: %s", i, strings.Repeat("h", 16))
	}
	return out
}

func sortedOIDs(m map[string]string) []string { return slices.Sorted(maps.Keys(m)) }

// noCallerToken checks that the tenant got cqgate's token and nothing the
// caller sent as a credential.
func noCallerToken(t *testing.T, got recorded, _ *rawResponse) {
	t.Helper()
	if v := got.Header.Values("Authorization"); len(v) != 1 || !got.Authorized {
		t.Errorf("the tenant got Authorization %q, want exactly cqgate's token", v)
	}
	for _, v := range got.Header.Values("Authorization") {
		if strings.Contains(v, "caller") || strings.Contains(v, "injected") || strings.Contains(v, "folded") || strings.HasPrefix(v, "Basic") {
			t.Errorf("the caller's credential reached the tenant: %q", v)
		}
	}
}

// TestHostileRequests sends each hostile request through the whole
// gateway and checks it is refused, with nothing reaching the tenant or
// its token endpoint, or confined to the tenant.
func TestHostileRequests(t *testing.T) {
	hw := newHostileWorld(t)
	// Warm up: the sandbox tenant works, and its token is cached.
	warm := sendRaw(t, hw.gateway.Listener.Addr().String(), rawGET(cernerPath+"/Patient/1316024").build(hw.gateway.Listener.Addr().String()))
	if warm.StatusCode != http.StatusOK || string(warm.Body) != patientJSON {
		t.Fatalf("warm-up: %d %s\nlogs:\n%s", warm.StatusCode, warm.Body, hw.logs)
	}

	cases := hostileCases()
	if len(cases) < 35 {
		t.Fatalf("only %d hostile cases", len(cases))
	}
	var summary strings.Builder
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			addr := hw.gateway.Listener.Addr().String()
			if tc.served {
				addr = hw.served
			}
			before := len(hw.fhir.seen())
			exchanges := hw.auth.Exchanges()
			metadata := hw.fhir.metadataCalls.Load()

			resp := sendRaw(t, addr, tc.req.build(addr))
			got := hw.fhir.seen()[before:]
			outcome := fmt.Sprintf("%d", resp.StatusCode)
			defer func() { fmt.Fprintf(&summary, "%-55s %s\n", tc.name, outcome) }()

			if tc.want == 0 {
				outcome = fmt.Sprintf("%d confined", resp.StatusCode)
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("status %d, want the tenant's 200: %s", resp.StatusCode, resp.Body)
				}
				if len(got) != 1 {
					t.Fatalf("the tenant got %d requests, want 1", len(got))
				}
				checkConfined(t, hw, got[0])
				if tc.check != nil {
					tc.check(t, got[0], resp)
				}
				return
			}

			if resp.StatusCode != tc.want {
				t.Errorf("status %d, want %d: %.300s", resp.StatusCode, tc.want, resp.Body)
			}
			if len(got) != 0 {
				t.Errorf("a refused request reached the tenant's FHIR server: %+v", got)
			}
			if n := hw.auth.Exchanges() - exchanges; n != 0 {
				t.Errorf("a refused request caused %d token exchanges", n)
			}
			if n := hw.fhir.metadataCalls.Load() - metadata; n != 0 {
				t.Errorf("a refused request caused %d metadata requests", n)
			}
			var oo outcomeBody
			isOutcome := json.Unmarshal(resp.Body, &oo) == nil && oo.ResourceType == "OperationOutcome" && len(oo.Issue) > 0
			by := tc.by
			if by == "" {
				by = byCqgate
			}
			outcome += " " + by
			switch by {
			case byCqgate:
				if !isOutcome || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/fhir+json") {
					t.Errorf("refusal is not an OperationOutcome (Content-Type %q): %.300s", resp.Header.Get("Content-Type"), resp.Body)
				} else if oo.Issue[0].Diagnostics == "" {
					t.Errorf("refusal does not say why: %s", resp.Body)
				}
			case byNetHTTP:
				if isOutcome {
					t.Errorf("expected net/http's own plain answer, got an OperationOutcome: %s", resp.Body)
				}
			}
		})
	}
	t.Logf("hostile cases and what the gateway answered:\n%s", summary.String())
	hw.assertNoSecrets()
}

// checkConfined checks that a forwarded request went to the tenant's
// host, under its FHIR base, with cqgate's token and none of the
// caller's credentials.
func checkConfined(t *testing.T, hw *hostileWorld, got recorded) {
	t.Helper()
	if got.Host != hw.fhir.host() {
		t.Errorf("the tenant got Host %q, want its own %q", got.Host, hw.fhir.host())
	}
	if !strings.HasPrefix(got.RequestURI, tenantPrefix+"/") || strings.Contains(got.RequestURI, "://") {
		t.Errorf("the request left the tenant's base: %q", got.RequestURI)
	}
	clean := path.Clean(got.Path)
	if !strings.HasPrefix(clean, tenantPrefix+"/") && clean != tenantPrefix {
		t.Errorf("the request's path resolves outside the tenant's base: %q (clean %q)", got.Path, clean)
	}
	for _, seg := range strings.Split(strings.TrimPrefix(strings.SplitN(got.RequestURI, "?", 2)[0], "/"), "/") {
		dec, _ := url.PathUnescape(seg)
		if d, _, _ := strings.Cut(dec, ";"); d == ".." || d == "." {
			t.Errorf("a dot segment reached the tenant: %q", got.RequestURI)
		}
	}
	if !got.Authorized || len(got.Header.Values("Authorization")) != 1 {
		t.Errorf("the tenant did not get exactly cqgate's valid token: %q", got.Header.Values("Authorization"))
	}
	for _, h := range []string{"Cookie", "X-Api-Key", "Proxy-Authorization", "X-Cqgate-Scope", "X-Purpose-Of-Use", "Forwarded", "X-Forwarded-For", "X-Forwarded-Host"} {
		if v := got.Header.Values(h); len(v) > 0 {
			t.Errorf("the tenant got %s: %q", h, v)
		}
	}
}

// TestHostileTenantResponseHeaders checks what cqgate does with response
// headers from the tenant that would leak something to the caller or
// confuse it, and records the full picture in the test log.
func TestHostileTenantResponseHeaders(t *testing.T) {
	hw := newHostileWorld(t)
	addr := hw.gateway.Listener.Addr().String()
	fetch := func(t *testing.T, p string) *rawResponse {
		t.Helper()
		resp := sendRaw(t, addr, rawGET(cernerPath+p).build(addr))
		if resp.StatusCode != http.StatusOK || string(resp.Body) != "{}" {
			t.Fatalf("status %d %s\nlogs:\n%s", resp.StatusCode, resp.Body, hw.logs)
		}
		t.Logf("caller got 200 with headers:\n%s\ntrailers: %v", dumpHeader(resp.Header), resp.Trailer)
		for _, ir := range resp.Interim {
			t.Logf("caller got an interim %d with headers:\n%s", ir.StatusCode, dumpHeader(ir.Header))
		}
		return resp
	}
	// Never passed on: the tenant's cookies (cqgate's session with the
	// tenant, shared by every caller), hop-by-hop headers, and headers
	// that would speak for cqgate's own origin: CORS (a tenant allowing
	// any origin would let any web page a cqgate user visits read PHI
	// through a cqgate without caller authentication) and Alt-Svc
	// (sending the caller's client elsewhere for cqgate's origin).
	mustNotPass := []string{
		"Set-Cookie", "Set-Cookie2",
		"Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Upgrade", "Te",
		"Access-Control-Allow-Origin", "Access-Control-Allow-Credentials", "Access-Control-Expose-Headers",
		"Alt-Svc",
	}
	checkResponse := func(t *testing.T, resp *rawResponse) {
		t.Helper()
		for _, name := range mustNotPass {
			if v := resp.Header.Values(name); len(v) > 0 {
				t.Errorf("the tenant's %s reached the caller: %q", name, v)
			}
		}
		for name := range resp.Trailer {
			if strings.EqualFold(name, "Set-Cookie") {
				t.Errorf("the tenant's Set-Cookie reached the caller as a trailer")
			}
		}
		// cqgate's request id, and the tenant's own as X-Upstream-Request-Id.
		if got := resp.Header.Values("X-Request-Id"); len(got) != 1 || !requestIDRE.MatchString(got[0]) {
			t.Errorf("X-Request-Id = %q, want cqgate's one id", got)
		}
	}

	t.Run("hostile headers", func(t *testing.T) {
		resp := fetch(t, "/Patient/hostile-headers")
		checkResponse(t, resp)
		if v := resp.Header.Values("X-Hop"); len(v) > 0 {
			t.Errorf("a header the tenant's Connection named reached the caller: %q", v)
		}
		if got := resp.Header.Get("X-Upstream-Request-Id"); got != "tenant-own-id" {
			t.Errorf("X-Upstream-Request-Id = %q, want the tenant's id", got)
		}
	})
	t.Run("hostile headers with Connection: close", func(t *testing.T) {
		resp := fetch(t, "/Patient/hostile-headers-close")
		checkResponse(t, resp)
		// net/http's client deletes a response's Connection header when
		// it says close (transfer.go, shouldClose), so cqgate's forwarder
		// never sees the other headers it names and passes them on. The tenant
		// could as well have sent them as end-to-end headers; recorded
		// here so that a change in Go's behaviour shows.
		t.Logf("X-Hop named with close: %q", resp.Header.Values("X-Hop"))
	})
	t.Run("103 Early Hints", func(t *testing.T) {
		resp := fetch(t, "/Patient/early-hints")
		checkResponse(t, resp)
		for _, ir := range resp.Interim {
			if v := ir.Header.Values("Set-Cookie"); len(v) > 0 {
				t.Errorf("the tenant's Set-Cookie reached the caller in a %d interim response: %q", ir.StatusCode, v)
			}
		}
	})

	t.Run("tenant 401 after the retry", func(t *testing.T) {
		// A 401 the tenant keeps answering, even after cqgate's retry
		// with a fresh token, reaches the caller as it is, challenge
		// included.
		before := hw.auth.Exchanges()
		resp := sendRaw(t, addr, rawGET(cernerPath+"/Patient/always-401").build(addr))
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("always-401: status %d %s", resp.StatusCode, resp.Body)
		}
		t.Logf("caller got the tenant's 401 with headers:\n%s", dumpHeader(resp.Header))
		if got := resp.Header.Get("WWW-Authenticate"); got != `Bearer realm="tenant", error="invalid_token"` {
			t.Errorf("WWW-Authenticate = %q, want the tenant's challenge passed on", got)
		}
		if n := hw.auth.Exchanges() - before; n != 1 {
			t.Errorf("the 401 caused %d exchanges, want 1 (one retry with a fresh token)", n)
		}
	})
}

func dumpHeader(h http.Header) string {
	var b strings.Builder
	h.Write(&b)
	return b.String()
}

// TestHostileTRACEDoesNotEchoTheToken: a tenant that answers TRACE echoes
// the request it got, bearer token included; cqgate must not forward it.
func TestHostileTRACEDoesNotEchoTheToken(t *testing.T) {
	hw := newHostileWorld(t)
	addr := hw.gateway.Listener.Addr().String()
	resp := sendRaw(t, addr, rawRequest{method: "TRACE", target: cernerPath + "/Patient/1316024"}.build(addr))
	if strings.Contains(string(resp.Body), "Bearer") {
		t.Errorf("TRACE echoed the tenant's bearer token to the caller: %d %s", resp.StatusCode, resp.Body)
	}
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("TRACE: status %d, want 405: %s", resp.StatusCode, resp.Body)
	}
	if got := resp.Header.Get("Allow"); got == "" || strings.Contains(got, "TRACE") {
		t.Errorf("Allow = %q", got)
	}
	w := hw.world
	if len(w.auth.AccessTokens()) == 0 {
		// Make assertNoSecrets meaningful.
		sendRaw(t, addr, rawGET(cernerPath+"/Patient/1316024").build(addr))
	}
	w.assertNoSecrets(string(resp.Body))
}

// TestHostileDiscoveredTokenURL: an organization that is not allowed
// private addresses has a public-looking https FHIR base whose
// CapabilityStatement advertises a token URL on a metadata, loopback or
// plain-http address. cqgate reads the CapabilityStatement but never
// sends an assertion there: 403. The FHIR base's name is resolved, by the
// transport this test gives the gateway, to a loopback TLS server.
func TestHostileDiscoveredTokenURL(t *testing.T) {
	const partner = "fhir.partner.example"
	tokenURLs := map[string]string{
		"2.16.840.1.113883.3.13.201": "https://169.254.169.254/latest/api/token",
		"2.16.840.1.113883.3.13.202": "http://" + partner + "/token",
		"2.16.840.1.113883.3.13.203": "https://localhost:8443/token",
		"2.16.840.1.113883.3.13.204": "https://[::1]/token",
		"2.16.840.1.113883.3.13.205": "https://10.1.2.3/token",
		"2.16.840.1.113883.3.13.206": "https://" + partner + "/token", // public: allowed
	}
	var metadataCalls atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{oid}/metadata", func(w http.ResponseWriter, r *http.Request) {
		metadataCalls.Add(1)
		w.Header().Set("Content-Type", "application/fhir+json")
		io.WriteString(w, tokenCapabilityStatement(tokenURLs[r.PathValue("oid")]))
	})
	var tokenCalls atomic.Int64
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		tokenCalls.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"error":"invalid_client","error_description":"partner test server"}`)
	})
	partnerSrv := httptest.NewUnstartedServer(mux)
	certPEM, keyPEM, err := keys.GenerateSelfSigned(keys.SelfSignedOptions{CommonName: partner, DNSNames: []string{partner}, KeyType: keys.KeyTypeECP256})
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

	var cfg *config.Config
	w := newWorld(t, worldOptions{flavor: "r4", tune: func(c *config.Config, _ *world) {
		for oid := range tokenURLs {
			c.Organizations[oid] = config.Organization{Name: "Partner " + oid, FHIRBase: "https://" + partner + "/" + oid}
		}
		cfg = c
	}})

	// The same configuration, built into a gateway whose outbound
	// transport resolves the partner's name to the loopback server (and
	// only that name: anything else fails to connect).
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	transport := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if host, _, _ := net.SplitHostPort(addr); host == partner {
				return dialer.DialContext(ctx, network, partnerSrv.Listener.Addr().String())
			}
			if host, _, _ := net.SplitHostPort(addr); net.ParseIP(host) != nil && net.ParseIP(host).IsLoopback() {
				return dialer.DialContext(ctx, network, addr) // fosite, Vault
			}
			return nil, fmt.Errorf("test transport: no route to %s", addr)
		},
		TLSClientConfig:       &tls.Config{RootCAs: roots},
		ResponseHeaderTimeout: 5 * time.Second,
	}
	t.Cleanup(transport.CloseIdleConnections)
	log := logrus.New()
	log.SetOutput(w.logs)
	log.SetFormatter(&logrus.JSONFormatter{})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	gw, err := gateway.New(ctx, cfg, gateway.Options{Logger: log, Transport: transport})
	if err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if err := gw.WaitReady(wctx); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gw.Handler)
	t.Cleanup(srv.Close)

	for _, oid := range sortedOIDs(tokenURLs) {
		t.Run(tokenURLs[oid], func(t *testing.T) {
			exchanges, metadata, partnerTokens := w.auth.Exchanges(), metadataCalls.Load(), tokenCalls.Load()
			resp, err := http.Get(srv.URL + "/fhir/" + oid + "/Patient/1")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if metadataCalls.Load()-metadata != 1 {
				t.Errorf("the CapabilityStatement was read %d times, want 1", metadataCalls.Load()-metadata)
			}
			if w.auth.Exchanges() != exchanges {
				t.Errorf("an assertion went to fosite")
			}
			if oid == "2.16.840.1.113883.3.13.206" {
				// A public https token URL is used: the partner's token
				// endpoint refuses our client, a 502 naming its error.
				if resp.StatusCode != http.StatusBadGateway || tokenCalls.Load()-partnerTokens != 1 || !strings.Contains(string(body), "invalid_client") {
					t.Errorf("public token URL: %d, %d token requests: %s", resp.StatusCode, tokenCalls.Load()-partnerTokens, body)
				}
				return
			}
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("status %d, want 403: %s", resp.StatusCode, body)
			}
			if tokenCalls.Load() != partnerTokens {
				t.Errorf("an assertion went to the partner server")
			}
			oo := decodeOutcome(t, resp, body)
			if oo.Issue[0].Code != "security" || !strings.Contains(oo.Issue[0].Diagnostics, "token URL") {
				t.Errorf("issue = %+v", oo.Issue[0])
			}
		})
	}
}

// TestHostileNameResolvingToPrivateAddress: a directory entry's FHIR base
// names a host whose name looks public but resolves to a loopback or
// private address (here: this machine's own name). The URL check cannot
// know; the connect-time guard refuses it, and the caller gets the same
// 403 as for a literal private address, without anything being sent.
func TestHostileNameResolvingToPrivateAddress(t *testing.T) {
	const oid = "2.16.840.1.113883.3.13.120"
	name, err := os.Hostname()
	if err != nil {
		t.Skipf("no host name: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", name)
	if err != nil || len(addrs) == 0 {
		t.Skipf("this machine's name %q does not resolve (%v)", name, err)
	}
	for _, a := range addrs {
		if a.Unmap().IsGlobalUnicast() && !a.Unmap().IsPrivate() {
			t.Skipf("this machine's name %q resolves to the public address %s", name, a)
		}
	}
	if egress.CheckURL(&url.URL{Scheme: "https", Host: name}, false) != nil {
		t.Skipf("this machine's name %q is refused by name already", name)
	}
	hw := newHostileWorld(t)
	hw.dir.set(oid, "https://"+name+"/r4")
	before := len(hw.fhir.seen())
	resp, body := hw.do("GET", "/fhir/"+oid+"/Patient/1", nil, nil)
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("status %d, want 403: %s", resp.StatusCode, body)
	}
	oo := decodeOutcome(t, resp, body)
	if oo.Issue[0].Code != "security" || !strings.Contains(oo.Issue[0].Diagnostics, "egress: refusing") {
		t.Errorf("issue = %+v", oo.Issue[0])
	}
	if len(hw.fhir.seen()) != before || hw.auth.Exchanges() != 0 {
		t.Errorf("something was sent")
	}
	t.Logf("%s resolves to %v: %s", name, addrs, oo.Issue[0].Diagnostics)
}
