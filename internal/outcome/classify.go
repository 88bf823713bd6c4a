package outcome

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"

	"github.com/cqgate/cqgate/internal/failure"
)

// answer is how a Kind looks to a caller.
type answer struct {
	status int
	code   IssueType
}

// answers maps every kind to its status and issue type: the only place
// where a failure becomes an HTTP status.
var answers = [...]answer{
	failure.Internal:             {http.StatusInternalServerError, Exception},
	failure.TooLarge:             {http.StatusRequestEntityTooLarge, TooCostly},
	failure.Refused:              {http.StatusForbidden, Security},
	failure.Malformed:            {http.StatusBadRequest, Value},
	failure.Invalid:              {http.StatusBadRequest, Invalid},
	failure.Gone:                 {http.StatusGone, NotFound},
	failure.NotFound:             {http.StatusNotFound, NotFound},
	failure.UpstreamTimeout:      {http.StatusGatewayTimeout, Timeout},
	failure.Canceled:             {http.StatusBadGateway, Transient},
	failure.Unauthenticated:      {http.StatusUnauthorized, Login},
	failure.Forbidden:            {http.StatusForbidden, Forbidden},
	failure.Unsupported:          {http.StatusBadRequest, NotSupported},
	failure.UnsupportedMediaType: {http.StatusUnsupportedMediaType, NotSupported},
	failure.MethodNotAllowed:     {http.StatusMethodNotAllowed, NotSupported},
	failure.Insecure:             {http.StatusBadRequest, Security},
	failure.Required:             {http.StatusBadRequest, Required},
	failure.Throttled:            {http.StatusTooManyRequests, Throttled},
	failure.NotImplemented:       {http.StatusNotImplemented, NotSupported},
	failure.UpstreamUnsupported:  {http.StatusBadGateway, NotSupported},
	failure.UpstreamUntrusted:    {http.StatusBadGateway, Security},
	failure.UpstreamFailed:       {http.StatusBadGateway, Exception},
	failure.Misconfigured:        {http.StatusInternalServerError, Exception},
	failure.NotReady:             {http.StatusServiceUnavailable, Transient},
	failure.Unavailable:          {http.StatusServiceUnavailable, Transient},
	failure.Transport:            {http.StatusBadGateway, Exception},
}

// Classify returns the kind of err and the error in its chain that
// decided it: the strongest kind any error in the chain declares
// (failure.Classified), or that the boundary gives the standard
// library's errors (a body over its limit, a deadline, a cancellation,
// a network error). The outermost of equals decides. by is nil when
// nothing in the chain is classified.
func Classify(err error) (failure.Kind, error) {
	kind, by := failure.Internal, error(nil)
	walk(err, func(e error) {
		switch k := kindOf(e); {
		case k.Stronger(kind):
			kind, by = k, e
		case by == nil && k == failure.Internal && isClassified(e):
			// Declared internal on purpose: its message is meant for
			// the caller, unlike an error nobody classified.
			by = e
		}
	})
	return kind, by
}

func isClassified(e error) bool {
	_, ok := e.(failure.Classified)
	return ok
}

// kindOf is e's own kind, not its chain's.
func kindOf(e error) failure.Kind {
	switch e := e.(type) {
	case failure.Classified:
		return e.Kind()
	case *http.MaxBytesError:
		return failure.TooLarge
	case net.Error:
		if e.Timeout() {
			return failure.UpstreamTimeout
		}
		return failure.Transport
	}
	switch e {
	case context.DeadlineExceeded:
		return failure.UpstreamTimeout
	case context.Canceled:
		return failure.Canceled
	}
	return failure.Internal
}

// walk calls f for err and every error it wraps, outermost first.
func walk(err error, f func(error)) {
	for err != nil {
		f(err)
		switch u := err.(type) {
		case interface{ Unwrap() error }:
			err = u.Unwrap()
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				walk(e, f)
			}
			return
		default:
			return
		}
	}
}

// FromError decides the HTTP status and OperationOutcome for err. The
// diagnostics are the error's message: every cqgate package keeps secrets
// out of its errors, so the message is safe to show and is what an
// operator needs. Errors nobody classified become a 500 whose diagnostics
// do not expose internals.
func FromError(err error) (int, *OperationOutcome) {
	if err == nil {
		return http.StatusInternalServerError, New(Exception, "internal error")
	}
	kind, by := Classify(err)
	a := answers[kind]
	oo := New(a.code, diagnostics(kind, by, err))
	if ans, ok := upstreamAnswer(err); ok && kind == failure.UpstreamFailed {
		addAnswer(&oo.Issue[0], ans)
	}
	return a.status, oo
}

// diagnostics is what the caller reads about err.
func diagnostics(kind failure.Kind, by, err error) string {
	if mbe, ok := by.(*http.MaxBytesError); ok {
		// The caller's body outgrew server.max_body_bytes while it was
		// being read or streamed to the tenant.
		return fmt.Sprintf("request body larger than the %d bytes allowed (server.max_body_bytes)", mbe.Limit)
	}
	switch kind {
	case failure.Internal:
		if by == nil {
			return "internal error; see the gateway log"
		}
	case failure.Canceled:
		return "request cancelled before the upstream answered"
	case failure.Misconfigured:
		// Say exactly why rather than hide it.
		return "cqgate is misconfigured for this organization: " + err.Error()
	case failure.NotReady:
		return err.Error() + "; see /readyz"
	}
	return err.Error()
}

// upstreamAnswer is the first failure.Answer in err's chain.
func upstreamAnswer(err error) (failure.Answer, bool) {
	var ua failure.UpstreamAnswer
	if errors.As(err, &ua) {
		return ua.UpstreamAnswer(), true
	}
	return failure.Answer{}, false
}

// UpstreamRequestID returns the X-Request-Id an upstream token endpoint
// answered with, if err carries one.
func UpstreamRequestID(err error) string {
	ans, _ := upstreamAnswer(err)
	return ans.RequestID
}

// addAnswer keeps a token endpoint's OAuth error in the issue: error and
// error_description as details, everything in the upstream-oauth-error
// extension.
func addAnswer(is *Issue, a failure.Answer) {
	if a.OAuthError != "" {
		is.Details = &CodeableConcept{
			Coding: []Coding{{System: "urn:ietf:rfc:6749", Code: a.OAuthError}},
			Text:   a.OAuthDescription,
		}
	}
	var sub []Extension
	add := func(url string, e Extension) {
		e.URL = url
		sub = append(sub, e)
	}
	if a.OAuthError != "" {
		add("error", Extension{ValueCode: a.OAuthError})
	}
	if a.OAuthDescription != "" {
		add("error_description", Extension{ValueString: a.OAuthDescription})
	}
	if a.OAuthURI != "" {
		add("error_uri", Extension{ValueURI: a.OAuthURI})
	}
	if a.RequestID != "" {
		add("x-request-id", Extension{ValueString: a.RequestID})
	}
	if a.StatusCode != 0 {
		add("http-status", Extension{ValueInt: a.StatusCode})
	}
	if a.URL != "" {
		add("token-url", Extension{ValueURI: a.URL})
	}
	if len(sub) > 0 {
		is.Extension = []Extension{{URL: OAuthErrorExtensionURL, Extension: sub}}
	}
}
