package gateway

import (
	"bufio"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// BenchmarkNewTLSConnection sends every request on a new TLS connection,
// as happens when a partner closes idle connections sooner than cqgate
// reuses them (or more partner hosts are in use than proxy.max_idle_conns
// keeps connections for): the server answers "Connection: close". The
// server is this test binary run again as a separate process
// (TestTLSServerProcess), so that cpu-ns/op is the client's CPU alone:
// the transport NewTransport builds, with its TLS session cache
// (sessions=on) and without it (sessions=off), against a server offering
// at most TLS 1.2 or TLS 1.3, with a realistic chain (RSA 2048: leaf and
// intermediate sent, root trusted). resumed is the share of connections
// that resumed a session.
func BenchmarkNewTLSConnection(b *testing.B) {
	dir := b.TempDir()
	roots := writeTLSChain(b, dir)
	for _, v := range []struct {
		name string
		max  uint16
	}{{"tls1.2", tls.VersionTLS12}, {"tls1.3", tls.VersionTLS13}} {
		url := startTLSServerProcess(b, dir, v.max)
		for _, sessions := range []bool{false, true} {
			b.Run(fmt.Sprintf("%s/sessions=%v", v.name, sessions), func(b *testing.B) {
				tr := NewTransport(TransportOptions{ResponseHeaderTimeout: 10 * time.Second})
				tr.TLSClientConfig.RootCAs = roots
				if !sessions {
					tr.TLSClientConfig.ClientSessionCache = nil
				}
				defer tr.CloseIdleConnections()
				client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
				getTLS(b, client, url) // the session to resume, when there is a cache
				b.ReportAllocs()
				n, resumed, cpu0 := 0, 0, rusageCPU()
				for b.Loop() {
					if getTLS(b, client, url) {
						resumed++
					}
					n++
				}
				b.ReportMetric(float64((rusageCPU()-cpu0).Nanoseconds())/float64(max(n, 1)), "cpu-ns/op")
				b.ReportMetric(float64(resumed)/float64(max(n, 1)), "resumed")
				if sessions && resumed != n || !sessions && resumed != 0 {
					b.Fatalf("%d of %d connections resumed a session", resumed, n)
				}
			})
		}
	}
}

// BenchmarkIdleTLSConnection measures what an idle keep-alive TLS
// connection to a FHIR server holds in cqgate (the transport NewTransport
// builds): it opens conns connections at once to the TLS server process
// of BenchmarkNewTLSConnection (TLS 1.3, answers kept alive), lets them
// go idle, and reports the growth of the Go runtime's heap and stacks
// per connection, after a collection. b.N is not used: the figure is
// per connection, measured once per run (run it with -benchtime 1x).
func BenchmarkIdleTLSConnection(b *testing.B) {
	const conns = 400
	dir := b.TempDir()
	roots := writeTLSChain(b, dir)
	url := startTLSServerProcess(b, dir, tls.VersionTLS13) + "?keep=1"
	stats := new(ConnStats)
	tr := NewTransport(TransportOptions{ResponseHeaderTimeout: 10 * time.Second, MaxIdleConnsPerHost: conns, Conns: stats})
	tr.TLSClientConfig.RootCAs = roots
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	getTLS(b, client, url) // the session, and the transport's own setup
	tr.CloseIdleConnections()
	before := runtimeMemory()
	release := make(chan struct{})
	errs := make(chan error, conns)
	for range conns {
		go func() {
			<-release
			resp, err := client.Get(url)
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				err = resp.Body.Close()
			}
			errs <- err
		}()
	}
	close(release)
	for range conns {
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
	}
	after := runtimeMemory()
	open := stats.Open()
	if open < conns/2 {
		b.Fatalf("only %d of %d connections open", open, conns)
	}
	for b.Loop() {
	}
	b.ReportMetric(float64(after-before)/float64(open), "B/idle-conn")
	b.ReportMetric(float64(open), "idle-conns")
}

// runtimeMemory is the Go heap in use and the goroutine stacks after a
// collection.
func runtimeMemory() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse + m.StackInuse
}

