package scale

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Where the synthetic parties seem to live. Every name is under
// scale.example, which never resolves: a Server's client and
// HandlerTransport answer for it.
const (
	// DirectoryURL is the directory's FHIR base URL (R4, JSON).
	DirectoryURL = "https://" + directoryHost + "/fhir"
	// OIDPrefix starts every synthetic OID: 2.999 is under the
	// "example" arc of joint-iso-itu-t.
	OIDPrefix = "2.999."

	directoryHost = "directory.scale.example"
	fhirHost      = "fhir-ehr.scale.example"
	authHost      = "authorization.scale.example"
	gatewayHost   = "gw.scale.example"
)

// OID is the n-th synthetic organization's OID, 2.999.<n>.
func OID(n int) string { return OIDPrefix + strconv.Itoa(n) }

// TenantID is the n-th organization's tenant id on its FHIR server, a
// UUID-shaped string (as Cerner's are) that encodes n.
func TenantID(n int) string { return fmt.Sprintf("%08x-5ca1-4e00-8000-%012x", n, n) }

// FHIRBase is the n-th organization's FHIR R4 base URL, as its directory
// entry gives it.
func FHIRBase(n int) string { return "https://" + fhirHost + "/r4/" + TenantID(n) }

// TokenURL is the generic oauth-uris "token" the n-th organization's
// CapabilityStatement advertises.
func TokenURL(n int) string {
	return "https://" + authHost + "/tenants/" + TenantID(n) + "/protocols/oauth2/profiles/smart-v1/token"
}

// CarequalityTokenURL is the "carequality-token" the n-th organization's
// CapabilityStatement advertises; discovery's default order picks it.
func CarequalityTokenURL(n int) string {
	return "https://" + authHost + "/tenants/" + TenantID(n) + "/hosts/" + fhirHost + "/protocols/oauth2/profiles/carequality/token"
}

// Organization is the n-th organization's directory entry: a standard
// FHIR R4 Organization in the Sequoia (sphd) profile, as the Carequality
// R4 directory serves it, with three contained Endpoints (FHIR R4 REST,
// XCPD, XCA), an OID identifier and an address.
func Organization(n int) []byte {
	oid := OID(n)
	gw := fmt.Sprintf("https://%s/org%d", gatewayHost, n)
	return fmt.Appendf(nil, `{"resourceType":"Organization","id":%[1]q,`+
		`"meta":{"versionId":"3","lastUpdated":"2024-03-05T18:22:41.5Z","profile":["https://sequoiaproject.org/fhir/sphd/StructureDefinition/SequoiaOrganization"]},`+
		`"contained":[`+
		`{"resourceType":"Endpoint","id":"fhir-r4","extension":[`+
		`{"url":"https://sequoiaproject.org/fhir/sphd/StructureDefinition/Transaction","valueCodeableConcept":{"coding":[{"system":"https://sequoiaproject.org/fhir/sphd/CodeSystem/TransactionCodes","code":"FHIR REST"}]}},`+
		`{"url":"https://sequoiaproject.org/fhir/sphd/StructureDefinition/Version","valueString":"4.0.1"}],`+
		`"status":"active","connectionType":{"system":"http://terminology.hl7.org/CodeSystem/endpoint-connection-type","code":"hl7-fhir-rest"},`+
		`"name":"FHIR R4","payloadMimeType":["application/fhir+json"],"address":%[2]q},`+
		`{"resourceType":"Endpoint","id":"xcpd","identifier":[{"use":"official","system":"http://www.hl7.org/oid/","value":"urn:oid:%[1]s"}],"extension":[`+
		`{"url":"https://sequoiaproject.org/fhir/sphd/StructureDefinition/Transaction","valueCodeableConcept":{"coding":[{"system":"https://sequoiaproject.org/fhir/sphd/CodeSystem/TransactionCodes","code":"XCPD ITI-55"}]}},`+
		`{"url":"https://sequoiaproject.org/fhir/sphd/StructureDefinition/Version","valueString":"2.0"}],`+
		`"status":"active","connectionType":{"system":"http://terminology.hl7.org/CodeSystem/endpoint-connection-type","code":"ihe-xcpd"},`+
		`"name":"Patient Discovery","payloadMimeType":["application/soap+xml"],"address":"%[3]s/xcpd/iti55"},`+
		`{"resourceType":"Endpoint","id":"xca","extension":[`+
		`{"url":"https://sequoiaproject.org/fhir/sphd/StructureDefinition/Transaction","valueCodeableConcept":{"coding":[{"system":"https://sequoiaproject.org/fhir/sphd/CodeSystem/TransactionCodes","code":"XCA ITI-38"}]}},`+
		`{"url":"https://sequoiaproject.org/fhir/sphd/StructureDefinition/Version","valueString":"2.0"}],`+
		`"status":"active","connectionType":{"system":"http://terminology.hl7.org/CodeSystem/endpoint-connection-type","code":"ihe-xca"},`+
		`"name":"Query for Documents","payloadMimeType":["application/soap+xml"],"address":"%[3]s/xca/iti38"}],`+
		`"identifier":[{"use":"official","type":{"coding":[{"system":"https://sequoiaproject.org/fhir/sphd/CodeSystem/SequoiaIdentifierCodes","code":"HCID"}]},"system":"urn:ietf:rfc:3986","value":"urn:oid:%[1]s"}],`+
		`"active":true,"type":[{"coding":[{"system":"https://sequoiaproject.org/fhir/sphd/CodeSystem/OrganizationType","code":"Implementer"}]}],`+
		`"name":"Scale Regional Health System %[4]d",`+
		`"address":[{"use":"work","line":["%[4]d Main Street","Suite 200"],"city":"Springfield","state":"MO","postalCode":"65801","country":"USA"}],`+
		`"partOf":{"reference":"Organization/2.999"},`+
		`"endpoint":[{"reference":"#fhir-r4","type":"Endpoint"},{"reference":"#xcpd","type":"Endpoint"},{"reference":"#xca","type":"Endpoint"}]}`,
		oid, FHIRBase(n), gw, n)
}

