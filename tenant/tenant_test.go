package tenant

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/go-jose/go-jose/v4"

	"github.com/cqgate/cqgate/directory"
	"github.com/cqgate/cqgate/discovery"
	"github.com/cqgate/cqgate/outcome"
)

type stubDir map[string]*directory.Organization

func (s stubDir) Lookup(_ context.Context, oid string) (*directory.Entry, error) {
	if oid == "9.9" {
		return nil, &directory.Error{URL: "https://dir/Organization/9.9", StatusCode: 500}
	}
	o, ok := s[oid]
	if !ok {
		return nil, fmt.Errorf("stub: %w", directory.ErrNotFound)
	}
	return &directory.Entry{Organization: o, Source: "directory"}, nil
}

type stubDisc struct{ calls int }

func (s *stubDisc) TokenEndpoint(_ context.Context, base string) (*discovery.Result, error) {
	s.calls++
	if base == "https://broken.example/fhir" {
		return nil, &discovery.Error{URL: base + "/metadata", StatusCode: 503}
	}
	return &discovery.Result{TokenURL: base + "/Authorization/token", Source: "carequality-token"}, nil
}

func org(oid string, eps ...directory.Endpoint) *directory.Organization {
	return &directory.Organization{OID: oid, Name: "Org " + oid, Active: true, Endpoints: eps}
}

var (
	fhirEP = directory.Endpoint{Address: "https://fhir.example/r4/", ConnectionType: "hl7-fhir-rest", Transaction: "FHIR REST", Version: "4.0.1", Status: "active"}
	xcpdEP = directory.Endpoint{Address: "https://soap.example/xcpd", ConnectionType: "ihe-xcpd", Transaction: "XCPD ITI-55", Status: "active"}
)

func TestResolve(t *testing.T) {
	dir := stubDir{
		"1.1": org("1.1", xcpdEP, fhirEP),
		"1.2": org("1.2", xcpdEP),
		"1.3": org("1.3", fhirEP),
		"1.4": org("1.4", directory.Endpoint{Address: "https://broken.example/fhir", Transaction: "FHIR REST", Status: "active"}),
	}
	r := &Resolver{
		Directory: dir,
		Defaults:  Settings{ClientID: "gw.example.org", Scope: "system/*.read", Algorithm: jose.RS384},
		Orgs:      map[string]Settings{"1.3": {TokenURL: "https://auth.example/token", Scope: "system/Patient.read", Algorithm: jose.RS256}},
	}
	tests := []struct {
		oid        string
		wantStatus int // 0: success
		check      func(*testing.T, *Tenant, *stubDisc)
	}{
		{oid: "1.1", check: func(t *testing.T, tn *Tenant, d *stubDisc) {
			if tn.FHIRBase != "https://fhir.example/r4" || tn.TokenURL != "https://fhir.example/r4/Authorization/token" ||
				tn.TokenURLSource != "carequality-token" || tn.ClientID != "gw.example.org" || tn.Algorithm != jose.RS384 || len(tn.Endpoints) != 2 || d.calls != 1 {
				t.Errorf("tenant = %+v (discovery calls %d)", tn, d.calls)
			}
		}},
		{oid: "1.3", check: func(t *testing.T, tn *Tenant, d *stubDisc) {
			if tn.TokenURL != "https://auth.example/token" || tn.TokenURLSource != "config" || tn.Scope != "system/Patient.read" || tn.Algorithm != jose.RS256 || d.calls != 0 {
				t.Errorf("configured overrides not applied: %+v (discovery calls %d)", tn, d.calls)
			}
		}},
		{oid: "1.2", wantStatus: http.StatusBadGateway},
		{oid: "1.4", wantStatus: http.StatusBadGateway},
		{oid: "9.9", wantStatus: http.StatusBadGateway},
		{oid: "7.7", wantStatus: http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.oid, func(t *testing.T) {
			d := &stubDisc{}
			r.Discovery = d
			tn, err := r.Resolve(context.Background(), tt.oid)
			if tt.wantStatus != 0 {
				if status, _ := outcome.FromError(err); status != tt.wantStatus {
					t.Fatalf("Resolve error %v classified %d, want %d", err, status, tt.wantStatus)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, tn, d)
		})
	}
}

func TestDescribeKeepsDiscoveryFailure(t *testing.T) {
	r := &Resolver{
		Directory: stubDir{"1.4": org("1.4", directory.Endpoint{Address: "https://broken.example/fhir", Transaction: "FHIR REST", Status: "active"})},
		Discovery: &stubDisc{},
	}
	tn, err := r.Describe(context.Background(), "1.4")
	if err != nil {
		t.Fatal(err)
	}
	if tn.TokenURL != "" || tn.TokenURLError == "" || tn.FHIRBase != "https://broken.example/fhir" {
		t.Errorf("describe = %+v", tn)
	}
	var de *discovery.Error
	if _, err := r.Resolve(context.Background(), "1.4"); !errors.As(err, &de) {
		t.Errorf("Resolve should fail with the discovery error, got %v", err)
	}
}
