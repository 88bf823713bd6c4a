package directory

import (
	"net/url"
	"strings"
	"unique"
)

// connectionTypeFHIR is the Endpoint.connectionType code of a FHIR REST
// endpoint.
const connectionTypeFHIR = "hl7-fhir-rest"

// FHIR version families, the values of Endpoint.FHIRVersion.
const (
	FHIRDSTU2 = "DSTU2" // 1.0.x
	FHIRSTU3  = "STU3"  // 3.0.x
	FHIRR4    = "R4"    // 4.0.x
	FHIRR4B   = "R4B"   // 4.3.x
	FHIRR5    = "R5"    // 5.0.x
)

// DefaultFHIRVersions is the endpoint preference FHIREndpoint uses: R4,
// then STU3, then DSTU2. It returns a new slice on each call.
func DefaultFHIRVersions() []string {
	return []string{FHIRR4, FHIRSTU3, FHIRDSTU2}
}

// FHIRFamily names the FHIR version family of a version string as
// directories write it: "4.0.1", "4.0" or "R4" is FHIRR4; "3.0.2", "3.0",
// "STU3" or "R3" is FHIRSTU3; "1.0.2", "1.0", "DSTU2" or "R2" is
// FHIRDSTU2; 4.3.x/R4B and 5.0.x/R5 are FHIRR4B and FHIRR5. Case and
// surrounding space are ignored, as is a leading "v" before a number. It
// returns "" for anything else.
func FHIRFamily(version string) string {
	v := strings.ToUpper(strings.TrimSpace(version))
	if len(v) > 1 && v[0] == 'V' && v[1] >= '0' && v[1] <= '9' {
		v = v[1:]
	}
	for _, f := range []struct{ family, number, label string }{
		{FHIRR4, "4.0", "R4"},
		{FHIRR4B, "4.3", "R4B"},
		{FHIRR5, "5.0", "R5"},
		{FHIRSTU3, "3.0", "STU3"},
		{FHIRDSTU2, "1.0", "DSTU2"},
	} {
		if v == f.number || strings.HasPrefix(v, f.number+".") || strings.HasPrefix(v, f.number+"-") || v == f.label {
			return f.family
		}
	}
	switch v {
	case "R3":
		return FHIRSTU3
	case "R2":
		return FHIRDSTU2
	}
	return ""
}

// FHIREndpoint returns the organization's FHIR REST base by
// FHIREndpointFor(DefaultFHIRVersions()).
func (o *Organization) FHIREndpoint() (Endpoint, bool) {
	return o.FHIREndpointFor(nil)
}

// FHIREndpointFor returns the organization's FHIR REST base: an endpoint
// whose Transaction is "FHIR REST" (also "FHIR-REST" or "FHIR", any case)
// or whose ConnectionType is "hl7-fhir-rest". IHE endpoints (an "ihe-*"
// connection type, an XCPD/XCA/ITI transaction) are never returned, nor
// endpoints whose status is "off", "error" or "entered-in-error", nor
// ones whose address is not an absolute http(s) URL.
//
// Among the rest it prefers, in this order: the endpoint whose version
// family (FHIRFamily of Version) comes first in prefs; then one whose
// status is "active", then one without a status, then the others (such
// as "suspended" or "test"); then the first in document order. prefs
// holds family names ("R4", "STU3", "DSTU2", "R4B", "R5") or version
// strings ("4.0.1"), matched by family; nil or empty means
// DefaultFHIRVersions. Endpoints of a family not in prefs come after
// those in it, and endpoints whose version is unknown come last.
func (o *Organization) FHIREndpointFor(prefs []string) (Endpoint, bool) {
	if ep := o.FHIREndpointRef(prefs); ep != nil {
		return *ep, true
	}
	return Endpoint{}, false
}

// FHIREndpointRef is FHIREndpointFor without the copy: the chosen
// endpoint in o.Endpoints, or nil. It is shared with o (and so with the
// directory cache): do not modify it.
func (o *Organization) FHIREndpointRef(prefs []string) *Endpoint {
	if o == nil {
		return nil
	}
	i := chooseFHIR(len(o.Endpoints), func(i int) Endpoint { return o.Endpoints[i] }, prefs)
	if i < 0 {
		return nil
	}
	return &o.Endpoints[i]
}

