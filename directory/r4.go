package directory

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
)

// ParseR4Organization parses a directory answer in standard FHIR R4 JSON:
// an Organization resource, or a Bundle (e.g. a searchset) holding the
// Organization and possibly Endpoint resources it references (_include).
//
// The OID is Organization.id (the sphd profile makes the id the OID) or,
// failing that, an identifier "urn:oid:<OID>". Endpoints are the contained
// Endpoint resources followed by the Bundle's Endpoint entries referenced
// from Organization.endpoint. Unknown fields are ignored.
func ParseR4Organization(data []byte) (*Organization, error) {
	org, err := parseR4(data)
	if err != nil {
		return nil, fmt.Errorf("directory: parse R4 organization: %w", err)
	}
	return org, nil
}

// ParseR4Bundle parses a directory search answer in standard FHIR R4
// JSON: a searchset Bundle of Organizations, with contained Endpoints or
// Endpoint entries they reference (_include). Every matching
// Organization must have an OID (see ParseR4Organization); a Bundle of
// another type (a transaction, a history) is rejected.
func ParseR4Bundle(data []byte) (*Bundle, error) {
	b, err := parseR4Bundle(data)
	if err != nil {
		return nil, fmt.Errorf("directory: parse R4 bundle: %w", err)
	}
	return b, nil
}

// parseR4 does the work of ParseR4Organization; its errors carry no
// package prefix so that callers can add their own context.
func parseR4(data []byte) (*Organization, error) {
	data, resourceType, err := r4Document(data)
	if err != nil {
		return nil, err
	}
	switch resourceType {
	case "Organization":
		o, err := decodeR4Organization(data)
		if err != nil {
			return nil, err
		}
		return assemble(o, endpointIndex{}, true)
	case "Bundle":
		_, entries, err := decodeR4Bundle(data)
		if err != nil {
			return nil, err
		}
		o, err := pickOrganization(entries)
		if err != nil {
			return nil, err
		}
		return assemble(o, indexEndpoints(entries), true)
	default:
		return nil, fmt.Errorf("resourceType is %s, want Organization or Bundle", quoteInput(resourceType))
	}
}

// parseR4Bundle does the work of ParseR4Bundle.
func parseR4Bundle(data []byte) (*Bundle, error) {
	data, resourceType, err := r4Document(data)
	if err != nil {
		return nil, err
	}
	if resourceType != "Bundle" {
		return nil, fmt.Errorf("resourceType is %s, want Bundle", quoteInput(resourceType))
	}
	b, entries, err := decodeR4Bundle(data)
	if err != nil {
		return nil, err
	}
	total := -1
	if b.Total != nil {
		if *b.Total < 0 {
			return nil, fmt.Errorf("bundle total is %d, want a count", *b.Total)
		}
		total = int(min(*b.Total, math.MaxInt32))
	}
	next := ""
	for _, l := range b.Link {
		if strings.EqualFold(strings.TrimSpace(l.Relation), "next") {
			next = l.URL
			break
		}
	}
	return assembleBundle(b.Type, total, next, entries, true)
}

