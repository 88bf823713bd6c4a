package tracing

import (
	"net/http"
	"net/textproto"
	"strings"
)

// headerCarrier is propagation.HeaderCarrier without the canonicalization
// of Trace Context's lower-case field names at every Get and Set, which
// allocates: this runs twice per request on the hot path.
type headerCarrier http.Header

func canonical(key string) string {
	switch key {
	case "traceparent":
		return "Traceparent"
	case "tracestate":
		return "Tracestate"
	}
	return textproto.CanonicalMIMEHeaderKey(key)
}

// Get returns the field's value as the one field W3C Trace Context reads
// (section 3.3.1 of Trace Context Level 1): several tracestate fields are
// combined into one list, in order (RFC 9110 section 5.3); several
// traceparent fields combine into a value its single-value grammar does
// not take, so they are none, and the trace restarts (the W3C test
// suite's test_traceparent_duplicated), its tracestate unread.
func (c headerCarrier) Get(key string) string {
	key = canonical(key)
	v := c[key]
	switch {
	case len(v) == 0:
		return ""
	case len(v) == 1:
		return v[0]
	case key == "Tracestate":
		return strings.Join(v, ",")
	case key == "Traceparent":
		return ""
	}
	return v[0]
}

func (c headerCarrier) Set(key, value string) { c[canonical(key)] = []string{value} }

// ownedHeaderCarrier sets values on a header that belongs to the request
// being sent (a copy, or the proxy's own outbound request): a value that
// is already there alone is overwritten in place, which saves an
// allocation when the caller's traceparent was copied on.
type ownedHeaderCarrier struct{ headerCarrier }

func (c ownedHeaderCarrier) Set(key, value string) {
	key = canonical(key)
	if v := c.headerCarrier[key]; len(v) == 1 {
		v[0] = value
		return
	}
	c.headerCarrier[key] = []string{value}
}

func (c headerCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}
