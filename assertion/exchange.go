package assertion

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/cqgate/cqgate/internal/retry"
	"github.com/cqgate/cqgate/internal/tracing"
	"github.com/cqgate/cqgate/internal/upstream"
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
	// Algorithm signs the assertion; empty follows the key and Accepted
	// (see Negotiate).
	Algorithm jose.SignatureAlgorithm
	// Accepted are the algorithms the token endpoint advertises
	// (token_endpoint_auth_signing_alg_values_supported, from discovery);
	// empty means no constraint.
	Accepted []string
	// UDAP sends udap=1, as UDAP's token requests require.
	UDAP bool
	// B2B is the UDAP B2B authorization context asserted in the
	// client assertion's hl7-b2b extension; nil sends none. It normally
	// goes with UDAP.
	B2B *B2B
	// TEFCA holds B2B to TEFCA Facilitated FHIR (B2B.ValidateTEFCA):
	// the organization is in the TEFCA community. ExchangePurpose is
	// then the XP code of the certificate the assertion is signed with
	// (its SAN urn:oid:<HCID>#<XP>), which purpose_of_use must be; ""
	// when the identity was issued for no single XP.
	TEFCA           bool
	ExchangePurpose string
	// ExtraParams are added to the form (use UDAP for udap=1). They may not set
	// grant_type, scope, client_assertion_type, client_assertion or
	// client_secret.
	ExtraParams url.Values
}

