package directory

import (
	"encoding/binary"
	"strings"
	"sync/atomic"
	"time"
	"unique"
)

// record is an Organization as the Resolver keeps it: every string of
// its own (the OID, the name, each endpoint's id, name and address) in
// one allocation, every endpoint's codes (connection type, transaction,
// versions, status, payload types), which repeat across thousands of
// organizations, as one shared handle, and the boundaries in a third. At
// 10,000 cached organizations the public form cost about 1 KB each
// (three 152-byte Endpoint structs, a dozen separately allocated
// strings); a record of the same organization costs about 370 bytes.
// Entry builds the public Organization from it on demand (the lookup
// API; not the request path). A record is never modified after
// newRecord, but for its place in the Resolver's cache (held, then
// dropped: see nsec).
type record struct {
	// text is the OID, the name, then each endpoint's ID, Name and
	// Address, back to back.
	text string
	// ends are where in text the OID and the name end, then flags, then
	// for each endpoint where its ID, Name and Address end.
	ends []uint32
	// codes is every endpoint's codes, each a length (uvarint) and the
	// bytes, six per endpoint (see appendCodes).
	codes unique.Handle[string]
	// lastUpdated as seconds, nanoseconds and zone offset: the same
	// instant and offset (16 bytes instead of 24, so the record is 64).
	lastSec int64
	// nsec is lastUpdated's nanoseconds (below 2^30) and, in the two
	// bits above them, the record's place in the Resolver's cache:
	// recHeld once it is the cached answer for its OID, recDropped for
	// good once it no longer is (replaced, forgotten, marked failing or
	// deleted: internal/cache.WithDropped). Current reads it instead of
	// looking the OID up again.
	nsec    atomic.Uint32
	lastOff int32
}

// The record's place in the Resolver's cache, in nsec.
const (
	recHeld    = 1 << 30
	recDropped = 1 << 31
	nsecMask   = recHeld - 1
)

// hold marks r as the cached answer for its OID, before it is cached.
func (r *record) hold() { r.nsec.Or(recHeld) }

// drop marks r as no longer the cached answer, for good.
func (r *record) drop() { r.nsec.Or(recDropped) }

// isHeld reports whether r is the cached answer for its OID.
func (r *record) isHeld() bool { return r.nsec.Load()&(recHeld|recDropped) == recHeld }

// Flags in ends[2].
const (
	recActive    = 1 << iota // Organization.Active
	recEndpoints             // Organization.Endpoints is not nil
)

const recHead = 3 // ends before the endpoints'

// newRecord returns o's record. o is not modified or kept.
func newRecord(o *Organization) *record {
	size := len(o.OID) + len(o.Name)
	for i := range o.Endpoints {
		e := &o.Endpoints[i]
		size += len(e.ID) + len(e.Name) + len(e.Address)
	}
	var b strings.Builder
	b.Grow(size)
	ends := make([]uint32, recHead, recHead+3*len(o.Endpoints))
	b.WriteString(o.OID)
	ends[0] = uint32(b.Len())
	b.WriteString(o.Name)
	ends[1] = uint32(b.Len())
	if o.Active {
		ends[2] |= recActive
	}
	if o.Endpoints != nil {
		ends[2] |= recEndpoints
	}
	var codes []byte
	for i := range o.Endpoints {
		e := &o.Endpoints[i]
		b.WriteString(e.ID)
		ends = append(ends, uint32(b.Len()))
		b.WriteString(e.Name)
		ends = append(ends, uint32(b.Len()))
		b.WriteString(e.Address)
		ends = append(ends, uint32(b.Len()))
		codes = appendCodes(codes, e)
	}
	_, off := o.LastUpdated.Zone()
	r := &record{text: b.String(), ends: ends, codes: unique.Make(string(codes)),
		lastSec: o.LastUpdated.Unix(), lastOff: int32(off)}
	r.nsec.Store(uint32(o.LastUpdated.Nanosecond()))
	return r
}

// appendCodes appends e's codes to b: connection type, transaction,
// version, FHIR version, status, then the payload types (none: -1, else
// their count, then each), every string as its length and its bytes.
func appendCodes(b []byte, e *Endpoint) []byte {
	for _, s := range []string{e.ConnectionType, e.Transaction, e.Version, e.FHIRVersion, e.Status} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	if e.PayloadMimeTypes == nil {
		return binary.AppendVarint(b, -1)
	}
	b = binary.AppendVarint(b, int64(len(e.PayloadMimeTypes)))
	for _, t := range e.PayloadMimeTypes {
		b = binary.AppendUvarint(b, uint64(len(t)))
		b = append(b, t...)
	}
	return b
}

