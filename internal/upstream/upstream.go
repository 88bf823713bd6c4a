package upstream

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"unicode"
)

// Response is an answer read with a bounded body.
type Response struct {
	StatusCode int
	Header     http.Header
	// Body holds at most the maxBody bytes Get was allowed to read.
	Body []byte
	// Truncated says the body was longer than maxBody.
	Truncated bool
}

// OK reports a 2xx status.
func (r *Response) OK() bool { return r.StatusCode >= 200 && r.StatusCode <= 299 }

// Get sends a GET for u with header and reads at most maxBody bytes of the
// answer. When no answer arrives, resp is nil and err is net/http's error
// (a *url.Error for transport failures), so timeouts stay detectable with
// errors.Is(err, context.DeadlineExceeded) or a net.Error. When reading the
// body fails, resp carries the status and headers and err says why.
func Get(ctx context.Context, hc *http.Client, u string, header http.Header, maxBody int64) (*Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	r := &Response{StatusCode: resp.StatusCode, Header: resp.Header}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return r, fmt.Errorf("reading body: %w", err)
	}
	if int64(len(body)) > maxBody {
		body, r.Truncated = body[:maxBody], true
	}
	r.Body = body
	return r, nil
}

// maxSnippet bounds how much of a body DescribeStatus quotes.
const maxSnippet = 256

// Redacted replaces secrets in text an upstream sent back.
const Redacted = "REDACTED"

// DescribeStatus describes an unexpected answer: the status text and the
// start of the body, printable characters only, with every secret (raw,
// percent-encoded, JSON-escaped or base64-encoded) replaced by Redacted.
func DescribeStatus(code int, body []byte, secrets ...string) error {
	text := http.StatusText(code)
	if text == "" {
		text = "unexpected status"
	}
	snippet := Scrub(string(body), secrets...)
	snippet = strings.Join(strings.FieldsFunc(snippet, func(r rune) bool {
		return unicode.IsSpace(r) || !unicode.IsPrint(r)
	}), " ")
	if len(snippet) > maxSnippet {
		snippet = strings.ToValidUTF8(snippet[:maxSnippet], "") + "..."
	}
	if snippet == "" {
		return errors.New(text)
	}
	return fmt.Errorf("%s: %s", text, snippet)
}

// Scrub replaces every secret in s, in any encoding match knows or
// base64-encoded (see base64Forms), by Redacted.
func Scrub(s string, secrets ...string) string {
	for _, secret := range secrets {
		s = scrubForm(s, secret, false)
		for _, form := range base64Forms(secret) {
			s = scrubForm(s, form, true)
		}
	}
	return s
}

// scrubForm replaces each match of form in s by Redacted; with edges,
// also the base64 character on either side of it, which holds a few
// bits of the secret too.
func scrubForm(s, form string, edges bool) string {
	if form == "" || !Contains(s, form) {
		return s
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); {
		end, ok := match(s, i, form)
		if !ok {
			b = append(b, s[i])
			i++
			continue
		}
		if edges {
			if n := len(b); n > 0 && isBase64(b[n-1]) && string(b[max(n-len(Redacted), 0):]) != Redacted {
				b = b[:n-1]
			}
			if end < len(s) && isBase64(s[end]) {
				end++
			}
		}
		b = append(b, Redacted...)
		i = end
	}
	return string(b)
}

// minBase64Secret is the shortest secret whose base64 forms Scrub looks
// for: 9 bytes give 12 characters at least, too many to turn up by
// chance in other text.
const minBase64Secret = 9

// base64Forms returns what every base64 encoding of a text holding
// secret contains: for each of the three places the secret can start in
// a 3-byte group, the run of characters made of the secret's bits only
// (the characters at its edges mix in the neighbouring bytes), in the
// standard and the URL alphabet. An echo such as a Basic credential or
// base64("api-key " + key) then loses the secret whatever precedes it.
func base64Forms(secret string) []string {
	if len(secret) < minBase64Secret {
		return nil
	}
	forms := make([]string, 0, 6)
	pad := []byte{0, 0}
	for lead := 0; lead < 3; lead++ {
		enc := base64.StdEncoding.EncodeToString(append(pad[:lead:lead], secret...))
		first := (8*lead + 5) / 6            // the first character of the secret's bits only
		last := (8*lead + 8*len(secret)) / 6 // one past the last
		core := enc[first:last]
		forms = append(forms, core)
		if url := strings.NewReplacer("+", "-", "/", "_").Replace(core); url != core {
			forms = append(forms, url)
		}
	}
	return forms
}

// isBase64 reports whether c is in the standard or the URL base64
// alphabet.
func isBase64(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
		c == '+' || c == '/' || c == '-' || c == '_'
}

// Contains reports whether s holds secret in any encoding match knows.
// It does not allocate.
func Contains(s, secret string) bool {
	if secret == "" {
		return false
	}
	// Every form of a byte of the secret takes at least one byte of s:
	// a match cannot start closer to the end (nor in a shorter s, such
	// as most header values).
	for i := 0; i+len(secret) <= len(s); i++ {
		if _, ok := match(s, i, secret); ok {
			return true
		}
	}
	return false
}

// match reports whether s holds secret at i, each byte of the secret
// written as itself or in one of the encodings cqgate may meet, mixed
// freely: percent-encoded (%2B, %2b; "+" for a space, as in a query),
// JSON-escaped (\/ for "/", \u002b or \u002B, \" and \\), and returns
// where it ends.
func match(s string, i int, secret string) (int, bool) {
	for j := 0; j < len(secret); j++ {
		if i >= len(s) {
			return 0, false
		}
		c := secret[j]
		switch s[i] {
		case c:
			i++
			continue
		case '%':
			if i+2 < len(s) && unhex(s[i+1])<<4|unhex(s[i+2]) == int(c) && unhex(s[i+1]) >= 0 && unhex(s[i+2]) >= 0 {
				i += 3
				continue
			}
		case '+':
			if c == ' ' {
				i++
				continue
			}
		case '\\':
			if i+1 < len(s) && s[i+1] == c && (c == '/' || c == '"' || c == '\\') {
				i += 2
				continue
			}
			if i+5 < len(s) && s[i+1] == 'u' && s[i+2] == '0' && s[i+3] == '0' &&
				unhex(s[i+4]) >= 0 && unhex(s[i+5]) >= 0 && unhex(s[i+4])<<4|unhex(s[i+5]) == int(c) && c < 0x80 {
				i += 6
				continue
			}
		}
		return 0, false
	}
	return i, true
}

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}
