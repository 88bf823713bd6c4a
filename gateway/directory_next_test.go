package gateway

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/cqgate/cqgate/config"
)

// Behind an ingress that serves cqgate under a path prefix, a directory
// search's next page, resolved against the URL the caller used, stays
// under that prefix (it was a root-relative /directory/... that led out).
func TestDirectoryNextHoldsUnderAPathPrefix(t *testing.T) {
	const page = `{"resourceType":"Bundle","type":"searchset","total":2,
 "link":[{"relation":"next","url":"https://directory.example.org/fhir/Organization?name=x&_count=1&_getpagesoffset=1"}],
 "entry":[{"resource":{"resourceType":"Organization","id":"2.16.840.1.113883.3.13.1","name":"x","active":true}}]}`
	dir := rtFunc(func(r *http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/fhir+json"}},
			Body: io.NopCloser(strings.NewReader(page)), Request: r}, nil
	})
	g := zeroConfigGateway(t, func(c *config.Config) {
		c.Server.PublicURL = "https://ingress.example/cqgate"
	}, dir, nil)
	rr := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodGet, "http://10.0.0.7:8080/directory/Organization?name=x&_count=1", nil)
	r.RemoteAddr = "127.0.0.1:4000"
	g.Handler.ServeHTTP(rr, r)
	if rr.Code != 200 {
		t.Fatalf("status %d: %s", rr.Code, rr.Body)
	}
	var out struct{ Next string }
	if err := json.Unmarshal(rr.Body.Bytes(), &out); err != nil {
		t.Fatal(err)
	}
	if out.Next == "" {
		t.Fatalf("no next: %s", rr.Body)
	}
	asked, _ := url.Parse("https://ingress.example/cqgate/directory/Organization?name=x&_count=1")
	ref, err := url.Parse(out.Next)
	if err != nil {
		t.Fatal(err)
	}
	if got := asked.ResolveReference(ref).String(); !strings.HasPrefix(got, "https://ingress.example/cqgate/directory/Organization?page=") {
		t.Errorf("next = %q leads a caller at %s to %s, outside cqgate", out.Next, asked, got)
	}
}