// resourceTypes are the resources a Cerner R4 server lists.
var resourceTypes = []string{
	"AllergyIntolerance", "Appointment", "Binary", "CarePlan", "CareTeam", "ChargeItem", "Communication",
	"Condition", "Consent", "Coverage", "Device", "DiagnosticReport", "DocumentReference", "Encounter",
	"FamilyMemberHistory", "Goal", "Immunization", "InsurancePlan", "Location", "Media", "Medication",
	"MedicationAdministration", "MedicationDispense", "MedicationRequest", "NutritionOrder", "Observation",
	"Organization", "Patient", "Person", "Practitioner", "Procedure", "Provenance", "Questionnaire",
	"QuestionnaireResponse", "RelatedPerson", "Schedule", "ServiceRequest", "Slot", "Specimen",
}

// CapabilityStatement is the n-th organization's /metadata: a
// Cerner-shaped R4 CapabilityStatement whose rest.security carries the
// SMART oauth-uris extension with token, authorize, revoke and
// carequality-token, and which lists up to resources resource types
// (each with interactions and search parameters), as a real server's
// does; resources 0 gives a minimal document.
func CapabilityStatement(n, resources int) []byte {
	var b strings.Builder
	base := FHIRBase(n)
	auth := "https://" + authHost + "/tenants/" + TenantID(n) + "/protocols/oauth2/profiles/smart-v1"
	fmt.Fprintf(&b, `{"resourceType":"CapabilityStatement","id":%q,"name":"Cerner_Millennium_FHIR_R4","status":"active",`+
		`"date":"2024-03-01T12:00:00Z","publisher":"Cerner","kind":"instance",`+
		`"software":{"name":"Cerner Millennium","version":"2024.01.1"},`+
		`"implementation":{"description":"Cerner Millennium R4 FHIR server","url":%q},`+
		`"fhirVersion":"4.0.1","format":["json"],`+
		`"rest":[{"mode":"server","documentation":"Cerner implementation of FHIR R4 over Millennium",`+
		`"security":{"extension":[{"url":"http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris","extension":[`+
		`{"url":"token","valueUri":%q},{"url":"authorize","valueUri":%q},{"url":"revoke","valueUri":%q},{"url":"carequality-token","valueUri":%q}]}],`+
		`"cors":true,"service":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/restful-security-service","code":"SMART-on-FHIR"}],`+
		`"text":"OAuth2 using SMART-on-FHIR profile (see http://docs.smarthealthit.org)"}]},"resource":[`,
		TenantID(n), base, TokenURL(n), auth+"/personas/provider/authorize", auth+"/token/revoke", CarequalityTokenURL(n))
	for i := range min(resources, len(resourceTypes)) {
		if i > 0 {
			b.WriteByte(',')
		}
		t := resourceTypes[i]
		fmt.Fprintf(&b, `{"type":%[1]q,"profile":"http://hl7.org/fhir/StructureDefinition/%[1]s",`+
			`"interaction":[{"code":"read"},{"code":"search-type"},{"code":"create"},{"code":"update"}],`+
			`"versioning":"versioned","readHistory":false,"updateCreate":false,"conditionalCreate":false,"conditionalUpdate":false,"conditionalDelete":"not-supported",`+
			`"searchParam":[{"name":"_id","type":"token","documentation":"The logical resource id."},`+
			`{"name":"patient","type":"reference","documentation":"Who the %[1]s is about."},`+
			`{"name":"date","type":"date","documentation":"Date range of the %[1]s."},`+
			`{"name":"_lastUpdated","type":"date","documentation":"When the %[1]s was last changed."}]}`, t)
	}
	b.WriteString(`],"interaction":[{"code":"batch"},{"code":"transaction"}]}]}`)
	return []byte(b.String())
}

// MetadataResources is how many resource types the Handler's
// CapabilityStatements list.
const MetadataResources = 12

// Handler answers as the directory and every organization's FHIR server:
//
//	GET https://directory.scale.example/fhir/Organization/2.999.<n>   Organization(n)
//	GET {FHIRBase(n)}/metadata                                         CapabilityStatement(n, MetadataResources)
//
// and 404 to everything else (such as .well-known documents). It tells
// the hosts apart by the request's Host. It is safe for concurrent use.
type Handler struct {
	directory, metadata, other atomic.Int64
}

