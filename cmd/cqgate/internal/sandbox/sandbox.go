package sandbox

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/cqgate/cqgate/keys"
)

const (
	// OID is the home community OID of the sandbox organization. The arc
	// 2.999 is reserved for examples (ITU-T X.660), so it can never clash
	// with a real Carequality participant.
	OID = "2.999.1.1"
	// TenantID is the sandbox FHIR tenant, shaped like Cerner's tenant
	// GUIDs (it is Cerner's public sandbox tenant id).
	TenantID = "ec2458f2-1e24-41c8-b71b-0e701af7583d"
)

// Defaults for Options.
const (
	defaultAddr          = "127.0.0.1:0"
	defaultClientID      = "cqgate.dev.localhost"
	defaultAPIKey        = "sandbox-directory-key"
	defaultTokenLifetime = 570 * time.Second // Cerner's expires_in
)

// Server timeouts. The sandbox only serves loopback clients, but a stuck
// client must still not pin a goroutine forever.
const (
	readHeaderTimeout = 10 * time.Second
	idleTimeout       = time.Minute
	shutdownTimeout   = 5 * time.Second
)

// Options configures Start. The zero value is usable.
type Options struct {
	// Addr is the listen address, "127.0.0.1:0" (any free port) if empty.
	// Its host must be a loopback IP or "localhost".
	Addr string
	// ClientID is the client_id cqgate uses: the iss and sub its
	// assertions must carry, and the CN and DNS SAN of Material's
	// certificate. Default "cqgate.dev.localhost".
	ClientID string
	// APIKey is the directory API key the sandbox expects, default
	// "sandbox-directory-key".
	APIKey string
	// TokenLifetime is the lifetime (expires_in) of issued access
	// tokens, default 570s like Cerner's. It must be at least a second.
	TokenLifetime time.Duration
	// ExportPolls is how many status polls of a bulk export answer 202
	// (in progress) before the manifest; default 1, negative for none.
	ExportPolls int
	// Logger receives the sandbox's logs; nil discards them.
	Logger logrus.FieldLogger
}

// Sandbox is a running sandbox. Its exported fields are set by Start and
// must not be changed; its methods are safe for concurrent use.
type Sandbox struct {
	// URL is the root of the server, http://127.0.0.1:PORT.
	URL string
	// DirectoryURL is the base of the R4 Carequality directory,
	// URL + "/directory/fhir".
	DirectoryURL string
	// FHIRBase is the FHIR R4 base of the tenant, URL + "/fhir/r4/" +
	// TenantID. The directory lists it as the organization's FHIR
	// endpoint.
	FHIRBase string
	// TokenURL is the carequality-token URL, FHIRBase +
	// "/Authorization/token": the one that accepts client assertions.
	TokenURL string
	// RegisterURL is the UDAP dynamic client registration endpoint,
	// FHIRBase + "/Authorization/register", advertised with the
	// carequality-token URL in Cerner's carequality-oauth-uris
	// extension. It verifies the software statement and hands out
	// client ids (the token endpoint keeps trusting ClientID).
	RegisterURL string
	// UDAPIssuer is the URI SAN of Material's certificate
	// ("https://" + ClientID): the iss of software statements.
	UDAPIssuer string
	// PlainTokenURL is the SMART "token" URL, URL + "/tenants/" +
	// TenantID + "/protocols/oauth2/profiles/smart-v1/token". It refuses
	// every Carequality client assertion.
	PlainTokenURL string

	// StorageURL is the root of the second listener, the storage origin
	// bulk downloads of Observation files are redirected to
	// (http://127.0.0.1:PORT2/bulk). It refuses requests that carry an
	// Authorization header.
	StorageURL string

	// OID is the sandbox organization's OID (the constant OID).
	OID string
	// ClientID and APIKey are the effective Options values.
	ClientID string
	APIKey   string

	// Material is the in-memory RSA-2048 key and self-signed certificate
	// (CN and DNS SAN = ClientID) the client signs its assertions with.
	// The token endpoint trusts exactly Material.Chain[0].
	Material *keys.Material

	// PatientIDs lists the ids of the sandbox Patients.
	PatientIDs []string

	authorizeURL  string
	tokenLifetime time.Duration
	trusted       *x509.Certificate
	data          *dataset
	state         *state
	bulk          *exports
	storage       *storage
	registry      *registry
	log           logrus.FieldLogger

	server    *http.Server
	listener  net.Listener
	served    chan struct{} // closed when Serve returns
	closeOnce sync.Once
	closeErr  error
}

