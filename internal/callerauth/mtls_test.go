package callerauth_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/cqgate/cqgate/internal/callerauth"
)

// mtlsServer serves, over TLS from st, a handler that authenticates with
// m and answers the caller's name or 401 with the error.
func mtlsServer(t *testing.T, st *callerauth.ServerTLS, m callerauth.Authenticator) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := m.Authenticate(r)
		if err != nil {
			w.Header().Set("WWW-Authenticate", callerauth.Challenge(err))
			code := "other"
			switch {
			case errors.Is(err, callerauth.ErrUnauthenticated):
				code = "unauthenticated"
			case errors.Is(err, callerauth.ErrBadCredentials):
				code = "bad-credentials"
			}
			http.Error(w, code+": "+err.Error(), http.StatusUnauthorized)
			return
		}
		fmt.Fprintf(w, "%s|%s|%s", id.Name, id.Method, id.Subject)
	}))
	srv.TLS = st.Config()
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

// tlsClient trusts ca and presents cert (if any).
func tlsClient(ca *testCA, cert *tls.Certificate, h2 bool) *http.Client {
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	cfg := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
	if cert != nil {
		// Present the certificate whatever CAs the server names, as a
		// hostile client would.
		c := *cert
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &c, nil }
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: h2}}
}

type pki struct {
	serverCA, clientCA, otherCA *testCA
	files                       callerauth.TLSFiles
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	p := &pki{serverCA: newCA(t, "server CA"), clientCA: newCA(t, "client CA"), otherCA: newCA(t, "other CA")}
	_, certPEM, keyPEM := p.serverCA.issue(t, leafSpec{cn: "cqgate", ips: []net.IP{net.ParseIP("127.0.0.1")}, server: true})
	dir := t.TempDir()
	p.files = callerauth.TLSFiles{
		CertFile:     writeFile(t, dir, "tls.crt", certPEM),
		KeyFile:      writeFile(t, dir, "tls.key", keyPEM),
		ClientCAFile: writeFile(t, dir, "ca.crt", p.clientCA.pem),
	}
	return p
}

