package vault

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/api/auth/approle"
	"github.com/hashicorp/vault/api/auth/kubernetes"
	"github.com/sirupsen/logrus"

	"github.com/cqgate/cqgate/internal/failure"
	"github.com/cqgate/cqgate/internal/retry"
)

// DefaultMaxResponseBody bounds every response body read from Vault.
const DefaultMaxResponseBody = 4 << 20

// Option adjusts a Client built by New.
type Option func(*options)

type options struct {
	log            logrus.FieldLogger
	clock          func() time.Time
	maxRetries     *int
	backoffInitial time.Duration
	backoffMax     time.Duration
	maxBody        int64
	onError        func(Op)
	wrap           func(http.RoundTripper) http.RoundTripper
}

// WithLogger sends the client's log entries (logins, renewals, failures;
// never credentials) to log. Nothing is logged without it.
func WithLogger(log logrus.FieldLogger) Option { return func(o *options) { o.log = log } }

// WithClock sets the clock Status and Ready tell expiry by; time.Now by
// default. Renewal timing (api.LifetimeWatcher) always follows real time.
func WithClock(now func() time.Time) Option { return func(o *options) { o.clock = now } }

// WithMaxRetries sets how often the underlying api.Client retries a
// request that failed with a 5xx or 429 answer or a connection error (2
// by default, or VAULT_MAX_RETRIES); 0 turns retries off.
func WithMaxRetries(n int) Option { return func(o *options) { o.maxRetries = &n } }

// WithLoginBackoff sets the capped exponential backoff (with jitter)
// between failed login attempts: initial is the first wait (1s by
// default), max the cap (1m by default).
func WithLoginBackoff(initial, max time.Duration) Option {
	return func(o *options) { o.backoffInitial, o.backoffMax = initial, max }
}

// WithMaxResponseBody bounds the size of every response body read from
// Vault; DefaultMaxResponseBody by default.
func WithMaxResponseBody(n int64) Option { return func(o *options) { o.maxBody = n } }

// WithErrorObserver has onError called once for every Vault operation
// that fails, with what the client was doing (for a metric); nil by
// default. It must not block.
func WithErrorObserver(onError func(Op)) Option { return func(o *options) { o.onError = onError } }

// WithTransportWrapper has every request to Vault sent through
// wrap(transport), e.g. to carry trace context; the transport wrap gets
// is the configured one (TLS, timeouts) that bounds response bodies.
func WithTransportWrapper(wrap func(http.RoundTripper) http.RoundTripper) Option {
	return func(o *options) { o.wrap = wrap }
}

// Op names what the client was doing when Vault failed.
type Op string

// The operations a Client reports to WithErrorObserver.
const (
	OpLogin       Op = "login"        // logging in (token lookup, AppRole, Kubernetes)
	OpRenew       Op = "renew"        // renewing the token
	OpKVRead      Op = "kv_read"      // reading a KV v2 secret
	OpKVMetadata  Op = "kv_metadata"  // reading a KV v2 secret's metadata
	OpKVWrite     Op = "kv_write"     // writing a KV v2 secret
	OpTransitKey  Op = "transit_key"  // reading a transit key
	OpTransitSign Op = "transit_sign" // signing with a transit key
)

// observe reports op to the error observer when *err is set; call it
// deferred with the method's named error result.
func (c *Client) observe(op Op, err *error) {
	if *err != nil {
		c.failed(op)
	}
}

// failed reports a failed op to the error observer.
func (c *Client) failed(op Op) {
	if c != nil && c.o.onError != nil {
		c.o.onError(op)
	}
}

// Client is a logged-in Vault client. Create it with New, keep it logged in
// with Start. It is safe for concurrent use.
type Client struct {
	api    *api.Client
	cfg    Config
	method string
	mount  string
	o      options

	started atomic.Bool
	done    chan struct{}

	mu       sync.Mutex
	hasToken bool // a token is set (New for the token method, else a login)
	rejected bool // Vault refused the current token (403 on lookup-self)
	status   Status
}

