package discovery

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// Error is a failed document request: a transport failure (StatusCode
// 0), an unexpected HTTP status, or a 2xx answer that cannot be used (too
// large, not the expected JSON document, no absolute http(s) token URL,
// signed_metadata that does not verify).
type Error struct {
	// URL is the document's URL.
	URL string
	// StatusCode is the HTTP status, 0 when no response was received.
	StatusCode int
	// Err is the cause: for transport failures the *url.Error from
	// net/http, so that timeouts remain detectable with
	// errors.Is(err, context.DeadlineExceeded) or a net.Error's Timeout
	// method; otherwise a description of what was wrong with the
	// response.
	Err error
}

func (e *Error) Error() string {
	return "discovery: GET " + e.URL + ": " + e.reason()
}

// reason is Error's message without the package prefix and URL.
func (e *Error) reason() string {
	var b strings.Builder
	if e.StatusCode != 0 {
		fmt.Fprintf(&b, "HTTP %d", e.StatusCode)
	}
	if e.Err != nil {
		cause := e.Err
		var ue *url.Error
		if errors.As(cause, &ue) && ue.Err != nil {
			cause = ue.Err // its own message repeats method and URL
		}
		if b.Len() > 0 {
			b.WriteString(": ")
		}
		b.WriteString(cause.Error())
	}
	if b.Len() == 0 {
		return "failed"
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Upstream reports that the failure lies with the FHIR server, not with
// the caller or the gateway.
func (e *Error) Upstream() bool { return true }

// NoTokenURLError is Discover's error when no source in the order yielded
// a usable token URL. Attempts says, source by source, why.
type NoTokenURLError struct {
	// FHIRBase is the FHIR base URL discovered, without trailing slashes.
	FHIRBase string
	// Attempts has one entry per source tried, in order.
	Attempts []Attempt
}

func (e *NoTokenURLError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "discovery: no token URL for %s:", e.FHIRBase)
	for i, a := range e.Attempts {
		if i > 0 {
			b.WriteString(";")
		}
		b.WriteString(" ")
		b.WriteString(a.String())
	}
	if len(e.Attempts) == 0 {
		b.WriteString(" no source tried")
	}
	return b.String()
}

// Unwrap returns the attempts' errors, so that errors.As finds an *Error
// and errors.Is a timeout among them.
func (e *NoTokenURLError) Unwrap() []error {
	var errs []error
	for _, a := range e.Attempts {
		if a.Err != nil {
			errs = append(errs, a.Err)
		}
	}
	return errs
}

// Upstream reports that the failure lies with the FHIR server: it
// advertises no usable token URL, or its documents could not be read.
func (e *NoTokenURLError) Upstream() bool { return true }
