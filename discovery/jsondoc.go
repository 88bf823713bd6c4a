package discovery

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"reflect"
	"strconv"
	"strings"
)

// decodeObject decodes a JSON object document into v, a pointer to a
// struct whose unknown fields are ignored. Its errors say what is wrong
// in an operator's terms ("not a JSON object", "field token_endpoint is
// a JSON number, want a string") and carry no package prefix, so that
// callers can add the document's URL.
func decodeObject(data []byte, v any) error {
	data = bytes.TrimPrefix(data, []byte("\ufeff"))
	trimmed := bytes.TrimSpace(data)
	switch {
	case len(trimmed) == 0:
		return errors.New("empty document")
	case trimmed[0] != '{':
		return fmt.Errorf("not a JSON object (starts with %s)", quote(string(trimmed[:min(len(trimmed), 16)])))
	}
	if err := json.Unmarshal(trimmed, v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			field := te.Field
			if field == "" {
				field = "(document)"
			}
			return fmt.Errorf("invalid document: field %s is a JSON %s, want %s", field, te.Value, jsonKind(te.Type))
		}
		return fmt.Errorf("invalid JSON: %w", err)
	}
	return nil
}

// jsonKind names the JSON shape that decodes into t.
func jsonKind(t reflect.Type) string {
	if t == nil {
		return "another type"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Pointer:
		return jsonKind(t.Elem())
	}
	return "another type"
}

// quote quotes untrusted input for an error message: truncated, with
// control characters and invalid UTF-8 escaped.
func quote(s string) string {
	const maxLen = 64
	if len(s) <= maxLen {
		return strconv.Quote(s)
	}
	return strconv.Quote(s[:maxLen]) + "..."
}

// isHTTPURL reports whether s is an absolute http or https URL with a
// host.
func isHTTPURL(s string) bool {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return false
	}
	return u.Scheme == "http" || u.Scheme == "https"
}

// checkTokenURL returns an error unless u, the value of what (e.g.
// "token_endpoint"), is an absolute http(s) URL without a fragment (RFC
// 6749 section 3.2: the assertion's aud would name it, the POST would
// not) or user information (net/http would send it as Basic
// credentials cqgate never meant to send).
func checkTokenURL(what, u string) error {
	if !isHTTPURL(u) {
		return fmt.Errorf("%s %s is not an absolute http(s) URL", what, quote(u))
	}
	if p, _ := url.Parse(u); p.User != nil || p.Fragment != "" || strings.Contains(u, "#") {
		return fmt.Errorf("%s has user information or a fragment, which a token endpoint URL must not have", what)
	}
	return nil
}

// offered trims an offered URL for Attempt.TokenURL: valid UTF-8, at most
// maxOffered bytes.
func offered(u string) string {
	const maxOffered = 512
	u = strings.ToValidUTF8(u, "\uFFFD")
	if len(u) > maxOffered {
		u = strings.ToValidUTF8(u[:maxOffered], "") + "..."
	}
	return u
}