// Status describes the client's login, for readiness checks and metrics.
type Status struct {
	// Method is the auth method: "token", "approle" or "kubernetes".
	Method string
	// LoggedIn is true when the client holds a token that, as far as it
	// knows, has not expired.
	LoggedIn bool
	// Renewable tells whether the current token can be renewed.
	Renewable bool
	// TokenExpiry is when the current token's lease ends; zero when the
	// token never expires or no login has succeeded yet.
	TokenExpiry time.Time
	// LastLogin and LastRenewal are when the last successful login (for
	// the token method: lookup) and renewal happened.
	LastLogin, LastRenewal time.Time
	// Logins and Renewals count successful logins and renewals.
	Logins, Renewals int
	// LastError is the last login or renewal failure, empty if none;
	// LastErrorAt is when it happened. A later success does not clear
	// them: compare with LastLogin.
	LastError   string
	LastErrorAt time.Time
}

// New validates cfg, reporting every problem at once as a *failure.ConfigError, and
// returns a client for it. It does not contact Vault; with the token
// method the client can be used at once, with the others after Start.
func New(cfg Config, opts ...Option) (*Client, error) {
	o := options{backoffInitial: time.Second, backoffMax: time.Minute, maxBody: DefaultMaxResponseBody}
	for _, opt := range opts {
		opt(&o)
	}
	if o.log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		o.log = l
	}
	if o.clock == nil {
		o.clock = time.Now
	}
	if o.backoffInitial <= 0 {
		o.backoffInitial = time.Second
	}
	if o.backoffMax < o.backoffInitial {
		o.backoffMax = max(o.backoffInitial, time.Minute)
	}
	if o.maxBody <= 0 {
		o.maxBody = DefaultMaxResponseBody
	}

	apiCfg := api.DefaultConfig()
	if apiCfg.Error != nil {
		return nil, fmt.Errorf("vault: configuring the client from the environment: %w", apiCfg.Error)
	}
	problems := validate(cfg)
	if cfg.Address != "" {
		apiCfg.Address = cfg.Address
		apiCfg.AgentAddress = ""
	}
	switch {
	case cfg.Timeout > 0:
		apiCfg.Timeout = cfg.Timeout
	case os.Getenv(api.EnvVaultClientTimeout) == "":
		apiCfg.Timeout = DefaultTimeout
	}
	if o.maxRetries != nil {
		apiCfg.MaxRetries = *o.maxRetries
	}
	if cfg.CACert != "" {
		if err := apiCfg.ConfigureTLS(&api.TLSConfig{CACert: cfg.CACert}); err != nil {
			problems = append(problems, fmt.Errorf("ca_cert: loading %s: %w", cfg.CACert, err))
		}
	}
	if len(problems) > 0 {
		return nil, &failure.ConfigError{Component: "vault", Problems: problems}
	}
	apiCfg.HttpClient.Transport = &limitedTransport{base: apiCfg.HttpClient.Transport, max: o.maxBody}
	if o.wrap != nil {
		apiCfg.HttpClient.Transport = o.wrap(apiCfg.HttpClient.Transport)
	}

	client, err := api.NewClient(apiCfg)
	if err != nil {
		return nil, fmt.Errorf("vault: creating the client: %w", err)
	}
	if cfg.Namespace != "" {
		client.SetNamespace(cfg.Namespace)
	}
	c := &Client{
		api:    client,
		cfg:    cfg,
		method: cfg.Auth.method(),
		mount:  cfg.Auth.mount(),
		o:      o,
		done:   make(chan struct{}),
	}
	c.status.Method = c.method
	if c.method == MethodToken {
		token, err := c.staticToken()
		if err != nil {
			return nil, fmt.Errorf("vault: %w", err)
		}
		client.SetToken(token)
		c.hasToken = true
	} else {
		client.ClearToken() // never VAULT_TOKEN by accident
	}
	return c, nil
}

// API returns the underlying client for packages that need raw access
// (e.g. the transit engine). It carries the current token. Its
// HttpClient.Transport is not an *http.Transport: it bounds response
// bodies.
func (c *Client) API() *api.Client { return c.api }

// String describes the client without credentials.
func (c *Client) String() string {
	return fmt.Sprintf("vault.Client{Address:%q Method:%s Mount:%s}", c.api.Address(), c.method, c.mount)
}

// GoString is String.
func (c *Client) GoString() string { return c.String() }

