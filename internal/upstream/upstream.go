package upstream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
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
// start of the body, printable characters only, with every secret (and
// its query-escaped form) replaced by Redacted.
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

// Scrub replaces every secret, and its query-escaped form, in s.
func Scrub(s string, secrets ...string) string {
	for _, secret := range secrets {
		if secret == "" {
			continue
		}
		s = strings.ReplaceAll(s, secret, Redacted)
		if esc := url.QueryEscape(secret); esc != secret {
			s = strings.ReplaceAll(s, esc, Redacted)
		}
	}
	return s
}
