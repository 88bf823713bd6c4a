package assertion

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"
)

// fuzzContentTypes are the Content-Types a fuzzed response carries.
var fuzzContentTypes = []string{
	"application/json",
	"application/json;charset=UTF-8",
	"application/x-www-form-urlencoded",
	"text/plain",
	"text/html",
	"",
}

// carriedToken is the access token a response body carries, decoded as
// Go decodes it (JSON, or form encoding for the form types); "" if none.
func carriedToken(contentType string, body []byte) string {
	if strings.HasPrefix(contentType, "application/x-www-form-urlencoded") || contentType == "text/plain" {
		v, err := url.ParseQuery(string(body))
		if err != nil {
			return ""
		}
		return v.Get("access_token")
	}
	var v struct {
		AccessToken string `json:"access_token"`
	}
	if json.Unmarshal(body, &v) != nil {
		return ""
	}
	return v.AccessToken
}

// FuzzParseTokenResponse feeds arbitrary token endpoint answers to the
// response interpretation of an exchange. Invariants: no panic; an
// accepted response has a non-empty access token, a token type and a
// consistent expiry; a refused one is a *RetrieveError whose message
// carries the package prefix and never the access token.
func FuzzParseTokenResponse(f *testing.F) {
	f.Add(200, uint8(0), []byte(`{"access_token":"at-0123456789","token_type":"bearer","expires_in":570,"scope":"system/*.read"}`))
	f.Add(200, uint8(2), []byte(`access_token=at-0123456789&expires_in=300`))
	f.Add(400, uint8(0), []byte(`{"error":"invalid_client","error_description":"bad","error_uri":"https://x/e"}`))
	f.Add(500, uint8(4), []byte(`<html>oops</html>`))
	f.Add(500, uint8(0), []byte(`{"access_token":"at-0123456789","error":"at-0123456789"}`))
	sent := time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC)
	f.Fuzz(func(t *testing.T, status int, ct uint8, body []byte) {
		contentType := fuzzContentTypes[int(ct)%len(fuzzContentTypes)]
		// A careless server may echo the token even in its X-Request-Id.
		re := &RetrieveError{TokenURL: "https://ehr.example.com/token", StatusCode: status, RequestID: "req-" + carriedToken(contentType, body)}
		tok, err := tokenFromResponse(re, contentType, body, sent, "")
		if err == nil {
			switch {
			case tok == nil || tok.AccessToken == "":
				t.Fatalf("accepted a response without an access token: %q", body)
			case !strings.EqualFold(tok.TokenType, "Bearer"):
				t.Fatalf("accepted a token of type %q", tok.TokenType)
			case tok.ExpiresIn < 0:
				t.Fatalf("negative ExpiresIn %v", tok.ExpiresIn)
			case tok.ExpiresIn == 0 && !tok.Expiry.IsZero(), tok.ExpiresIn > 0 && !tok.Expiry.Equal(sent.Add(tok.ExpiresIn)):
				t.Fatalf("Expiry %v does not follow ExpiresIn %v", tok.Expiry, tok.ExpiresIn)
			case status < 200 || status > 299:
				t.Fatalf("accepted a token with HTTP %d", status)
			}
			if s := tok.String(); len(tok.AccessToken) >= minSecretLen && strings.Contains(s, tok.AccessToken) && !strings.Contains(tok.TokenType+tok.Scope, tok.AccessToken) {
				t.Fatalf("String() %q shows the access token", s)
			}
			return
		}
		if tok != nil {
			t.Fatal("both a token and an error")
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, "assertion: token exchange with https://ehr.example.com/token failed") {
			t.Fatalf("error %q lacks its prefix", msg)
		}
		if at := carriedToken(contentType, body); len(at) >= minSecretLen && !strings.Contains("[REDACTED]", at) && strings.Contains(msg, at) {
			t.Fatalf("error %q contains the access token %q", msg, at)
		}
	})
}
