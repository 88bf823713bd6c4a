package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"unicode"

	"github.com/cqgate/cqgate/internal/callerauth"
	"github.com/cqgate/cqgate/internal/failure"
)

// defaultMaxBatchBytes bounds a batch read for checking when
// server.max_body_bytes sets no bound.
const defaultMaxBatchBytes = 16 << 20

// bundleEntries is what checkBatch reads of a Bundle.
type bundleEntries struct {
	ResourceType string `json:"resourceType"`
	Type         string `json:"type"`
	Entry        []struct {
		Request *struct {
			Method string `json:"method"`
			URL    string `json:"url"`
		} `json:"request"`
	} `json:"entry"`
}

// checkBatch applies the caller's method policy to every entry of a
// Bundle POSTed to an organization's base (a FHIR batch or transaction),
// so that a caller allowed POST but not DELETE cannot send a DELETE
// inside one. The body is read (bounded by max), checked and put back,
// the same bytes, for forwarding. A caller allowed every method is not
// checked. A restricted caller's body must be JSON (application/fhir+json
// or application/json, not content-encoded): anything else is a 415, as
// cqgate does not read XML Bundles.
// echo bounds a piece of the caller's own input quoted back in an
// answer (and its log line) to 64 bytes.
func echo(s string) string {
	if len(s) > 64 {
		return strings.ToValidUTF8(s[:64], "") + "…"
	}
	return s
}

// holdBody reads r's body whole, at most max bytes (server.max_body_bytes;
// defaultMaxBatchBytes when not set), and puts it back for the proxy,
// replayable: a step that checks the body (a batch's entries, a POST
// _search's parameters) reads it here.
func holdBody(r *http.Request, max int64) ([]byte, error) {
	if max <= 0 {
		max = defaultMaxBatchBytes
	}
	body := r.Body
	if body == nil {
		body = http.NoBody
	}
	buf, err := io.ReadAll(io.LimitReader(body, max+1))
	_ = body.Close()
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, err
		}
		return nil, failure.Errorf(failure.Invalid, "api: reading the request body: %v", err)
	}
	if int64(len(buf)) > max {
		return nil, failure.Errorf(failure.TooLarge,
			"api: the request body is larger than the %d bytes allowed (server.max_body_bytes)", max)
	}
	r.Body = io.NopCloser(bytes.NewReader(buf))
	r.ContentLength = int64(len(buf))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf)), nil }
	return buf, nil
}

func (h *handlers) checkBatch(r *http.Request, id *callerauth.Identity, base callerauth.Request, max int64) error {
	if h.Policy.AnyMethod(id) {
		return nil
	}
	if enc := strings.TrimSpace(r.Header.Get("Content-Encoding")); enc != "" && !strings.EqualFold(enc, "identity") {
		return failure.Errorf(failure.UnsupportedMediaType,
			"api: a batch or transaction from a caller whose methods are restricted (callers.%s.methods) must not be content-encoded (got %q)", id.Name, echo(enc))
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/fhir+json" && mt != "application/json" {
		return failure.Errorf(failure.UnsupportedMediaType,
			"api: a batch or transaction from a caller whose methods are restricted (callers.%s.methods) must be JSON (application/fhir+json), got %q; cqgate checks each entry and does not read XML Bundles", id.Name, mt)
	}
	buf, err := holdBody(r, max)
	if err != nil {
		return err
	}

	// encoding/json matches keys without case, the last match winning;
	// FHIR JSON's are case-sensitive. A Bundle with two keys in one
	// object that differ only by case (or not at all) could be read one
	// way here and another by the FHIR server: refused.
	if err := uniqueKeys(buf); err != nil {
		return failure.Errorf(failure.Invalid, "api: a POST to the base must be a JSON Bundle: %v", err)
	}
	var b bundleEntries
	if err := json.Unmarshal(buf, &b); err != nil {
		return failure.Errorf(failure.Invalid, "api: a POST to the base must be a JSON Bundle: %v", err)
	}
	if b.ResourceType != "Bundle" {
		return failure.Errorf(failure.Invalid,
			"api: a POST to the base must be a batch or transaction Bundle, got resourceType %q", b.ResourceType)
	}
	// Every entry with a request is checked, whatever the Bundle's type
	// says: a server may read a type cqgate did not.
	for i, e := range b.Entry {
		if e.Request == nil {
			continue
		}
		method := strings.ToUpper(strings.TrimSpace(e.Request.Method))
		path, err := entryPath(e.Request.URL)
		if err != nil {
			return failure.Errorf(failure.Invalid, "api: Bundle entry %d: %v", i, err)
		}
		req := base
		req.Method, req.FHIRPath = method, path
		if err := h.Policy.Authorize(id, req); err != nil {
			return failure.Errorf(failure.Forbidden, "api: Bundle entry %d (%s %s): %v", i, method, e.Request.URL, err)
		}
	}
	return nil
}

// entryPath turns a Bundle entry's request.url (relative, "Patient/1?x",
// or absolute) into the FHIR path the policy checks ("/Patient/1").
func entryPath(raw string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return "", fmt.Errorf("request.url %q: %w", raw, err)
	}
	return "/" + strings.TrimPrefix(u.Path, "/"), nil
}

// uniqueKeys checks that no JSON object in doc has two keys equal under
// the case folding encoding/json matches field names with (Unicode
// simple folding: "Method", "METHOD" and "method", or a repeated key).
func uniqueKeys(doc []byte) error {
	dec := json.NewDecoder(bytes.NewReader(doc))
	if err := uniqueKeysValue(dec); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("more than one JSON value")
	}
	return nil
}

func uniqueKeysValue(dec *json.Decoder) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	switch tok {
	case json.Delim('{'):
		seen := make(map[string]struct{})
		for dec.More() {
			k, err := dec.Token()
			if err != nil {
				return err
			}
			key, _ := k.(string)
			f := foldKey(key)
			if _, dup := seen[f]; dup {
				return fmt.Errorf("the key %q appears twice in one object (keys are told apart by case in FHIR JSON, and must not repeat)", echo(key))
			}
			seen[f] = struct{}{}
			if err := uniqueKeysValue(dec); err != nil {
				return err
			}
		}
		_, err = dec.Token() // '}'
		return err
	case json.Delim('['):
		for dec.More() {
			if err := uniqueKeysValue(dec); err != nil {
				return err
			}
		}
		_, err = dec.Token() // ']'
		return err
	}
	return nil
}

// foldKey is key with each letter replaced by the smallest of its simple
// case folding orbit (unicode.SimpleFold): keys encoding/json takes for
// one field fold to the same string.
func foldKey(key string) string {
	var b strings.Builder
	for _, r := range key {
		low := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			low = min(low, f)
		}
		b.WriteRune(low)
	}
	return b.String()
}
