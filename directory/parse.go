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
	index   int // position in the Bundle's entry list, from 0
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
// Bundle, the index of its Endpoint entries) into an Organization.
func assemble(o *rawOrg, index endpointIndex, idFirst bool) (*Organization, error) {
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
		if ep, i := index.find(ref); ep != nil && !used[i] {
			used[i] = true
			org.Endpoints = append(org.Endpoints, *ep)
		}
	}
	org.Endpoints = withFHIRVersions(org.Endpoints)
	return org, nil
}

// endpointIndex finds a Bundle's Endpoint entries by fullUrl and by id,
// so that resolving references stays linear in the document's size.
type endpointIndex struct {
	entries []rawEntry
	byURL   map[string]int
	byID    map[string]int
}

// indexEndpoints indexes entries' Endpoints; the first entry with a given
// fullUrl or id wins.
func indexEndpoints(entries []rawEntry) endpointIndex {
	x := endpointIndex{entries: entries, byURL: make(map[string]int), byID: make(map[string]int)}
	for i, e := range entries {
		if e.ep == nil {
			continue
		}
		if _, ok := x.byURL[e.fullURL]; e.fullURL != "" && !ok {
			x.byURL[e.fullURL] = i
		}
		if _, ok := x.byID[e.ep.ID]; e.ep.ID != "" && !ok {
			x.byID[e.ep.ID] = i
		}
	}
	return x
}

// find returns the Endpoint entry a reference points at and its index, or
// nil. A reference matches an entry's fullUrl exactly or, as
// "[base/]Endpoint/<id>[/_history/<v>]", its id.
func (x endpointIndex) find(ref string) (*Endpoint, int) {
	if i, ok := x.byURL[ref]; ok && ref != "" {
		return x.entries[i].ep, i
	}
	path := ref
	if i := strings.Index(path, "/_history/"); i >= 0 {
		path = path[:i]
	}
	parts := strings.Split(strings.TrimRight(path, "/"), "/")
	if len(parts) < 2 || parts[len(parts)-2] != "Endpoint" || parts[len(parts)-1] == "" {
		return nil, -1
	}
	if i, ok := x.byID[parts[len(parts)-1]]; ok {
		return x.entries[i].ep, i
	}
	return nil, -1
}

// matchedOrganizations returns a Bundle's Organizations that answer the
// query: the entries with search mode "match" or, when no entry has that
// mode, the Organization entries without a search mode. Entries included
// by _include (mode "include", e.g. a parent organization) never count.
func matchedOrganizations(entries []rawEntry) []rawEntry {
	var matches, unmarked []rawEntry
	for _, e := range entries {
		if e.org == nil {
			continue
		}
		switch e.mode {
		case "match":
			matches = append(matches, e)
		case "":
			unmarked = append(unmarked, e)
		}
	}
	if len(matches) == 0 {
		return unmarked
	}
	return matches
}

// pickOrganization chooses the Organization of a Bundle read for one
// OID: the single one of its matchedOrganizations.
func pickOrganization(entries []rawEntry) (*rawOrg, error) {
	candidates := matchedOrganizations(entries)
	switch len(candidates) {
	case 0:
		return nil, fmt.Errorf("bundle holds no Organization: %w", ErrNotFound)
	case 1:
		return candidates[0].org, nil
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
