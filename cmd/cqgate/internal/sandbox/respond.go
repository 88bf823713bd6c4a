package sandbox

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
)

// Media types.
const (
	mediaFHIRJSON = "application/fhir+json"
	mediaJSON     = "application/json"
	mediaForm     = "application/x-www-form-urlencoded"
)

// OperationOutcome issue types (http://hl7.org/fhir/issue-type).
const (
	issueNotFound     = "not-found"
	issueLogin        = "login"
	issueNotSupported = "not-supported"
	issueInvalid      = "invalid"
	issueRequired     = "required"
)

// operationOutcome is an R4 OperationOutcome with one error issue.
type operationOutcome struct {
	ResourceType string         `json:"resourceType"`
	Issue        []outcomeIssue `json:"issue"`
}

type outcomeIssue struct {
	Severity    string `json:"severity"`
	Code        string `json:"code"`
	Diagnostics string `json:"diagnostics,omitempty"`
}

// writeOutcome answers status with an OperationOutcome.
func writeOutcome(w http.ResponseWriter, status int, code, diagnostics string) {
	writeJSON(w, status, mediaFHIRJSON, operationOutcome{
		ResourceType: "OperationOutcome",
		Issue:        []outcomeIssue{{Severity: "error", Code: code, Diagnostics: diagnostics}},
	})
}

// writeMethodNotAllowed answers 405 with an OperationOutcome.
func writeMethodNotAllowed(w http.ResponseWriter, r *http.Request, allowed string) {
	w.Header().Set("Allow", allowed)
	writeOutcome(w, http.StatusMethodNotAllowed, issueNotSupported,
		r.Method+" is not supported here; use "+allowed)
}

// writeJSON encodes v and writes it with the given status and media type.
func writeJSON(w http.ResponseWriter, status int, mediaType string, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		// Only the package's own fixed types are encoded; this is a bug.
		http.Error(w, "sandbox: encoding response: "+err.Error(), http.StatusInternalServerError)
		return
	}
	writeBody(w, status, mediaType, body)
}

// writeBody writes an already encoded JSON body.
func writeBody(w http.ResponseWriter, status int, mediaType string, body []byte) {
	h := w.Header()
	h.Set("Content-Type", mediaType)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// compactJSON returns data without insignificant white space.
func compactJSON(data []byte) ([]byte, error) {
	var buf bytes.Buffer
	if err := json.Compact(&buf, data); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
