package egress

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestCheckURL(t *testing.T) {
	tests := []struct {
		url          string
		allowPrivate bool
		refused      string // substring of the reason; "" means allowed
	}{
		{"https://fhir.example.org/r4", false, ""},
		{"https://fhir-ehr.cerner.com/r4/ec2458f2-1e24-41c8-b71b-0e701af7583d", false, ""},
		{"https://93.184.215.14/fhir", false, ""},
		{"https://[2606:2800:21f:cb07:6820:80da:af6b:8b2c]/fhir", false, ""},
		{"http://fhir.example.org/r4", false, "not https"},
		{"ftp://fhir.example.org/r4", false, "not an absolute http(s) URL"},
		{"https://localhost/fhir", false, "this machine"},
		{"https://LOCALHOST./fhir", false, "this machine"},
		{"https://api.localhost/fhir", false, "this machine"},
		{"https://127.0.0.1/fhir", false, "loopback"},
		{"https://127.1.2.3:8443/fhir", false, "loopback"},
		{"https://[::1]/fhir", false, "loopback"},
		{"https://[::ffff:127.0.0.1]/fhir", false, "loopback"},
		{"https://169.254.169.254/latest/meta-data", false, "link-local"},
		{"https://[fe80::1]/fhir", false, "link-local"},
		{"https://10.0.0.5/fhir", false, "private"},
		{"https://172.16.9.9/fhir", false, "private"},
		{"https://192.168.1.1/fhir", false, "private"},
		{"https://[fd00::1]/fhir", false, "private"},
		{"https://0.0.0.0/fhir", false, "unspecified"},
		{"https://[::]/fhir", false, "unspecified"},
		{"https://224.0.0.1/fhir", false, "multicast"},
		{"https://100.64.1.1/fhir", false, "shared or special"},
		{"https://[64:ff9b::7f00:1]/fhir", false, "shared or special"},
		{"https://[64:ff9b:1::a9fe:a9fe]/fhir", false, "local-use NAT64"},
		{"https://[64:ff9b:1:2::808:808]/fhir", false, "local-use NAT64"},
		{"https://2130706433/fhir", false, "numeric host"},
		{"https://0x7f.0.0.1/fhir", false, "numeric host"},
		{"https://0177.0.0.1/fhir", false, "numeric host"},
		{"https://metadata.google.internal/computeMetadata/v1", false, "private network"},
		{"https://printer.local/", false, "private network"},
		{"https://redis.default.svc/", false, "private network"},
		{"https://vault.vault.svc.cluster.local:8200/v1/sys", false, "private network"},
		{"https://kubernetes.default.svc.cluster.local./api", false, "private network"},
		{"https://compute.internal/", false, "private network"},
		{"https://nas.home.arpa/", false, "private network"},
		{"https://svc.example.org/fhir", false, ""},
		{"https://redis.default.svc/", true, ""},
		{"https://cafe.example/fhir", false, ""},
		{"https://deadbeef/fhir", false, ""}, // a (bad) name, not a number; DNS decides and Guard checks
		{"http://127.0.0.1:8080/fhir", true, ""},
		{"https://10.0.0.5/fhir", true, ""},
		{"file:///etc/passwd", true, "not an absolute http(s) URL"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			u, err := url.Parse(tt.url)
			if err != nil {
				t.Fatal(err)
			}
			err = CheckURL(u, tt.allowPrivate)
			if tt.refused == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil || !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), tt.refused) {
				t.Fatalf("want a refusal mentioning %q, got %v", tt.refused, err)
			}
		})
	}
}

// A refusal names the URL without its credentials, query (a presigned
// URL's signature) or fragment, whichever check refused it.
func TestCheckURLHidesCredentials(t *testing.T) {
	for _, raw := range []string{
		"https://user:s3cret@127.0.0.1/fhir?sig=s3cret#s3cret",
		"http://user:s3cret@storage.example/obj?X-Amz-Signature=s3cret",
		"ftp://user:s3cret@storage.example/obj?sig=s3cret",
		"/relative?sig=s3cret",
	} {
		u, _ := url.Parse(raw)
		err := CheckURL(u, false)
		if err == nil || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%s: error %v", raw, err)
		}
	}
}

// TestGuard dials a real loopback server through a guarded dialer.
func TestGuard(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	d := &net.Dialer{Timeout: 5 * time.Second, ControlContext: Guard}
	client := &http.Client{Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}}

	req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
	_, err := client.Do(req)
	if !errors.Is(err, ErrRefused) {
		t.Fatalf("dial to loopback: want a refusal, got %v", err)
	}

	req = req.WithContext(AllowPrivate(context.Background()))
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("dial allowed by context: %v", err)
	}
	resp.Body.Close()
}

func TestGuardAddresses(t *testing.T) {
	for addr, ok := range map[string]bool{
		"93.184.215.14:443":  true,
		"[2606:4700::1]:443": true,
		"127.0.0.1:443":      false,
		"169.254.169.254:80": false,
		"[::1]:443":          false,
		"10.1.2.3:443":       false,
		"example.org:443":    false, // Guard only ever sees resolved addresses
		"no-port":            false,
	} {
		err := Guard(context.Background(), "tcp", addr, nil)
		if (err == nil) != ok {
			t.Errorf("Guard(%s) = %v, want allowed=%v", addr, err, ok)
		}
	}
}

// fakeResolver answers from a map.
type fakeResolver map[string][]netip.Addr

