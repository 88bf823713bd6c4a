package outcome

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"

	"github.com/cqgate/cqgate/assertion"
	"github.com/cqgate/cqgate/directory"
	"github.com/cqgate/cqgate/discovery"
	"github.com/cqgate/cqgate/internal/egress"
)

// Error is an error that already knows its HTTP status and issue type.
// Packages return it where they, not the classifier, know best how the
// failure should look to a caller.
type Error struct {
	Status int
	Code   IssueType
	Err    error
}

// Errorf returns an *Error whose message is formatted like fmt.Errorf
// (so %w works).
func Errorf(status int, code IssueType, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Err: fmt.Errorf(format, args...)}
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// FromError decides the HTTP status and OperationOutcome for err. The
// diagnostics are the error's message: every cqgate package keeps secrets
// out of its errors, so the message is safe to show and is what an
// operator needs. Errors nobody classified become a 500 whose diagnostics
// do not expose internals.
func FromError(err error) (int, *OperationOutcome) {
	if err == nil {
		return http.StatusInternalServerError, New(Exception, "internal error")
	}
	var (
		oe  *Error
		re  *assertion.RetrieveError
		ae  *assertion.AlgorithmError
		mbe *http.MaxBytesError
	)
	switch {
	case errors.As(err, &mbe):
		// The caller's body outgrew server.max_body_bytes while it was
		// being read or streamed to the tenant.
		return http.StatusRequestEntityTooLarge, New(TooCostly,
			fmt.Sprintf("request body larger than the %d bytes allowed (server.max_body_bytes)", mbe.Limit))
	case errors.Is(err, egress.ErrRefused):
		// An address the organization may not be reached at (SSRF),
		// found when connecting, however deep the refusal is wrapped.
		return http.StatusForbidden, New(Security, err.Error())
	case errors.Is(err, directory.ErrInvalidOID):
		return http.StatusBadRequest, New(Value, err.Error())
	case errors.Is(err, directory.ErrInvalidQuery):
		return http.StatusBadRequest, New(Invalid, err.Error())
	case errors.Is(err, directory.ErrNotFound):
		return http.StatusNotFound, New(NotFound, err.Error())
	case isTimeout(err):
		return http.StatusGatewayTimeout, New(Timeout, err.Error())
	case errors.Is(err, context.Canceled):
		return http.StatusBadGateway, New(Transient, "request cancelled before the upstream answered")
	case errors.As(err, &re):
		return http.StatusBadGateway, retrieveOutcome(err, re)
	case errors.As(err, &oe):
		return oe.Status, New(oe.Code, err.Error())
	case errors.As(err, &ae):
		// The gateway's own configuration cannot work for this
		// organization; say exactly why rather than hide it.
		return http.StatusInternalServerError, New(Exception, "cqgate is misconfigured for this organization: "+err.Error())
	case errors.Is(err, assertion.ErrThrottled):
		// A storm of refusals inside the minimum interval between
		// exchanges: try again later (WriteError adds Retry-After).
		return http.StatusServiceUnavailable, New(Transient, err.Error())
	case errors.Is(err, assertion.ErrTooManyContexts):
		// A caller varying scopes or purposes of use beyond the cap of
		// token contexts per organization (WriteError adds Retry-After).
		return http.StatusTooManyRequests, New(Throttled, err.Error())
	case errors.Is(err, assertion.ErrNoKey):
		return http.StatusServiceUnavailable, New(Transient, err.Error()+"; see /readyz")
	case isUpstream(err):
		return http.StatusBadGateway, New(Exception, err.Error())
	default:
		return http.StatusInternalServerError, New(Exception, "internal error; see the gateway log")
	}
}

func retrieveOutcome(err error, re *assertion.RetrieveError) *OperationOutcome {
	oo := New(Exception, err.Error())
	if re.ErrorCode != "" {
		oo.Issue[0].Details = &CodeableConcept{
			Coding: []Coding{{System: "urn:ietf:rfc:6749", Code: re.ErrorCode}},
			Text:   re.ErrorDescription,
		}
	}
	if ext := oauthExtension(re); ext != nil {
		oo.Issue[0].Extension = []Extension{*ext}
	}
	return oo
}

// UpstreamRequestID returns the X-Request-Id an upstream token endpoint
// answered with, if err carries one.
func UpstreamRequestID(err error) string {
	var re *assertion.RetrieveError
	if errors.As(err, &re) {
		return re.RequestID
	}
	return ""
}

func oauthExtension(re *assertion.RetrieveError) *Extension {
	var sub []Extension
	add := func(url string, e Extension) {
		e.URL = url
		sub = append(sub, e)
	}
	if re.ErrorCode != "" {
		add("error", Extension{ValueCode: re.ErrorCode})
	}
	if re.ErrorDescription != "" {
		add("error_description", Extension{ValueString: re.ErrorDescription})
	}
	if re.ErrorURI != "" {
		add("error_uri", Extension{ValueURI: re.ErrorURI})
	}
	if re.RequestID != "" {
		add("x-request-id", Extension{ValueString: re.RequestID})
	}
	if re.StatusCode != 0 {
		add("http-status", Extension{ValueInt: re.StatusCode})
	}
	if re.TokenURL != "" {
		add("token-url", Extension{ValueURI: re.TokenURL})
	}
	if len(sub) == 0 {
		return nil
	}
	return &Extension{URL: OAuthErrorExtensionURL, Extension: sub}
}

func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// upstreamError is implemented by errors that describe a failed call to
// an upstream service, such as proxy.UpstreamError.
type upstreamError interface{ Upstream() bool }

func isUpstream(err error) bool {
	var (
		ue upstreamError
		de *directory.Error
		xe *discovery.Error
		ne net.Error
	)
	return (errors.As(err, &ue) && ue.Upstream()) || errors.As(err, &de) || errors.As(err, &xe) || errors.As(err, &ne)
}