// chooseFHIR returns the index of the endpoint FHIREndpointFor chooses
// among n endpoints, at(i) being the i-th, or -1 when none is usable.
func chooseFHIR(n int, at func(int) Endpoint, prefs []string) int {
	if len(prefs) == 0 {
		prefs = DefaultFHIRVersions()
	}
	rankOf := make(map[string]int, len(prefs))
	for _, p := range prefs {
		f := FHIRFamily(p)
		if _, seen := rankOf[f]; f != "" && !seen {
			rankOf[f] = len(rankOf)
		}
	}
	best, bestRank := -1, [2]int{}
	for i := range n {
		ep := at(i)
		if !isFHIREndpoint(&ep) {
			continue
		}
		r := [2]int{versionRank(ep.Version, rankOf), statusRank(ep.Status)}
		if best < 0 || r[0] < bestRank[0] || (r[0] == bestRank[0] && r[1] < bestRank[1]) {
			best, bestRank = i, r
		}
	}
	return best
}

// versionRank orders a version: preferred families by their place in
// rankOf, then other known families, then unknown versions.
func versionRank(version string, rankOf map[string]int) int {
	f := FHIRFamily(version)
	if r, ok := rankOf[f]; ok {
		return r
	}
	if f != "" {
		return len(rankOf)
	}
	return len(rankOf) + 1
}

// statusRank orders an Endpoint.status: active, absent, anything else.
func statusRank(status string) int {
	switch strings.ToLower(strings.TrimSpace(status)) {
	case "active":
		return 0
	case "":
		return 1
	}
	return 2
}

// isFHIREndpoint reports whether ep is a usable FHIR REST endpoint.
func isFHIREndpoint(ep *Endpoint) bool {
	if !isFHIRKind(ep) {
		return false
	}
	switch strings.ToLower(strings.TrimSpace(ep.Status)) {
	case "off", "error", "entered-in-error":
		return false
	}
	return isHTTPURL(ep.Address)
}

// isFHIRKind reports whether ep describes a FHIR REST endpoint, usable or
// not: a FHIR transaction or connection type, and nothing IHE.
func isFHIRKind(ep *Endpoint) bool {
	ct := strings.ToLower(strings.TrimSpace(ep.ConnectionType))
	tx := normalizeTransaction(ep.Transaction)
	if strings.HasPrefix(ct, "ihe-") || isIHETransaction(tx) {
		return false
	}
	return tx == "FHIR REST" || tx == "FHIR" || ct == connectionTypeFHIR
}

// withFHIRVersions returns eps with FHIRVersion set on every FHIR REST
// endpoint whose version has a known family, and the codes that repeat
// across organizations (connection type, transaction, version, status,
// payload types) interned, so that thousands of cached organizations
// share one copy of each. eps is not modified.
func withFHIRVersions(eps []Endpoint) []Endpoint {
	if len(eps) == 0 {
		return eps
	}
	out := append([]Endpoint(nil), eps...)
	for i := range out {
		e := &out[i]
		if e.FHIRVersion == "" && isFHIRKind(e) {
			e.FHIRVersion = FHIRFamily(e.Version)
		}
		e.ConnectionType, e.Transaction = intern(e.ConnectionType), intern(e.Transaction)
		e.Version, e.Status = intern(e.Version), intern(e.Status)
		if len(e.PayloadMimeTypes) > 0 {
			types := make([]string, len(e.PayloadMimeTypes))
			for j, t := range e.PayloadMimeTypes {
				types[j] = intern(t)
			}
			e.PayloadMimeTypes = types
		}
	}
	return out
}

// intern returns the canonical copy of s (unique.Make).
func intern(s string) string {
	if s == "" {
		return ""
	}
	return unique.Make(s).Value()
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

// isHTTPURL reports whether s is an absolute http or https URL with a
// host.
func isHTTPURL(s string) bool {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return false
	}
	return u.Scheme == "http" || u.Scheme == "https"
}