func (f fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if a, ok := f[host]; ok {
		return a, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

// TestDialerProxy: behind a proxy, a destination is checked by name and
// by resolved address before the proxy is asked, unless the context
// allows private addresses; the proxy's own address is then dialable.
func TestDialerProxy(t *testing.T) {
	res := fakeResolver{
		"public.example":   {netip.MustParseAddr("93.184.215.14")},
		"sneaky.example":   {netip.MustParseAddr("93.184.215.14"), netip.MustParseAddr("10.0.0.7")},
		"loopback.example": {netip.MustParseAddr("127.0.0.1")},
	}
	d := NewDialer(&net.Dialer{Timeout: time.Second}, res)
	proxyURL, _ := url.Parse("http://10.9.9.9:3128")
	proxy := d.Proxy(func(*http.Request) (*url.URL, error) { return proxyURL, nil })
	for _, tt := range []struct {
		url     string
		allow   bool
		refused string
	}{
		{"https://public.example/fhir", false, ""},
		{"https://unresolvable.example/fhir", false, ""}, // left to the proxy
		{"https://sneaky.example/fhir", false, "10.0.0.7"},
		{"https://loopback.example/fhir", false, "127.0.0.1"},
		{"https://localhost/fhir", false, "this machine"},
		{"https://api.svc/fhir", false, "private network"},
		{"https://10.1.1.1/fhir", false, "private-network"},
		{"https://loopback.example/fhir", true, ""},
	} {
		req := httptest.NewRequest(http.MethodGet, tt.url, nil)
		if tt.allow {
			req = req.WithContext(AllowPrivate(req.Context()))
		}
		pu, err := proxy(req)
		if tt.refused == "" {
			if err != nil || pu != proxyURL {
				t.Errorf("%s: %v, %v; want the proxy", tt.url, pu, err)
			}
			continue
		}
		if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), tt.refused) {
			t.Errorf("%s: err = %v, want a refusal naming %q", tt.url, err, tt.refused)
		}
	}
	if _, ok := d.proxies.Load("10.9.9.9:3128"); !ok {
		t.Errorf("the proxy's address was not remembered")
	}
}

// TestDialerGuardsDirectConnections: with a resolver of its own, the
// Dialer still refuses a name resolving to loopback at connect time.
func TestDialerGuardsDirectConnections(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	d := NewDialer(&net.Dialer{Timeout: time.Second}, fakeResolver{"partner.example": {netip.MustParseAddr("127.0.0.1")}})
	_, err := d.DialContext(context.Background(), "tcp", "partner.example:"+port)
	if !errors.Is(err, ErrRefused) {
		t.Fatalf("dial: %v, want a refusal", err)
	}
	c, err := d.DialContext(AllowPrivate(context.Background()), "tcp", "partner.example:"+port)
	if err != nil {
		t.Fatalf("allowed dial: %v", err)
	}
	c.Close()
}

type poolRecorder struct {
	name string
	got  *string
}

func (p poolRecorder) RoundTrip(*http.Request) (*http.Response, error) {
	*p.got = p.name
	return &http.Response{StatusCode: http.StatusNoContent, Body: http.NoBody}, nil
}

// Pools picks the pool by the request's context alone.
func TestPoolsChooseByContext(t *testing.T) {
	var got string
	p := Pools{Public: poolRecorder{"public", &got}, Private: poolRecorder{"private", &got}}
	for _, tt := range []struct {
		ctx  context.Context
		want string
	}{
		{context.Background(), "public"},
		{AllowPrivate(context.Background()), "private"},
		{context.WithValue(AllowPrivate(context.Background()), struct{}{}, 1), "private"},
	} {
		req, _ := http.NewRequestWithContext(tt.ctx, http.MethodGet, "https://fhir.example/", nil)
		if _, err := p.RoundTrip(req); err != nil || got != tt.want {
			t.Errorf("went through %q (%v), want %q", got, err, tt.want)
		}
	}
}

// For picks the pool by the organization alone.
func TestPoolsFor(t *testing.T) {
	var got string
	p := Pools{Public: poolRecorder{"public", &got}, Private: poolRecorder{"private", &got}}
	for _, tt := range []struct {
		allowPrivate bool
		want         string
	}{{false, "public"}, {true, "private"}} {
		req, _ := http.NewRequest(http.MethodGet, "https://fhir.example/", nil)
		if _, err := p.For(tt.allowPrivate).RoundTrip(req); err != nil || got != tt.want {
			t.Errorf("For(%v) went through %q (%v), want %q", tt.allowPrivate, got, err, tt.want)
		}
	}
}

// A private dialer connects to loopback and lets proxied destinations
// through without a context that allows them; NewDialer's refuses both.
func TestPrivateDialerChecksNothing(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	proxyURL := &url.URL{Scheme: "http", Host: "proxy.example:3128"}
	viaProxy := func(*http.Request) (*url.URL, error) { return proxyURL, nil }
	for _, tt := range []struct {
		name   string
		d      *Dialer
		refuse bool
	}{
		{"guarded", NewDialer(&net.Dialer{}, nil), true},
		{"private", NewPrivateDialer(&net.Dialer{}, nil), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := tt.d.DialContext(context.Background(), "tcp", ln.Addr().String())
			if c != nil {
				c.Close()
			}
			if refused := errors.Is(err, ErrRefused); refused != tt.refuse || !tt.refuse && err != nil {
				t.Errorf("dialling loopback: %v, want refused: %v", err, tt.refuse)
			}
			req, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1:8080/fhir", nil)
			_, err = tt.d.Proxy(viaProxy)(req)
			if refused := errors.Is(err, ErrRefused); refused != tt.refuse || !tt.refuse && err != nil {
				t.Errorf("loopback through a proxy: %v, want refused: %v", err, tt.refuse)
			}
		})
	}
}
