package directory

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// ParseSTU3OrganizationXML parses a legacy STU3 directory answer in FHIR
// XML (namespace http://hl7.org/fhir, values in value attributes): an
// Organization root, or a Bundle root whose entry/resource holds the
// Organization (and possibly Endpoints it references).
//
// The OID comes from an identifier whose value is "urn:oid:<OID>" (system
// http://www.hl7.org/oid/ or urn:ietf:rfc:3986), else from the id.
// Endpoints are the contained Endpoint resources; their transaction and
// version come from the Sequoia "Endpoint main" complex extension's
// relative sub-extensions Transaction and Version. Documents with a
// DOCTYPE are rejected.
func ParseSTU3OrganizationXML(data []byte) (*Organization, error) {
	org, err := parseSTU3XML(data)
	if err != nil {
		return nil, fmt.Errorf("directory: parse STU3 organization XML: %w", err)
	}
	return org, nil
}

// ParseSTU3BundleXML parses a legacy STU3 directory search answer in
// FHIR XML: a searchset Bundle root whose entry/resource elements hold
// Organizations (with contained Endpoints) and possibly Endpoints they
// reference. Every matching Organization must have an OID (see
// ParseSTU3OrganizationXML); documents with a DOCTYPE are rejected.
func ParseSTU3BundleXML(data []byte) (*Bundle, error) {
	b, err := parseSTU3BundleXML(data)
	if err != nil {
		return nil, fmt.Errorf("directory: parse STU3 bundle XML: %w", err)
	}
	return b, nil
}

// parseSTU3XML does the work of ParseSTU3OrganizationXML; its errors carry
// no package prefix so that callers can add their own context.
func parseSTU3XML(data []byte) (*Organization, error) {
	d, root, err := stu3Document(data)
	if err != nil {
		return nil, err
	}
	var org *Organization
	switch root.Name.Local {
	case "Organization":
		var o xmlOrganization
		if err := d.DecodeElement(&o, &root); err != nil {
			return nil, fmt.Errorf("invalid XML: %w", err)
		}
		if org, err = assemble(o.raw(), endpointIndex{}, false); err != nil {
			return nil, err
		}
	case "Bundle":
		_, entries, err := decodeSTU3Bundle(d, root)
		if err != nil {
			return nil, err
		}
		o, err := pickOrganization(entries)
		if err != nil {
			return nil, err
		}
		if org, err = assemble(o, indexEndpoints(entries), false); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("root element is %s, want Organization or Bundle", quoteInput(root.Name.Local))
	}
	if err := xmlTrailer(d); err != nil {
		return nil, err
	}
	return org, nil
}

// parseSTU3BundleXML does the work of ParseSTU3BundleXML.
func parseSTU3BundleXML(data []byte) (*Bundle, error) {
	d, root, err := stu3Document(data)
	if err != nil {
		return nil, err
	}
	if root.Name.Local != "Bundle" {
		return nil, fmt.Errorf("root element is %s, want Bundle", quoteInput(root.Name.Local))
	}
	b, entries, err := decodeSTU3Bundle(d, root)
	if err != nil {
		return nil, err
	}
	if err := xmlTrailer(d); err != nil {
		return nil, err
	}
	total := -1
	if b.Total != nil {
		v := strings.TrimSpace(b.Total.Value)
		n, err := strconv.ParseUint(v, 10, 63)
		if err != nil {
			return nil, fmt.Errorf("bundle total %s is not a count", quoteInput(v))
		}
		total = int(min(n, math.MaxInt32))
	}
	next := ""
	for _, l := range b.Link {
		if strings.EqualFold(strings.TrimSpace(l.Relation.Value), "next") {
			next = l.URL.Value
			break
		}
	}
	return assembleBundle(b.Type.Value, total, next, entries, false)
}

