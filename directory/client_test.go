package directory

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// noSleep retries without really waiting.
var noSleep = RetryPolicy{Sleep: func(ctx context.Context, d time.Duration) error { return ctx.Err() }}

// testKey has characters that URL encoding changes, so that the tests
// catch the key leaking in either form.
const testKey = "k3y-S3CRET+/="

// flavour is one directory client configuration under test.
type flavour struct {
	name     string
	basePath string
	client   func(base string, hc *http.Client, maxBody int64) Fetcher
	body     func(oid string) string // a valid answer for oid
	// check verifies the request shape, returning a problem or "".
	check func(r *http.Request) string
}

var flavours = []flavour{
	{
		name:     "R4 key in header (default)",
		basePath: "/fhir",
		client: func(base string, hc *http.Client, maxBody int64) Fetcher {
			return &R4Client{BaseURL: base, APIKey: testKey, HTTPClient: hc, MaxBodyBytes: maxBody, Retry: noSleep}
		},
		body: r4Body,
		check: func(r *http.Request) string {
			switch {
			case r.Header.Get("Accept") != "application/fhir+json":
				return "Accept = " + r.Header.Get("Accept")
			case r.Header.Get("Authorization") != "api-key "+testKey:
				return "Authorization header missing or wrong"
			case r.URL.RawQuery != "":
				return "unexpected query " + r.URL.RawQuery
			}
			return ""
		},
	},
	{
		name:     "R4 key in header (explicit)",
		basePath: "/fhir/",
		client: func(base string, hc *http.Client, maxBody int64) Fetcher {
			return &R4Client{BaseURL: base, APIKey: testKey, APIKeyIn: APIKeyInHeader, HTTPClient: hc, MaxBodyBytes: maxBody, Retry: noSleep}
		},
		body: r4Body,
		check: func(r *http.Request) string {
			if r.Header.Get("Authorization") != "api-key "+testKey || r.URL.RawQuery != "" {
				return "key not sent in the Authorization header only"
			}
			return ""
		},
	},
	{
		name:     "R4 key in query",
		basePath: "/fhir",
		client: func(base string, hc *http.Client, maxBody int64) Fetcher {
			return &R4Client{BaseURL: base, APIKey: testKey, APIKeyIn: APIKeyInQuery, HTTPClient: hc, MaxBodyBytes: maxBody, Retry: noSleep}
		},
		body: r4Body,
		check: func(r *http.Request) string {
			switch {
			case r.Header.Get("Accept") != "application/fhir+json":
				return "Accept = " + r.Header.Get("Accept")
			case r.Header.Get("Authorization") != "":
				return "unexpected Authorization header"
			case !sameQuery(r.URL.Query(), url.Values{"_apiKey": {testKey}}):
				return "query = " + r.URL.RawQuery
			}
			return ""
		},
	},
	{
		name:     "STU3",
		basePath: "/fhir-stu3/1.0.1",
		client: func(base string, hc *http.Client, maxBody int64) Fetcher {
			return &STU3Client{BaseURL: base, APIKey: testKey, HTTPClient: hc, MaxBodyBytes: maxBody, Retry: noSleep}
		},
		body: stu3Body,
		check: func(r *http.Request) string {
			switch {
			case r.Header.Get("Accept") != "application/fhir+xml":
				return "Accept = " + r.Header.Get("Accept")
			case r.Header.Get("Authorization") != "":
				return "unexpected Authorization header"
			case !sameQuery(r.URL.Query(), url.Values{"apikey": {testKey}, "_format": {"xml"}}):
				return "query = " + r.URL.RawQuery
			}
			return ""
		},
	},
}

func r4Body(oid string) string {
	return fmt.Sprintf(`{"resourceType":"Organization","id":%q,"name":"Example","contained":[{"resourceType":"Endpoint","id":"f","connectionType":{"code":"hl7-fhir-rest"},"address":"https://fhir.example.test/r4"}]}`, oid)
}

