package fositetest

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v3"
	"github.com/ory/fosite"
	"github.com/ory/fosite/compose"
	"github.com/ory/fosite/storage"
)

// Defaults applied by New to zero-valued fields.
const (
	DefaultAlgorithm     = "RS384"
	DefaultTokenLifetime = 570 * time.Second
	DefaultTokenPath     = "/token"
)

// Client is an OAuth 2.0 client registered with the server. It authenticates
// with private_key_jwt only.
type Client struct {
	// ID is the client_id; the assertion's iss and sub must equal it.
	ID string
	// PublicKey verifies the assertion: *rsa.PublicKey for RS*/PS*,
	// *ecdsa.PublicKey (curve matching the algorithm) for ES*.
	PublicKey crypto.PublicKey
	// KeyID is the kid of the key in the client's JWKS. If the assertion
	// carries a kid header it must equal KeyID.
	KeyID string
	// Algorithm is the only JWS alg fosite accepts for this client
	// (token_endpoint_auth_signing_alg). Default "RS384".
	Algorithm string
	// Scopes the client may request; see SMARTScopeStrategy.
	Scopes []string
}

// Config configures New.
type Config struct {
	Clients []Client
	// TokenLifetime is the access token lifetime (expires_in). Default 570s.
	TokenLifetime time.Duration
	// TokenPath is the token endpoint path. Default "/token".
	TokenPath string
	// ScopeStrategy overrides the scope matcher. Default SMARTScopeStrategy.
	ScopeStrategy fosite.ScopeStrategy
	// OmitRequestID stops the server setting X-Request-Id on responses.
	OmitRequestID bool
}

// Server is a fosite-backed OAuth 2.0 authorization server with a
// client_credentials token endpoint.
type Server struct {
	// URL is the base URL of the httptest server.
	URL string
	// TokenURL is URL+TokenPath; fosite requires it as the assertion aud.
	TokenURL string

	provider fosite.OAuth2Provider
	store    *storage.MemoryStore
	cfg      *lifetimeConfig
	reqID    bool

	exchanges atomic.Int64
	issued    atomic.Int64

	mu         sync.Mutex
	failures   []string
	requestIDs []string     // fosite request IDs of issued access tokens
	assertions []string     // every client_assertion received
	forms      []url.Values // every token request's form
	tokens     []string     // every access token issued
}

// lifetimeConfig lets SetLifetime change the access token lifespan while
// requests are in flight without racing on fosite.Config's plain field.
type lifetimeConfig struct {
	*fosite.Config
	lifetime atomic.Int64
}

func (c *lifetimeConfig) GetAccessTokenLifespan(context.Context) time.Duration {
	return time.Duration(c.lifetime.Load())
}

// New starts a fosite authorization server for the test, closed on
// t.Cleanup. Only TokenPath is served (any other path: 404). Setup mistakes
// (unsupported algorithm, key type not matching the algorithm, duplicate
// client IDs) fail the test immediately.
func New(t testing.TB, cfg Config) *Server {
	t.Helper()
	if cfg.TokenLifetime <= 0 {
		cfg.TokenLifetime = DefaultTokenLifetime
	}
	if cfg.TokenPath == "" {
		cfg.TokenPath = DefaultTokenPath
	}
	if !strings.HasPrefix(cfg.TokenPath, "/") {
		cfg.TokenPath = "/" + cfg.TokenPath
	}
	if cfg.ScopeStrategy == nil {
		cfg.ScopeStrategy = SMARTScopeStrategy
	}

	ts := httptest.NewUnstartedServer(nil)
	t.Cleanup(ts.Close)
	base := "http://" + ts.Listener.Addr().String()

	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		t.Fatalf("fositetest: global secret: %v", err)
	}
	fc := &lifetimeConfig{Config: &fosite.Config{
		TokenURL:     base + cfg.TokenPath,
		GlobalSecret: secret,
		// Set every field whose getter lazily assigns a default, so that
		// concurrent requests do not race on fosite.Config.
		ScopeStrategy:            cfg.ScopeStrategy,
		AudienceMatchingStrategy: fosite.DefaultAudienceMatchingStrategy,
		JWKSFetcherStrategy:      fosite.NewDefaultJWKSFetcherStrategy(),
		// No refresh tokens are issued; introspect access tokens only.
		DisableRefreshTokenValidation: true,
	}}
	fc.ClientSecretsHasher = &fosite.BCrypt{Config: fc.Config}
	fc.lifetime.Store(int64(cfg.TokenLifetime))

	store := storage.NewMemoryStore()
	for _, c := range cfg.Clients {
		oc, err := newClient(c)
		if err != nil {
			t.Fatalf("fositetest: client %q: %v", c.ID, err)
		}
		if _, dup := store.Clients[c.ID]; dup {
			t.Fatalf("fositetest: duplicate client %q", c.ID)
		}
		store.Clients[c.ID] = oc
	}

	// This is compose.Compose(config, store, compose.NewOAuth2HMACStrategy(config),
	// compose.OAuth2ClientCredentialsGrantFactory,
	// compose.OAuth2TokenIntrospectionFactory) except that the factories
	// receive lifetimeConfig as their fosite.Configurator (Compose passes
	// the bare *fosite.Config), which makes SetLifetime race-free.
	strategy := compose.NewOAuth2HMACStrategy(fc)
	provider := fosite.NewOAuth2Provider(store, fc)
	for _, factory := range []compose.Factory{
		compose.OAuth2ClientCredentialsGrantFactory,
		compose.OAuth2TokenIntrospectionFactory,
	} {
		h := factory(fc, store, strategy)
		if th, ok := h.(fosite.TokenEndpointHandler); ok {
			fc.TokenEndpointHandlers.Append(th)
		}
		if ti, ok := h.(fosite.TokenIntrospector); ok {
			fc.TokenIntrospectionHandlers.Append(ti)
		}
	}

	s := &Server{
		URL:      base,
		TokenURL: base + cfg.TokenPath,
		provider: provider,
		store:    store,
		cfg:      fc,
		reqID:    !cfg.OmitRequestID,
	}
	ts.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.reqID {
			w.Header().Set("X-Request-Id", newRequestID())
		}
		if r.URL.Path != cfg.TokenPath {
			http.NotFound(w, r)
			return
		}
		s.token(w, r)
	})
	ts.Start()
	return s
}

