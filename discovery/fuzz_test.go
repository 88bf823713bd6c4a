package discovery

import (
	"crypto/x509"
	"errors"
	"strings"
	"testing"
	"time"
)

// The fuzz targets' seed corpora live in testdata/fuzz/<FuzzName>/; run
// one with, e.g., go test -fuzz=FuzzParseCapabilityStatement ./discovery/

const fuzzBase = "https://fhir.example.test/r4/" + tenant

var fuzzNow = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

// checkEvaluation asserts the invariants of evaluating any document for
// src: an accepted token URL is an absolute http(s) URL and is the one
// the attempt reports; every failure has a non-empty reason and error;
// no other outcome carries an error.
func checkEvaluation(t *testing.T, src Source, ev evaluation) {
	t.Helper()
	a := ev.attempt
	if a.Source != src || a.URL == "" {
		t.Fatalf("attempt %+v: wrong source or no URL", a)
	}
	switch {
	case a.Outcome == OutcomeUsed:
		if ev.used == nil || !isHTTPURL(ev.used.tokenURL) || a.TokenURL != ev.used.tokenURL || a.Err != nil || ev.rejected {
			t.Fatalf("accepted %+v / %+v: not an absolute http(s) token URL", a, ev.used)
		}
	case strings.HasPrefix(a.Outcome, "failed: "):
		if ev.used != nil || a.Err == nil || a.Err.Error() == "" || len(a.Outcome) <= len("failed: ") {
			t.Fatalf("failed attempt %+v without a reason", a)
		}
		if strings.Contains(a.Outcome, "\n") {
			t.Fatalf("failure %q spans lines", a.Outcome)
		}
	case a.Outcome == OutcomeNoTokenURL:
		if ev.used != nil || a.Err != nil || a.Detail == "" {
			t.Fatalf("no-token-URL attempt %+v", a)
		}
	case strings.HasPrefix(a.Outcome, "not supported ("):
		if ev.used != nil || a.Err != nil {
			t.Fatalf("not-supported attempt %+v", a)
		}
	default:
		t.Fatalf("unknown outcome %q", a.Outcome)
	}
	if s := a.String(); s == "" || !strings.HasPrefix(s, string(src)+" (GET ") {
		t.Fatalf("Attempt.String() = %q", s)
	}
}

func FuzzParseCapabilityStatement(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		uris, err := parseCapabilityStatement(data)
		exported, exportedErr := ParseCapabilityStatement(data)
		if err != nil {
			if err.Error() == "" || uris != nil {
				t.Fatalf("error %q with %+v", err, uris)
			}
			if exportedErr == nil || !strings.HasPrefix(exportedErr.Error(), "discovery: parse CapabilityStatement: ") {
				t.Fatalf("ParseCapabilityStatement error %v, parse error %v", exportedErr, err)
			}
			return
		}
		if (uris == nil) != (exportedErr != nil) || (uris != nil && *exported != *uris) {
			t.Fatalf("ParseCapabilityStatement = %+v, %v; parse = %+v", exported, exportedErr, uris)
		}
		if u, src, ok := uris.TokenEndpoint(); ok != (u != "") || (ok && !src.Valid()) {
			t.Fatalf("TokenEndpoint() = %q, %q, %v", u, src, ok)
		}
		doc := &document{kind: docMetadata, url: fuzzBase + "/metadata", fetchedAt: fuzzNow}
		doc.setURIs(uris)
		for _, override := range []bool{false, true} {
			for _, src := range []Source{SourceCarequalityToken, SourceToken} {
				ev := evaluate(src, doc, fuzzBase, override, nil, fuzzNow)
				checkEvaluation(t, src, ev)
				if ev.used != nil && uris != nil && ev.used.tokenURL != uris.CarequalityToken && ev.used.tokenURL != uris.Token {
					t.Fatalf("%s accepted %q, which the document does not list", src, ev.used.tokenURL)
				}
			}
		}
	})
}

func FuzzParseSMARTConfiguration(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		sc, err := parseSMARTConfiguration(data)
		if err != nil {
			if err.Error() == "" || sc != nil {
				t.Fatalf("error %q with %+v", err, sc)
			}
			return
		}
		doc := &document{kind: docSMART, url: fuzzBase + "/.well-known/smart-configuration", fetchedAt: fuzzNow, smart: sc}
		ev := evaluate(SourceSMARTConfiguration, doc, fuzzBase, false, nil, fuzzNow)
		checkEvaluation(t, SourceSMARTConfiguration, ev)
		if ev.used != nil && ev.used.tokenURL != strings.TrimSpace(sc.TokenEndpoint) {
			t.Fatalf("accepted %q, document says %q", ev.used.tokenURL, sc.TokenEndpoint)
		}
	})
}

func FuzzParseUDAPMetadata(f *testing.F) {
	anchors := x509.NewCertPool()
	f.Fuzz(func(t *testing.T, data []byte) {
		md, err := parseUDAPMetadata(data)
		if err != nil {
			if err.Error() == "" || md != nil {
				t.Fatalf("error %q with %+v", err, md)
			}
			return
		}
		// The signed_metadata it carries, parsed without verification.
		checkSignedMetadataParse(t, md.SignedMetadata)

		doc := &document{kind: docUDAP, url: fuzzBase + "/.well-known/udap", fetchedAt: fuzzNow, udap: md}
		// Without trust anchors nothing is trusted.
		ev := evaluate(SourceUDAP, doc, fuzzBase, false, nil, fuzzNow)
		checkEvaluation(t, SourceUDAP, ev)
		if !errors.Is(ev.attempt.Err, ErrNoTrustAnchors) {
			t.Fatalf("without trust anchors: %+v", ev.attempt)
		}
		// With an anchor no fuzzed chain can reach, nothing is accepted.
		ev = evaluate(SourceUDAP, doc, fuzzBase, false, &trust{name: DefaultCommunity, community: Community{TrustAnchors: anchors}}, fuzzNow)
		checkEvaluation(t, SourceUDAP, ev)
		if ev.used != nil || ev.info != nil {
			t.Fatalf("unverifiable UDAP metadata accepted: %+v", ev.attempt)
		}
	})
}

func FuzzParseSignedMetadata(f *testing.F) {
	f.Fuzz(func(t *testing.T, token string) {
		checkSignedMetadataParse(t, token)
	})
}

// checkSignedMetadataParse asserts the invariants of parsing a
// signed_metadata JWT's header and claims without verification.
func checkSignedMetadataParse(t *testing.T, token string) {
	t.Helper()
	sm, err := parseSignedMetadata(token)
	if err != nil {
		if err.Error() == "" || sm != nil {
			t.Fatalf("error %q with %+v", err, sm)
		}
		if !strings.HasPrefix(err.Error(), "signed_metadata") {
			t.Fatalf("error %q does not name signed_metadata", err)
		}
		return
	}
	if sm.token == nil || sm.present == nil {
		t.Fatalf("parsed %+v without token or claims", sm)
	}
	alg := sm.header.Algorithm
	ok := false
	for _, a := range signedMetadataAlgorithms() {
		ok = ok || string(a) == alg
	}
	if !ok {
		t.Fatalf("accepted algorithm %q", alg)
	}
	if !sm.present["token_endpoint"] && sm.values.TokenEndpoint != "" {
		t.Fatalf("token_endpoint %q read from claims that lack it", sm.values.TokenEndpoint)
	}
}
