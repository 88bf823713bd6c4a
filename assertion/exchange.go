package assertion

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// ClientAssertionType is the client_assertion_type of a JWT client
// assertion (RFC 7523 §2.2).
const ClientAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// DefaultTimeout bounds a token exchange when Exchanger.HTTPClient is nil.
const DefaultTimeout = 30 * time.Second

// TokenSource supplies access tokens.
type TokenSource interface {
	Token(ctx context.Context) (*Token, error)
}

// Request describes a token request.
type Request struct {
	// TokenURL is the token endpoint; it is also the assertion's aud.
	TokenURL string
	// ClientID is the assertion's iss and sub.
	ClientID string
	// Scope is sent as the scope parameter when non-empty.
	Scope string
	// Algorithm signs the assertion; empty selects DefaultAlgorithm.
	Algorithm jose.SignatureAlgorithm
	// ExtraParams are added to the form, e.g. udap=1. They may not set
	// grant_type, scope, client_assertion_type, client_assertion or
	// client_secret.
	ExtraParams url.Values
}

// reservedParam reports whether k is a form parameter that Exchange sets
// itself or never sends.
func reservedParam(k string) bool {
	switch k {
	case "grant_type", "scope", "client_assertion_type", "client_assertion", "client_secret":
		return true
	}
	return false
}

// Exchanger exchanges freshly signed client assertions for access tokens
// with the client_credentials grant (RFC 6749 §4.4, RFC 7523 §2.2). It
// sends no Authorization header and no client_secret, and it does not
// follow redirects: a redirected POST would hand the assertion to another
// host, which could replay it at the token endpoint.
//
// An Exchanger is safe for concurrent use.
type Exchanger struct {
	// Signer signs the client assertions.
	Signer *Signer
	// HTTPClient sends the token requests. Its Timeout bounds an
	// exchange, including exchanges shared by a Cache, which run without
	// the caller's cancellation. nil means a client with DefaultTimeout.
	HTTPClient *http.Client
	// Clock returns the current time, used to compute Token.Expiry; nil
	// means time.Now.
	Clock func() time.Time
}

func (e *Exchanger) now() time.Time {
	if e.Clock != nil {
		return e.Clock()
	}
	return time.Now()
}

// Source returns a TokenSource that performs a new exchange on every
// call. Wrap it with Cache.Source to reuse tokens.
func (e *Exchanger) Source(r Request) TokenSource {
	return &exchangeSource{e: e, r: r}
}

type exchangeSource struct {
	e *Exchanger
	r Request
}

func (s *exchangeSource) Token(ctx context.Context) (*Token, error) {
	return s.e.Exchange(ctx, s.r)
}

// Exchange signs a new assertion for r and exchanges it for a token.
//
// A failure at the token endpoint, including a transport failure, is a
// *RetrieveError; its Err keeps the transport cause reachable, so
// errors.Is(err, context.DeadlineExceeded) and errors.As(err, &netErr)
// work. Errors never contain the assertion or an access token.
func (e *Exchanger) Exchange(ctx context.Context, r Request) (*Token, error) {
	if e == nil || e.Signer == nil {
		return nil, errors.New("assertion: exchanger has no signer")
	}
	if err := checkURL("token URL", r.TokenURL); err != nil {
		return nil, err
	}
	params := url.Values{}
	for k, v := range r.ExtraParams {
		if reservedParam(k) {
			return nil, fmt.Errorf("assertion: extra parameter %q is not allowed", k)
		}
		params[k] = append([]string(nil), v...)
	}

	assertion, err := e.Signer.Sign(ctx, Claims{ClientID: r.ClientID, Audience: r.TokenURL, Algorithm: r.Algorithm})
	if err != nil {
		return nil, err
	}
	params.Set("client_assertion_type", ClientAssertionType)
	params.Set("client_assertion", assertion)

	// Empty ClientID and ClientSecret with AuthStyleInParams: the library
	// then adds neither a client_id/client_secret parameter nor an
	// Authorization header, and does not probe other auth styles.
	cfg := &clientcredentials.Config{
		TokenURL:       r.TokenURL,
		EndpointParams: params,
		AuthStyle:      oauth2.AuthStyleInParams,
	}
	if r.Scope != "" {
		cfg.Scopes = []string{r.Scope}
	}

	rec := &recorder{}
	client := e.client(rec)
	sent := e.now()
	ot, err := cfg.Token(context.WithValue(ctx, oauth2.HTTPClient, client))
	if err != nil {
		return nil, retrieveError(r.TokenURL, assertion, rec, err)
	}

	t := &Token{
		AccessToken: ot.AccessToken,
		TokenType:   ot.TokenType,
		ExpiresIn:   expiresIn(ot.Extra("expires_in")),
	}
	if t.TokenType == "" {
		t.TokenType = "Bearer"
	}
	if s, ok := ot.Extra("scope").(string); ok {
		t.Scope = s
	}
	if t.ExpiresIn > 0 {
		t.Expiry = sent.Add(t.ExpiresIn)
	}
	return t, nil
}