// stu3Document checks an XML document's size and nesting and returns a
// strict decoder positioned after its root element's start, rejecting a
// DOCTYPE and a root outside the FHIR namespace.
func stu3Document(data []byte) (*xml.Decoder, xml.StartElement, error) {
	if err := checkSize(data); err != nil {
		return nil, xml.StartElement{}, err
	}
	data = bytes.TrimPrefix(data, []byte(utf8BOM))
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, xml.StartElement{}, errEmpty
	}
	d := xml.NewDecoder(bytes.NewReader(data))
	d.Strict = true // undeclared entities are errors; none are expanded

	root, err := xmlRoot(d)
	if err != nil {
		return nil, xml.StartElement{}, err
	}
	if root.Name.Space != fhirNamespace && root.Name.Space != "" {
		return nil, xml.StartElement{}, fmt.Errorf("root element is in namespace %s, want %s", quoteInput(root.Name.Space), fhirNamespace)
	}
	if err := checkXMLDepth(data); err != nil {
		return nil, xml.StartElement{}, err
	}
	return d, root, nil
}

// decodeSTU3Bundle decodes the Bundle whose root d has just read: its
// Organization and Endpoint entries, skipping other resources.
func decodeSTU3Bundle(d *xml.Decoder, root xml.StartElement) (*xmlBundle, []rawEntry, error) {
	var b xmlBundle
	if err := d.DecodeElement(&b, &root); err != nil {
		return nil, nil, fmt.Errorf("invalid XML: %w", err)
	}
	entries := make([]rawEntry, 0, len(b.Entry))
	for i, e := range b.Entry {
		re := rawEntry{index: i, fullURL: e.FullURL.Value, mode: e.Search.Mode.Value}
		switch {
		case e.Resource.Organization != nil:
			re.org = e.Resource.Organization.raw()
		case e.Resource.Endpoint != nil:
			ep := e.Resource.Endpoint.endpoint()
			re.ep = &ep
		default:
			continue
		}
		entries = append(entries, re)
	}
	return &b, entries, nil
}

// xmlRoot reads up to the root element, rejecting a DOCTYPE (and any
// other directive) and text before it.
func xmlRoot(d *xml.Decoder) (xml.StartElement, error) {
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return xml.StartElement{}, errors.New("not XML: no root element")
		}
		if err != nil {
			return xml.StartElement{}, fmt.Errorf("not XML: %w", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			return t, nil
		case xml.Directive:
			if bytes.HasPrefix(bytes.TrimSpace(t), []byte("DOCTYPE")) {
				return xml.StartElement{}, errors.New("document has a DOCTYPE; refusing it")
			}
			return xml.StartElement{}, errors.New("document has an XML directive; refusing it")
		case xml.CharData:
			if len(bytes.TrimSpace(t)) != 0 {
				return xml.StartElement{}, errors.New("not XML: text before the root element")
			}
		case xml.ProcInst, xml.Comment:
			// <?xml ...?> and comments are fine.
		}
	}
}

// xmlTrailer checks that only comments, processing instructions and
// whitespace follow the root element.
func xmlTrailer(d *xml.Decoder) error {
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("invalid XML after the root element: %w", err)
		}
		switch t := tok.(type) {
		case xml.CharData:
			if len(bytes.TrimSpace(t)) != 0 {
				return errors.New("invalid XML: text after the root element")
			}
		case xml.ProcInst, xml.Comment:
		default:
			return errors.New("invalid XML: content after the root element")
		}
	}
}

