package vaulttest

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"strconv"
	"strings"
)

// Request is one request the server received, for assertions.
type Request struct {
	Method string
	// Path is the API path without "/v1/", e.g. "transit/sign/cqgate".
	Path string
	// Query is the raw query string.
	Query string
	// Body is the decoded JSON body (numbers as json.Number), with the
	// values of credential fields (secret_id, jwt, token, client_token)
	// replaced by "<redacted>". Nil when the body was not JSON.
	Body map[string]any
	// Accessor is the accessor of the valid token the request carried; ""
	// for none, an invalid token, or a login.
	Accessor string
	// Status is the HTTP status code of the answer.
	Status int
}

// Log returns the requests received so far, oldest first.
func (s *Server) Log() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Request, len(s.log))
	copy(out, s.log)
	return out
}

// LogFor returns the logged requests to one API path (without "/v1/"),
// oldest first.
func (s *Server) LogFor(path string) []Request {
	path = strings.TrimPrefix(strings.TrimPrefix(path, "/"), "v1/")
	var out []Request
	for _, r := range s.Log() {
		if r.Path == path {
			out = append(out, r)
		}
	}
	return out
}

// Accessor returns the accessor of token, or "" if the server never issued
// it; compare it with Request.Accessor.
func (s *Server) Accessor(token string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t := s.tokens[token]; t != nil {
		return t.accessor
	}
	return ""
}

var credentialFields = map[string]bool{"secret_id": true, "jwt": true, "token": true, "client_token": true}

// redact deep-copies body, so the log never shares maps with stored
// secrets, and hides credential fields.
func redact(body map[string]any) map[string]any {
	if body == nil {
		return nil
	}
	out, err := jsonCopy(body)
	if err != nil {
		out = maps.Clone(body)
	}
	for k := range out {
		if credentialFields[k] {
			out[k] = "<redacted>"
		}
	}
	return out
}

// intParam reads an integer body parameter the way Vault's framework does:
// a JSON number or a numeric string; absent is 0.
func intParam(body map[string]any, name string) (int, error) {
	raw, ok := body[name]
	if !ok || raw == nil {
		return 0, nil
	}
	var s string
	switch v := raw.(type) {
	case json.Number:
		s = v.String()
	case string:
		s = v
	case float64:
		s = strconv.FormatFloat(v, 'f', -1, 64)
	default:
		return 0, fmt.Errorf("error converting input for field %q: expected an integer", name)
	}
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("error converting input %s for field %q: %v", s, name, err)
	}
	return n, nil
}

// boolParam reads a boolean body parameter: JSON true/false or "true"/"false".
func boolParam(body map[string]any, name string) (bool, error) {
	switch v := body[name].(type) {
	case nil:
		return false, nil
	case bool:
		return v, nil
	case string:
		b, err := strconv.ParseBool(v)
		if err != nil {
			return false, fmt.Errorf("error converting input %s for field %q: %v", v, name, err)
		}
		return b, nil
	default:
		return false, fmt.Errorf("error converting input for field %q: expected a boolean", name)
	}
}

// stringParam reads a string body parameter; absent is "".
func stringParam(body map[string]any, name string) (string, error) {
	switch v := body[name].(type) {
	case nil:
		return "", nil
	case string:
		return v, nil
	case json.Number:
		return v.String(), nil
	default:
		return "", fmt.Errorf("error converting input for field %q: expected a string", name)
	}
}

// sysMounts is POST (enable) and DELETE (disable) /sys/mounts/<path> for
// the KV v2 and transit engines.
func (s *Server) sysMounts(w http.ResponseWriter, r *http.Request, path string, body map[string]any) {
	if path == "" {
		writeErrors(w, http.StatusMethodNotAllowed, "1 error occurred:\n\t* unsupported operation\n\n")
		return
	}
	switch r.Method {
	case http.MethodDelete:
		s.mu.Lock()
		delete(s.mounts, path)
		delete(s.transits, path)
		s.mu.Unlock()
		noContent(w)
	case http.MethodPost, http.MethodPut:
		typ, _ := stringParam(body, "type")
		version := ""
		if opts, ok := body["options"].(map[string]any); ok {
			version, _ = stringParam(opts, "version")
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		for m := range s.mounts {
			if m == path {
				writeErrors(w, http.StatusBadRequest, fmt.Sprintf("path is already in use at %s/", path))
				return
			}
		}
		if _, ok := s.transits[path]; ok {
			writeErrors(w, http.StatusBadRequest, fmt.Sprintf("path is already in use at %s/", path))
			return
		}
		switch {
		case typ == "transit":
			s.transits[path] = make(map[string]*transitKey)
		case typ == "kv-v2" || (typ == "kv" && version == "2"):
			s.mounts[path] = make(map[string]*kvSecret)
		case typ == "":
			writeErrors(w, http.StatusBadRequest, "backend type must be specified as a string")
			return
		default:
			writeErrors(w, http.StatusBadRequest, fmt.Sprintf("vaulttest supports only transit and kv version 2 mounts, not %q", typ))
			return
		}
		noContent(w)
	default:
		writeErrors(w, http.StatusMethodNotAllowed, "1 error occurred:\n\t* unsupported operation\n\n")
	}
}
