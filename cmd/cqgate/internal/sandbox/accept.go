package sandbox

import (
	"mime"
	"net/http"
	"strconv"
	"strings"
)

// isJSONMediaType reports whether mt names FHIR JSON explicitly;
// "application/json+fhir" is the DSTU2 spelling some clients still send.
func isJSONMediaType(mt string) bool {
	switch mt {
	case mediaFHIRJSON, mediaJSON, "application/json+fhir":
		return true
	}
	return false
}

// isJSONFormat reports whether a _format value selects JSON; FHIR lets
// _format override the Accept header.
func isJSONFormat(f string) bool {
	f = strings.ToLower(strings.TrimSpace(f))
	return f == "json" || isJSONMediaType(f)
}

// negotiation says how demanding an endpoint is about Accept.
type negotiation int

const (
	// lenient serves JSON unless the client asks only for something else
	// (a missing Accept or "*/*" is fine).
	lenient negotiation = iota
	// explicit requires an Accept (or _format) that names JSON, as
	// Cerner's FHIR servers do: "*/*" or no Accept at all gets 406.
	explicit
)

// acceptsJSON reports whether the request may be answered with FHIR JSON
// under mode n.
func acceptsJSON(r *http.Request, n negotiation) bool {
	if f := r.URL.Query().Get("_format"); f != "" {
		return isJSONFormat(f)
	}
	values := r.Header.Values("Accept")
	if len(values) == 0 {
		return n == lenient
	}
	for _, v := range values {
		for _, part := range strings.Split(v, ",") {
			mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
			if err != nil || !positiveQ(params["q"]) {
				continue
			}
			if isJSONMediaType(mt) {
				return true
			}
			if n == lenient && (mt == "*/*" || mt == "application/*") {
				return true
			}
		}
	}
	return false
}

// positiveQ reports whether a media range's q parameter leaves it
// acceptable: absent, or a number above zero.
func positiveQ(q string) bool {
	if q == "" {
		return true
	}
	f, err := strconv.ParseFloat(q, 64)
	return err == nil && f > 0
}

// writeNotAcceptable answers 406 with an OperationOutcome.
func writeNotAcceptable(w http.ResponseWriter, n negotiation) {
	msg := "the sandbox only serves FHIR JSON; send Accept: application/fhir+json"
	if n == explicit {
		msg = "an explicit Accept header naming JSON is required (application/fhir+json or application/json; */* is not enough), or _format=json"
	}
	writeOutcome(w, http.StatusNotAcceptable, issueNotSupported, msg)
}