// Start generates the sandbox's signing material, listens on opts.Addr and
// serves in the background until Close. ctx bounds the start-up only;
// request contexts inherit its values but not its cancellation. Start
// refuses an address that is not on a loopback interface.
func Start(ctx context.Context, opts Options) (*Sandbox, error) {
	opts, err := withDefaults(opts)
	if err != nil {
		return nil, err
	}
	if err := checkLoopback(opts.Addr); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("sandbox: start: %w", err)
	}

	material, err := newMaterial(opts.ClientID, udapIssuer(opts.ClientID))
	if err != nil {
		return nil, err
	}
	data, err := loadDataset()
	if err != nil {
		return nil, err
	}

	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("sandbox: listen on %s: %w", opts.Addr, err)
	}
	// "localhost" is resolved by the listener; make sure it resolved to
	// loopback.
	if tcp, ok := ln.Addr().(*net.TCPAddr); !ok || !tcp.IP.IsLoopback() {
		_ = ln.Close()
		return nil, fmt.Errorf("sandbox: %s resolved to %s, which is not a loopback address", opts.Addr, ln.Addr())
	}

	root := "http://" + ln.Addr().String()
	s := &Sandbox{
		URL:           root,
		DirectoryURL:  root + "/directory/fhir",
		FHIRBase:      root + fhirBasePath,
		TokenURL:      root + fhirBasePath + "/Authorization/token",
		RegisterURL:   root + registerPath,
		UDAPIssuer:    udapIssuer(opts.ClientID),
		PlainTokenURL: root + plainTokenPath,
		OID:           OID,
		ClientID:      opts.ClientID,
		APIKey:        opts.APIKey,
		Material:      material,
		PatientIDs:    data.patientIDs(),

		authorizeURL:  root + authorizePath,
		tokenLifetime: opts.TokenLifetime,
		trusted:       material.Chain[0],
		data:          data,
		state:         newState(),
		bulk:          newExports(opts.ExportPolls),
		registry:      &registry{},
		log:           opts.Logger,
		listener:      ln,
		served:        make(chan struct{}),
	}
	s.server = &http.Server{
		Handler:           s.handler(),
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       idleTimeout,
		ErrorLog:          log.New(logWriter{s.log}, "", 0),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	if err := s.startStorage(ctx); err != nil {
		_ = ln.Close()
		return nil, err
	}
	fresh := newFreshConns()
	s.server.ConnState = fresh.track
	s.server.RegisterOnShutdown(fresh.closeAll) // runs once the listener is closed
	go s.serve()

	s.log.WithFields(logrus.Fields{
		"url":        s.URL,
		"oid":        s.OID,
		"client_id":  s.ClientID,
		"kid":        material.KeyID,
		"token_url":  s.TokenURL,
		"directory":  s.DirectoryURL,
		"fhir_base":  s.FHIRBase,
		"patient_id": s.PatientIDs,
	}).Info("sandbox started")
	return s, nil
}

func (s *Sandbox) serve() {
	defer close(s.served)
	if err := s.server.Serve(s.listener); err != nil && !errors.Is(err, http.ErrServerClosed) {
		s.log.WithError(err).Error("sandbox server stopped")
	}
}

// Close shuts the server down gracefully, waiting up to a few seconds for
// requests in flight, then closes what is left. It is safe to call more
// than once; later calls return the first call's result.
func (s *Sandbox) Close() error {
	s.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		err := s.server.Shutdown(ctx)
		if err != nil {
			err = errors.Join(err, s.server.Close())
		}
		if err = errors.Join(err, s.closeStorage(ctx)); err != nil {
			s.closeErr = fmt.Errorf("sandbox: close: %w", err)
		}
		<-s.served
		s.log.Info("sandbox stopped")
	})
	return s.closeErr
}

// Exchanges is the number of requests made to the carequality-token URL
// (TokenURL), successful or not.
func (s *Sandbox) Exchanges() int64 { return s.state.exchanges.Load() }

// PlainTokenCalls is the number of requests made to the SMART token URL
// (PlainTokenURL), all of which were refused.
func (s *Sandbox) PlainTokenCalls() int64 { return s.state.plainCalls.Load() }

func withDefaults(opts Options) (Options, error) {
	if opts.Addr == "" {
		opts.Addr = defaultAddr
	}
	if opts.ClientID == "" {
		opts.ClientID = defaultClientID
	}
	if opts.APIKey == "" {
		opts.APIKey = defaultAPIKey
	}
	switch {
	case opts.TokenLifetime == 0:
		opts.TokenLifetime = defaultTokenLifetime
	case opts.TokenLifetime < time.Second:
		return opts, fmt.Errorf("sandbox: TokenLifetime %s is shorter than a second", opts.TokenLifetime)
	}
	switch {
	case opts.ExportPolls == 0:
		opts.ExportPolls = defaultExportPolls
	case opts.ExportPolls < 0:
		opts.ExportPolls = 0
	}
	if opts.Logger == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		opts.Logger = l
	}
	return opts, nil
}

// checkLoopback refuses a listen address whose host is not a loopback IP
// or "localhost"; an empty host would listen on every interface.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("sandbox: listen address %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("sandbox: refusing to listen on %q: the sandbox only listens on a loopback address (127.0.0.1, ::1 or localhost)", addr)
}

// newMaterial generates the key and self-signed certificate the client
// signs with.
func newMaterial(clientID, issuer string) (*keys.Material, error) {
	certPEM, keyPEM, err := keys.GenerateSelfSigned(keys.SelfSignedOptions{
		CommonName: clientID,
		DNSNames:   []string{clientID},
		URIs:       []string{issuer},
		KeyType:    keys.KeyTypeRSA,
	})
	if err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	m, err := keys.ParsePEM(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	m.Version = "sandbox:self-signed"
	m.LoadedAt = time.Now()
	return m, nil
}

// udapIssuer is the URI SAN the sandbox certificate carries for UDAP
// software statements.
func udapIssuer(clientID string) string { return "https://" + clientID }

// logWriter sends net/http's own error log lines to the injected logger.
type logWriter struct{ log logrus.FieldLogger }

func (w logWriter) Write(p []byte) (int, error) {
	w.log.Warn(string(trimNewline(p)))
	return len(p), nil
}

func trimNewline(p []byte) []byte {
	if n := len(p); n > 0 && p[n-1] == '\n' {
		return p[:n-1]
	}
	return p
}