// Key returns the cache key of the tokens r obtains: token URL, client
// id, scope and the digest of the B2B context. Set Key.Identity when
// several signing identities share a Cache.
func (r Request) Key() Key {
	return Key{TokenURL: r.TokenURL, ClientID: r.ClientID, Scope: r.Scope, Context: r.B2B.Digest()}
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
// The request is a plain form POST rather than golang.org/x/oauth2's
// clientcredentials: that package formats body-read failures with %v (so
// a timeout is no longer recognisable), drops the status and X-Request-Id
// of failures that are not RFC 6749 error responses, and stamps Expiry
// with time.Now instead of an injectable clock.
//
// Transient failures (HTTP 5xx, no response) are retried as Retry says,
// each time with a new assertion; OAuth errors never are.
//
// An Exchanger is safe for concurrent use.
type Exchanger struct {
	// Signer signs the client assertions.
	Signer *Signer
	// HTTPClient sends the token requests. Its Timeout bounds each
	// attempt; the caller's context (for a Cache, its ExchangeTimeout)
	// bounds the exchange with its retries. nil means a client with
	// DefaultTimeout.
	HTTPClient *http.Client
	// Clock returns the current time, used to compute Token.Expiry; nil
	// means time.Now.
	Clock func() time.Time
	// Retry says which failed requests are tried again, and how often.
	Retry RetryPolicy
	// JKU, when set, is sent as the jku header of every assertion: the
	// URL of the JWK Set listing the signing key (Claims.JKU).
	JKU string
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

// Exchange signs a new assertion for r and exchanges it for a token,
// retrying transient failures as e.Retry says (each attempt with a fresh
// assertion).
//
// A failure at the token endpoint, including a transport failure, is a
// *RetrieveError (of the last attempt); its Err keeps the transport cause
// reachable, so errors.Is(err, context.DeadlineExceeded) and
// errors.As(err, &netErr) work. When the caller's context ends a retry,
// the error wraps both the last failure and the context's error. Errors
// never contain the assertion or an access token.
func (e *Exchanger) Exchange(ctx context.Context, r Request) (_ *Token, err error) {
	ctx, span := tracing.Start(ctx, "cqgate.token.exchange")
	defer func() { endExchange(span, err) }()
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
	if r.UDAP {
		params.Set("udap", "1")
	}
	params.Set("grant_type", "client_credentials")
	if r.Scope != "" {
		params.Set("scope", r.Scope)
	}
	params.Set("client_assertion_type", ClientAssertionType)
	claims, err := e.Claims(r)
	if err != nil {
		return nil, err
	}

	var t *Token
	stop := e.Retry.policy().Do(ctx, func(ctx context.Context) retry.Verdict {
		t, err = e.exchange(ctx, r, claims, params)
		if err == nil || !retryable(ctx, err) {
			return retry.Stop
		}
		return retryAfter(err)
	})
	switch {
	case err == nil:
		return t, nil
	case stop != nil:
		return nil, fmt.Errorf("%w; not retried: %w", err, stop)
	}
	return nil, err
}

// errReadingBody marks a token response whose body could not be read.
var errReadingBody = errors.New("reading token response")

// Claims are the claims of the client assertions e signs for r, as
// Exchange signs them (iss and sub, aud, the algorithm, hl7-b2b, jku),
// so that a preview (cqgate assert) shows what is sent. An r whose B2B
// context cannot be sent (B2B.Validate, or ValidateTEFCA when r.TEFCA)
// is refused with its *B2BError, as Exchange refuses it.
func (e *Exchanger) Claims(r Request) (Claims, error) {
	var err error
	switch {
	case r.B2B != nil && r.TEFCA:
		err = r.B2B.ValidateTEFCA(r.ExchangePurpose)
	case r.B2B != nil:
		err = r.B2B.Validate()
	}
	if err != nil {
		return Claims{}, err
	}
	return Claims{ClientID: r.ClientID, Audience: r.TokenURL, Algorithm: r.Algorithm, Accepted: r.Accepted, B2B: r.B2B, JKU: e.JKU}, nil
}

// exchange makes one token request with a freshly signed assertion of
// claims. params holds everything but the assertion; it is not modified.
func (e *Exchanger) exchange(ctx context.Context, r Request, claims Claims, base url.Values) (*Token, error) {
	assertion, err := e.Signer.Sign(ctx, claims)
	if err != nil {
		return nil, err
	}
	params := make(url.Values, len(base)+1)
	for k, v := range base {
		params[k] = v
	}
	params.Set("client_assertion", assertion)

	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.TokenURL, strings.NewReader(params.Encode()))
	if err != nil {
		return nil, fmt.Errorf("assertion: building the token request for %s: %w", r.TokenURL, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")

	sent := e.now()
	resp, err := e.client().Do(req)
	if err != nil {
		// A *url.Error names the method and URL, never the form.
		return nil, &RetrieveError{TokenURL: r.TokenURL, Err: err}
	}
	defer resp.Body.Close()
	re := &RetrieveError{
		TokenURL:   r.TokenURL,
		StatusCode: resp.StatusCode,
		RequestID:  redact(resp.Header.Get("X-Request-Id"), assertion, ""),
	}
	if resp.StatusCode >= 400 {
		re.RetryIn, _ = upstream.ParseRetryAfter(resp.Header.Get("Retry-After"), e.now())
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxTokenResponse+1))
	if err != nil {
		if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
			err = fmt.Errorf("%w (%w)", err, cerr)
		}
		re.Err = fmt.Errorf("%w: %w", errReadingBody, err)
		return nil, re
	}
	if len(body) > maxTokenResponse {
		re.Err = fmt.Errorf("token response larger than %d bytes", maxTokenResponse)
		return nil, re
	}
	return tokenFromResponse(re, resp.Header.Get("Content-Type"), body, sent, assertion)
}

// tokenFromResponse interprets the body of a token response whose status,
// URL and request id are in re: a token, or re completed as the error.
// sent is when the request was sent; secret (the assertion) and any
// access token in the body are kept out of the error.
func tokenFromResponse(re *RetrieveError, contentType string, body []byte, sent time.Time, secret string) (*Token, error) {
	tr, perr := parseTokenResponse(contentType, body)
	fail := func() (*Token, error) {
		// The server's text (even its X-Request-Id) may echo the
		// assertion or the access token the body carries.
		at := accessTokenIn(contentType, body)
		re.RequestID = redact(re.RequestID, secret, at)
		re.ErrorCode = redact(re.ErrorCode, secret, at)
		re.ErrorDescription = redact(re.ErrorDescription, secret, at)
		re.ErrorURI = redact(re.ErrorURI, secret, at)
		return nil, re
	}
	failed := re.StatusCode < 200 || re.StatusCode > 299
	if failed || (perr == nil && tr.Error != "" && tr.AccessToken == "") {
		if perr == nil && tr.Error != "" {
			// An RFC 6749 §5.2 error response: keep its fields, never its
			// body, which a careless server may fill with our assertion.
			re.ErrorCode, re.ErrorDescription, re.ErrorURI = tr.Error, tr.ErrorDescription, tr.ErrorURI
		} else {
			re.Err = fmt.Errorf("unexpected response: %s", describeBody(contentType, body))
		}
		return fail()
	}
	switch {
	case perr != nil:
		re.Err = perr
		return fail()
	case tr.AccessToken == "":
		re.Err = errors.New("token response has no access_token")
		return fail()
	case tr.TokenType == "":
		// RFC 6749 §5.1 requires token_type; guessing Bearer could send a
		// sender-constrained token where it does not work.
		re.Err = tokenTypeError("")
		return fail()
	case !strings.EqualFold(tr.TokenType, "Bearer"):
		re.Err = tokenTypeError(redact(tr.TokenType, secret, tr.AccessToken))
		return fail()
	}

	t := &Token{AccessToken: tr.AccessToken, TokenType: tr.TokenType, Scope: tr.Scope, ExpiresIn: expiresIn(string(tr.ExpiresIn))}
	if t.ExpiresIn > 0 {
		t.Expiry = sent.Add(t.ExpiresIn)
	}
	return t, nil
}

// accessTokenIn finds the access_token a response body carries, however
// broken the rest of it is, so that it can be kept out of errors.
func accessTokenIn(contentType string, body []byte) string {
	if mt, _, _ := mime.ParseMediaType(contentType); mt == "application/x-www-form-urlencoded" || mt == "text/plain" {
		v, _ := url.ParseQuery(string(body)) // what parsed before an error
		return v.Get("access_token")
	}
	var v struct {
		AccessToken string `json:"access_token"`
	}
	_ = json.Unmarshal(body, &v)
	return v.AccessToken
}

// maxTokenResponse bounds the token response body read.
const maxTokenResponse = 1 << 20

// client returns the configured HTTP client, or one with DefaultTimeout,
// refusing redirects either way.
func (e *Exchanger) client() *http.Client { return noRedirects(e.HTTPClient) }

// noRedirects returns a copy of c (nil: a client with DefaultTimeout)
// that does not follow redirects: a redirected POST would hand the
// assertion or software statement to another host.
func noRedirects(c *http.Client) *http.Client {
	var out http.Client
	if c != nil {
		out = *c
	} else {
		out.Timeout = DefaultTimeout
	}
	out.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &out
}

// tokenResponse holds the members of a token response (RFC 6749 §5.1)
// or an error response (§5.2).
type tokenResponse struct {
	AccessToken      string     `json:"access_token"`
	TokenType        string     `json:"token_type"`
	ExpiresIn        flexString `json:"expires_in"`
	Scope            string     `json:"scope"`
	Error            string     `json:"error"`
	ErrorDescription string     `json:"error_description"`
	ErrorURI         string     `json:"error_uri"`
}

// flexString takes a JSON number or string: some servers quote
// expires_in.
type flexString string

func (f *flexString) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*f = flexString(s)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("expires_in is neither a number nor a string")
	}
	*f = flexString(n)
	return nil
}