// STU3 XML shapes, reduced to the fields read. encoding/xml matches
// child elements by local name.
type (
	xmlValue struct {
		Value string `xml:"value,attr"`
	}

	xmlBundle struct {
		Type  xmlValue  `xml:"type"`
		Total *xmlValue `xml:"total"`
		Link  []struct {
			Relation xmlValue `xml:"relation"`
			URL      xmlValue `xml:"url"`
		} `xml:"link"`
		Entry []struct {
			FullURL  xmlValue `xml:"fullUrl"`
			Resource struct {
				Organization *xmlOrganization `xml:"Organization"`
				Endpoint     *xmlEndpoint     `xml:"Endpoint"`
			} `xml:"resource"`
			Search struct {
				Mode xmlValue `xml:"mode"`
			} `xml:"search"`
		} `xml:"entry"`
	}

	xmlOrganization struct {
		ID   xmlValue `xml:"id"`
		Meta struct {
			LastUpdated xmlValue `xml:"lastUpdated"`
		} `xml:"meta"`
		Identifier []struct {
			System xmlValue `xml:"system"`
			Value  xmlValue `xml:"value"`
		} `xml:"identifier"`
		Active    *xmlValue `xml:"active"`
		Name      xmlValue  `xml:"name"`
		Contained []struct {
			Endpoint *xmlEndpoint `xml:"Endpoint"`
		} `xml:"contained"`
		Endpoint []struct {
			Reference xmlValue `xml:"reference"`
		} `xml:"endpoint"`
	}

	xmlEndpoint struct {
		ID              xmlValue       `xml:"id"`
		Extension       []xmlExtension `xml:"extension"`
		Status          xmlValue       `xml:"status"`
		ConnectionType  xmlCoding      `xml:"connectionType"`
		Name            xmlValue       `xml:"name"`
		PayloadMimeType []xmlValue     `xml:"payloadMimeType"`
		Address         xmlValue       `xml:"address"`
	}

	xmlExtension struct {
		URL                  string              `xml:"url,attr"`
		Extension            []xmlExtension      `xml:"extension"`
		ValueString          *xmlValue           `xml:"valueString"`
		ValueCode            *xmlValue           `xml:"valueCode"`
		ValueURI             *xmlValue           `xml:"valueUri"`
		ValueCodeableConcept *xmlCodeableConcept `xml:"valueCodeableConcept"`
	}

	// xmlCoding is a Coding. Value is not FHIR: the Metriport-era
	// directory template put coded values in a <value> element.
	xmlCoding struct {
		Code  xmlValue `xml:"code"`
		Value xmlValue `xml:"value"`
	}

	xmlCodeableConcept struct {
		Coding []xmlCoding `xml:"coding"`
		Text   xmlValue    `xml:"text"`
	}
)

func (c *xmlCodeableConcept) code() string {
	if c == nil {
		return ""
	}
	for _, cd := range c.Coding {
		if v := firstNonEmpty(cd.Code.Value, cd.Value.Value); v != "" {
			return v
		}
	}
	return c.Text.Value
}

func (v *xmlValue) get() string {
	if v == nil {
		return ""
	}
	return v.Value
}

func (e xmlExtension) neutral() ext {
	x := ext{
		url:   e.URL,
		value: firstNonEmpty(e.ValueString.get(), e.ValueCode.get(), e.ValueURI.get(), e.ValueCodeableConcept.code()),
	}
	for _, s := range e.Extension {
		x.sub = append(x.sub, s.neutral())
	}
	return x
}

func (o *xmlOrganization) raw() *rawOrg {
	r := &rawOrg{
		id:          o.ID.Value,
		name:        o.Name.Value,
		lastUpdated: o.Meta.LastUpdated.Value,
	}
	if o.Active != nil {
		// Only an explicit "false" marks the organization inactive.
		active := strings.TrimSpace(o.Active.Value) != "false"
		r.active = &active
	}
	for _, id := range o.Identifier {
		r.identifiers = append(r.identifiers, identifier{system: id.System.Value, value: id.Value.Value})
	}
	for _, c := range o.Contained {
		if c.Endpoint != nil {
			r.contained = append(r.contained, c.Endpoint.endpoint())
		}
	}
	for _, ref := range o.Endpoint {
		r.refs = append(r.refs, ref.Reference.Value)
	}
	return r
}

func (e *xmlEndpoint) endpoint() Endpoint {
	exts := make([]ext, 0, len(e.Extension))
	for _, x := range e.Extension {
		exts = append(exts, x.neutral())
	}
	transaction, version := endpointDetails(exts)
	var mimeTypes []string
	for _, m := range e.PayloadMimeType {
		if v := strings.TrimSpace(m.Value); v != "" {
			mimeTypes = append(mimeTypes, v)
		}
	}
	return Endpoint{
		ID:               e.ID.Value,
		Name:             strings.TrimSpace(e.Name.Value),
		Address:          strings.TrimSpace(e.Address.Value),
		ConnectionType:   strings.TrimSpace(firstNonEmpty(e.ConnectionType.Code.Value, e.ConnectionType.Value.Value)),
		Transaction:      transaction,
		Version:          version,
		Status:           strings.TrimSpace(e.Status.Value),
		PayloadMimeTypes: mimeTypes,
	}
}
