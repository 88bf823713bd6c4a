package udaptest

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/google/uuid"
)

// Defaults applied by New to zero-valued fields.
const (
	DefaultPath   = "/register"
	DefaultLeeway = 5 * time.Second
	// MaxLifetime is the longest exp − iat of a software statement.
	MaxLifetime = 300 * time.Second
	// maxBody bounds the request body read.
	maxBody = 64 << 10
)

// Config configures New.
type Config struct {
	// Roots, when set, are the trust anchors the x5c chain must verify
	// to. nil accepts any chain whose leaf signed the statement.
	Roots *x509.CertPool
	// Path is the registration endpoint path. Default "/register".
	Path string
	// Clock returns the current time; nil means time.Now.
	Clock func() time.Time
	// Leeway is how far iat may be in the future. Default 5s.
	Leeway time.Duration
	// Algorithms, when set, are the only JWS algorithms software
	// statements may be signed with: what the server would advertise as
	// registration_endpoint_jwt_signing_alg_values_supported. nil
	// accepts RS256, RS384, ES256 and ES384.
	Algorithms []string
}

// Client is a registration the server holds.
type Client struct {
	ID                      string
	Issuer                  string
	ClientName              string
	Contacts                []string
	GrantTypes              []string
	Scope                   string
	TokenEndpointAuthMethod string
	// Algorithm is the alg of the software statement.
	Algorithm string
	// Certificate is the leaf of its x5c.
	Certificate *x509.Certificate
}

// Server is a UDAP registration endpoint.
type Server struct {
	// URL is the base URL of the httptest server.
	URL string
	// RegistrationURL is URL+Path, the aud software statements need.
	RegistrationURL string

	cfg Config

	mu         sync.Mutex
	clients    map[string]*Client // by iss
	jtis       map[string]bool
	statements []string
	bodies     []map[string]json.RawMessage
	failures   []string
	failNext   *failure
}

type failure struct {
	status      int
	code, descr string
}

// New starts a registration server for the test, closed on t.Cleanup.
func New(t testing.TB, cfg Config) *Server {
	t.Helper()
	if cfg.Path == "" {
		cfg.Path = DefaultPath
	}
	if !strings.HasPrefix(cfg.Path, "/") {
		cfg.Path = "/" + cfg.Path
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Leeway <= 0 {
		cfg.Leeway = DefaultLeeway
	}
	s := &Server{cfg: cfg, clients: map[string]*Client{}, jtis: map[string]bool{}}
	ts := httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(ts.Close)
	s.URL = ts.URL
	s.RegistrationURL = ts.URL + cfg.Path
	return s
}

// FailNext makes the next registration request fail with status and, if
// code is not empty, an RFC 7591 error body; with an empty code the body
// is plain text.
func (s *Server) FailNext(status int, code, description string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failNext = &failure{status: status, code: code, descr: description}
}

// Clients returns the current registrations.
func (s *Server) Clients() []Client {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Client, 0, len(s.clients))
	for _, c := range s.clients {
		out = append(out, *c)
	}
	return out
}

// Statements returns every software statement received, in order.
func (s *Server) Statements() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.statements)
}

// Bodies returns every request body that was a JSON object, in order.
func (s *Server) Bodies() []map[string]json.RawMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.bodies)
}

// Failures returns one line per refused request: "<status> <error>:
// <description>".
func (s *Server) Failures() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.failures)
}

// rfcError is an RFC 7591 §3.2.2 error.
type rfcError struct {
	status int
	code   string
	descr  string
}

func (e *rfcError) Error() string { return fmt.Sprintf("%d %s: %s", e.status, e.code, e.descr) }

func badStatement(format string, args ...any) *rfcError {
	return &rfcError{status: http.StatusBadRequest, code: "invalid_software_statement", descr: fmt.Sprintf(format, args...)}
}

