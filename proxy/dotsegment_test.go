package proxy

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/cqgate/cqgate/proxy/fhirurl"
)

// A partner's next link that climbs out of its base with dot segments is
// not under the base, and is not made a cqgate link: mapped, it would
// climb out of /fhir/{oid}/ (and out of server.public_url's path prefix)
// for a caller that follows it the way curl, browsers or urllib3 do (RFC
// 3986 §5.2.4 remove_dot_segments), taking its X-API-Key to another
// organization's route or to another service on cqgate's public host.
func TestNextLinkWithDotSegmentsLeavesTheRoute(t *testing.T) {
	t.Parallel()
	partner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/fhir+json")
		io.WriteString(w, `{"resourceType":"Bundle","type":"searchset","link":[`+
			`{"relation":"next","url":"https://fhir.partner.example/r4/../../../../admin/export?all=1"},`+
			`{"relation":"last","url":"https://fhir.partner.example/r4/../2.16.840.1.99/Patient?_count=2"}]}`)
	})
	public, _ := fhirurl.ParsePublicURL("https://api.example/cqgate")
	w := newFwdWorld(t, &PublicBase{URL: public}, partner)
	rr := w.do(http.MethodGet, "http://gw.local/fhir/1.2.3/Patient", nil, nil)
	var b struct {
		Link []struct{ Relation, URL string }
	}
	if err := jsonUnmarshal(rr.Body.Bytes(), &b); err != nil {
		t.Fatalf("%v: %s", err, rr.Body)
	}
	const route = "https://api.example/cqgate/fhir/1.2.3/"
	for _, l := range b.Link {
		u, err := url.Parse(l.URL)
		if err != nil {
			t.Fatal(err)
		}
		followed := (&url.URL{}).ResolveReference(u).String()
		if strings.HasPrefix(l.URL, "https://api.example/") && !strings.HasPrefix(followed, route) {
			t.Errorf("%s = %q, followed as %q: outside %s", l.Relation, l.URL, followed, route)
		}
	}
}
