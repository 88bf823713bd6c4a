package directory

import (
	"net/url"
	"strings"
)

// connectionTypeFHIR is the Endpoint.connectionType code of a FHIR REST
// endpoint.
const connectionTypeFHIR = "hl7-fhir-rest"

// FHIREndpoint returns the organization's FHIR REST base: an endpoint
// whose Transaction is "FHIR REST" (also "FHIR-REST" or "FHIR", any case)
// or whose ConnectionType is "hl7-fhir-rest". IHE endpoints (an "ihe-*"
// connection type, an XCPD/XCA/ITI transaction) are never returned, nor
// endpoints whose status is "off", "error" or "entered-in-error", nor
// ones whose address is not an absolute http(s) URL. Among the rest an R4
// endpoint (Version "4.0.1", "4.0", "R4", ...) is preferred over others
// (e.g. "DSTU2", "1.0.2", "3.0.1"), then the first in document order.
func (o *Organization) FHIREndpoint() (Endpoint, bool) {
	if o == nil {
		return Endpoint{}, false
	}
	first := -1
	for i := range o.Endpoints {
		ep := &o.Endpoints[i]
		if !isFHIREndpoint(ep) {
			continue
		}
		if isR4(ep.Version) {
			return *ep, true
		}
		if first < 0 {
			first = i
		}
	}
	if first < 0 {
		return Endpoint{}, false
	}
	return o.Endpoints[first], true
}

// isFHIREndpoint reports whether ep is a usable FHIR REST endpoint.
func isFHIREndpoint(ep *Endpoint) bool {
	ct := strings.ToLower(strings.TrimSpace(ep.ConnectionType))
	tx := normalizeTransaction(ep.Transaction)
	if strings.HasPrefix(ct, "ihe-") || isIHETransaction(tx) {
		return false
	}
	switch strings.ToLower(strings.TrimSpace(ep.Status)) {
	case "off", "error", "entered-in-error":
		return false
	}
	if tx != "FHIR REST" && tx != "FHIR" && ct != connectionTypeFHIR {
		return false
	}
	return isHTTPURL(ep.Address)
}

// normalizeTransaction upper-cases a transaction and turns '-' and '_'
// into single spaces: "fhir-rest" -> "FHIR REST".
func normalizeTransaction(s string) string {
	s = strings.Map(func(r rune) rune {
		if r == '-' || r == '_' {
			return ' '
		}
		return r
	}, strings.ToUpper(s))
	return strings.Join(strings.Fields(s), " ")
}

// isIHETransaction reports whether a normalized transaction names an IHE
// SOAP transaction such as "XCPD ITI 55" or "XCA ITI 38".
func isIHETransaction(tx string) bool {
	for _, w := range strings.Fields(tx) {
		switch w {
		case "XCPD", "XCA", "XDR", "XDS", "ITI", "IHE":
			return true
		}
	}
	return false
}

// isR4 reports whether a FHIR version names R4: "4.0", "4.0.x" or "R4".
func isR4(v string) bool {
	v = strings.TrimSpace(v)
	return strings.EqualFold(v, "R4") || v == "4.0" || strings.HasPrefix(v, "4.0.")
}

// isHTTPURL reports whether s is an absolute http or https URL with a
// host.
func isHTTPURL(s string) bool {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return false
	}
	return u.Scheme == "http" || u.Scheme == "https"
}
