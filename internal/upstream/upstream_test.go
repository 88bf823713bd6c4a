package upstream

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestGet(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/echo-accept":
			w.Header().Set("X-Request-Id", "rid")
			_, _ = w.Write([]byte(r.Header.Get("Accept")))
		case "/big":
			_, _ = w.Write([]byte(strings.Repeat("x", 100)))
		case "/missing":
			http.NotFound(w, r)
		case "/slow":
			time.Sleep(200 * time.Millisecond)
		}
	}))
	defer srv.Close()
	hdr := http.Header{"Accept": {"application/fhir+json"}}

	tests := []struct {
		path          string
		maxBody       int64
		wantStatus    int
		wantBody      string
		wantTruncated bool
	}{
		{"/echo-accept", 100, 200, "application/fhir+json", false},
		{"/big", 100, 200, strings.Repeat("x", 100), false},
		{"/big", 10, 200, strings.Repeat("x", 10), true},
		{"/missing", 100, 404, "404 page not found\n", false},
	}
	for _, tt := range tests {
		r, err := Get(context.Background(), srv.Client(), srv.URL+tt.path, hdr, tt.maxBody)
		if err != nil {
			t.Fatalf("%s: %v", tt.path, err)
		}
		if r.StatusCode != tt.wantStatus || string(r.Body) != tt.wantBody || r.Truncated != tt.wantTruncated || r.OK() != (tt.wantStatus == 200) {
			t.Errorf("%s max %d: got %d %q truncated=%v", tt.path, tt.maxBody, r.StatusCode, r.Body, r.Truncated)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	r, err := Get(ctx, srv.Client(), srv.URL+"/slow", nil, 10)
	if r != nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("timeout: %v %v, want a nil response and a deadline error", r, err)
	}
}

func TestDescribeStatus(t *testing.T) {
	tests := []struct {
		code    int
		body    string
		secrets []string
		want    string
	}{
		{500, "", nil, "Internal Server Error"},
		{599, "", nil, "unexpected status"},
		{403, "bad key s3cr=t/+\n\tfor you", []string{"s3cr=t/+"}, "Forbidden: bad key REDACTED for you"},
		{403, "echo s3cr%3Dt%2F%2B", []string{"s3cr=t/+"}, "Forbidden: echo REDACTED"},
		{502, strings.Repeat("y", 1000), nil, "Bad Gateway: " + strings.Repeat("y", maxSnippet) + "..."},
	}
	for _, tt := range tests {
		if got := DescribeStatus(tt.code, []byte(tt.body), tt.secrets...).Error(); got != tt.want {
			t.Errorf("DescribeStatus(%d, %q) = %q, want %q", tt.code, tt.body, got, tt.want)
		}
	}
}

// TestScrubEncodings: a secret is redacted in every encoding an upstream
// or a log line may carry it in, for each kind of secret cqgate holds.
func TestScrubEncodings(t *testing.T) {
	secrets := map[string]string{
		"directory API key": "dir+Key/with=padding&more<>",
		"vault token":       "hvs.CAESI+abc/def==",
		"access token":      "eyJhbGciOiJSUzM4NCJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl-_",
		"client assertion":  "eyJhbGciOiJSUzM4NCIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJnYXRld2F5In0.QUJD_-",
		"base64 std token":  "QUJDRA+/ZWZn==",
	}
	encodings := map[string]func(string) string{
		"raw":              func(s string) string { return s },
		"query-escaped":    url.QueryEscape,
		"path-escaped":     url.PathEscape,
		"percent lower":    func(s string) string { return encodeAll(s, "%%%02x") },
		"percent all":      func(s string) string { return encodeAll(s, "%%%02X") },
		"json (Go)":        func(s string) string { b, _ := json.Marshal(s); return string(b[1 : len(b)-1]) },
		"json slash":       func(s string) string { return strings.ReplaceAll(s, "/", `\/`) },
		"json \\u00XX":     func(s string) string { return encodeAll(s, `\u%04X`) },
		"json \\u00xx":     func(s string) string { return encodeAll(s, `\u%04x`) },
		"json plus as \\u": func(s string) string { return strings.ReplaceAll(s, "+", `\u002b`) },
	}
	for what, secret := range secrets {
		for enc, encode := range encodings {
			t.Run(what+"/"+enc, func(t *testing.T) {
				form := encode(secret)
				text := `{"error":"invalid_client","error_description":"bad ` + form + ` given"}`
				got := Scrub(text, secret)
				if strings.Contains(got, form) {
					t.Fatalf("%s form %q survived: %s", enc, form, got)
				}
				if !strings.Contains(got, Redacted) {
					t.Fatalf("nothing redacted: %s", got)
				}
				if !Contains(text, secret) {
					t.Errorf("Contains missed the %s form", enc)
				}
				if err := DescribeStatus(401, []byte(text), secret); strings.Contains(err.Error(), form) {
					t.Errorf("DescribeStatus kept the %s form: %v", enc, err)
				}
			})
		}
	}
}

