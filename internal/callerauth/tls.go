package callerauth

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"
)

// maxPEMFile bounds the certificate, key and CA files LoadServerTLS reads.
const maxPEMFile = 1 << 20

// TLSFiles names the PEM files of cqgate's inbound TLS listener.
type TLSFiles struct {
	// CertFile holds the server certificate chain, leaf first.
	CertFile string
	// KeyFile holds the server's private key.
	KeyFile string
	// ClientCAFile, when set, holds the CAs client certificates must chain
	// to: a certificate a client presents must verify
	// (tls.VerifyClientCertIfGiven). A client may present none, so that
	// kubelet probes and Prometheus reach /healthz, /readyz and /metrics;
	// the mtls Authenticator then refuses it on every other route. Set it
	// for the mtls method.
	ClientCAFile string
}

// ServerTLS is the TLS configuration of the inbound listener, reloadable
// from its files (e.g. on SIGHUP after cert-manager rotated them) without
// restarting: every handshake uses the configuration last loaded.
type ServerTLS struct {
	files   TLSFiles
	current atomic.Pointer[tls.Config]
}

// LoadServerTLS reads files and returns the server TLS configuration.
// Its error reports every file's problem at once (errors.Join), so that a
// configuration check (gateway.Check) can list them all.
func LoadServerTLS(files TLSFiles) (*ServerTLS, error) {
	s := &ServerTLS{files: files}
	if err := s.Reload(); err != nil {
		return nil, err
	}
	return s, nil
}

// Config returns the tls.Config to serve with (http.Server.TLSConfig, or
// tls.NewListener). Each handshake gets the configuration last loaded.
func (s *ServerTLS) Config() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return s.current.Load(), nil
		},
	}
}

// Reload reads the files again and, if they load, serves new handshakes
// with them. On failure the configuration in service stays, and the
// error reports every file's problem at once (errors.Join).
func (s *ServerTLS) Reload() error {
	cfg, err := loadTLS(s.files)
	if err != nil {
		return err
	}
	s.current.Store(cfg)
	return nil
}

// loadTLS reads files into a server tls.Config, reporting the problem of
// each file rather than stopping at the first.
func loadTLS(files TLSFiles) (*tls.Config, error) {
	var errs []error
	certPEM, err := readBounded(files.CertFile)
	if err != nil {
		errs = append(errs, fmt.Errorf("callerauth: tls certificate: %w", err))
	}
	keyPEM, err := readBounded(files.KeyFile)
	if err != nil {
		errs = append(errs, fmt.Errorf("callerauth: tls key: %w", err))
	}
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"h2", "http/1.1"},
		ClientAuth: tls.NoClientCert,
	}
	if len(errs) == 0 {
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			// tls.X509KeyPair's errors describe PEM block types and key
			// mismatches, never key bytes.
			errs = append(errs, fmt.Errorf("callerauth: tls certificate %s and key %s: %w", files.CertFile, files.KeyFile, err))
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	if files.ClientCAFile != "" {
		pool, err := loadClientCAs(files.ClientCAFile)
		if err != nil {
			errs = append(errs, err)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return cfg, nil
}

// loadClientCAs reads the CAs client certificates must chain to.
func loadClientCAs(path string) (*x509.CertPool, error) {
	caPEM, err := readBounded(path)
	if err != nil {
		return nil, fmt.Errorf("callerauth: tls client CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("callerauth: tls client CA %s: no PEM certificates", path)
	}
	return pool, nil
}

// RequiresClientCert reports whether a client certificate presented in a
// handshake must verify against the client CAs.
func (s *ServerTLS) RequiresClientCert() bool {
	return s.current.Load().ClientAuth == tls.VerifyClientCertIfGiven
}

func readBounded(path string) ([]byte, error) {
	if path == "" {
		return nil, errors.New("no file configured")
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxPEMFile+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if len(b) > maxPEMFile {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, maxPEMFile)
	}
	return b, nil
}