// Status returns the login state; the zero Status for a nil *Client.
func (c *Client) Status() Status {
	if c == nil {
		return Status{}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.status
	s.LoggedIn = c.hasToken && !c.rejected && (s.TokenExpiry.IsZero() || c.o.clock().Before(s.TokenExpiry))
	return s
}

// Ready returns nil when the client holds a token that has not expired,
// otherwise an error saying why, for a readiness check.
func (c *Client) Ready() error {
	if c == nil {
		return fmt.Errorf("vault: %w", errNoClient)
	}
	s := c.Status()
	if s.LoggedIn {
		return nil
	}
	c.mu.Lock()
	has, rejected := c.hasToken, c.rejected
	c.mu.Unlock()
	why := "no login has succeeded yet"
	switch {
	case rejected:
		why = "Vault refused the token"
	case has:
		why = "the token expired at " + s.TokenExpiry.UTC().Format(time.RFC3339)
	}
	if s.LastError != "" {
		return fmt.Errorf("vault: %w (%s): %s; last error: %s", ErrNotLoggedIn, c.method, why, s.LastError)
	}
	return fmt.Errorf("vault: %w (%s): %s", ErrNotLoggedIn, c.method, why)
}

// Done returns a channel closed when the goroutine Start began has ended
// (after its ctx ended). It is never closed if Start was not called.
func (c *Client) Done() <-chan struct{} { return c.done }

// Start logs in and starts a goroutine that keeps the client logged in
// until ctx ends: it renews the token with api.LifetimeWatcher, logs in
// again when renewal ends, and retries failed logins with capped
// exponential backoff. Start waits for the first login attempt and returns
// its error; the goroutine keeps retrying either way, so cancel ctx to give
// up. Start may be called once.
func (c *Client) Start(ctx context.Context) error {
	if !c.started.CompareAndSwap(false, true) {
		return errors.New("vault: Start called twice")
	}
	first := make(chan error, 1)
	go c.run(ctx, first)
	select {
	case err := <-first:
		return err
	case <-ctx.Done():
		return fmt.Errorf("vault: logging in (%s): %w", c.method, ctx.Err())
	}
}

func (c *Client) run(ctx context.Context, first chan<- error) {
	defer close(c.done)
	bo := retry.Policy{Initial: c.o.backoffInitial, Max: c.o.backoffMax, Multiplier: 1.5, Jitter: retry.Spread}.BackOff()
	report := func(err error) {
		if first != nil {
			first <- err
			first = nil
		}
	}
	for ctx.Err() == nil {
		secret, err := c.login(ctx)
		if err != nil {
			if ctx.Err() != nil {
				report(fmt.Errorf("vault: logging in (%s): %w", c.method, ctx.Err()))
				return
			}
			c.recordError(err)
			c.observe(OpLogin, &err)
			report(err)
			wait := bo.NextBackOff()
			c.o.log.WithFields(logrus.Fields{"method": c.method, "error": err.Error(), "retry_in": wait.String()}).
				Warn("vault: login failed")
			if !sleep(ctx, wait) {
				return
			}
			continue
		}
		report(nil)
		began := time.Now()
		if !c.keepAlive(ctx, secret) {
			return
		}
		// A session this short means the token is about to expire and
		// cannot be extended (e.g. a static token at its max TTL): back
		// off instead of looking it up in a tight loop.
		if time.Since(began) < 2*c.o.backoffInitial {
			if !sleep(ctx, bo.NextBackOff()) {
				return
			}
		} else {
			bo.Reset()
		}
	}
	report(fmt.Errorf("vault: logging in (%s): %w", c.method, ctx.Err()))
}

// keepAlive watches the token's lease until renewal ends (true: log in
// again) or ctx ends (false).
func (c *Client) keepAlive(ctx context.Context, secret *api.Secret) bool {
	if secret.Auth.LeaseDuration <= 0 {
		<-ctx.Done() // the token never expires
		return false
	}
	w, err := c.api.NewLifetimeWatcher(&api.LifetimeWatcherInput{Secret: secret})
	if err != nil {
		err = fmt.Errorf("vault: watching the token: %w", err)
		c.recordError(err)
		c.observe(OpRenew, &err)
		return true
	}
	go w.Start()
	for {
		select {
		case <-ctx.Done():
			w.Stop()
			<-w.DoneCh()
			return false
		case r := <-w.RenewCh():
			c.recordRenewal(r)
		case err := <-w.DoneCh():
			if err != nil {
				err = fmt.Errorf("vault: renewing the token: %w", err)
				c.recordError(err)
				c.observe(OpRenew, &err)
				c.o.log.WithFields(logrus.Fields{"method": c.method, "error": err.Error()}).
					Warn("vault: token renewal failed; logging in again")
			} else {
				c.o.log.WithField("method", c.method).Info("vault: token lease ends; logging in again")
			}
			return true
		}
	}
}

// login logs in once with the configured method and returns the login
// secret (for the token method: one synthesized from lookup-self).
func (c *Client) login(ctx context.Context) (*api.Secret, error) {
	var (
		secret *api.Secret
		err    error
	)
	switch c.method {
	case MethodToken:
		secret, err = c.lookupToken(ctx)
	case MethodAppRole:
		secret, err = c.loginAppRole(ctx)
	case MethodKubernetes:
		secret, err = c.loginKubernetes(ctx)
	default:
		err = fmt.Errorf("vault: unknown auth method %q", c.method)
	}
	if err != nil {
		return nil, err
	}
	if secret == nil || secret.Auth == nil || secret.Auth.ClientToken == "" {
		return nil, fmt.Errorf("vault: logging in (%s) at auth/%s: the answer holds no token", c.method, c.mount)
	}
	c.api.SetToken(secret.Auth.ClientToken)
	now := c.o.clock()
	c.mu.Lock()
	c.hasToken, c.rejected = true, false
	c.status.Logins++
	c.status.LastLogin = now
	c.status.Renewable = secret.Auth.Renewable
	c.status.TokenExpiry = time.Time{}
	if secret.Auth.LeaseDuration > 0 {
		c.status.TokenExpiry = now.Add(time.Duration(secret.Auth.LeaseDuration) * time.Second)
	}
	c.mu.Unlock()
	c.o.log.WithFields(logrus.Fields{
		"method":    c.method,
		"mount":     c.mount,
		"renewable": secret.Auth.Renewable,
		"ttl":       (time.Duration(secret.Auth.LeaseDuration) * time.Second).String(),
	}).Info("vault: logged in")
	return secret, nil
}

// staticToken is the token method's token: Token, else TokenFile (read now),
// else VAULT_TOKEN.
func (c *Client) staticToken() (string, error) {
	a := c.cfg.Auth
	switch {
	case a.Token != "":
		return a.Token, nil
	case a.TokenFile != "":
		t, err := readCredentialFile(a.TokenFile)
		if err != nil {
			return "", fmt.Errorf("reading the token file: %w", err)
		}
		return t, nil
	}
	if t := os.Getenv(api.EnvVaultToken); t != "" {
		return t, nil
	}
	return "", errors.New("no token (set Token, TokenFile or VAULT_TOKEN)")
}

func (c *Client) lookupToken(ctx context.Context) (*api.Secret, error) {
	token, err := c.staticToken()
	if err != nil {
		return nil, fmt.Errorf("vault: %w", err)
	}
	lc, err := c.loginClient()
	if err != nil {
		return nil, err
	}
	lc.SetToken(token)
	s, err := lc.Auth().Token().LookupSelfWithContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("vault: looking up the token at auth/token/lookup-self: %w", err)
	}
	if s == nil || s.Data == nil {
		return nil, errors.New("vault: looking up the token at auth/token/lookup-self: empty answer")
	}
	renewable, err := s.TokenIsRenewable()
	if err != nil {
		return nil, fmt.Errorf("vault: looking up the token at auth/token/lookup-self: renewable: %w", err)
	}
	ttl, err := s.TokenTTL()
	if err != nil {
		return nil, fmt.Errorf("vault: looking up the token at auth/token/lookup-self: ttl: %w", err)
	}
	lease := int(ttl / time.Second)
	if expires, _ := s.Data["expire_time"].(string); lease <= 0 && expires != "" {
		lease = 1 // expiring within the second, not "never expires"
	}
	return &api.Secret{Auth: &api.SecretAuth{
		ClientToken:   token,
		Renewable:     renewable,
		LeaseDuration: lease,
	}}, nil
}