// liveHeap is the bytes of live heap objects after a collection.
func liveHeap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// getTLS GETs url and reports whether its connection resumed a session.
func getTLS(b *testing.B, client *http.Client, url string) bool {
	resp, err := client.Get(url)
	if err != nil {
		b.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.TLS == nil {
		b.Fatalf("status %d, TLS %v", resp.StatusCode, resp.TLS != nil)
	}
	return resp.TLS.DidResume
}

func rusageCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// tlsServerEnv names the directory holding the chain when this test
// binary runs as BenchmarkNewTLSConnection's server.
const tlsServerEnv = "CQGATE_TEST_TLS_SERVER_DIR"

// startTLSServerProcess runs TestTLSServerProcess in a child process
// serving at most TLS version maxVersion, and returns its URL. The child
// ends with the benchmark (its stdin closes) or after a minute at most.
func startTLSServerProcess(b *testing.B, dir string, maxVersion uint16, env ...string) string {
	cmd := exec.Command(os.Args[0], "-test.run=^TestTLSServerProcess$", "-test.bench=^$", "-test.count=1")
	cmd.Env = append(os.Environ(), tlsServerEnv+"="+dir, fmt.Sprintf("CQGATE_TEST_TLS_MAX_VERSION=%d", maxVersion))
	cmd.Env = append(cmd.Env, env...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = stdin.Close()
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		b.Fatalf("the TLS server process said nothing: %v", err)
	}
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "listening ")
	if !ok {
		b.Fatalf("the TLS server process said %q", line)
	}
	return "https://" + addr + "/"
}

// TestTLSServerProcess is BenchmarkNewTLSConnection's server when run
// as its child process; otherwise it is skipped.
func TestTLSServerProcess(t *testing.T) {
	dir := os.Getenv(tlsServerEnv)
	if dir == "" {
		t.Skip("run by BenchmarkNewTLSConnection only")
	}
	var maxVersion uint16
	if _, err := fmt.Sscan(os.Getenv("CQGATE_TEST_TLS_MAX_VERSION"), &maxVersion); err != nil {
		t.Fatal(err)
	}
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "chain.pem"), filepath.Join(dir, "key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	conf := &tls.Config{Certificates: []tls.Certificate{cert}, MaxVersion: maxVersion}
	if os.Getenv(tlsPerHostEnv) != "" {
		conf.GetCertificate = perHostCertificates(t, dir, cert.PrivateKey)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", conf)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Query().Get("keep") == "" {
				w.Header().Set("Connection", "close")
			}
			_, _ = io.WriteString(w, `{"resourceType":"Patient","id":"1"}`)
		}),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          nil,
	}
	go func() { _ = srv.Serve(ln) }()
	fmt.Printf("listening %s\n", ln.Addr())
	// Until the benchmark closes stdin, or a minute at most.
	done := make(chan struct{})
	go func() { _, _ = io.Copy(io.Discard, os.Stdin); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Minute):
	}
	_ = srv.Close()
}

// writeTLSChain writes a root, an intermediate and a leaf for 127.0.0.1
// (RSA 2048 each) to dir: chain.pem (leaf then intermediate) and key.pem
// (the leaf's key). It returns the pool trusting the root.
func writeTLSChain(b *testing.B, dir string) *x509.CertPool {
	now := time.Now()
	issue := func(tmpl *x509.Certificate, parent *x509.Certificate, parentKey *rsa.PrivateKey) (*x509.Certificate, *rsa.PrivateKey) {
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			b.Fatal(err)
		}
		tmpl.NotBefore, tmpl.NotAfter = now.Add(-time.Hour), now.Add(time.Hour)
		if parent == nil {
			parent, parentKey = tmpl, key
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
		if err != nil {
			b.Fatal(err)
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			b.Fatal(err)
		}
		return cert, key
	}
	ca := func(serial int64, name string) *x509.Certificate {
		return &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	}
	root, rootKey := issue(ca(1, "bench root"), nil, nil)
	inter, interKey := issue(ca(2, "bench intermediate"), root, rootKey)
	leaf, leafKey := issue(&x509.Certificate{SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"*" + partnersDomain}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, inter, interKey)
	var chain []byte
	for _, c := range []*x509.Certificate{leaf, inter} {
		chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(leafKey)
	if err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "chain.pem"), chain, 0o600); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "key.pem"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		b.Fatal(err)
	}
	// The intermediate and its key, for a server that issues a leaf per
	// host name (perHostCertificates).
	interKeyDER, err := x509.MarshalPKCS8PrivateKey(interKey)
	if err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "intermediate.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: inter.Raw}), 0o600); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "intermediate-key.pem"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: interKeyDER}), 0o600); err != nil {
		b.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(root)
	return pool
}

// tlsPerHostEnv makes TestTLSServerProcess present a leaf certificate of
// its own to every host name a client asks for, as partners on hosts of
// their own do.
const tlsPerHostEnv = "CQGATE_TEST_TLS_PER_HOST"

// partnersDomain is the domain of the host names BenchmarkTLSSessionCache
// calls; the default leaf covers it with a wildcard.
const partnersDomain = ".partners.test"

