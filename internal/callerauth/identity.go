package callerauth

import (
	"errors"
	"net/http"

	"github.com/cqgate/cqgate/internal/failure"
)

// Authentication methods, as found in Identity.Method and in the
// configuration's inbound.auth.
const (
	MethodNone   = "none"
	MethodAPIKey = "api_key"
	MethodMTLS   = "mtls"
)

// AnonymousCaller is the caller name None gives every request.
const AnonymousCaller = "anonymous"

// Errors wrapped by every authentication failure. Both deserve a 401.
var (
	// ErrUnauthenticated: the request carries no credentials.
	ErrUnauthenticated = failure.New(failure.Unauthenticated, "callerauth: unauthenticated")
	// ErrBadCredentials: the request carries credentials that are
	// malformed or that no configured caller owns.
	ErrBadCredentials = failure.New(failure.Unauthenticated, "callerauth: invalid credentials")
)

// Identity is an authenticated caller.
type Identity struct {
	// Name is the caller's name, the key of its rule in the policy
	// ("billing-svc", "spiffe://cluster.local/ns/billing/sa/billing").
	Name string
	// Method is how the caller authenticated: MethodNone, MethodAPIKey or
	// MethodMTLS.
	Method string
	// Subject says which credential was used, for logs and the audit
	// trail: the client certificate's subject, or "sha256:" and the first
	// 12 hex digits of the API key's hash. It never holds a key.
	Subject string
}

// String returns the caller's name and method, e.g. "billing-svc (api_key)".
func (id *Identity) String() string {
	if id == nil {
		return "<nil>"
	}
	return id.Name + " (" + id.Method + ")"
}

// Authenticator finds out who sent a request.
type Authenticator interface {
	// Authenticate returns the caller's identity (which may be shared
	// between requests: it is never modified), or an error that wraps
	// ErrUnauthenticated or ErrBadCredentials (any other error is the
	// authenticator's own failure and deserves a 500).
	Authenticate(r *http.Request) (*Identity, error)
}

// AuthError is the error an Authenticator returns for a request it
// refuses. It wraps ErrUnauthenticated or ErrBadCredentials and carries
// only fixed, credential-free text.
type AuthError struct {
	// Method is the authentication method that refused the request.
	Method string
	// Reason is a short, safe explanation for the caller, e.g. "no
	// Authorization or X-API-Key header".
	Reason string
	// Err is ErrUnauthenticated or ErrBadCredentials.
	Err error
}

// Error returns e.g. "callerauth: invalid credentials: api_key: unknown key".
func (e *AuthError) Error() string {
	return e.Err.Error() + ": " + e.Method + ": " + e.Reason
}

// Unwrap returns ErrUnauthenticated or ErrBadCredentials.
func (e *AuthError) Unwrap() error { return e.Err }

// Challenge returns the WWW-Authenticate value to send with the 401 for
// an authentication failure, or "" when err is not one.
//
// API keys are challenged as RFC 6750 bearer tokens (with
// error="invalid_token" when a key was presented but refused). Client
// certificates have no HTTP authentication scheme; for them the value is
// `TLS-Client-Certificate realm="cqgate"`, which tells a person reading
// the response what is missing.
func Challenge(err error) string {
	var ae *AuthError
	if !errors.As(err, &ae) {
		return ""
	}
	switch ae.Method {
	case MethodMTLS:
		return `TLS-Client-Certificate realm="cqgate"`
	default:
		if errors.Is(ae.Err, ErrBadCredentials) {
			return `Bearer realm="cqgate", error="invalid_token"`
		}
		return `Bearer realm="cqgate"`
	}
}

// None authenticates every request as the caller "anonymous". Use it only
// where CheckListen allows it.
type None struct{}

var _ Authenticator = None{}

// Authenticate returns the identity "anonymous".
func (None) Authenticate(*http.Request) (*Identity, error) {
	return &Identity{Name: AnonymousCaller, Method: MethodNone, Subject: AnonymousCaller}, nil
}