func (c *Client) loginAppRole(ctx context.Context) (*api.Secret, error) {
	a := c.cfg.Auth
	secretID := a.SecretID
	if secretID == "" {
		var err error
		if secretID, err = readCredentialFile(a.SecretIDFile); err != nil {
			return nil, fmt.Errorf("vault: logging in with approle: reading the secret ID file: %w", err)
		}
	}
	method, err := approle.NewAppRoleAuth(a.RoleID, &approle.SecretID{FromString: secretID}, approle.WithMountPath(c.mount))
	if err != nil {
		return nil, fmt.Errorf("vault: logging in with approle: %w", err)
	}
	return c.loginWith(ctx, method)
}

func (c *Client) loginKubernetes(ctx context.Context) (*api.Secret, error) {
	a := c.cfg.Auth
	jwt, err := readCredentialFile(a.serviceAccountTokenFile())
	if err != nil {
		return nil, fmt.Errorf("vault: logging in with kubernetes: reading the service account token: %w", err)
	}
	method, err := kubernetes.NewKubernetesAuth(a.Role, kubernetes.WithServiceAccountToken(jwt), kubernetes.WithMountPath(c.mount))
	if err != nil {
		return nil, fmt.Errorf("vault: logging in with kubernetes: %w", err)
	}
	return c.loginWith(ctx, method)
}

