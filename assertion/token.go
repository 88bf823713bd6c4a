package assertion

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cqgate/cqgate/internal/callerauth"
)

// Token is an access token issued by a token endpoint.
type Token struct {
	// AccessToken is the bearer token itself. It is a secret: never log
	// it, never put it in an error.
	AccessToken string
	// TokenType is the token_type the server returned, e.g. "Bearer".
	TokenType string
	// Scope is the scope the server granted (it may differ from the one
	// requested); empty when the server did not say.
	Scope string
	// ExpiresIn is the lifetime the server announced, zero if none.
	ExpiresIn time.Duration
	// Expiry is when the token expires: the time of issue plus ExpiresIn,
	// or the zero time when the server gave no expires_in.
	Expiry time.Time

	// pre holds what is built once for the tokens a Cache hands out
	// (prebuild); a pointer, so that Tokens stay comparable.
	pre *prebuilt
}

// prebuilt is what a token a Cache hands out carries for every request
// sent with it: its Authorization header value (Authorization) and its
// parsed grant (Covers).
type prebuilt struct {
	authorization [1]string
	grant         atomic.Pointer[callerauth.Grant]
}

// prebuild builds the token's prebuilt values, before it is shared.
func (t *Token) prebuild() {
	t.pre = &prebuilt{authorization: [1]string{"Bearer " + t.AccessToken}}
}

// Authorization returns the token's Authorization header value
// ("Bearer " + AccessToken) as a one-element header value slice. A
// token handed out by a Cache carries it prebuilt, so that a request
// sent with a cached token builds neither the string nor the slice: the
// slice is shared by every request sent with the token, and must be set
// as a header value as it is, never changed in place (header values on
// outbound requests are replaced, not edited). It is a secret, as
// AccessToken is.
func (t *Token) Authorization() []string {
	if t.pre != nil {
		return t.pre.authorization[:]
	}
	return []string{"Bearer " + t.AccessToken}
}

// String describes the token without revealing it.
func (t *Token) String() string {
	if t == nil {
		return "<nil token>"
	}
	return fmt.Sprintf("token(type=%s scope=%q expiry=%s)", t.TokenType, t.Scope, t.Expiry.UTC().Format(time.RFC3339))
}

// Format makes every fmt verb (%v, %+v, %#v, %s, %q, ...) print the
// String description, so that a Token value or pointer that ends up in a
// log line or a %+v of an enclosing struct never reveals AccessToken.
func (t Token) Format(f fmt.State, _ rune) {
	_, _ = io.WriteString(f, t.String())
}

// LogValue keeps AccessToken out of structured logs (log/slog).
func (t Token) LogValue() slog.Value {
	attrs := []slog.Attr{slog.String("type", t.TokenType), slog.String("scope", t.Scope)}
	if !t.Expiry.IsZero() {
		attrs = append(attrs, slog.Time("expiry", t.Expiry))
	}
	return slog.GroupValue(attrs...)
}

// ErrTokenType is matched (errors.Is) by a RetrieveError whose token
// response carried no token_type or one other than Bearer (compared
// case-insensitively): cqgate only sends bearer tokens.
var ErrTokenType = errors.New("assertion: token type not supported")

// tokenTypeError is the token_type a token response carried (redacted),
// "" for none.
type tokenTypeError string

func (e tokenTypeError) Error() string {
	if e == "" {
		return "the token response has no token_type (RFC 6749 §5.1 requires one); cqgate sends only Bearer tokens"
	}
	return fmt.Sprintf("the token endpoint issued a token of type %q; cqgate sends only Bearer tokens (DPoP-bound and other token types are not supported)", string(e))
}

func (e tokenTypeError) Is(target error) bool { return target == ErrTokenType }

// RetrieveError is a failed token exchange. When the token endpoint
// answered with an RFC 6749 §5.2 error response, its fields are kept
// verbatim so that an operator can trace the failure upstream.
type RetrieveError struct {
	// TokenURL is the endpoint that was called.
	TokenURL string
	// StatusCode is the HTTP status of the token response, 0 when no
	// response was received.
	StatusCode int
	// ErrorCode, ErrorDescription and ErrorURI are the RFC 6749 error,
	// error_description and error_uri fields.
	ErrorCode        string
	ErrorDescription string
	ErrorURI         string
	// RequestID is the upstream's X-Request-Id response header.
	RequestID string
	// RetryIn is the wait the token endpoint asked for (its Retry-After),
	// 0 when it named none.
	RetryIn time.Duration
	// Err is the underlying transport or decoding error, if any.
	Err error
}

// RetryAfter is the token endpoint's Retry-After, for the caller's
// answer (failure.RetryAfter).
func (e *RetrieveError) RetryAfter() time.Duration { return e.RetryIn }

func (e *RetrieveError) Error() string {
	var b strings.Builder
	b.WriteString("assertion: token exchange with ")
	b.WriteString(e.TokenURL)
	b.WriteString(" failed")
	if e.StatusCode != 0 {
		fmt.Fprintf(&b, ": HTTP %d", e.StatusCode)
	}
	if e.ErrorCode != "" {
		fmt.Fprintf(&b, ": %s", e.ErrorCode)
	}
	if e.ErrorDescription != "" {
		fmt.Fprintf(&b, " (%s)", e.ErrorDescription)
	}
	if e.ErrorURI != "" {
		fmt.Fprintf(&b, " error_uri=%s", e.ErrorURI)
	}
	if e.RequestID != "" {
		fmt.Fprintf(&b, " X-Request-Id=%s", e.RequestID)
	}
	if e.Err != nil {
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	return b.String()
}

func (e *RetrieveError) Unwrap() error { return e.Err }
