package discovery_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/cqgate/cqgate/bench/scale"
	"github.com/cqgate/cqgate/discovery"
)

// Benchmarks of discovery's parsers and its cache, through the package's
// public API only. Documents are read once per FHIR server per cache TTL;
// the warm Discover runs on every FHIR request that is not served from
// tenant.Reuser.
//
// Only the CapabilityStatement parser is exported
// (ParseCapabilityStatement); the smart-configuration and UDAP metadata
// parsers are not, so BenchmarkDiscoverCold measures them inside a whole
// uncached discovery (URL building, an in-memory HTTP exchange, the parse,
// judging the claim, caching), next to the same for a CapabilityStatement.

const benchBase = "https://fhir-ehr.bench.example/r4/0b8a0111-e8e6-4c26-a91c-5069cbc6b1ca"

// smartConfiguration is a .well-known/smart-configuration in the shape a
// large EHR vendor serves.
func smartConfiguration() []byte {
	auth := "https://authorization.bench.example/tenants/0b8a0111-e8e6-4c26-a91c-5069cbc6b1ca/protocols/oauth2/profiles/smart-v1"
	doc := map[string]any{
		"issuer":                                "https://authorization.bench.example/tenants/0b8a0111-e8e6-4c26-a91c-5069cbc6b1ca/oidc/idsps/0b8a0111-e8e6-4c26-a91c-5069cbc6b1ca/",
		"jwks_uri":                              "https://authorization.bench.example/jwk",
		"authorization_endpoint":                auth + "/personas/provider/authorize",
		"token_endpoint":                        auth + "/token",
		"revocation_endpoint":                   auth + "/token/revoke",
		"introspection_endpoint":                auth + "/token/introspect",
		"registration_endpoint":                 "https://authorization.bench.example/tenants/0b8a0111-e8e6-4c26-a91c-5069cbc6b1ca/protocols/oauth2/register",
		"token_endpoint_auth_methods_supported": []string{"private_key_jwt", "client_secret_basic"},
		"token_endpoint_auth_signing_alg_values_supported": []string{"RS256", "RS384", "ES256", "ES384"},
		"grant_types_supported":                            []string{"authorization_code", "client_credentials", "refresh_token"},
		"response_types_supported":                         []string{"code"},
		"code_challenge_methods_supported":                 []string{"S256"},
		"scopes_supported": []string{"openid", "fhirUser", "launch", "launch/patient", "offline_access", "online_access",
			"system/Patient.read", "system/Observation.read", "system/Condition.read", "system/AllergyIntolerance.read",
			"system/MedicationRequest.read", "system/DocumentReference.read", "system/Encounter.read", "system/Immunization.read",
			"system/Procedure.read", "system/DiagnosticReport.read", "patient/*.read", "user/*.read"},
		"capabilities": []string{"launch-ehr", "launch-standalone", "client-public", "client-confidential-symmetric",
			"client-confidential-asymmetric", "sso-openid-connect", "context-banner", "context-style", "context-ehr-patient",
			"context-ehr-encounter", "context-standalone-patient", "permission-offline", "permission-patient", "permission-user", "permission-v1", "permission-v2"},
	}
	return must(json.Marshal(doc))
}