func (c *Client) loginWith(ctx context.Context, method api.AuthMethod) (*api.Secret, error) {
	lc, err := c.loginClient()
	if err != nil {
		return nil, err
	}
	s, err := lc.Auth().Login(ctx, method)
	if err != nil {
		return nil, fmt.Errorf("vault: logging in (%s) at auth/%s/login: %w", c.method, c.mount, err)
	}
	return s, nil
}

// loginClient is a copy of the client (same address, namespace, TLS and
// transport) without the current token, so that an expired token never
// gets in the way of a login.
func (c *Client) loginClient() (*api.Client, error) {
	lc, err := c.api.CloneWithHeaders()
	if err != nil {
		return nil, fmt.Errorf("vault: cloning the client for login: %w", err)
	}
	lc.ClearToken()
	return lc, nil
}

func (c *Client) recordError(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var re *api.ResponseError
	if c.method == MethodToken && errors.As(err, &re) && re.StatusCode == http.StatusForbidden {
		c.rejected = true
	}
	c.status.LastError = err.Error()
	c.status.LastErrorAt = c.o.clock()
}

func (c *Client) recordRenewal(r *api.RenewOutput) {
	if r == nil || r.Secret == nil || r.Secret.Auth == nil {
		return
	}
	lease := time.Duration(r.Secret.Auth.LeaseDuration) * time.Second
	now := c.o.clock()
	c.mu.Lock()
	c.status.Renewals++
	c.status.LastRenewal = now
	c.status.Renewable = r.Secret.Auth.Renewable
	if lease > 0 {
		c.status.TokenExpiry = now.Add(lease)
	}
	c.mu.Unlock()
	c.o.log.WithFields(logrus.Fields{"method": c.method, "ttl": lease.String()}).Debug("vault: token renewed")
}

var errNoClient = errors.New("no Vault client configured")

// checkLoggedIn fails fast, before a request, when no login has succeeded.
func (c *Client) checkLoggedIn() error {
	if c == nil {
		return errNoClient
	}
	c.mu.Lock()
	ok, last := c.hasToken, c.status.LastError
	c.mu.Unlock()
	if ok {
		return nil
	}
	if last != "" {
		return fmt.Errorf("%w (%s): last error: %s", ErrNotLoggedIn, c.method, last)
	}
	return fmt.Errorf("%w yet (%s)", ErrNotLoggedIn, c.method)
}

func sleep(ctx context.Context, d time.Duration) bool {
	return retry.Sleep(ctx, d) == nil
}

// limitedTransport fails a response whose body exceeds max bytes while it
// is read.
type limitedTransport struct {
	base http.RoundTripper
	max  int64
}

var _ http.RoundTripper = (*limitedTransport)(nil)

func (t *limitedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err != nil || resp.Body == nil {
		return resp, err
	}
	resp.Body = &limitedBody{rc: resp.Body, left: t.max, max: t.max}
	return resp, nil
}

// ErrResponseTooLarge is returned (wrapped) when Vault's answer is larger
// than the client's limit.
var ErrResponseTooLarge = errors.New("response body too large")

type limitedBody struct {
	rc   io.ReadCloser
	left int64
	max  int64
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		// One byte more tells a body of exactly max bytes from a longer one.
		var one [1]byte
		n, err := b.rc.Read(one[:])
		if n > 0 {
			return 0, fmt.Errorf("vault: %w: more than %d bytes", ErrResponseTooLarge, b.max)
		}
		return 0, err
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	return n, err
}

func (b *limitedBody) Close() error { return b.rc.Close() }
