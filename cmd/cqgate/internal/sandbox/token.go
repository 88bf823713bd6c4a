package sandbox

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"time"

	"github.com/sirupsen/logrus"
)

// OAuth 2.0 vocabulary.
const (
	grantClientCredentials = "client_credentials"
	clientAssertionJWT     = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
)

// OAuth error codes (RFC 6749 §5.2).
const (
	errInvalidRequest       = "invalid_request"
	errInvalidClient        = "invalid_client"
	errUnsupportedGrantType = "unsupported_grant_type"
)

// maxFormBytes bounds a token request body; an assertion with a short
// certificate chain is a few kilobytes.
const maxFormBytes = 64 << 10

// accessTokenBytes is the entropy of an issued access token.
const accessTokenBytes = 32

// errorURIBase prefixes error_uri values. Like Cerner's, an error_uri
// names the reason as a URN and the failing request as an instance; the
// instance is the response's X-Request-Id.
const (
	errorURIBase   = "https://sandbox.cqgate.invalid/errors/"
	errorURNPrefix = "urn:cqgate:error:sandbox:oauth2:token:"
)

// oauthError is a refused token request.
type oauthError struct {
	status      int
	code        string // the "error" field
	reason      string // names the check that failed, in error_uri
	description string
}

func badRequest(reason, format string, args ...any) *oauthError {
	return &oauthError{status: http.StatusBadRequest, code: errInvalidRequest, reason: reason, description: fmt.Sprintf(format, args...)}
}

func invalidClient(reason, format string, args ...any) *oauthError {
	return &oauthError{status: http.StatusUnauthorized, code: errInvalidClient, reason: reason, description: fmt.Sprintf(format, args...)}
}

// oauthErrorBody is the JSON error response of a token endpoint.
type oauthErrorBody struct {
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description"`
	ErrorURI         string `json:"error_uri"`
}

// tokenResponse is a successful token response.
type tokenResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int64  `json:"expires_in"`
	Scope       string `json:"scope"`
}

// tokenRequest is a parsed client-credentials token request.
type tokenRequest struct {
	scope     string
	assertion string
	clientID  string // optional client_id parameter
}

// handleToken serves POST {TokenURL}, the carequality-token URL: it
// verifies the client assertion and issues an access token.
func (s *Sandbox) handleToken(w http.ResponseWriter, r *http.Request) {
	s.state.exchanges.Add(1)
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		s.writeOAuthError(w, r, &oauthError{
			status: http.StatusMethodNotAllowed, code: errInvalidRequest, reason: "method-not-allowed",
			description: "the token endpoint only accepts POST",
		})
		return
	}
	req, oerr := parseTokenRequest(w, r)
	if oerr != nil {
		s.writeOAuthError(w, r, oerr)
		return
	}
	now := time.Now()
	a, oerr := s.verifyAssertion(req.assertion, now)
	if oerr == nil && req.clientID != "" && req.clientID != a.subject {
		oerr = invalidClient("client-id-mismatch", "client_id %q does not match the assertion's sub %q", req.clientID, a.subject)
	}
	if oerr != nil {
		s.writeOAuthError(w, r, oerr)
		return
	}

	var b [accessTokenBytes]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand, Go 1.24+)
	token := base64.RawURLEncoding.EncodeToString(b[:])
	s.state.issue(token, issuedToken{scope: req.scope, expires: now.Add(s.tokenLifetime)}, now)

	s.log.WithFields(logrus.Fields{
		"request_id": requestID(w),
		"client_id":  a.subject,
		"jti":        a.jti,
		"scope":      req.scope,
		"expires_in": int64(s.tokenLifetime / time.Second),
	}).Info("sandbox issued an access token")
	setNoStore(w)
	writeJSON(w, http.StatusOK, mediaJSON, tokenResponse{
		AccessToken: token,
		TokenType:   "Bearer",
		ExpiresIn:   int64(s.tokenLifetime / time.Second),
		Scope:       req.scope,
	})
}