// parseTokenResponse decodes JSON (RFC 6749), or a form-encoded body as
// some older servers send (application/x-www-form-urlencoded or
// text/plain).
func parseTokenResponse(contentType string, body []byte) (*tokenResponse, error) {
	mt, _, _ := mime.ParseMediaType(contentType)
	if mt == "application/x-www-form-urlencoded" || mt == "text/plain" {
		v, err := url.ParseQuery(string(body))
		if err != nil {
			return nil, errors.New("token response is not valid form encoding")
		}
		return &tokenResponse{
			AccessToken: v.Get("access_token"), TokenType: v.Get("token_type"), ExpiresIn: flexString(v.Get("expires_in")),
			Scope: v.Get("scope"), Error: v.Get("error"), ErrorDescription: v.Get("error_description"), ErrorURI: v.Get("error_uri"),
		}, nil
	}
	var tr tokenResponse
	if err := json.Unmarshal(body, &tr); err != nil {
		return nil, fmt.Errorf("token response is not a JSON object: %s", describeBody(contentType, body))
	}
	return &tr, nil
}

// describeBody says what a body was without quoting it: its size and
// media type (only the type: parameters are the server's text).
func describeBody(contentType string, body []byte) string {
	mt, _, err := mime.ParseMediaType(contentType)
	switch {
	case contentType == "":
		mt = "no Content-Type"
	case err != nil:
		mt = "an unparsable Content-Type"
	case len(mt) > 64:
		mt = "an overlong Content-Type"
	}
	return fmt.Sprintf("%d bytes of %s", len(body), mt)
}

// expiresIn converts expires_in seconds to a duration; anything that is
// not a positive number is zero.
func expiresIn(v string) time.Duration {
	secs, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
	if err != nil || math.IsNaN(secs) || secs <= 0 {
		return 0
	}
	return time.Duration(min(secs, math.MaxInt32)) * time.Second
}

// maxServerText bounds the length of server-supplied text kept in errors.
const maxServerText = 512

// minSecretLen is the shortest access token redact looks for: shorter
// strings would blot out ordinary words, and no real token is so short.
const minSecretLen = 8

// redact removes the assertion, each of its segments, and an access
// token from s, which comes from the server, and bounds its length.
func redact(s, assertion, accessToken string) string {
	if s == "" {
		return s
	}
	if assertion != "" {
		s = strings.ReplaceAll(s, assertion, "[REDACTED]")
		for seg := range strings.SplitSeq(assertion, ".") {
			if len(seg) >= 16 {
				s = strings.ReplaceAll(s, seg, "[REDACTED]")
			}
		}
	}
	if len(accessToken) >= minSecretLen {
		s = strings.ReplaceAll(s, accessToken, "[REDACTED]")
		if strings.Contains(s, accessToken) { // the replacement made it again
			return "[REDACTED]"
		}
	}
	if len(s) > maxServerText {
		s = strings.ToValidUTF8(s[:maxServerText], "") + "…"
	}
	return s
}
