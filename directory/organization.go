package directory

import (
	"context"
	"time"

	"github.com/cqgate/cqgate/internal/failure"
)

// ErrNotFound is returned (wrapped) when the directory has no organization
// for an OID.
var ErrNotFound = failure.New(failure.NotFound, "directory: organization not found")

// Organization is what the directory says about one OID.
type Organization struct {
	OID         string     `json:"oid"`
	Name        string     `json:"name"`
	Active      bool       `json:"active"`
	Endpoints   []Endpoint `json:"endpoints"`
	LastUpdated time.Time  `json:"last_updated,omitzero"`
}

// Endpoint is one contained Endpoint of an organization.
type Endpoint struct {
	ID string `json:"id,omitempty"`
	// Name is the endpoint's human-readable name.
	Name string `json:"name,omitempty"`
	// Address is the endpoint's URL (for a FHIR endpoint, the FHIR base).
	Address string `json:"address"`
	// ConnectionType is the Endpoint.connectionType code, e.g.
	// "hl7-fhir-rest", "ihe-xcpd" or "ihe-xca".
	ConnectionType string `json:"connection_type,omitempty"`
	// Transaction is the Carequality transaction, e.g. "FHIR REST",
	// "XCPD ITI-55" or "XCA ITI-38".
	Transaction string `json:"transaction,omitempty"`
	// Version is the endpoint's version, for a FHIR endpoint a FHIR
	// version such as "4.0.1" or "R4".
	Version string `json:"version,omitempty"`
	// FHIRVersion is the FHIR version family of a FHIR REST endpoint
	// (FHIRR4, FHIRSTU3, FHIRDSTU2, FHIRR4B or FHIRR5, see FHIRFamily),
	// "" for other endpoints and unknown versions. The parsers and the
	// Resolver's static entries fill it in.
	FHIRVersion string `json:"fhir_version,omitempty"`
	// Status is the Endpoint.status code, e.g. "active".
	Status string `json:"status,omitempty"`
	// PayloadMimeTypes lists Endpoint.payloadMimeType values.
	PayloadMimeTypes []string `json:"payload_mime_types,omitempty"`
}

// Fetcher fetches one organization from a directory. Implementations
// return an error wrapping ErrNotFound when the directory does not know
// the OID.
type Fetcher interface {
	Organization(ctx context.Context, oid string) (*Organization, error)
}