// codesReader reads what appendCodes wrote.
type codesReader struct{ s string }

func (c *codesReader) str() string {
	n, k := uvarint(c.s)
	s := c.s[k : k+int(n)]
	c.s = c.s[k+int(n):]
	return s
}

func (c *codesReader) count() int {
	n, k := varint(c.s)
	c.s = c.s[k:]
	return int(n)
}

// endpointCodes reads one endpoint's codes, the payload types only when
// withTypes (they need an allocation).
func (c *codesReader) endpoint(e *Endpoint, withTypes bool) {
	e.ConnectionType, e.Transaction, e.Version, e.FHIRVersion, e.Status = c.str(), c.str(), c.str(), c.str(), c.str()
	n := c.count()
	if n < 0 {
		return
	}
	var types []string
	if withTypes {
		types = make([]string, 0, n)
	}
	for range n {
		if t := c.str(); withTypes {
			types = append(types, t)
		}
	}
	e.PayloadMimeTypes = types
}

func (r *record) oid() string  { return r.text[:r.ends[0]] }
func (r *record) name() string { return r.text[r.ends[0]:r.ends[1]] }
func (r *record) active() bool { return r.ends[2]&recActive != 0 }
func (r *record) count() int   { return (len(r.ends) - recHead) / 3 }

// endpoint returns endpoint i with every field but PayloadMimeTypes
// (which needs an allocation, see organization), its strings shared with
// the record.
func (r *record) endpoint(i int) Endpoint {
	c := codesReader{r.codes.Value()}
	var e Endpoint
	for range i {
		c.endpoint(&e, false)
	}
	c.endpoint(&e, false)
	e.PayloadMimeTypes = nil
	r.strings(i, &e)
	return e
}

// strings sets e's ID, Name and Address, endpoint i's.
func (r *record) strings(i int, e *Endpoint) {
	at := recHead + 3*i
	start := r.ends[1]
	if i > 0 {
		start = r.ends[at-1]
	}
	e.ID, e.Name, e.Address = r.text[start:r.ends[at]], r.text[r.ends[at]:r.ends[at+1]], r.text[r.ends[at+1]:r.ends[at+2]]
}

// lastUpdated is Organization.LastUpdated: the same instant and zone
// offset (UTC as UTC; another offset as a fixed zone).
func (r *record) lastUpdated() time.Time {
	t := time.Unix(r.lastSec, int64(r.nsec.Load()&nsecMask)).UTC()
	if r.lastOff != 0 {
		t = t.In(time.FixedZone("", int(r.lastOff)))
	}
	return t
}

// organization returns the public form of r, a new value sharing only
// immutable strings with r.
func (r *record) organization() *Organization {
	o := &Organization{OID: r.oid(), Name: r.name(), Active: r.active(), LastUpdated: r.lastUpdated()}
	if r.ends[2]&recEndpoints != 0 {
		o.Endpoints = make([]Endpoint, r.count())
		c := codesReader{r.codes.Value()}
		for i := range o.Endpoints {
			c.endpoint(&o.Endpoints[i], true)
			r.strings(i, &o.Endpoints[i])
		}
	}
	return o
}

// fhirEndpoint is Organization.FHIREndpointRef over r: the index of the
// chosen endpoint, or -1.
func (r *record) fhirEndpoint(prefs []string) int {
	return chooseFHIR(r.count(), func(i int) Endpoint { return r.endpoint(i) }, prefs)
}

// uvarint and varint are binary.Uvarint and binary.Varint on a string
// (no copy to a []byte).
func uvarint(s string) (uint64, int) {
	var x uint64
	var shift uint
	for i := 0; i < len(s); i++ {
		b := s[i]
		if b < 0x80 {
			return x | uint64(b)<<shift, i + 1
		}
		x |= uint64(b&0x7f) << shift
		shift += 7
	}
	return 0, 0
}

func varint(s string) (int64, int) {
	ux, n := uvarint(s)
	x := int64(ux >> 1)
	if ux&1 != 0 {
		x = ^x
	}
	return x, n
}
