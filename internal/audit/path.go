package audit

import "strings"

// Target is what a FHIR path addresses.
type Target struct {
	// ResourceType is the resource type acted on, e.g. "Patient"; empty
	// for system-level interactions.
	ResourceType string
	// ID is the resource's logical id, or empty for type- and
	// system-level interactions.
	ID string
	// Compartment is the compartment a search is confined to, e.g.
	// "Patient/123" for Patient/123/Observation.
	Compartment string
	// Operation names what is done beyond a read or search: a FHIR
	// operation ("$lastn", "$everything"), "_search" (search by POST),
	// "_history", or "metadata" (the CapabilityStatement).
	Operation string
}

// TargetFromPath says what a FHIR path (the part after /fhir/{oid}, with or
// without a leading slash) addresses. The query string and fragment are
// ignored and never returned; the result shares memory with fhirPath.
//
//	""                          system level: all fields empty
//	"metadata"                  Operation "metadata"
//	"$export", "_history"       Operation "$export", "_history"
//	"Patient"                   ResourceType "Patient"
//	"Patient?name=x"            ResourceType "Patient"
//	"Patient/_search"           ResourceType "Patient", Operation "_search"
//	"Observation/$lastn"        ResourceType "Observation", Operation "$lastn"
//	"Patient/123"               ResourceType "Patient", ID "123"
//	"Patient/123/_history/2"    ResourceType "Patient", ID "123", Operation "_history"
//	"Patient/123/$everything"   ResourceType "Patient", ID "123", Operation "$everything"
//	"Patient/123/Observation"   ResourceType "Observation", Compartment "Patient/123"
func TargetFromPath(fhirPath string) Target {
	p := fhirPath
	if i := strings.IndexAny(p, "?#"); i >= 0 {
		p = p[:i]
	}
	p = strings.Trim(p, "/")
	var t Target
	if p == "" {
		return t
	}
	first, rest, _ := strings.Cut(p, "/")
	if isKeyword(first) {
		t.Operation = first
		return t
	}
	t.ResourceType = first
	if rest == "" {
		return t
	}
	second, rest, _ := strings.Cut(rest, "/")
	if isKeyword(second) {
		t.Operation = second
		return t
	}
	t.ID = second
	if rest == "" {
		return t
	}
	third, rest, _ := strings.Cut(rest, "/")
	if isKeyword(third) {
		t.Operation = third
		return t
	}
	// A compartment search: Patient/123/Observation[/...].
	t.Compartment = p[:len(t.ResourceType)+1+len(t.ID)]
	t.ResourceType, t.ID = third, ""
	if op, _, _ := strings.Cut(rest, "/"); isKeyword(op) {
		t.Operation = op
	}
	return t
}

// ResourceFromPath returns the resource type and id a FHIR path
// addresses (see TargetFromPath); both may be empty.
func ResourceFromPath(fhirPath string) (resourceType, id string) {
	t := TargetFromPath(fhirPath)
	return t.ResourceType, t.ID
}

// isKeyword reports whether a path segment is an operation or a FHIR
// REST keyword rather than a resource type or id.
func isKeyword(seg string) bool {
	return strings.HasPrefix(seg, "$") || strings.HasPrefix(seg, "_") || seg == "metadata"
}