var _ http.Handler = (*Handler)(nil)

// Counts returns how many directory reads, metadata reads and other
// requests the Handler answered.
func (h *Handler) Counts() (directory, metadata, other int64) {
	return h.directory.Load(), h.metadata.Load(), h.other.Load()
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	host := r.Host
	if host == "" {
		host = r.URL.Host
	}
	if r.Method == http.MethodGet {
		switch host {
		case directoryHost:
			if oid, ok := strings.CutPrefix(r.URL.Path, "/fhir/Organization/"); ok {
				if n, ok := parseOID(oid); ok {
					h.directory.Add(1)
					serve(w, Organization(n))
					return
				}
			}
		case fhirHost:
			if id, ok := strings.CutPrefix(r.URL.Path, "/r4/"); ok {
				if id, ok := strings.CutSuffix(id, "/metadata"); ok {
					if n, ok := parseTenantID(id); ok {
						h.metadata.Add(1)
						serve(w, CapabilityStatement(n, MetadataResources))
						return
					}
				}
			}
		}
	}
	h.other.Add(1)
	http.Error(w, "not found", http.StatusNotFound)
}

func serve(w http.ResponseWriter, body []byte) {
	w.Header().Set("Content-Type", "application/fhir+json;charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	_, _ = w.Write(body)
}

// parseOID returns n for "2.999.<n>".
func parseOID(oid string) (int, bool) {
	s, ok := strings.CutPrefix(oid, OIDPrefix)
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || OID(n) != oid {
		return 0, false
	}
	return n, true
}

// parseTenantID returns n for TenantID(n).
func parseTenantID(id string) (int, bool) {
	if len(id) < 8 {
		return 0, false
	}
	n, err := strconv.ParseUint(id[:8], 16, 31)
	if err != nil || TenantID(int(n)) != id {
		return 0, false
	}
	return int(n), true
}

// HandlerTransport returns an http.RoundTripper that answers every
// request with h in memory: no listener, no socket.
func HandlerTransport(h http.Handler) http.RoundTripper { return handlerTransport{h} }

type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if err := req.Context().Err(); err != nil {
		return nil, err
	}
	rec := httptest.NewRecorder()
	t.h.ServeHTTP(rec, req)
	resp := rec.Result()
	resp.Request = req
	return resp, nil
}

// Server is a Handler behind a loopback HTTP server.
type Server struct {
	*Handler
	srv    *httptest.Server
	client *http.Client
	open   atomic.Int64 // server-side connections not yet closed
}

// NewServer starts a Handler on 127.0.0.1. Close it when done.
func NewServer() *Server {
	s := &Server{Handler: &Handler{}}
	s.srv = httptest.NewUnstartedServer(s.Handler)
	s.srv.Config.ConnState = func(_ net.Conn, state http.ConnState) {
		switch state {
		case http.StateNew:
			s.open.Add(1)
		case http.StateClosed, http.StateHijacked:
			s.open.Add(-1)
		}
	}
	s.srv.Start()
	addr := s.srv.Listener.Addr().String()
	dialer := &net.Dialer{Timeout: 10 * time.Second}
	base := &http.Transport{
		// Whatever host a request names, it goes to the loopback server.
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, network, addr)
		},
		MaxIdleConns:        256,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     90 * time.Second,
	}
	s.client = &http.Client{Transport: &loopbackTransport{base: base}, Timeout: 30 * time.Second}
	return s
}

// Client returns an HTTP client whose requests, whatever their URL,
// reach the server (as plain HTTP, with the URL's host as Host).
func (s *Server) Client() *http.Client { return s.client }

// Quiesce closes every connection between the client and the server and
// waits (up to timeout) until the server has let go of them, so that no
// connection buffers or goroutines are left to count in a heap
// measurement. The client and server stay usable.
func (s *Server) Quiesce(timeout time.Duration) error {
	s.client.CloseIdleConnections()
	s.srv.CloseClientConnections()
	deadline := time.Now().Add(timeout)
	for s.open.Load() > 0 {
		if time.Now().After(deadline) {
			return fmt.Errorf("scale: %d server connections still open after %s", s.open.Load(), timeout)
		}
		time.Sleep(time.Millisecond)
	}
	return nil
}

// Close closes the client's idle connections and shuts the server down.
func (s *Server) Close() {
	s.client.CloseIdleConnections()
	s.srv.Close()
}

// loopbackTransport sends https requests as plain http (to the dialer's
// loopback address).
type loopbackTransport struct{ base *http.Transport }

func (t *loopbackTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	out := req.Clone(req.Context())
	out.URL.Scheme = "http"
	out.Host = req.URL.Host
	resp, err := t.base.RoundTrip(out)
	if resp != nil {
		resp.Request = req
	}
	return resp, err
}

// CloseIdleConnections lets http.Client.CloseIdleConnections reach the
// pool.
func (t *loopbackTransport) CloseIdleConnections() { t.base.CloseIdleConnections() }