// perHostCertificates returns a GetCertificate that issues, once per
// server name under partnersDomain, a leaf for that name alone from the
// intermediate writeTLSChain wrote to dir (the leaves share key, the
// shared leaf's). Other names get the shared leaf.
func perHostCertificates(t *testing.T, dir string, key crypto.PrivateKey) func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	interPair, err := tls.LoadX509KeyPair(filepath.Join(dir, "intermediate.pem"), filepath.Join(dir, "intermediate-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	inter, err := x509.ParseCertificate(interPair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		t.Fatalf("the leaf key is a %T", key)
	}
	var (
		mu     sync.Mutex
		issued       = map[string]*tls.Certificate{}
		serial int64 = 100
	)
	return func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
		name := hello.ServerName
		if !strings.HasSuffix(name, partnersDomain) {
			return nil, nil // the shared leaf
		}
		mu.Lock()
		defer mu.Unlock()
		if c, ok := issued[name]; ok {
			return c, nil
		}
		serial++
		now := time.Now()
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			DNSNames: []string{name}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, inter, signer.Public(), interPair.PrivateKey)
		if err != nil {
			return nil, err
		}
		c := &tls.Certificate{Certificate: [][]byte{der, inter.Raw}, PrivateKey: key}
		issued[name] = c
		return c, nil
	}
}

// BenchmarkTLSSessionCache measures what the TLS session cache of a
// transport from NewTransport holds when it is full: it calls hosts
// distinct host names under partnersDomain (every one on the TLS server
// process of BenchmarkNewTLSConnection, each request on a connection of
// its own that is closed after it), and reports the growth of the Go
// heap per cached session after a collection, with no connection left
// open. certs=per-host gives every host a leaf of its own, as partners on
// hosts of their own have; certs=shared gives them all one wildcard leaf
// (Go keeps one parsed copy of a certificate however many sessions hold
// it). hosts=2048 calls twice as many hosts as the cache keeps: the
// memory is bounded by TLSSessions. b.N is not used: the figure is per
// session, measured once per run (run it with -benchtime 1x).
func BenchmarkTLSSessionCache(b *testing.B) {
	dir := b.TempDir()
	roots := writeTLSChain(b, dir)
	for _, v := range []struct {
		name    string
		max     uint16
		perHost bool
		hosts   int
	}{
		{"tls1.3/certs=per-host/hosts=1024", tls.VersionTLS13, true, TLSSessions},
		{"tls1.3/certs=per-host/hosts=2048", tls.VersionTLS13, true, 2 * TLSSessions},
		{"tls1.3/certs=shared/hosts=1024", tls.VersionTLS13, false, TLSSessions},
		{"tls1.2/certs=per-host/hosts=1024", tls.VersionTLS12, true, TLSSessions},
	} {
		b.Run(v.name, func(b *testing.B) {
			var env []string
			if v.perHost {
				env = append(env, tlsPerHostEnv+"=1")
			}
			base := startTLSServerProcess(b, dir, v.max, env...)
			addr := strings.TrimSuffix(strings.TrimPrefix(base, "https://"), "/")
			_, port, err := net.SplitHostPort(addr)
			if err != nil {
				b.Fatal(err)
			}
			tr := NewTransport(TransportOptions{ResponseHeaderTimeout: 10 * time.Second})
			tr.TLSClientConfig.RootCAs = roots
			dialer := &net.Dialer{Timeout: 10 * time.Second}
			tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
				return dialer.DialContext(ctx, network, addr) // every host name is this server
			}
			defer tr.CloseIdleConnections()
			client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
			hostURL := func(i int) string { return fmt.Sprintf("https://h%d%s:%s/", i, partnersDomain, port) }
			getTLS(b, client, base) // the transport's own setup
			before, beforeLive := runtimeMemory(), liveHeap()
			for i := range v.hosts {
				if getTLS(b, client, hostURL(i)) {
					b.Fatalf("host %d resumed a session on its first call", i)
				}
			}
			tr.CloseIdleConnections()
			after, afterLive := runtimeMemory(), liveHeap()
			sessions := min(v.hosts, TLSSessions)
			// The last host called is cached; with more hosts than the
			// cache keeps, the first is not.
			if !getTLS(b, client, hostURL(v.hosts-1)) {
				b.Fatalf("host %d did not resume its session", v.hosts-1)
			}
			if v.hosts > TLSSessions && getTLS(b, client, hostURL(0)) {
				b.Fatal("host 0 resumed a session the cache should have dropped")
			}
			for b.Loop() {
			}
			b.ReportMetric(float64(afterLive-beforeLive)/float64(sessions), "live-B/session")
			b.ReportMetric(float64(after-before)/(1<<20), "MiB-in-use")
		})
	}
}