func stu3Body(oid string) string {
	return fmt.Sprintf(`<Organization xmlns="http://hl7.org/fhir"><identifier><system value="http://www.hl7.org/oid/"/><value value="urn:oid:%s"/></identifier><name value="Example"/><contained><Endpoint><id value="f"/><connectionType><code value="hl7-fhir-rest"/></connectionType><address value="https://fhir.example.test/r4"/></Endpoint></contained></Organization>`, oid)
}

func sameQuery(got, want url.Values) bool {
	if len(got) != len(want) {
		return false
	}
	for k, v := range want {
		if len(got[k]) != 1 || got[k][0] != v[0] {
			return false
		}
	}
	return true
}

func TestClientsRequestShape(t *testing.T) {
	for _, f := range flavours {
		t.Run(f.name, func(t *testing.T) {
			var (
				mu       sync.Mutex
				problems []string
			)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				defer mu.Unlock()
				wantPath := strings.TrimSuffix(f.basePath, "/") + "/Organization/" + cernerOID
				if r.Method != http.MethodGet || r.URL.Path != wantPath {
					problems = append(problems, fmt.Sprintf("request %s %s, want GET %s", r.Method, r.URL.Path, wantPath))
				}
				if p := f.check(r); p != "" {
					problems = append(problems, p)
				}
				fmt.Fprint(w, f.body(cernerOID))
			}))
			defer srv.Close()

			org, err := f.client(srv.URL+f.basePath, srv.Client(), 0).Organization(context.Background(), "urn:oid:"+cernerOID)
			if err != nil {
				t.Fatalf("Organization: %v", err)
			}
			mu.Lock()
			defer mu.Unlock()
			for _, p := range problems {
				t.Error(p)
			}
			if org.OID != cernerOID || org.Name != "Example" {
				t.Errorf("got OID %q name %q", org.OID, org.Name)
			}
			if ep, ok := org.FHIREndpoint(); !ok || ep.Address != "https://fhir.example.test/r4" {
				t.Errorf("FHIREndpoint() = %+v, %v", ep, ok)
			}
		})
	}
}