func TestScrubLeavesOtherText(t *testing.T) {
	if got := Scrub("nothing secret here", "tok"); got != "nothing secret here" {
		t.Errorf("Scrub = %q", got)
	}
	if Contains("anything", "") || Scrub("x", "") != "x" {
		t.Errorf("an empty secret matched")
	}
	// A near miss is not redacted: the secret with one byte changed.
	if got := Scrub("hvs.CAESI%2Babc/deg==", "hvs.CAESI+abc/def=="); strings.Contains(got, Redacted) {
		t.Errorf("a different secret was redacted: %s", got)
	}
}

// encodeAll writes every byte of s other than letters and digits with
// format: every byte percent-encoded or JSON \u-escaped.
func encodeAll(s, format string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, format, c)
		}
	}
	return b.String()
}

// Contains finds the secret however close to the end of s it is, and
// not in anything shorter than the secret itself.
func TestContainsAtTheEdges(t *testing.T) {
	const secret = "tok+en/1"
	for _, tt := range []struct {
		s    string
		want bool
	}{
		{secret, true},
		{"x" + secret, true},
		{"Bearer tok%2Ben%2F1", true},
		{`"tok+en\/1"`, true},
		{secret[:len(secret)-1], false},
		{"x" + secret[:len(secret)-1], false},
		{"", false},
	} {
		if got := Contains(tt.s, secret); got != tt.want {
			t.Errorf("Contains(%q) = %v, want %v", tt.s, got, tt.want)
		}
	}
}

// A secret base64-encoded inside a longer text (a Basic credential, an
// echo of "api-key <key>") is redacted whatever precedes it: no run of
// the characters made of its bits survives, in either alphabet, padded
// or not, JSON- or percent-escaped.
func TestScrubBase64Echoes(t *testing.T) {
	const secret = "dir+Key/with=padding&more<>?~~"
	encodings := map[string]func([]byte) string{
		"std":     base64.StdEncoding.EncodeToString,
		"url":     base64.URLEncoding.EncodeToString,
		"raw url": base64.RawURLEncoding.EncodeToString,
		"std, json slash": func(b []byte) string {
			return strings.ReplaceAll(base64.StdEncoding.EncodeToString(b), "/", `\/`)
		},
		"std, query-escaped": func(b []byte) string { return url.QueryEscape(base64.StdEncoding.EncodeToString(b)) },
	}
	for _, prefix := range []string{"", "a", "ab", "api-key ", "client:", "Bearer x"} {
		for enc, encode := range encodings {
			t.Run(fmt.Sprintf("%q/%s", prefix, enc), func(t *testing.T) {
				form := encode([]byte(prefix + secret + "!"))
				text := `{"error":"bad credentials","seen":"` + form + `"}`
				got := Scrub(text, secret)
				if !strings.Contains(got, Redacted) {
					t.Fatalf("nothing redacted: %s", got)
				}
				// Every 4-character run of the encoding lying wholly
				// within the secret's bits (see base64Forms) is gone.
				plain := base64.StdEncoding.EncodeToString([]byte(prefix + secret + "!"))
				first, last := (8*len(prefix)+5)/6, (8*len(prefix)+8*len(secret))/6
				for i := first; i+4 <= last; i++ {
					for _, run := range []string{plain[i : i+4], strings.NewReplacer("+", "-", "/", "_").Replace(plain[i : i+4])} {
						if strings.Contains(got, run) && !strings.Contains(text[:strings.Index(text, form)], run) {
							t.Fatalf("%q of the secret's encoding survived: %s", run, got)
						}
					}
				}
				if !strings.HasPrefix(got, `{"error":"bad credentials","seen":"`) || !strings.HasSuffix(got, `"}`) {
					t.Errorf("text around the echo was touched: %s", got)
				}
			})
		}
	}
}

// Short secrets have no base64 forms (their runs would turn up by
// chance), and other base64 text is left alone.
func TestBase64FormsLeaveOtherText(t *testing.T) {
	if forms := base64Forms("short"); forms != nil {
		t.Errorf("base64Forms(short) = %q", forms)
	}
	other := base64.StdEncoding.EncodeToString([]byte("api-key another-key-entirely"))
	if got := Scrub(other, "the-configured-key"); got != other {
		t.Errorf("Scrub changed unrelated base64: %s", got)
	}
	// Two echoes side by side are both redacted, and REDACTED is not eaten.
	const secret = "0123456789abcdef"
	two := base64.StdEncoding.EncodeToString([]byte(secret)) + " " + base64.StdEncoding.EncodeToString([]byte("x"+secret))
	if got := Scrub(two, secret); strings.Count(got, Redacted) != 2 {
		t.Errorf("Scrub(two echoes) = %s", got)
	}
}