func TestMTLSOverRealTLS(t *testing.T) {
	p := newPKI(t)
	st, err := callerauth.LoadServerTLS(p.files)
	if err != nil {
		t.Fatal(err)
	}
	if !st.RequiresClientCert() {
		t.Fatal("RequiresClientCert = false with a client CA file")
	}
	spiffe := "spiffe://cluster.local/ns/billing/sa/billing-svc"
	full, _, _ := p.clientCA.issue(t, leafSpec{cn: "billing-cn", dns: []string{"billing.svc.cluster.local", "billing"}, uris: []string{spiffe}})
	cnOnly, _, _ := p.clientCA.issue(t, leafSpec{cn: "reports-cn"})
	noNames, _, _ := p.clientCA.issue(t, leafSpec{})
	foreign, _, _ := p.otherCA.issue(t, leafSpec{cn: "intruder", uris: []string{spiffe}})

	tests := []struct {
		name             string
		identityFrom     string
		cert             *tls.Certificate
		h2               bool
		wantHandshakeErr bool
		wantStatus       int
		wantBody         string
	}{
		{name: "san_uri", identityFrom: callerauth.IdentitySANURI, cert: &full, wantStatus: 200, wantBody: spiffe + "|mtls|CN=billing-cn,O=cqgate tests"},
		{name: "default is san_uri", identityFrom: "", cert: &full, wantStatus: 200, wantBody: spiffe + "|mtls|"},
		{name: "san_uri over HTTP/2", identityFrom: callerauth.IdentitySANURI, cert: &full, h2: true, wantStatus: 200, wantBody: spiffe + "|mtls|"},
		{name: "san_dns", identityFrom: callerauth.IdentitySANDNS, cert: &full, wantStatus: 200, wantBody: "billing.svc.cluster.local|mtls|"},
		{name: "subject_cn", identityFrom: callerauth.IdentitySubjectCN, cert: &full, wantStatus: 200, wantBody: "billing-cn|mtls|"},
		{name: "subject_cn of a cert without SANs", identityFrom: callerauth.IdentitySubjectCN, cert: &cnOnly, wantStatus: 200, wantBody: "reports-cn|mtls|"},
		{name: "no URI SAN", identityFrom: callerauth.IdentitySANURI, cert: &cnOnly, wantStatus: 401, wantBody: "bad-credentials: callerauth: invalid credentials: mtls: client certificate has no URI SAN"},
		{name: "no DNS SAN", identityFrom: callerauth.IdentitySANDNS, cert: &cnOnly, wantStatus: 401, wantBody: "bad-credentials"},
		{name: "no CN", identityFrom: callerauth.IdentitySubjectCN, cert: &noNames, wantStatus: 401, wantBody: "bad-credentials"},
		// The handshake succeeds (probes need /healthz), the route refuses.
		{name: "no client certificate", identityFrom: callerauth.IdentitySANURI, cert: nil, wantStatus: 401, wantBody: "unauthenticated"},
		{name: "certificate of another CA", identityFrom: callerauth.IdentitySANURI, cert: &foreign, wantHandshakeErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := mtlsServer(t, st, callerauth.MTLS{IdentityFrom: tt.identityFrom})
			resp, err := tlsClient(p.serverCA, tt.cert, tt.h2).Get(srv.URL + "/fhir/1.2.3.4/metadata")
			if tt.wantHandshakeErr {
				if err == nil {
					resp.Body.Close()
					t.Fatalf("request succeeded with status %d, want a failed handshake", resp.StatusCode)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
			if resp.StatusCode != tt.wantStatus || !strings.HasPrefix(string(body), tt.wantBody) {
				t.Fatalf("got %d %q, want %d %q...", resp.StatusCode, body, tt.wantStatus, tt.wantBody)
			}
			if tt.h2 && resp.ProtoMajor != 2 {
				t.Errorf("protocol %s, want HTTP/2", resp.Proto)
			}
			if resp.StatusCode == 401 {
				if got := resp.Header.Get("WWW-Authenticate"); got != `TLS-Client-Certificate realm="cqgate"` {
					t.Errorf("WWW-Authenticate = %q", got)
				}
			}
		})
	}
}

func TestMTLSWithoutVerifiedChain(t *testing.T) {
	ca := newCA(t, "client CA")
	pair, _, _ := ca.issue(t, leafSpec{cn: "x", uris: []string{"spiffe://x/y"}})
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		state *tls.ConnectionState
	}{
		{name: "plain HTTP", state: nil},
		{name: "TLS without client certificate", state: &tls.ConnectionState{}},
		// A certificate the server did not verify (e.g. RequestClientCert)
		// must not count.
		{name: "presented but not verified", state: &tls.ConnectionState{PeerCertificates: []*x509.Certificate{leaf}}},
		{name: "empty chain", state: &tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/fhir/1.2.3.4/metadata", nil)
			r.TLS = tt.state
			r.Header.Set("X-Client-Cert", "spiffe://x/y") // never trusted
			id, err := callerauth.MTLS{IdentityFrom: callerauth.IdentitySANURI}.Authenticate(r)
			if !errors.Is(err, callerauth.ErrUnauthenticated) || id != nil {
				t.Fatalf("got %v, %v; want ErrUnauthenticated", id, err)
			}
		})
	}
	// A verified chain is trusted.
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.TLS = &tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{leaf, ca.cert}}}
	if id, err := (callerauth.MTLS{}).Authenticate(r); err != nil || id.Name != "spiffe://x/y" {
		t.Fatalf("verified chain: %v, %v", id, err)
	}
}

func TestMTLSValidate(t *testing.T) {
	for _, ok := range []string{"", "san_uri", "san_dns", "subject_cn"} {
		if err := (callerauth.MTLS{IdentityFrom: ok}).Validate(); err != nil {
			t.Errorf("Validate(%q): %v", ok, err)
		}
	}
	m := callerauth.MTLS{IdentityFrom: "email"}
	if err := m.Validate(); err == nil || !strings.Contains(err.Error(), `mtls identity "email"`) {
		t.Errorf("Validate(email) = %v", err)
	}
	_, err := m.Authenticate(httptest.NewRequest(http.MethodGet, "/", nil))
	if err == nil || errors.Is(err, callerauth.ErrUnauthenticated) || errors.Is(err, callerauth.ErrBadCredentials) {
		t.Errorf("Authenticate with a bad IdentityFrom = %v, want a configuration error", err)
	}
}

