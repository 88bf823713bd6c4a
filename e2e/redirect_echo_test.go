package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/cqgate/cqgate/config"
)

const echoOID = "2.16.840.1.113883.3.13.9"

// echoingPartner is an organization's FHIR server and token endpoint that
// echo what they are sent.
type echoingPartner struct {
	*httptest.Server
	mu         sync.Mutex
	issued     []string
	assertions []string
}

func newEchoingPartner(t *testing.T) *echoingPartner {
	h := &echoingPartner{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /r4/metadata", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/fhir+json")
		fmt.Fprintf(w, `{"resourceType":"CapabilityStatement","status":"active","fhirVersion":"4.0.1","format":["json"],
 "rest":[{"mode":"server","security":{"extension":[{"url":"http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
  "extension":[{"url":"token","valueUri":"%[1]s/auth/token"},{"url":"carequality-token","valueUri":"%[1]s/auth/token"}]}]}}]}`, h.URL)
	})
	mux.HandleFunc("POST /auth/token", func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		tok := "hostile-at-" + faultRandomHex(16)
		h.mu.Lock()
		h.issued = append(h.issued, tok)
		h.assertions = append(h.assertions, r.PostForm.Get("client_assertion"))
		h.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"access_token":%q,"token_type":"bearer","expires_in":570,"scope":%q}`, tok, r.PostForm.Get("scope"))
	})
	// A FHIR server that redirects within its base, putting the bearer
	// token it was sent into the Location (as some SSO front ends do):
	// net/http's Redirect also writes the Location into the body.
	mux.HandleFunc("GET /r4/Patient/redirect", func(w http.ResponseWriter, r *http.Request) {
		tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		http.Redirect(w, r, h.URL+"/r4/Patient/1?session="+tok, http.StatusFound)
	})
	h.Server = httptest.NewServer(mux)
	t.Cleanup(h.Close)
	return h
}

func (h *echoingPartner) secrets() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append(append([]string(nil), h.issued...), h.assertions...)
}

// A partner's 302 whose Location (within its FHIR base) carries cqgate's
// access token: the Location is mapped and redacted, and the body (which
// net/http's Redirect fills with the same URL, the partner's own) does
// not go on.
func TestRedirectBodyDoesNotEchoTheToken(t *testing.T) {
	hostile := newEchoingPartner(t)
	w := newFaultWorld(t, faultOptions{tune: func(c *config.Config, fw *faultWorld) {
		fw.dir.orgs[echoOID] = hostile.URL + "/r4"
		c.Organizations[echoOID] = config.Organization{AllowPrivateAddresses: true, AllowedTokenOrigins: []string{hostile.URL}}
	}})
	w.client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	a := w.call("/fhir/"+echoOID+"/Patient/redirect", nil)
	if a.err != nil {
		t.Fatal(a.err)
	}
	t.Logf("status %d Location %q body %q", a.status, a.header.Get("Location"), a.body)
	if len(hostile.secrets()) == 0 {
		t.Fatal("no token issued")
	}
	hdr := fmt.Sprint(a.header)
	for _, s := range hostile.secrets() {
		if strings.Contains(string(a.body), s) {
			t.Errorf("cqgate's access token %s reached the caller in the %d body: %s", s, a.status, a.body)
		}
		if strings.Contains(hdr, s) {
			t.Errorf("token in header: %s", hdr)
		}
		if strings.Contains(w.logs.String(), s) {
			t.Errorf("token in logs")
		}
	}
	if a.status != http.StatusFound || len(a.body) != 0 || !strings.Contains(a.header.Get("Location"), "/fhir/"+echoOID+"/Patient/1") {
		t.Errorf("status %d, Location %q, body %q; want the 302 mapped, with no body", a.status, a.header.Get("Location"), a.body)
	}
}