func TestClientsErrors(t *testing.T) {
	tests := []struct {
		name    string
		handler func(f flavour) http.HandlerFunc
		maxBody int64
		ctx     func() (context.Context, context.CancelFunc)
		timeout time.Duration // HTTP client timeout; 0 for none
		check   func(t *testing.T, err error)
	}{
		{
			name:    "404",
			handler: status(http.StatusNotFound, `{"resourceType":"OperationOutcome"}`),
			check:   wantIs(ErrNotFound),
		},
		{
			name:    "410",
			handler: status(http.StatusGone, ""),
			check:   wantIs(ErrNotFound),
		},
		{
			name: "500 echoing the key",
			handler: func(f flavour) http.HandlerFunc {
				return func(w http.ResponseWriter, r *http.Request) {
					w.WriteHeader(http.StatusInternalServerError)
					fmt.Fprintf(w, "boom for %s (key %s, header %s)", r.URL.String(), testKey, r.Header.Get("Authorization"))
				}
			},
			check: wantStatus(http.StatusInternalServerError, "boom for"),
		},
		{
			name: "500 echoing the key base64-encoded",
			handler: func(f flavour) http.HandlerFunc {
				return func(w http.ResponseWriter, r *http.Request) {
					w.WriteHeader(http.StatusInternalServerError)
					fmt.Fprintf(w, "boom: credential %s, %s",
						base64.StdEncoding.EncodeToString([]byte("api-key "+testKey)),
						base64.RawURLEncoding.EncodeToString([]byte(r.Header.Get("Authorization")+r.URL.RawQuery)))
				}
			},
			check: wantStatus(http.StatusInternalServerError, "boom: credential"),
		},
		{
			name:    "403",
			handler: status(http.StatusForbidden, "forbidden"),
			check:   wantStatus(http.StatusForbidden, "Forbidden"),
		},
		{
			name: "body too large",
			handler: func(f flavour) http.HandlerFunc {
				return func(w http.ResponseWriter, r *http.Request) {
					body := f.body(cernerOID)
					fmt.Fprint(w, body+strings.Repeat(" ", 2048-len(body)))
				}
			},
			maxBody: 1024,
			check:   wantBadAnswer("exceeds 1024 bytes"),
		},
		{
			name: "other organization returned",
			handler: func(f flavour) http.HandlerFunc {
				return func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, f.body("1.2.3.4")) }
			},
			check: wantBadAnswer("returned organization 1.2.3.4, want " + cernerOID),
		},
		{
			name:    "not a FHIR document",
			handler: status(http.StatusOK, "<html><body>maintenance "+testKey+"</body></html>"),
			check:   wantBadAnswer("parse"),
		},
		{
			name: "redirect to an unreachable URL holding the key",
			handler: func(f flavour) http.HandlerFunc {
				return func(w http.ResponseWriter, r *http.Request) {
					http.Redirect(w, r, "http://127.0.0.1:1/leak?key="+url.QueryEscape(testKey)+"&raw="+testKey, http.StatusFound)
				}
			},
			check: func(t *testing.T, err error) {
				var de *Error
				if !errors.As(err, &de) || de.StatusCode != 0 {
					t.Errorf("error %v: want *Error with StatusCode 0", err)
				}
			},
		},
		{
			name:    "context deadline",
			handler: hang,
			ctx: func() (context.Context, context.CancelFunc) {
				return context.WithTimeout(context.Background(), 50*time.Millisecond)
			},
			check: func(t *testing.T, err error) {
				var de *Error
				if !errors.As(err, &de) || !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("error %v: want *Error wrapping context.DeadlineExceeded", err)
				}
			},
		},
		{
			name:    "client timeout",
			handler: hang,
			timeout: 50 * time.Millisecond,
			check: func(t *testing.T, err error) {
				var de *Error
				var ne net.Error
				if !errors.As(err, &de) || !errors.As(err, &ne) || !ne.Timeout() {
					t.Errorf("error %v: want *Error holding a net.Error that times out", err)
				}
			},
		},
	}
	for _, f := range flavours {
		for _, tt := range tests {
			t.Run(f.name+"/"+tt.name, func(t *testing.T) {
				srv := httptest.NewServer(tt.handler(f))
				defer srv.Close()
				hc := srv.Client()
				hc.Timeout = tt.timeout
				ctx, cancel := context.Background(), context.CancelFunc(func() {})
				if tt.ctx != nil {
					ctx, cancel = tt.ctx()
				}
				defer cancel()

				org, err := f.client(srv.URL+f.basePath, hc, tt.maxBody).Organization(ctx, cernerOID)
				if err == nil {
					t.Fatalf("Organization = %+v, want error", org)
				}
				tt.check(t, err)
				assertNoSecret(t, err)
			})
		}
	}
}

func TestClientsTransportErrorRedactsKey(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	base := srv.URL
	srv.Close() // connection refused from now on

	for _, f := range flavours {
		t.Run(f.name, func(t *testing.T) {
			_, err := f.client(base+f.basePath, nil, 0).Organization(context.Background(), cernerOID)
			var de *Error
			if !errors.As(err, &de) || de.StatusCode != 0 {
				t.Fatalf("error %v: want *Error with StatusCode 0", err)
			}
			var ue *url.Error
			if !errors.As(err, &ue) {
				t.Errorf("error %v: the *url.Error cause is not reachable", err)
			}
			if strings.Contains(f.name, "query") || f.name == "STU3" {
				if !strings.Contains(de.URL, redacted) {
					t.Errorf("Error.URL = %q, want the key replaced by %s", de.URL, redacted)
				}
			}
			assertNoSecret(t, err)
		})
	}
}