// r4Document checks a JSON document's size, shape and nesting and
// returns it without a byte order mark, with its resourceType.
func r4Document(data []byte) ([]byte, string, error) {
	if err := checkSize(data); err != nil {
		return nil, "", err
	}
	data = bytes.TrimPrefix(data, []byte(utf8BOM))
	trimmed := bytes.TrimSpace(data)
	switch {
	case len(trimmed) == 0:
		return nil, "", errEmpty
	case trimmed[0] != '{':
		return nil, "", fmt.Errorf("not a JSON object (starts with %s)", quoteInput(string(trimmed[:min(len(trimmed), 16)])))
	}
	if err := checkJSONDepth(trimmed); err != nil {
		return nil, "", err
	}
	var head struct {
		ResourceType string `json:"resourceType"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return nil, "", fmt.Errorf("invalid JSON: %w", err)
	}
	if head.ResourceType == "" {
		return nil, "", errors.New("not a FHIR resource: no resourceType")
	}
	return data, head.ResourceType, nil
}

// decodeR4Bundle decodes a Bundle's Organization and Endpoint entries;
// other resources (OperationOutcome, Location, ...) are skipped.
func decodeR4Bundle(data []byte) (*r4Bundle, []rawEntry, error) {
	var b r4Bundle
	if err := json.Unmarshal(data, &b); err != nil {
		return nil, nil, fmt.Errorf("invalid bundle: %w", err)
	}
	entries := make([]rawEntry, 0, len(b.Entry))
	for i, e := range b.Entry {
		re := rawEntry{index: i, fullURL: e.FullURL}
		if e.Search != nil {
			re.mode = e.Search.Mode
		}
		if len(e.Resource) == 0 || bytes.Equal(e.Resource, []byte("null")) {
			continue
		}
		var rh struct {
			ResourceType string `json:"resourceType"`
		}
		if err := json.Unmarshal(e.Resource, &rh); err != nil {
			return nil, nil, fmt.Errorf("invalid bundle entry %d: %w", i, err)
		}
		switch rh.ResourceType {
		case "Organization":
			o, err := decodeR4Organization(e.Resource)
			if err != nil {
				return nil, nil, fmt.Errorf("bundle entry %d: %w", i, err)
			}
			re.org = o
		case "Endpoint":
			ep, err := decodeR4Endpoint(e.Resource)
			if err != nil {
				return nil, nil, fmt.Errorf("bundle entry %d: %w", i, err)
			}
			re.ep = &ep
		default:
			continue // OperationOutcome, Location, ...
		}
		entries = append(entries, re)
	}
	return &b, entries, nil
}

// R4 JSON shapes, reduced to the fields read.
type (
	r4Bundle struct {
		Type  string         `json:"type"`
		Total *int64         `json:"total"`
		Link  []r4BundleLink `json:"link"`
		Entry []r4Entry      `json:"entry"`
	}

	r4BundleLink struct {
		Relation string `json:"relation"`
		URL      string `json:"url"`
	}

	r4Entry struct {
		FullURL  string          `json:"fullUrl"`
		Resource json.RawMessage `json:"resource"`
		Search   *r4EntrySearch  `json:"search"`
	}

	r4EntrySearch struct {
		Mode string `json:"mode"`
	}

	r4Organization struct {
		ID   string `json:"id"`
		Meta struct {
			LastUpdated string `json:"lastUpdated"`
		} `json:"meta"`
		Identifier []struct {
			System string `json:"system"`
			Value  string `json:"value"`
		} `json:"identifier"`
		Active    *bool             `json:"active"`
		Name      string            `json:"name"`
		Contained []json.RawMessage `json:"contained"`
		Endpoint  []struct {
			Reference string `json:"reference"`
		} `json:"endpoint"`
	}

	r4Endpoint struct {
		ID              string         `json:"id"`
		Extension       []r4Extension  `json:"extension"`
		Status          string         `json:"status"`
		ConnectionType  r4CodeSelector `json:"connectionType"`
		Name            string         `json:"name"`
		PayloadMimeType []string       `json:"payloadMimeType"`
		Address         string         `json:"address"`
	}

	r4Extension struct {
		URL                  string             `json:"url"`
		ValueString          string             `json:"valueString"`
		ValueCode            string             `json:"valueCode"`
		ValueURI             string             `json:"valueUri"`
		ValueCodeableConcept *r4CodeableConcept `json:"valueCodeableConcept"`
		Extension            []r4Extension      `json:"extension"`
	}

	r4Coding struct {
		Code string `json:"code"`
	}

	r4CodeableConcept struct {
		Coding []r4Coding `json:"coding"`
		Text   string     `json:"text"`
	}
)

// code returns the first coding's code, else the text.
func (c *r4CodeableConcept) code() string {
	if c == nil {
		return ""
	}
	for _, cd := range c.Coding {
		if strings.TrimSpace(cd.Code) != "" {
			return cd.Code
		}
	}
	return c.Text
}

// r4CodeSelector reads the code of a field that is a Coding in R4
// (Endpoint.connectionType) but tolerates a CodeableConcept or an array
// of them (R5 made connectionType a list of CodeableConcepts).
type r4CodeSelector string

func (s *r4CodeSelector) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || bytes.Equal(b, []byte("null")) {
		return nil
	}
	var one struct {
		Code string `json:"code"`
		r4CodeableConcept
	}
	if b[0] == '[' {
		var many []r4CodeableConcept
		if err := json.Unmarshal(b, &many); err != nil {
			return err
		}
		for i := range many {
			if c := many[i].code(); c != "" {
				*s = r4CodeSelector(c)
				return nil
			}
		}
		return nil
	}
	if err := json.Unmarshal(b, &one); err != nil {
		return err
	}
	*s = r4CodeSelector(firstNonEmpty(one.Code, one.r4CodeableConcept.code()))
	return nil
}

func (e r4Extension) neutral() ext {
	x := ext{
		url:   e.URL,
		value: firstNonEmpty(e.ValueString, e.ValueCode, e.ValueURI, e.ValueCodeableConcept.code()),
	}
	for _, s := range e.Extension {
		x.sub = append(x.sub, s.neutral())
	}
	return x
}

func decodeR4Organization(data []byte) (*rawOrg, error) {
	var o r4Organization
	if err := json.Unmarshal(data, &o); err != nil {
		return nil, fmt.Errorf("invalid Organization: %w", err)
	}
	raw := &rawOrg{
		id:          o.ID,
		active:      o.Active,
		name:        o.Name,
		lastUpdated: o.Meta.LastUpdated,
	}
	for _, id := range o.Identifier {
		raw.identifiers = append(raw.identifiers, identifier{system: id.System, value: id.Value})
	}
	for i, c := range o.Contained {
		var h struct {
			ResourceType string `json:"resourceType"`
		}
		if err := json.Unmarshal(c, &h); err != nil {
			return nil, fmt.Errorf("invalid contained resource %d: %w", i, err)
		}
		if h.ResourceType != "Endpoint" {
			continue // Location, ...
		}
		ep, err := decodeR4Endpoint(c)
		if err != nil {
			return nil, fmt.Errorf("contained resource %d: %w", i, err)
		}
		raw.contained = append(raw.contained, ep)
	}
	for _, r := range o.Endpoint {
		raw.refs = append(raw.refs, r.Reference)
	}
	return raw, nil
}

func decodeR4Endpoint(data []byte) (Endpoint, error) {
	var e r4Endpoint
	if err := json.Unmarshal(data, &e); err != nil {
		return Endpoint{}, fmt.Errorf("invalid Endpoint: %w", err)
	}
	exts := make([]ext, 0, len(e.Extension))
	for _, x := range e.Extension {
		exts = append(exts, x.neutral())
	}
	transaction, version := endpointDetails(exts)
	return Endpoint{
		ID:               e.ID,
		Name:             strings.TrimSpace(e.Name),
		Address:          strings.TrimSpace(e.Address),
		ConnectionType:   strings.TrimSpace(string(e.ConnectionType)),
		Transaction:      transaction,
		Version:          version,
		Status:           strings.TrimSpace(e.Status),
		PayloadMimeTypes: e.PayloadMimeType,
	}, nil
}
