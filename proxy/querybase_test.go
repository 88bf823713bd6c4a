package proxy

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// A FHIR base that the directory lists with a query is accepted by the
// tenant resolver, but its answers cannot be rewritten
// (fhirurl.NewRewriter refuses it): a 502 before anything is sent, never
// an answer with the partner's URLs.
func TestBaseThatCannotBeMappedIsRefused(t *testing.T) {
	t.Parallel()
	var sawQuery string
	partner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sawQuery = r.URL.RawQuery
		w.Header().Set("Content-Type", "application/fhir+json")
		w.Header().Set("Location", "https://fhir.partner.example/r4/Patient/1")
		io.WriteString(w, `{"resourceType":"Bundle","type":"searchset","link":[{"relation":"next","url":"https://fhir.partner.example/r4/Patient?tenant=1&_offset=2"}],`+
			`"entry":[{"fullUrl":"https://fhir.partner.example/r4/Patient/1"}]}`)
	})
	w := newFwdWorld(t, nil, partner)
	tn := publicTenant(t, "1.2.3", "https://fhir.partner.example/r4?tenant=1")
	rr := w.doFor(tn, http.MethodGet, "http://gw.local/fhir/1.2.3/Patient", nil, nil)
	if rr.Code != http.StatusBadGateway || strings.Contains(rr.Body.String(), "fhir.partner.example/r4/Patient") || sawQuery != "" {
		t.Errorf("%d %s (the partner saw query %q); want a 502 and nothing sent", rr.Code, rr.Body, sawQuery)
	}
}
