package failure

import (
	"fmt"
	"time"
)

// Kind is what went wrong, as the caller should learn it. Kinds are
// listed strongest first: when several errors in one chain classify
// themselves, the strongest decides (a timeout found anywhere beats the
// "partner failed" it is wrapped in), and between equals the outermost.
type Kind uint8

// The kinds. Internal, the zero Kind, is an error nobody classified: the
// caller learns nothing of it.
const (
	Internal Kind = iota

	// TooLarge: the caller's request body is larger than allowed.
	TooLarge
	// Refused: cqgate will not connect to that address (SSRF guard).
	Refused
	// Malformed: a value the caller sent (an OID) is not well-formed.
	Malformed
	// Invalid: the caller's request is not valid (path, query, search).
	Invalid
	// Gone: something cqgate handed out (a bulk download link) was
	// genuine but is no longer valid. Stronger than NotFound, so a
	// refusal that wraps it as "not found" still says "gone".
	Gone
	// NotFound: nobody knows the organization.
	NotFound
	// UpstreamTimeout: an upstream did not answer in time.
	UpstreamTimeout
	// Canceled: the request was cancelled before the upstream answered.
	Canceled
	// Unauthenticated: the caller did not authenticate.
	Unauthenticated
	// Forbidden: the caller's policy or the organization's settings do
	// not allow what the caller asked for.
	Forbidden
	// Unsupported: the caller asked for something cqgate does not do
	// (a method override, a purpose of use without UDAP).
	Unsupported
	// UnsupportedMediaType: a body cqgate must read but cannot (an XML
	// or content-encoded Bundle from a caller whose methods are
	// restricted).
	UnsupportedMediaType
	// MethodNotAllowed: a method cqgate never forwards.
	MethodNotAllowed
	// Insecure: the request would carry a credential where it must not.
	Insecure
	// Required: something the request must have is missing.
	Required
	// Throttled: the caller is over a limit cqgate keeps (rate, token
	// contexts); see RetryAfter.
	Throttled
	// NotImplemented: a feature that is off in this configuration.
	NotImplemented
	// UpstreamUnsupported: the partner does not offer what is needed
	// (no FHIR REST endpoint).
	UpstreamUnsupported
	// UpstreamUntrusted: the partner advertised an endpoint of another
	// party, or an address cqgate will not send a token to.
	UpstreamUntrusted
	// UpstreamFailed: the directory, discovery, Vault, a registration or
	// a token endpoint failed or answered something unusable.
	UpstreamFailed
	// Misconfigured: cqgate's own configuration cannot work for the
	// organization; the caller is told why.
	Misconfigured
	// NotReady: cqgate cannot sign yet (see /readyz).
	NotReady
	// Unavailable: try again later (a partner refusing fresh tokens
	// within the minimum interval); see RetryAfter.
	Unavailable
	// Transport: a call to an upstream failed in transit. The weakest
	// kind: anything more specific in the chain decides.
	Transport

	numKinds
)

var names = [numKinds]string{
	"internal", "too-large", "refused", "malformed", "invalid", "gone", "not-found", "upstream-timeout", "canceled",
	"unauthenticated", "forbidden", "unsupported", "unsupported-media-type", "method-not-allowed", "insecure", "required", "throttled",
	"not-implemented", "upstream-unsupported", "upstream-untrusted", "upstream-failed", "misconfigured",
	"not-ready", "unavailable", "transport",
}

func (k Kind) String() string {
	if k < numKinds {
		return names[k]
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Stronger reports whether k decides over o when both are in a chain.
func (k Kind) Stronger(o Kind) bool {
	return k != Internal && (o == Internal || k < o)
}

// Classified is an error that knows its Kind.
type Classified interface {
	error
	Kind() Kind
}

// RetryAfter is implemented by failures that know when asking again
// makes sense.
type RetryAfter interface {
	RetryAfter() time.Duration
}

// Answer is what an upstream (a token endpoint) answered, kept verbatim
// for operators: RFC 6749 error fields, the upstream's X-Request-Id.
type Answer struct {
	// URL is the endpoint that was called.
	URL string
	// StatusCode is the HTTP status, 0 when no response was received.
	StatusCode int
	// RequestID is the upstream's X-Request-Id.
	RequestID string
	// OAuthError, OAuthDescription and OAuthURI are the RFC 6749 error,
	// error_description and error_uri fields.
	OAuthError, OAuthDescription, OAuthURI string
}

// UpstreamAnswer is implemented by failures that carry an Answer.
type UpstreamAnswer interface {
	UpstreamAnswer() Answer
}

// Error is an error with a Kind, made by Errorf.
type Error struct {
	kind Kind
	err  error
}

// Errorf returns an error of kind whose message is formatted like
// fmt.Errorf (so %w works).
func Errorf(kind Kind, format string, args ...any) *Error {
	return &Error{kind: kind, err: fmt.Errorf(format, args...)}
}

func (e *Error) Error() string { return e.err.Error() }
func (e *Error) Unwrap() error { return e.err }
func (e *Error) Kind() Kind    { return e.kind }

// New returns a sentinel error of kind, for errors.Is.
func New(kind Kind, msg string) error { return &sentinel{kind: kind, msg: msg} }

type sentinel struct {
	kind Kind
	msg  string
}

func (s *sentinel) Error() string { return s.msg }
func (s *sentinel) Kind() Kind    { return s.kind }

var (
	_ Classified = (*Error)(nil)
	_ Classified = (*sentinel)(nil)
)