// client returns a copy of the configured HTTP client that records the
// token response and refuses redirects.
func (e *Exchanger) client(rec *recorder) *http.Client {
	var c http.Client
	if e.HTTPClient != nil {
		c = *e.HTTPClient
	} else {
		c.Timeout = DefaultTimeout
	}
	rec.base = c.Transport
	if rec.base == nil {
		rec.base = http.DefaultTransport
	}
	c.Transport = rec
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &c
}

// expiresIn converts the expires_in member, as golang.org/x/oauth2 keeps
// it (float64 from JSON, int64 from a form body, string from servers that
// quote it), to a duration; anything else is zero.
func expiresIn(v any) time.Duration {
	var secs float64
	switch n := v.(type) {
	case float64:
		secs = n
	case int64:
		secs = float64(n)
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(n), 64)
		if err != nil {
			return 0
		}
		secs = f
	default:
		return 0
	}
	if math.IsNaN(secs) || secs <= 0 {
		return 0
	}
	secs = min(secs, math.MaxInt32)
	return time.Duration(secs) * time.Second
}

// retrieveError maps an error from golang.org/x/oauth2 to a
// *RetrieveError. It never uses oauth2.RetrieveError.Error(), which
// quotes the response body, and it redacts the assertion from anything
// the server sent back.
func retrieveError(tokenURL, assertion string, rec *recorder, err error) error {
	re := &RetrieveError{TokenURL: tokenURL}
	var oe *oauth2.RetrieveError
	if errors.As(err, &oe) {
		if oe.Response != nil {
			re.StatusCode = oe.Response.StatusCode
			re.RequestID = redact(oe.Response.Header.Get("X-Request-Id"), assertion)
		}
		re.ErrorCode = redact(oe.ErrorCode, assertion)
		re.ErrorDescription = redact(oe.ErrorDescription, assertion)
		re.ErrorURI = redact(oe.ErrorURI, assertion)
		return re
	}
	// No RFC 6749 error response: a transport failure, or a response the
	// library could not use (unreadable or unparsable body, no
	// access_token). golang.org/x/oauth2 flattens body-read errors with
	// %v, so the recorder supplies the real cause.
	status, requestID, readErr := rec.result()
	re.StatusCode = status
	re.RequestID = redact(requestID, assertion)
	cause := err
	if readErr != nil {
		cause = readErr
	}
	re.Err = &redactedError{msg: redact(cause.Error(), assertion), err: cause}
	return re
}

// maxServerText bounds the length of server-supplied text kept in errors.
const maxServerText = 512

// redact removes the assertion, and each of its segments, from s, which
// comes from the server, and bounds its length.
func redact(s, assertion string) string {
	if s == "" || assertion == "" {
		return s
	}
	s = strings.ReplaceAll(s, assertion, "[REDACTED]")
	for seg := range strings.SplitSeq(assertion, ".") {
		if len(seg) >= 16 {
			s = strings.ReplaceAll(s, seg, "[REDACTED]")
		}
	}
	if len(s) > maxServerText {
		s = strings.ToValidUTF8(s[:maxServerText], "") + "…"
	}
	return s
}

// redactedError carries a redacted message while keeping the original
// error reachable for errors.Is and errors.As.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// recorder is an http.RoundTripper that remembers the status and
// X-Request-Id of the token response and the first error met while
// reading its body.
type recorder struct {
	base http.RoundTripper

	mu        sync.Mutex
	status    int
	requestID string
	readErr   error
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.base.RoundTrip(req)
	if err != nil || resp == nil {
		return resp, err
	}
	r.mu.Lock()
	r.status = resp.StatusCode
	r.requestID = resp.Header.Get("X-Request-Id")
	r.readErr = nil
	r.mu.Unlock()
	resp.Body = &recordingBody{ReadCloser: resp.Body, rec: r, ctx: req.Context()}
	return resp, nil
}

func (r *recorder) result() (status int, requestID string, readErr error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.status, r.requestID, r.readErr
}

type recordingBody struct {
	io.ReadCloser
	rec *recorder
	ctx context.Context
}

func (b *recordingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		b.rec.mu.Lock()
		if b.rec.readErr == nil {
			b.rec.readErr = &bodyError{err: err, ctxErr: ctxErr(b.ctx)}
		}
		b.rec.mu.Unlock()
	}
	return n, err
}

// ctxErr is ctx.Err(), or context.DeadlineExceeded once ctx's deadline
// has passed: the HTTP client's Timeout puts its deadline on the
// request's context but may abort the read through Request.Cancel
// ("net/http: request canceled") just before the context reports it.
func ctxErr(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
		return context.DeadlineExceeded
	}
	return nil
}

// bodyError is a failure to read the token response. When the request's
// context had ended (the caller's deadline or the HTTP client's Timeout),
// that context error is reachable too, so timeouts are recognisable.
type bodyError struct {
	err    error
	ctxErr error
}

func (e *bodyError) Error() string {
	if e.ctxErr != nil && !errors.Is(e.err, e.ctxErr) {
		return "reading token response: " + e.err.Error() + " (" + e.ctxErr.Error() + ")"
	}
	return "reading token response: " + e.err.Error()
}

func (e *bodyError) Unwrap() []error {
	if e.ctxErr == nil {
		return []error{e.err}
	}
	return []error{e.err, e.ctxErr}
}
