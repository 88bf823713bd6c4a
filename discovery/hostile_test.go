package discovery

import (
	"context"
	"crypto/x509"
	"errors"
	"strings"
	"testing"
	"time"
)

// deep is a valid JSON value nested far deeper than encoding/json's limit.
func deep(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }

func TestHostileDocuments(t *testing.T) {
	const maxBody = 256 << 10
	clock := newFakeClock()
	tests := []struct {
		name   string
		doc    string // fakeFHIR document name
		source Source
		body   string
		wantIn string
	}{
		// CapabilityStatement.
		{"metadata: huge", docNameMetadata, SourceCarequalityToken, cerner2019 + strings.Repeat(" ", maxBody), "response body exceeds 262144 bytes"},
		{"metadata: huge single token", docNameMetadata, SourceToken, `{"resourceType": "CapabilityStatement", "x": "` + strings.Repeat("a", 2*maxBody) + `"}`, "response body exceeds 262144 bytes"},
		{"metadata: deeply nested", docNameMetadata, SourceCarequalityToken, `{"resourceType": "CapabilityStatement", "text": ` + deep(20000) + `}`, "invalid JSON: invalid character '[' exceeded max depth"},
		{"metadata: deeply nested extensions", docNameMetadata, SourceCarequalityToken, `{"resourceType": "CapabilityStatement", "rest": [{"security": {"extension": ` + strings.Repeat(`[{"extension": `, 12000) + `[]` + strings.Repeat(`}]`, 12000) + `}}]}`, "exceeded max depth"},
		{"metadata: extension a string", docNameMetadata, SourceCarequalityToken, `{"resourceType": "CapabilityStatement", "rest": [{"security": {"extension": "oauth-uris"}}]}`, "invalid document: field rest.security.extension is a JSON string, want an array"},
		{"metadata: valueUri a number", docNameMetadata, SourceToken, oauthURIs(`{"url": "token", "valueUri": 443}`), "field rest.security.extension.extension.valueUri is a JSON number, want a string"},
		{"metadata: rest an object", docNameMetadata, SourceToken, `{"resourceType": "CapabilityStatement", "rest": {"mode": "server"}}`, "field rest is a JSON object, want an array"},
		{"metadata: resourceType a number", docNameMetadata, SourceToken, `{"resourceType": 7}`, "field resourceType is a JSON number, want a string"},
		{"metadata: JSON null", docNameMetadata, SourceToken, `null`, `not a JSON object (starts with "null")`},
		{"metadata: JSON array", docNameMetadata, SourceToken, `[{"resourceType": "CapabilityStatement"}]`, "not a JSON object"},
		{"metadata: binary", docNameMetadata, SourceToken, "\x00\x01\xff\xfe garbage", `not a JSON object (starts with "\x00\x01\xff\xfe garbage")`},
		{"metadata: trailing garbage", docNameMetadata, SourceToken, cerner2019 + "}{", "invalid JSON"},
		{"metadata: OperationOutcome", docNameMetadata, SourceToken, `{"resourceType": "OperationOutcome"}`, `resourceType is "OperationOutcome"`},
		{"metadata: relative token URL", docNameMetadata, SourceToken, oauthURIs(`{"url": "token", "valueUri": "/token"}`), `token URL "/token" is not an absolute http(s) URL`},
		{"metadata: javascript token URL", docNameMetadata, SourceToken, oauthURIs(`{"url": "token", "valueUri": "javascript:alert(1)"}`), "is not an absolute http(s) URL"},
		{"metadata: token URL without host", docNameMetadata, SourceToken, oauthURIs(`{"url": "token", "valueUri": "https:///token"}`), "is not an absolute http(s) URL"},
		{"metadata: unparsable token URL", docNameMetadata, SourceCarequalityToken, oauthURIs(`{"url": "carequality-token", "valueUri": "http://[::1"}`), `carequality-token URL "http://[::1" is not an absolute http(s) URL`},
		{"metadata: long token URL is truncated", docNameMetadata, SourceToken, oauthURIs(`{"url": "token", "valueUri": "ftp://` + strings.Repeat("x", 5000) + `"}`), `token URL "ftp://xxxxxxxx`},

		// smart-configuration.
		{"smart: huge", docNameSMART, SourceSMARTConfiguration, smartConfig(urlSMART) + strings.Repeat("\n", maxBody), "response body exceeds 262144 bytes"},
		{"smart: deeply nested", docNameSMART, SourceSMARTConfiguration, `{"capabilities": ` + deep(20000) + `}`, "exceeded max depth"},
		{"smart: token_endpoint a number", docNameSMART, SourceSMARTConfiguration, `{"token_endpoint": 42}`, "invalid document: field token_endpoint is a JSON number, want a string"},
		{"smart: token_endpoint an object", docNameSMART, SourceSMARTConfiguration, `{"token_endpoint": {"url": "https://a.example.test/token"}}`, "field token_endpoint is a JSON object, want a string"},
		{"smart: algorithms a string", docNameSMART, SourceSMARTConfiguration, `{"token_endpoint": "https://a.example.test/token", "token_endpoint_auth_signing_alg_values_supported": "RS384"}`, "field token_endpoint_auth_signing_alg_values_supported is a JSON string, want an array"},
		{"smart: HTML", docNameSMART, SourceSMARTConfiguration, "<!doctype html><title>Sign in</title>", "parse smart-configuration: not a JSON object"},
		{"smart: empty", docNameSMART, SourceSMARTConfiguration, "  \n", "parse smart-configuration: empty document"},
		{"smart: relative token URL", docNameSMART, SourceSMARTConfiguration, smartConfig("token"), `token_endpoint "token" is not an absolute http(s) URL`},
		{"smart: file token URL", docNameSMART, SourceSMARTConfiguration, smartConfig("file:///etc/passwd"), "is not an absolute http(s) URL"},

		// UDAP.
		{"udap: huge", docNameUDAP, SourceUDAP, udapDoc(urlUDAP, "") + strings.Repeat(" ", maxBody), "response body exceeds 262144 bytes"},
		{"udap: deeply nested", docNameUDAP, SourceUDAP, `{"udap_versions_supported": ` + deep(20000) + `}`, "exceeded max depth"},
		{"udap: signed_metadata a number", docNameUDAP, SourceUDAP, `{"signed_metadata": 1}`, "field signed_metadata is a JSON number, want a string"},
		{"udap: token_endpoint a number", docNameUDAP, SourceUDAP, `{"token_endpoint": 1, "signed_metadata": "x"}`, "field token_endpoint is a JSON number, want a string"},
		{"udap: not JSON", docNameUDAP, SourceUDAP, "udap=1", "parse UDAP metadata: not a JSON object"},
		{"udap: signed_metadata garbage", docNameUDAP, SourceUDAP, `{"signed_metadata": "` + strings.Repeat("A.", 1000) + `"}`, "signed_metadata is not a compact JWS"},
		{"udap: signed_metadata header not JSON", docNameUDAP, SourceUDAP, `{"signed_metadata": "bm90LWpzb24.e30.c2ln"}`, "signed_metadata is not a compact JWS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeFHIR(t)
			f.set(tt.doc, 0, tt.body)
			d := New(Config{HTTPClient: f.Client(), Clock: clock.Now, MaxBodyBytes: maxBody, TrustAnchors: x509.NewCertPool()})
			r, err := d.Discover(context.Background(), Request{FHIRBase: f.base(), Order: []Source{tt.source}})
			var nt *NoTokenURLError
			if !errors.As(err, &nt) || len(nt.Attempts) != 1 {
				t.Fatalf("Discover = %+v, %v; want a *NoTokenURLError", r, err)
			}
			a := nt.Attempts[0]
			var de *Error
			if !errors.As(err, &de) || !strings.HasPrefix(de.Error(), "discovery: GET "+a.URL+": ") || !de.Upstream() {
				t.Errorf("error %v: want an upstream *Error naming %s", err, a.URL)
			}
			if !strings.HasPrefix(a.Outcome, "failed: ") || !strings.Contains(a.Outcome, tt.wantIn) || !strings.Contains(err.Error(), a.URL) {
				t.Errorf("outcome %q, want it to contain %q", a.Outcome, tt.wantIn)
			}
			if len(err.Error()) > 2048 {
				t.Errorf("error is %d bytes long; hostile input must not blow it up", len(err.Error()))
			}
		})
	}
}

func TestHostileSlowServerIsBounded(t *testing.T) {
	f := newFakeFHIR(t)
	f.gate(docNameSMART) // never answers
	hc := f.Client()
	hc.Timeout = 100 * time.Millisecond
	d := New(Config{HTTPClient: hc})
	_, err := d.Discover(context.Background(), Request{FHIRBase: f.base(), Order: []Source{SourceSMARTConfiguration}})
	var de *Error
	if !errors.As(err, &de) || de.StatusCode != 0 || !strings.Contains(err.Error(), "smart-configuration (GET ") {
		t.Errorf("error %v, want the request to time out", err)
	}
}