// handlePlainToken serves the SMART "token" URL, which, as at Cerner,
// does not know Carequality certificates: every request is counted and
// refused.
func (s *Sandbox) handlePlainToken(w http.ResponseWriter, r *http.Request) {
	s.state.plainCalls.Add(1)
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		s.writeOAuthError(w, r, &oauthError{
			status: http.StatusMethodNotAllowed, code: errInvalidRequest, reason: "method-not-allowed",
			description: "the token endpoint only accepts POST",
		})
		return
	}
	s.writeOAuthError(w, r, invalidClient("carequality-assertion-at-token-url",
		"client assertions signed with a Carequality certificate must be sent to the carequality-token URL"))
}

// parseTokenRequest checks the form of a client-credentials request with a
// JWT client assertion.
func parseTokenRequest(w http.ResponseWriter, r *http.Request) (tokenRequest, *oauthError) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != mediaForm {
		return tokenRequest{}, badRequest("unsupported-media-type",
			"Content-Type must be %s, got %q", mediaForm, r.Header.Get("Content-Type"))
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxFormBytes))
	if err != nil {
		return tokenRequest{}, badRequest("malformed-form", "reading the request body: %v", err)
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return tokenRequest{}, badRequest("malformed-form", "the request body is not a valid form: %v", err)
	}
	for name, values := range form {
		if len(values) > 1 {
			return tokenRequest{}, badRequest("duplicate-parameter", "parameter %s is repeated", name)
		}
	}

	switch gt := form.Get("grant_type"); gt {
	case grantClientCredentials:
	case "":
		return tokenRequest{}, badRequest("missing-grant-type", "grant_type is required")
	default:
		return tokenRequest{}, &oauthError{
			status: http.StatusBadRequest, code: errUnsupportedGrantType, reason: "unsupported-grant-type",
			description: fmt.Sprintf("grant_type %q is not supported; use %s", gt, grantClientCredentials),
		}
	}
	switch at := form.Get("client_assertion_type"); at {
	case clientAssertionJWT:
	case "":
		return tokenRequest{}, badRequest("missing-client-assertion-type", "client_assertion_type is required")
	default:
		return tokenRequest{}, badRequest("unsupported-client-assertion-type",
			"client_assertion_type %q is not supported; use %s", at, clientAssertionJWT)
	}
	req := tokenRequest{
		scope:     form.Get("scope"),
		assertion: form.Get("client_assertion"),
		clientID:  form.Get("client_id"),
	}
	if req.assertion == "" {
		return tokenRequest{}, badRequest("missing-client-assertion", "client_assertion is required")
	}
	if req.scope == "" {
		return tokenRequest{}, badRequest("missing-scope", "scope is required")
	}
	return req, nil
}

// writeOAuthError answers with an RFC 6749 error whose error_uri names the
// reason and the request, and logs why.
func (s *Sandbox) writeOAuthError(w http.ResponseWriter, r *http.Request, e *oauthError) {
	id := requestID(w)
	s.log.WithFields(logrus.Fields{
		"request_id": id,
		"path":       r.URL.Path,
		"error":      e.code,
		"reason":     e.reason,
	}).Info("sandbox refused a token request: " + e.description)
	setNoStore(w)
	writeJSON(w, e.status, mediaJSON, oauthErrorBody{
		Error:            e.code,
		ErrorDescription: e.description,
		ErrorURI:         s.errorURI(e.reason, id),
	})
}

// errorURI builds a Cerner-style error_uri:
// https://sandbox.cqgate.invalid/errors/<urn>/instances/<uuid>?client=…&tenant=….
func (s *Sandbox) errorURI(reason, instance string) string {
	q := url.Values{"client": {s.ClientID}, "tenant": {TenantID}}
	return errorURIBase + url.QueryEscape(errorURNPrefix+reason) + "/instances/" + instance + "?" + q.Encode()
}

// setNoStore forbids caching a token response (RFC 6749 §5.1).
func setNoStore(w http.ResponseWriter) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
}