func badMetadata(format string, args ...any) *rfcError {
	return &rfcError{status: http.StatusBadRequest, code: "invalid_client_metadata", descr: fmt.Sprintf(format, args...)}
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Request-Id", uuid.NewString())
	if r.URL.Path != s.cfg.Path {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	s.mu.Lock()
	fail := s.failNext
	s.failNext = nil
	s.mu.Unlock()
	if fail != nil {
		s.record(fmt.Sprintf("%d %s: %s (forced)", fail.status, fail.code, fail.descr))
		if fail.code == "" {
			http.Error(w, "forced failure", fail.status)
			return
		}
		writeJSON(w, fail.status, map[string]string{"error": fail.code, "error_description": fail.descr})
		return
	}
	status, body, err := s.register(r)
	if err != nil {
		var e *rfcError
		if !errors.As(err, &e) {
			e = badMetadata("%v", err)
		}
		s.record(e.Error())
		writeJSON(w, e.status, map[string]string{"error": e.code, "error_description": e.descr})
		return
	}
	writeJSON(w, status, body)
}

func (s *Server) record(failure string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failures = append(s.failures, failure)
}

// statementClaims are the claims of a software statement.
type statementClaims struct {
	jwt.Claims
	ClientName              string    `json:"client_name"`
	Contacts                []string  `json:"contacts"`
	GrantTypes              *[]string `json:"grant_types"`
	TokenEndpointAuthMethod string    `json:"token_endpoint_auth_method"`
	Scope                   string    `json:"scope"`
}

func (s *Server) register(r *http.Request) (int, map[string]any, error) {
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		return 0, nil, badMetadata("Content-Type %q is not application/json", r.Header.Get("Content-Type"))
	}
	raw, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil || len(raw) > maxBody {
		return 0, nil, badMetadata("unreadable or oversized body")
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(raw, &members); err != nil || members == nil {
		return 0, nil, badMetadata("body is not a JSON object")
	}
	s.mu.Lock()
	s.bodies = append(s.bodies, members)
	s.mu.Unlock()
	var req struct {
		SoftwareStatement string   `json:"software_statement"`
		Certifications    []string `json:"certifications"`
		UDAP              string   `json:"udap"`
	}
	if err := json.Unmarshal(raw, &req); err != nil {
		return 0, nil, badMetadata("body members have the wrong types: %v", err)
	}
	if req.UDAP != "1" {
		return 0, nil, badMetadata(`"udap" must be the string "1"`)
	}
	if _, ok := members["certifications"]; !ok {
		return 0, nil, badMetadata(`"certifications" is missing`)
	}
	if req.SoftwareStatement == "" {
		return 0, nil, badStatement("software_statement is missing")
	}
	s.mu.Lock()
	s.statements = append(s.statements, req.SoftwareStatement)
	s.mu.Unlock()

	alg, leaf, claims, err := s.verify(req.SoftwareStatement)
	if err != nil {
		return 0, nil, err
	}
	if err := checkMetadata(claims); err != nil {
		return 0, nil, err
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.jtis[claims.ID] {
		return 0, nil, badStatement("jti %q was used before", claims.ID)
	}
	s.jtis[claims.ID] = true
	prev := s.clients[claims.Issuer]
	if len(*claims.GrantTypes) == 0 {
		if prev == nil {
			return 0, nil, badMetadata("empty grant_types, but %q is not registered", claims.Issuer)
		}
		delete(s.clients, claims.Issuer)
		return http.StatusOK, map[string]any{"client_id": prev.ID, "grant_types": []string{}}, nil
	}
	c := &Client{
		Issuer:                  claims.Issuer,
		ClientName:              claims.ClientName,
		Contacts:                claims.Contacts,
		GrantTypes:              *claims.GrantTypes,
		Scope:                   claims.Scope,
		TokenEndpointAuthMethod: claims.TokenEndpointAuthMethod,
		Algorithm:               alg,
		Certificate:             leaf,
	}
	status := http.StatusCreated
	if prev != nil {
		c.ID, status = prev.ID, http.StatusOK
	} else {
		c.ID = uuid.NewString()
	}
	s.clients[c.Issuer] = c
	return status, map[string]any{
		"client_id":                  c.ID,
		"client_id_issued_at":        s.cfg.Clock().Unix(),
		"client_name":                c.ClientName,
		"contacts":                   c.Contacts,
		"grant_types":                c.GrantTypes,
		"token_endpoint_auth_method": c.TokenEndpointAuthMethod,
		"scope":                      c.Scope,
		"software_statement":         req.SoftwareStatement,
	}, nil
}

// verify checks the software statement's header, signature, chain and
// registered claims, and returns its alg, leaf certificate and claims.
func (s *Server) verify(statement string) (string, *x509.Certificate, *statementClaims, error) {
	tok, err := jwt.ParseSigned(statement, []jose.SignatureAlgorithm{jose.RS256, jose.RS384, jose.ES256, jose.ES384})
	if err != nil {
		return "", nil, nil, badStatement("not a JWS with RS256, RS384, ES256 or ES384: %v", err)
	}
	if len(tok.Headers) != 1 {
		return "", nil, nil, badStatement("want one signature, got %d", len(tok.Headers))
	}
	alg := tok.Headers[0].Algorithm
	if len(s.cfg.Algorithms) > 0 && !slices.Contains(s.cfg.Algorithms, alg) {
		return "", nil, nil, badStatement("alg %s is not among the registration endpoint's algorithms [%s]", alg, strings.Join(s.cfg.Algorithms, " "))
	}
	chain, err := x5c(statement)
	if err != nil {
		return "", nil, nil, err
	}
	leaf := chain[0]
	now := s.cfg.Clock()
	if s.cfg.Roots != nil {
		inter := x509.NewCertPool()
		for _, c := range chain[1:] {
			inter.AddCert(c)
		}
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: s.cfg.Roots, Intermediates: inter, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
			return "", nil, nil, badStatement("x5c chain does not verify: %v", err)
		}
	}
	var c statementClaims
	if err := tok.Claims(leaf.PublicKey, &c); err != nil {
		return "", nil, nil, badStatement("signature does not verify with the x5c leaf: %v", err)
	}
	switch {
	case c.Issuer == "":
		return "", nil, nil, badStatement("iss is missing")
	case c.Subject != c.Issuer:
		return "", nil, nil, badStatement("sub %q differs from iss %q", c.Subject, c.Issuer)
	case !slices.ContainsFunc(leaf.URIs, func(u *url.URL) bool { return u.String() == c.Issuer }):
		return "", nil, nil, badStatement("iss %q is not a URI SAN of the certificate", c.Issuer)
	case !c.Audience.Contains(s.RegistrationURL):
		return "", nil, nil, badStatement("aud %v is not %s", []string(c.Audience), s.RegistrationURL)
	case c.Expiry == nil || c.IssuedAt == nil:
		return "", nil, nil, badStatement("exp and iat are required")
	case c.Expiry.Time().Sub(c.IssuedAt.Time()) > MaxLifetime:
		return "", nil, nil, badStatement("exp − iat is %v, more than %v", c.Expiry.Time().Sub(c.IssuedAt.Time()), MaxLifetime)
	case !now.Before(c.Expiry.Time()):
		return "", nil, nil, badStatement("expired at %v", c.Expiry.Time())
	case c.IssuedAt.Time().After(now.Add(s.cfg.Leeway)):
		return "", nil, nil, badStatement("iat %v is in the future", c.IssuedAt.Time())
	case c.NotBefore != nil && c.NotBefore.Time().After(now.Add(s.cfg.Leeway)):
		return "", nil, nil, badStatement("nbf %v is in the future", c.NotBefore.Time())
	case c.ID == "":
		return "", nil, nil, badStatement("jti is missing")
	}
	return alg, leaf, &c, nil
}

// x5c decodes the x5c header of a compact JWS: standard base64 DER
// certificates, leaf first.
func x5c(compact string) ([]*x509.Certificate, error) {
	seg, _, _ := strings.Cut(compact, ".")
	raw, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return nil, badStatement("header is not base64url")
	}
	var h struct {
		X5C []string `json:"x5c"`
	}
	if err := json.Unmarshal(raw, &h); err != nil {
		return nil, badStatement("header x5c is not an array of strings")
	}
	if len(h.X5C) == 0 {
		return nil, badStatement("header has no x5c")
	}
	out := make([]*x509.Certificate, len(h.X5C))
	for i, s := range h.X5C {
		der, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, badStatement("x5c[%d] is not standard base64", i)
		}
		if out[i], err = x509.ParseCertificate(der); err != nil {
			return nil, badStatement("x5c[%d] is not a certificate: %v", i, err)
		}
	}
	return out, nil
}

func checkMetadata(c *statementClaims) error {
	switch {
	case strings.TrimSpace(c.ClientName) == "":
		return badMetadata("client_name is required")
	case !slices.ContainsFunc(c.Contacts, func(s string) bool { return strings.HasPrefix(s, "mailto:") }):
		return badMetadata("contacts needs a mailto: URI")
	case c.TokenEndpointAuthMethod != "private_key_jwt":
		return badMetadata("token_endpoint_auth_method %q is not private_key_jwt", c.TokenEndpointAuthMethod)
	case strings.TrimSpace(c.Scope) == "":
		return badMetadata("scope is required")
	case c.GrantTypes == nil:
		return badMetadata("grant_types is required")
	case len(*c.GrantTypes) > 0 && !slices.Equal(*c.GrantTypes, []string{"client_credentials"}):
		return badMetadata("grant_types %v: this server registers client_credentials only", *c.GrantTypes)
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	_ = json.NewEncoder(&buf).Encode(v)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}
