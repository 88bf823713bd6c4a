package gateway

import (
	"context"
	"testing"


	"github.com/cqgate/cqgate/config"
	"github.com/cqgate/cqgate/directory"
	"github.com/cqgate/cqgate/discovery"
	"github.com/cqgate/cqgate/internal/outcome"
	"github.com/cqgate/cqgate/tenant"
)

type revS8CDir struct{}

func (revS8CDir) Lookup(_ context.Context, oid string) (*directory.Entry, error) {
	return directory.NewEntry(&directory.Organization{OID: oid, Name: "Org", Active: true, Endpoints: []directory.Endpoint{
		{Address: "https://fhir.example/r4", ConnectionType: "hl7-fhir-rest", Transaction: "FHIR REST", Version: "4.0.1", Status: "active"}}}, "directory"), nil
}

// revS8CUDAP discovers verified UDAP metadata.
type revS8CUDAP struct{}

func (revS8CUDAP) Discover(_ context.Context, req discovery.Request) (*discovery.Result, error) {
	return &discovery.Result{TokenURL: req.FHIRBase + "/token", Source: discovery.SourceUDAP, UDAP: true, SigningAlgorithms: []string{"RS256"}}, nil
}

// rev-s8c: config.go says of organizations.<oid>.udap.enabled "discovery
// finding verified UDAP metadata turns it on as well", and settings.go
// builds the hl7-b2b context whenever organization_id is set. But
// validation checks organization_id (a URI) and purpose_of_use only when
// enabled is true, so a configuration that validates makes every token
// request to that partner fail once its UDAP metadata is found, with a
// 500 "internal error" that names nothing.
func TestRevS8CDiscoveredUDAPContextIsValidated(t *testing.T) {
	cfg := config.Default()
	cfg.Client.ClientID = "gw.example.org"
	cfg.Audit.Destination = "none"
	cfg.Keys.Source = "static"
	cfg.Directory.URL = "https://directory.example.org/fhir"
	cfg.Organizations = map[string]config.Organization{"1.2.3": {UDAP: config.OrgUDAP{OrganizationID: "Example Health"}}}
	if err := cfg.Validate(); err != nil {
		t.Logf("refused: %v", err)
		return // refused at start-up: fine
	}
	s, err := orgSettings(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r := &tenant.Resolver{Directory: revS8CDir{}, Discovery: revS8CUDAP{}, Defaults: s.defaults, Orgs: s.orgs}
	tn, err := r.Resolve(context.Background(), "1.2.3")
	if err != nil {
		t.Fatal(err)
	}
	req := tn.TokenRequest()
	if !req.UDAP || req.B2B == nil {
		t.Skipf("UDAP not turned on (%+v)", req)
	}
	if err := req.B2B.Validate(); err != nil {
		status, oo := outcome.FromError(err)
		t.Errorf("config validated, but every token request for 1.2.3 fails: %v (caller gets %d %q)", err, status, oo.Issue[0].Diagnostics)
	}
}
