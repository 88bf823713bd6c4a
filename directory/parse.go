package directory

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Extension URLs read from directory Endpoints.
const (
	// R4 (sphd) simple extensions on Endpoint.
	extR4Transaction = "https://sequoiaproject.org/fhir/sphd/StructureDefinition/Transaction"
	extR4Version     = "https://sequoiaproject.org/fhir/sphd/StructureDefinition/Version"
	// STU3 complex extensions whose sub-extensions (relative urls
	// "Transaction", "Version", ...) describe the Endpoint.
	extSTU3Main      = "https://sequoiaproject.org/StructureDefinition/Endpoint/main/1.0.0"
	extSTU3MainSPHD3 = "https://sequoiaproject.org/fhir/sphd-stu3/StructureDefinition/EndpointMain"
)

// Identifier systems under which a bare OID (without "urn:oid:") is
// accepted as an organization identifier.
const (
	systemHL7OID  = "http://www.hl7.org/oid/"
	systemRFC3986 = "urn:ietf:rfc:3986"
)

// fhirNamespace is the XML namespace of FHIR resources.
const fhirNamespace = "http://hl7.org/fhir"

// utf8BOM is skipped at the start of a document.
const utf8BOM = "\ufeff"

// ext is a format-neutral view of a FHIR extension: its url, its value
// reduced to one string, and its sub-extensions.
type ext struct {
	url   string
	value string
	sub   []ext
}

// identifier is a format-neutral Identifier.
type identifier struct {
	system string
	value  string
}

// rawOrg is a format-neutral Organization before assembly.
type rawOrg struct {
	id          string
	identifiers []identifier
	active      *bool
	name        string
	lastUpdated string
	contained   []Endpoint // contained Endpoint resources, in order
	refs        []string   // Organization.endpoint references, in order
}

// rawEntry is a format-neutral Bundle entry holding an Organization or an
// Endpoint.
type rawEntry struct {
	fullURL string
	mode    string // entry.search.mode: "match", "include", "outcome" or ""
	org     *rawOrg
	ep      *Endpoint
}

// endpointDetails returns an Endpoint's Carequality transaction and
// version from its extensions: the R4 simple extensions or the STU3
// complex one with relative sub-extensions.
func endpointDetails(exts []ext) (transaction, version string) {
	for _, e := range exts {
		switch e.url {
		case extR4Transaction:
			transaction = firstNonEmpty(transaction, e.value)
		case extR4Version:
			version = firstNonEmpty(version, e.value)
		case extSTU3Main, extSTU3MainSPHD3:
			for _, s := range e.sub {
				switch s.url {
				case "Transaction":
					transaction = firstNonEmpty(transaction, s.value)
				case "Version":
					version = firstNonEmpty(version, s.value)
				}
			}
		}
	}
	return strings.TrimSpace(transaction), strings.TrimSpace(version)
}

// orgOID picks the organization's OID. With idFirst (R4, where the sphd
// profile makes id the OID) a valid id wins over identifiers; otherwise
// (STU3) identifiers win over the id. An identifier counts when its
// value is "urn:oid:<OID>", or a bare OID under the HL7 OID system.
func orgOID(o *rawOrg, idFirst bool) (string, error) {
	fromID := func() (string, bool) {
		oid, err := ParseOID(o.id)
		return oid, o.id != "" && err == nil
	}
	if idFirst {
		if oid, ok := fromID(); ok {
			return oid, nil
		}
	}
	for _, id := range o.identifiers {
		v := strings.TrimSpace(id.value)
		hasURN := len(v) >= len(oidPrefix) && strings.EqualFold(v[:len(oidPrefix)], oidPrefix)
		if !hasURN && id.system != systemHL7OID {
			continue
		}
		if oid, err := ParseOID(v); err == nil {
			return oid, nil
		}
	}
	if !idFirst {
		if oid, ok := fromID(); ok {
			return oid, nil
		}
	}
	return "", errors.New("organization has no OID: neither id nor an identifier is a valid OID")
}

// assemble turns the Organization picked from a document (and, for a
// Bundle, its sibling entries) into an Organization.
func assemble(o *rawOrg, entries []rawEntry, idFirst bool) (*Organization, error) {
	oid, err := orgOID(o, idFirst)
	if err != nil {
		return nil, err
	}
	org := &Organization{
		OID:       oid,
		Name:      strings.TrimSpace(o.name),
		Active:    o.active == nil || *o.active, // FHIR: assumed active when absent
		Endpoints: append([]Endpoint(nil), o.contained...),
	}
	if o.lastUpdated != "" {
		// Tolerated when malformed: LastUpdated is informative only.
		if t, err := time.Parse(time.RFC3339Nano, o.lastUpdated); err == nil {
			org.LastUpdated = t
		}
	}
	used := make(map[int]bool)
	for _, ref := range o.refs {
		if strings.HasPrefix(ref, "#") {
			continue // contained, already listed
		}
		if i := findEndpointEntry(entries, ref); i >= 0 && !used[i] {
			used[i] = true
			org.Endpoints = append(org.Endpoints, *entries[i].ep)
		}
	}
	return org, nil
}

// findEndpointEntry returns the index of the Bundle entry holding the
// Endpoint a reference points at, or -1. A reference matches an entry's
// fullUrl exactly or, as "[base/]Endpoint/<id>[/_history/<v>]", its id.
func findEndpointEntry(entries []rawEntry, ref string) int {
	id := ""
	path := ref
	if i := strings.Index(path, "/_history/"); i >= 0 {
		path = path[:i]
	}
	if parts := strings.Split(strings.TrimRight(path, "/"), "/"); len(parts) >= 2 && parts[len(parts)-2] == "Endpoint" {
		id = parts[len(parts)-1]
	}
	for i, e := range entries {
		if e.ep != nil && e.fullURL != "" && e.fullURL == ref {
			return i
		}
	}
	if id == "" {
		return -1
	}
	for i, e := range entries {
		if e.ep != nil && e.ep.ID == id {
			return i
		}
	}
	return -1
}

// pickOrganization chooses the Organization of a Bundle: the single
// entry with search mode "match" or, when no entry has a search mode, the
// single Organization entry. Entries included by _include (mode
// "include", e.g. a parent organization) are not candidates.
func pickOrganization(entries []rawEntry) (*rawOrg, error) {
	var matches, unmarked []*rawOrg
	for _, e := range entries {
		if e.org == nil {
			continue
		}
		switch e.mode {
		case "match":
			matches = append(matches, e.org)
		case "":
			unmarked = append(unmarked, e.org)
		}
	}
	candidates := matches
	if len(candidates) == 0 {
		candidates = unmarked
	}
	switch len(candidates) {
	case 0:
		return nil, fmt.Errorf("bundle holds no Organization: %w", ErrNotFound)
	case 1:
		return candidates[0], nil
	default:
		return nil, fmt.Errorf("bundle holds %d matching Organizations, want one", len(candidates))
	}
}

func firstNonEmpty(vals ...string) string {
	for _, v := range vals {
		if strings.TrimSpace(v) != "" {
			return v
		}
	}
	return ""
}
