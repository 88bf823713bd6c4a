package directory

import (
	"strings"
	"time"
	"unique"
)

// record is an Organization as the Resolver keeps it: every string of
// its own (the OID, the name, each endpoint's id, name and address) in
// one allocation, and each endpoint's codes (connection type,
// transaction, versions, status, payload types), which repeat across
// thousands of organizations, as one shared handle. At 10,000 cached
// organizations the public form cost about 1 KB each (three 152-byte
// Endpoint structs, a dozen separately allocated strings); a record of
// the same organization costs about 400 bytes. Entry builds the public
// Organization from it on demand (the lookup API; not the request path).
// A record is never modified after newRecord.
type record struct {
	// text is the OID, the name, then each endpoint's ID, Name and
	// Address, back to back; each ends where the next begins.
	text        string
	eps         []recordEndpoint // nil when the Organization's Endpoints were nil
	lastUpdated time.Time
	oidEnd      uint32
	nameEnd     uint32
	active      bool
}

type recordEndpoint struct {
	codes                   unique.Handle[endpointCodes]
	idEnd, nameEnd, addrEnd uint32
}

// endpointCodes are an endpoint's fields that are codes rather than its
// own strings. payloadTypes is each payload MIME type followed by a NUL,
// so that nil, empty and [""] stay apart.
type endpointCodes struct {
	connectionType, transaction, version, fhirVersion, status string
	payloadTypes                                              string
}

// newRecord returns o's record. o is not modified or kept.
func newRecord(o *Organization) *record {
	size := len(o.OID) + len(o.Name)
	for i := range o.Endpoints {
		e := &o.Endpoints[i]
		size += len(e.ID) + len(e.Name) + len(e.Address)
	}
	var b strings.Builder
	b.Grow(size)
	b.WriteString(o.OID)
	r := &record{lastUpdated: o.LastUpdated, active: o.Active, oidEnd: uint32(b.Len())}
	b.WriteString(o.Name)
	r.nameEnd = uint32(b.Len())
	if o.Endpoints != nil {
		r.eps = make([]recordEndpoint, len(o.Endpoints))
	}
	for i := range o.Endpoints {
		e := &o.Endpoints[i]
		re := &r.eps[i]
		b.WriteString(e.ID)
		re.idEnd = uint32(b.Len())
		b.WriteString(e.Name)
		re.nameEnd = uint32(b.Len())
		b.WriteString(e.Address)
		re.addrEnd = uint32(b.Len())
		re.codes = unique.Make(codesOf(e))
	}
	r.text = b.String()
	return r
}

func codesOf(e *Endpoint) endpointCodes {
	c := endpointCodes{connectionType: e.ConnectionType, transaction: e.Transaction, version: e.Version, fhirVersion: e.FHIRVersion, status: e.Status}
	if e.PayloadMimeTypes != nil {
		var b strings.Builder
		for _, t := range e.PayloadMimeTypes {
			b.WriteString(t)
			b.WriteByte(0)
		}
		// Not "": a non-nil empty list stays non-nil.
		c.payloadTypes = "\x00" + b.String()
	}
	return c
}

func (r *record) oid() string  { return r.text[:r.oidEnd] }
func (r *record) name() string { return r.text[r.oidEnd:r.nameEnd] }

// endpoint returns endpoint i with every field but PayloadMimeTypes
// (which needs an allocation, see payloadTypes), its strings shared with
// the record.
func (r *record) endpoint(i int) Endpoint {
	re := &r.eps[i]
	start := r.nameEnd
	if i > 0 {
		start = r.eps[i-1].addrEnd
	}
	c := re.codes.Value()
	return Endpoint{
		ID:             r.text[start:re.idEnd],
		Name:           r.text[re.idEnd:re.nameEnd],
		Address:        r.text[re.nameEnd:re.addrEnd],
		ConnectionType: c.connectionType,
		Transaction:    c.transaction,
		Version:        c.version,
		FHIRVersion:    c.fhirVersion,
		Status:         c.status,
	}
}

// payloadTypes returns endpoint i's PayloadMimeTypes, a new slice.
func (r *record) payloadTypes(i int) []string {
	s := r.eps[i].codes.Value().payloadTypes
	if s == "" {
		return nil
	}
	s = s[1:]
	out := make([]string, 0, strings.Count(s, "\x00"))
	for len(s) > 0 {
		t, rest, _ := strings.Cut(s, "\x00")
		out = append(out, t)
		s = rest
	}
	return out
}

// organization returns the public form of r, a new value sharing only
// immutable strings with r.
func (r *record) organization() *Organization {
	o := &Organization{OID: r.oid(), Name: r.name(), Active: r.active, LastUpdated: r.lastUpdated}
	if r.eps != nil {
		o.Endpoints = make([]Endpoint, len(r.eps))
		for i := range r.eps {
			o.Endpoints[i] = r.endpoint(i)
			o.Endpoints[i].PayloadMimeTypes = r.payloadTypes(i)
		}
	}
	return o
}

// fhirEndpoint is Organization.FHIREndpointRef over r: the index of the
// chosen endpoint, or -1.
func (r *record) fhirEndpoint(prefs []string) int {
	return chooseFHIR(len(r.eps), func(i int) Endpoint { return r.endpoint(i) }, prefs)
}
