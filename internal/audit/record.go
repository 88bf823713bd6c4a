package audit

import (
	"strconv"
	"time"
	"unicode/utf8"
)

// Record is one audit line. It has no field for tokens, client
// assertions, keys, query strings or bodies, and must not be given any in
// the fields it has.
type Record struct {
	// Time is when the request arrived; Logger.Write uses the current time
	// if it is zero.
	Time time.Time
	// RequestID is the request's X-Request-Id.
	RequestID string
	// Caller is the authenticated caller's name; CallerMethod how it
	// authenticated ("none", "api_key", "mtls"); CallerSubject which
	// credential it used (certificate subject or key fingerprint, never
	// a key).
	Caller, CallerMethod, CallerSubject string
	// RemoteAddr is the address the request came from.
	RemoteAddr string
	// OID is the organization the request went to.
	OID string
	// Method is the HTTP method.
	Method string
	// ResourceType, ResourceID, Compartment and Operation say what the
	// FHIR path addressed (see TargetFromPath and SetPath).
	ResourceType, ResourceID, Compartment, Operation string
	// Scope is the scope of the access token used, if the caller chose one.
	Scope string
	// PurposeOfUse lists the purposes of use asserted.
	PurposeOfUse []string
	// ExchangePurpose is the TEFCA exchange purpose (XP code) the caller
	// chose with X-Cqgate-Exchange-Purpose, if any.
	ExchangePurpose string
	// Status is the HTTP status answered to the caller.
	Status int
	// UpstreamRequestID is the organization's own request id, if it sent one.
	UpstreamRequestID string
	// Duration is how long the request took; written as "duration_ms", a
	// number of milliseconds with microsecond precision.
	Duration time.Duration
	// Error is the OperationOutcome issue code of a failure ("forbidden",
	// "timeout"; "exception" for a recovered panic), whichever part
	// answered it (the router, the proxy: outcome.WriteErrorFor), never
	// a message or body.
	Error string
	// Aborted says the answer was cut off after its status was sent
	// (the partner's body broke off, the caller went away, a failure
	// mid-body): Status is what was sent, the body is incomplete.
	// Written as "aborted": true, only when set.
	Aborted bool
	// Bulk describes a FHIR Bulk Data event, when the request was one.
	Bulk *Bulk
}

// Bulk is a FHIR Bulk Data export event: what was exported and how much,
// never the data, query values or file URLs.
type Bulk struct {
	// Event is BulkKickoff, BulkComplete or BulkDownload.
	Event string
	// StatusPath is the path (no query) of the export's status URL under
	// cqgate, on kick-off.
	StatusPath string
	// Files is the number of output files the completion manifest lists.
	Files int
	// FileType is a downloaded file's resource type, when known.
	FileType string
	// Bytes is how many bytes of a file were passed to the caller.
	Bytes int64
}

// Bulk events.
const (
	BulkKickoff  = "kickoff"
	BulkComplete = "complete"
	BulkDownload = "download"
)

// SetPath sets ResourceType, ResourceID, Compartment and Operation from
// a FHIR path; its query is ignored.
func (r *Record) SetPath(fhirPath string) {
	t := TargetFromPath(fhirPath)
	r.ResourceType, r.ResourceID, r.Compartment, r.Operation = t.ResourceType, t.ID, t.Compartment, t.Operation
}

// AppendJSON appends the record as one JSON object, without a newline,
// to b. The fields log ("audit"), time (RFC 3339, UTC), request_id,
// caller, caller_method, oid, method, status and duration_ms are always
// present; caller_subject, remote_addr, resource_type, resource_id,
// compartment, operation, scope, purpose_of_use, exchange_purpose,
// upstream_request_id,
// error and bulk (an object: event, status_path, files, type, bytes) only
// when not empty. Strings are escaped as JSON requires;
// invalid UTF-8 becomes U+FFFD.
func (r *Record) AppendJSON(b []byte) []byte {
	return r.appendJSON(b, r.Time)
}

func (r *Record) appendJSON(b []byte, t time.Time) []byte {
	b = append(b, `{"log":"audit","time":"`...)
	b = t.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	b = appendField(b, "request_id", r.RequestID)
	b = appendField(b, "caller", r.Caller)
	b = appendField(b, "caller_method", r.CallerMethod)
	b = appendOptional(b, "caller_subject", r.CallerSubject)
	b = appendOptional(b, "remote_addr", r.RemoteAddr)
	b = appendField(b, "oid", r.OID)
	b = appendField(b, "method", r.Method)
	b = appendOptional(b, "resource_type", r.ResourceType)
	b = appendOptional(b, "resource_id", r.ResourceID)
	b = appendOptional(b, "compartment", r.Compartment)
	b = appendOptional(b, "operation", r.Operation)
	b = appendOptional(b, "scope", r.Scope)
	if len(r.PurposeOfUse) > 0 {
		b = append(b, `,"purpose_of_use":[`...)
		for i, p := range r.PurposeOfUse {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, p)
		}
		b = append(b, ']')
	}
	b = appendOptional(b, "exchange_purpose", r.ExchangePurpose)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(r.Status), 10)
	b = appendOptional(b, "upstream_request_id", r.UpstreamRequestID)
	b = append(b, `,"duration_ms":`...)
	d := max(r.Duration, 0)
	b = strconv.AppendFloat(b, float64(d.Microseconds())/1000, 'f', -1, 64)
	b = appendOptional(b, "error", r.Error)
	if r.Aborted {
		b = append(b, `,"aborted":true`...)
	}
	if bk := r.Bulk; bk != nil {
		b = append(b, `,"bulk":{"event":`...)
		b = appendString(b, bk.Event)
		b = appendOptional(b, "status_path", bk.StatusPath)
		if bk.Event == BulkComplete {
			b = append(b, `,"files":`...)
			b = strconv.AppendInt(b, int64(bk.Files), 10)
		}
		if bk.Event == BulkDownload {
			b = appendOptional(b, "type", bk.FileType)
			b = append(b, `,"bytes":`...)
			b = strconv.AppendInt(b, bk.Bytes, 10)
		}
		b = append(b, '}')
	}
	return append(b, '}')
}

func appendField(b []byte, name, value string) []byte {
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return appendString(b, value)
}

func appendOptional(b []byte, name, value string) []byte {
	if value == "" {
		return b
	}
	return appendField(b, name, value)
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string. Quotes, backslashes and
// control characters are escaped, invalid UTF-8 bytes become \ufffd, and
// U+2028 and U+2029 are escaped so the line is also valid JavaScript.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