// udapMetadata is a .well-known/udap document with a signed_metadata of
// realistic size (a JWS whose header carries a two-certificate x5c). Its
// signature is not valid: the unsigned document is what is parsed here.
func udapMetadata() []byte {
	cert := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0x30, 0x82, 0x05, 0x1a}, 300))
	header := base64.RawURLEncoding.EncodeToString(must(json.Marshal(map[string]any{"alg": "RS256", "x5c": []string{cert, cert}})))
	claims := base64.RawURLEncoding.EncodeToString(must(json.Marshal(map[string]any{
		"iss": benchBase, "sub": benchBase, "iat": 1735700000, "exp": 1738300000, "jti": "signed-metadata-1",
		"token_endpoint": "https://udap.bench.example/oauth/token", "registration_endpoint": "https://udap.bench.example/oauth/register",
	})))
	sig := base64.RawURLEncoding.EncodeToString(bytes.Repeat([]byte{7}, 256))
	doc := map[string]any{
		"udap_versions_supported":                                []string{"1"},
		"udap_profiles_supported":                                []string{"udap_dcr", "udap_authn", "udap_authz"},
		"udap_authorization_extensions_supported":                []string{"hl7-b2b"},
		"udap_authorization_extensions_required":                 []string{"hl7-b2b"},
		"udap_certifications_supported":                          []string{"https://www.example.org/udap/profiles/example-certification"},
		"udap_certifications_required":                           []string{},
		"grant_types_supported":                                  []string{"client_credentials"},
		"scopes_supported":                                       []string{"system/Patient.read", "system/Observation.read", "system/*.read"},
		"authorization_endpoint":                                 "https://udap.bench.example/oauth/authorize",
		"token_endpoint":                                         "https://udap.bench.example/oauth/token",
		"token_endpoint_auth_methods_supported":                  []string{"private_key_jwt"},
		"token_endpoint_auth_signing_alg_values_supported":       []string{"RS256", "RS384", "ES256", "ES384"},
		"registration_endpoint":                                  "https://udap.bench.example/oauth/register",
		"registration_endpoint_jwt_signing_alg_values_supported": []string{"RS256", "ES256"},
		"signed_metadata":                                        header + "." + claims + "." + sig,
	}
	return must(json.Marshal(doc))
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// BenchmarkParseCapabilityStatement reads oauth-uris from a Cerner-shaped
// R4 CapabilityStatement (token, authorize, revoke and carequality-token),
// a minimal one and one listing 39 resource types with their
// interactions and search parameters, as a real server's does.
func BenchmarkParseCapabilityStatement(b *testing.B) {
	for _, bc := range []struct {
		name      string
		resources int
	}{
		{"cerner/minimal", 0},
		{"cerner/resources=39", 39},
	} {
		b.Run(bc.name, func(b *testing.B) {
			doc := scale.CapabilityStatement(1, bc.resources)
			uris, err := discovery.ParseCapabilityStatement(doc)
			if err != nil || uris.CarequalityToken != scale.CarequalityTokenURL(1) {
				b.Fatalf("%+v, %v", uris, err)
			}
			b.SetBytes(int64(len(doc)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := discovery.ParseCapabilityStatement(doc); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// documents answers GETs below benchBase from memory: no listener, no
// socket. Unknown paths are 404.
type documents map[string][]byte

func (d documents) RoundTrip(req *http.Request) (*http.Response, error) {
	body, ok := d[strings.TrimPrefix(req.URL.String(), benchBase)]
	status := http.StatusOK
	if !ok {
		status, body = http.StatusNotFound, []byte("not found")
	}
	return &http.Response{
		StatusCode:    status,
		Status:        strconv.Itoa(status) + " " + http.StatusText(status),
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        http.Header{"Content-Type": {"application/json"}, "Content-Length": {strconv.Itoa(len(body))}},
		ContentLength: int64(len(body)),
		Body:          io.NopCloser(bytes.NewReader(body)),
		Request:       req,
	}, nil
}

// BenchmarkDiscoverCold is one uncached discovery from one source, its
// document served from memory: the whole cost of reading a document,
// parse included, as it is paid once per FHIR server per TTL. The UDAP
// case parses the unsigned document and stops there (no trust anchors
// are configured, so signed_metadata is not even decoded): the source
// then fails, as it does for unsigned metadata.
func BenchmarkDiscoverCold(b *testing.B) {
	docs := documents{
		"/metadata":                        scale.CapabilityStatement(1, 39),
		"/.well-known/smart-configuration": smartConfiguration(),
		"/.well-known/udap":                udapMetadata(),
	}
	minimal := documents{"/metadata": scale.CapabilityStatement(1, 0)}
	for _, bc := range []struct {
		name    string
		docs    documents
		source  discovery.Source
		wantErr bool
	}{
		{"carequality-token/metadata-minimal", minimal, discovery.SourceCarequalityToken, false},
		{"carequality-token/metadata-resources=39", docs, discovery.SourceCarequalityToken, false},
		{"smart-configuration", docs, discovery.SourceSMARTConfiguration, false},
		{"udap/unsigned-parse", docs, discovery.SourceUDAP, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			d := discovery.New(discovery.Config{HTTPClient: &http.Client{Transport: bc.docs}})
			req := discovery.Request{FHIRBase: benchBase, Order: []discovery.Source{bc.source}}
			ctx := context.Background()
			discover := func() error {
				d.Forget(benchBase)
				res, err := d.Discover(ctx, req)
				var none *discovery.NoTokenURLError
				switch {
				case bc.wantErr && errors.As(err, &none) && errors.Is(err, discovery.ErrNoTrustAnchors):
					return nil
				case err != nil || bc.wantErr:
					return fmt.Errorf("%+v, %v", res, err)
				}
				return nil
			}
			if err := discover(); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if err := discover(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDiscoverWarm is Discover for the FHIR base of a random
// organization among orgs cached ones (filled from a loopback server's
// CapabilityStatements): the cost should not grow with the number
// cached. It also reports the live heap the cache holds per FHIR server
// (B/org, from 1,000 organizations on).
func BenchmarkDiscoverWarm(b *testing.B) {
	for _, orgs := range []int{10, 1000, 10000} {
		b.Run(fmt.Sprintf("orgs=%d", orgs), func(b *testing.B) {
			srv := scale.NewServer()
			defer srv.Close()
			d := discovery.New(discovery.Config{HTTPClient: srv.Client()})
			ctx := context.Background()
			perOrg, err := srv.FillCaches(ctx, orgs, func(ctx context.Context, n int) error {
				res, err := d.Discover(ctx, discovery.Request{FHIRBase: scale.FHIRBase(n)})
				if err == nil && res.TokenURL != scale.CarequalityTokenURL(n) {
					err = fmt.Errorf("%s: token URL %s", scale.FHIRBase(n), res.TokenURL)
				}
				return err
			})
			if err != nil {
				b.Fatal(err)
			}
			picks := scale.Picks(orgs, 1<<14)
			reqs := make([]discovery.Request, len(picks))
			for i, n := range picks {
				reqs[i] = discovery.Request{FHIRBase: scale.FHIRBase(n)}
			}
			mask := len(reqs) - 1
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, err := d.Discover(ctx, reqs[i&mask]); err != nil {
					b.Fatal(err)
				}
				i++
			}
			b.StopTimer()
			if _, reads, other := srv.Counts(); reads != int64(orgs)+1 || other != 0 {
				b.Fatalf("%d metadata reads and %d other requests for %d organizations: the lookups were not all warm", reads, other, orgs+1)
			}
			if orgs >= 1000 {
				b.ReportMetric(perOrg, "B/org")
			}
			runtime.KeepAlive(d)
		})
	}
}