func newClient(c Client) (*fosite.DefaultOpenIDConnectClient, error) {
	if c.ID == "" {
		return nil, errors.New("empty ID")
	}
	alg := c.Algorithm
	if alg == "" {
		alg = DefaultAlgorithm
	}
	key, err := checkKey(alg, c.PublicKey)
	if err != nil {
		return nil, err
	}
	return &fosite.DefaultOpenIDConnectClient{
		DefaultClient: &fosite.DefaultClient{
			ID:         c.ID,
			GrantTypes: []string{"client_credentials"},
			Scopes:     append([]string(nil), c.Scopes...),
			Public:     false,
		},
		JSONWebKeys: &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{
			Key:       key,
			KeyID:     c.KeyID,
			Algorithm: alg,
			Use:       "sig", // fosite ignores keys whose use is not "sig"
		}}},
		TokenEndpointAuthMethod:           "private_key_jwt",
		TokenEndpointAuthSigningAlgorithm: alg,
	}, nil
}

// checkKey returns the key in the pointer form fosite's JWKS lookup needs.
func checkKey(alg string, pub crypto.PublicKey) (crypto.PublicKey, error) {
	switch k := pub.(type) {
	case rsa.PublicKey:
		pub = &k
	case ecdsa.PublicKey:
		pub = &k
	}
	switch alg {
	case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
		if _, ok := pub.(*rsa.PublicKey); !ok {
			return nil, fmt.Errorf("algorithm %s needs an RSA public key, got %T", alg, pub)
		}
	case "ES256", "ES384", "ES512":
		k, ok := pub.(*ecdsa.PublicKey)
		if !ok {
			return nil, fmt.Errorf("algorithm %s needs an ECDSA public key, got %T", alg, pub)
		}
		want := map[string]elliptic.Curve{"ES256": elliptic.P256(), "ES384": elliptic.P384(), "ES512": elliptic.P521()}[alg]
		if k.Curve != want {
			return nil, fmt.Errorf("algorithm %s needs curve %s, got %s", alg, want.Params().Name, k.Curve.Params().Name)
		}
	default:
		return nil, fmt.Errorf("algorithm %q is not supported by fosite private_key_jwt", alg)
	}
	return pub, nil
}

// token is the token endpoint: fosite authenticates the client (assertion),
// runs the client_credentials handler and writes the response or error.
func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	s.exchanges.Add(1)
	ctx := r.Context()
	ar, err := s.provider.NewAccessRequest(ctx, r, new(fosite.DefaultSession))
	s.mu.Lock()
	if a := r.PostForm.Get("client_assertion"); a != "" {
		s.assertions = append(s.assertions, a)
	}
	s.forms = append(s.forms, cloneValues(r.PostForm))
	s.mu.Unlock()
	if err != nil {
		s.fail(ctx, w, r, ar, err)
		return
	}
	// The client_credentials handler has checked each requested scope
	// against the client's scopes; grant them, as an authorization server
	// built on fosite must do itself.
	for _, sc := range ar.GetRequestedScopes() {
		ar.GrantScope(sc)
	}
	for _, a := range ar.GetRequestedAudience() {
		ar.GrantAudience(a)
	}
	resp, err := s.provider.NewAccessResponse(ctx, ar)
	if err != nil {
		s.fail(ctx, w, r, ar, err)
		return
	}
	s.mu.Lock()
	s.requestIDs = append(s.requestIDs, ar.GetID())
	s.tokens = append(s.tokens, resp.GetAccessToken())
	s.mu.Unlock()
	s.issued.Add(1)
	s.provider.WriteAccessResponse(ctx, w, ar, resp)
}