func TestClientsConfigErrors(t *testing.T) {
	tests := []struct {
		name   string
		client Fetcher
		oid    string
		wantIs error
		wantIn string
	}{
		{name: "invalid OID", client: &R4Client{BaseURL: "https://d.example.test/fhir", APIKey: testKey}, oid: "urn:oid:1.2.x", wantIs: ErrInvalidOID},
		{name: "STU3 invalid OID", client: &STU3Client{BaseURL: "https://d.example.test/fhir", APIKey: testKey}, oid: "", wantIs: ErrInvalidOID},
		{name: "relative base URL", client: &R4Client{BaseURL: "directory/fhir", APIKey: testKey}, oid: cernerOID, wantIn: "BaseURL"},
		{name: "base URL with user info", client: &STU3Client{BaseURL: "https://user:pw@d.example.test/fhir", APIKey: testKey}, oid: cernerOID, wantIn: "user info"},
		{name: "unknown APIKeyIn", client: &R4Client{BaseURL: "https://d.example.test/fhir", APIKey: testKey, APIKeyIn: "cookie"}, oid: cernerOID, wantIn: `"cookie"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.client.Organization(context.Background(), tt.oid)
			if err == nil {
				t.Fatal("want error")
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("error %v does not wrap %v", err, tt.wantIs)
			}
			if !strings.HasPrefix(err.Error(), "directory: ") || !strings.Contains(err.Error(), tt.wantIn) {
				t.Errorf("error %q, want prefix and %q", err, tt.wantIn)
			}
			assertNoSecret(t, err)
		})
	}
}

func status(code int, body string) func(flavour) http.HandlerFunc {
	return func(flavour) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(code)
			fmt.Fprint(w, body)
		}
	}
}

// hang never answers; it returns when the client goes away.
func hang(flavour) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }
}

func wantIs(target error) func(*testing.T, error) {
	return func(t *testing.T, err error) {
		t.Helper()
		if !errors.Is(err, target) {
			t.Errorf("error %v does not wrap %v", err, target)
		}
		var de *Error
		if errors.As(err, &de) {
			t.Errorf("error %v is an *Error, want a plain not-found error", err)
		}
	}
}

func wantStatus(code int, text string) func(*testing.T, error) {
	return func(t *testing.T, err error) {
		t.Helper()
		var de *Error
		if !errors.As(err, &de) || de.StatusCode != code {
			t.Fatalf("error %v: want *Error with StatusCode %d", err, code)
		}
		if errors.Is(err, ErrNotFound) {
			t.Errorf("error %v wraps ErrNotFound", err)
		}
		if !strings.Contains(err.Error(), text) || !strings.HasPrefix(err.Error(), "directory: GET http") {
			t.Errorf("error %q, want the URL and %q", err, text)
		}
	}
}

// wantBadAnswer expects the *Error for an unusable 200 answer.
func wantBadAnswer(text string) func(*testing.T, error) {
	return func(t *testing.T, err error) {
		t.Helper()
		var de *Error
		if !errors.As(err, &de) || de.StatusCode != http.StatusOK || !de.Upstream() {
			t.Errorf("error %v: want an upstream *Error with StatusCode 200", err)
		}
		wantText(text)(t, err)
	}
}

func wantText(text string) func(*testing.T, error) {
	return func(t *testing.T, err error) {
		t.Helper()
		if !strings.HasPrefix(err.Error(), "directory: ") || !strings.Contains(err.Error(), text) {
			t.Errorf("error %q, want prefix and %q", err, text)
		}
	}
}

// assertNoSecret fails if the API key shows up in the error, in any
// error of its chain, or in any of the usual ways of printing it.
func assertNoSecret(t *testing.T, err error) {
	t.Helper()
	forms := []string{testKey, url.QueryEscape(testKey), url.PathEscape(testKey)}
	// Base64, wherever the key starts in a 3-byte group: the characters
	// made of the key's bits only, in both alphabets.
	for lead := 0; lead < 3; lead++ {
		enc := base64.StdEncoding.EncodeToString(append(make([]byte, lead), testKey...))
		core := enc[(8*lead+5)/6 : (8*lead+8*len(testKey))/6]
		forms = append(forms, core, strings.NewReplacer("+", "-", "/", "_").Replace(core))
	}
	var texts []string
	texts = append(texts, err.Error(), fmt.Sprintf("%v", err), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err))
	var de *Error
	if errors.As(err, &de) {
		texts = append(texts, de.URL, fmt.Sprintf("%#v", *de))
	}
	for e := err; e != nil; e = errors.Unwrap(e) {
		texts = append(texts, e.Error())
	}
	for _, s := range texts {
		for _, f := range forms {
			if strings.Contains(s, f) {
				t.Errorf("API key leaked (%q) in %q", f, s)
			}
		}
	}
}