func TestServerTLSReload(t *testing.T) {
	p := newPKI(t)
	st, err := callerauth.LoadServerTLS(p.files)
	if err != nil {
		t.Fatal(err)
	}
	client, _, _ := p.clientCA.issue(t, leafSpec{uris: []string{"spiffe://a/b"}})
	srv := mtlsServer(t, st, callerauth.MTLS{})

	serverCN := func() string {
		t.Helper()
		hc := tlsClient(p.serverCA, &client, false)
		defer hc.CloseIdleConnections()
		resp, err := hc.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		io.Copy(io.Discard, resp.Body)
		return resp.TLS.PeerCertificates[0].Subject.CommonName
	}
	if got := serverCN(); got != "cqgate" {
		t.Fatalf("server CN %q", got)
	}

	// cert-manager rotates the files; Reload picks them up.
	_, certPEM, keyPEM := p.serverCA.issue(t, leafSpec{cn: "cqgate-rotated", ips: []net.IP{net.ParseIP("127.0.0.1")}, server: true})
	if err := os.WriteFile(p.files.CertFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p.files.KeyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := st.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := serverCN(); got != "cqgate-rotated" {
		t.Fatalf("after Reload: server CN %q", got)
	}

	// A half-written rotation (key of another cert) is refused; the
	// configuration in service stays.
	_, _, otherKey := p.serverCA.issue(t, leafSpec{cn: "x", server: true})
	if err := os.WriteFile(p.files.KeyFile, otherKey, 0o600); err != nil {
		t.Fatal(err)
	}
	err = st.Reload()
	if err == nil {
		t.Fatal("Reload accepted a key that does not match the certificate")
	}
	if strings.Contains(err.Error(), string(otherKey[30:60])) {
		t.Errorf("Reload error shows key material: %v", err)
	}
	if got := serverCN(); got != "cqgate-rotated" {
		t.Fatalf("after a failed Reload: server CN %q", got)
	}
}

func TestLoadServerTLSErrors(t *testing.T) {
	p := newPKI(t)
	dir := t.TempDir()
	notPEM := writeFile(t, dir, "junk.pem", []byte("not PEM"))
	big := writeFile(t, dir, "big.pem", make([]byte, 2<<20))
	tests := []struct {
		name  string
		files callerauth.TLSFiles
		want  string
	}{
		{name: "no cert file", files: callerauth.TLSFiles{KeyFile: p.files.KeyFile}, want: "tls certificate: no file configured"},
		{name: "missing key file", files: callerauth.TLSFiles{CertFile: p.files.CertFile, KeyFile: dir + "/missing.key"}, want: "tls key: open"},
		{name: "cert file is junk", files: callerauth.TLSFiles{CertFile: notPEM, KeyFile: p.files.KeyFile}, want: "tls certificate " + notPEM},
		{name: "client CA is junk", files: callerauth.TLSFiles{CertFile: p.files.CertFile, KeyFile: p.files.KeyFile, ClientCAFile: notPEM}, want: "no PEM certificates"},
		{name: "huge file", files: callerauth.TLSFiles{CertFile: big, KeyFile: p.files.KeyFile}, want: "larger than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := callerauth.LoadServerTLS(tt.files)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}

	// Without a client CA, no client certificate is asked for, and MTLS
	// finds none.
	st, err := callerauth.LoadServerTLS(callerauth.TLSFiles{CertFile: p.files.CertFile, KeyFile: p.files.KeyFile})
	if err != nil {
		t.Fatal(err)
	}
	if st.RequiresClientCert() {
		t.Error("RequiresClientCert = true without a client CA file")
	}
	srv := mtlsServer(t, st, callerauth.MTLS{})
	resp, err := tlsClient(p.serverCA, nil, false).Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 401 || !strings.HasPrefix(string(body), "unauthenticated") {
		t.Fatalf("got %d %q, want 401 unauthenticated", resp.StatusCode, body)
	}
}