func (s *Server) fail(ctx context.Context, w http.ResponseWriter, r *http.Request, ar fosite.AccessRequester, err error) {
	e := fosite.ErrorToRFC6749Error(err)
	msg := fmt.Sprintf("%d %s: %s", e.CodeField, e.ErrorField, e.GetDescription())
	if e.DebugField != "" {
		msg += " (debug: " + e.DebugField + ")"
	}
	if id := w.Header().Get("X-Request-Id"); id != "" {
		msg += " [X-Request-Id " + id + "]"
	}
	s.mu.Lock()
	s.failures = append(s.failures, msg)
	s.mu.Unlock()
	s.provider.WriteAccessError(ctx, w, ar, err)
}

// Assertions returns every client_assertion the token endpoint received,
// so tests can check that none of them leaked anywhere.
func (s *Server) Assertions() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.assertions...)
}

// Forms returns the form of every token request, in order, as fosite
// parsed it (so parameters fosite ignores, such as udap, are there too).
func (s *Server) Forms() []url.Values {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]url.Values, len(s.forms))
	for i, f := range s.forms {
		out[i] = cloneValues(f)
	}
	return out
}

func cloneValues(v url.Values) url.Values {
	out := make(url.Values, len(v))
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	return out
}

// AccessTokens returns every access token the server issued.
func (s *Server) AccessTokens() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.tokens...)
}

// Exchanges reports how many requests reached the token endpoint.
func (s *Server) Exchanges() int64 { return s.exchanges.Load() }

// Issued reports how many access tokens were issued.
func (s *Server) Issued() int64 { return s.issued.Load() }

// Failures returns one line per failed token request, in order:
// "<status> <error>: <error_description> (debug: ...) [X-Request-Id ...]".
func (s *Server) Failures() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.failures...)
}

// SetLifetime changes the lifetime of access tokens issued from now on.
func (s *Server) SetLifetime(d time.Duration) { s.cfg.lifetime.Store(int64(d)) }

// Validate introspects accessToken with fosite and returns nil if it is an
// access token this server issued that is neither expired nor revoked and
// (if scopes are given) was granted all of them.
func (s *Server) Validate(ctx context.Context, accessToken string, scopes ...string) error {
	if accessToken == "" {
		return errors.New("fositetest: empty access token")
	}
	use, _, err := s.provider.IntrospectToken(ctx, accessToken, fosite.AccessToken, new(fosite.DefaultSession), scopes...)
	if err != nil {
		return fmt.Errorf("fositetest: %w", err)
	}
	if use != fosite.AccessToken {
		return fmt.Errorf("fositetest: token is a %s, not an access token", use)
	}
	return nil
}

// ValidateRequest validates the "Authorization: Bearer <token>" header of r.
func (s *Server) ValidateRequest(r *http.Request, scopes ...string) error {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
		return errors.New("fositetest: no Bearer token in Authorization header")
	}
	return s.Validate(r.Context(), strings.TrimSpace(tok), scopes...)
}

// Protect wraps h (e.g. a fake FHIR server) so that requests without a
// valid bearer token get 401 with a WWW-Authenticate challenge.
func (s *Server) Protect(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := s.ValidateRequest(r); err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// Revoke makes accessToken invalid (fosite revocation of its request).
// Unknown or already invalid tokens are ignored.
func (s *Server) Revoke(accessToken string) {
	ctx := context.Background()
	_, ar, err := s.provider.IntrospectToken(ctx, accessToken, fosite.AccessToken, new(fosite.DefaultSession))
	if err != nil {
		return
	}
	_ = s.store.RevokeAccessToken(ctx, ar.GetID())
}

// ExpireAll invalidates every access token issued so far (their sessions
// are removed from storage, so fosite introspection rejects them); tokens
// issued later are unaffected.
func (s *Server) ExpireAll() {
	s.mu.Lock()
	ids := s.requestIDs
	s.requestIDs = nil
	s.mu.Unlock()
	for _, id := range ids {
		_ = s.store.RevokeAccessToken(context.Background(), id)
	}
}

// newRequestID returns a random RFC 4122 version 4 UUID string.
func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
