package outcome

import (
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/cqgate/cqgate/internal/audit"
	"github.com/cqgate/cqgate/internal/failure"
	"github.com/cqgate/cqgate/internal/tracing"
)

// ContentType is the media type of every OperationOutcome cqgate writes.
const ContentType = "application/fhir+json; charset=utf-8"

// OAuthErrorExtensionURL identifies the extension that carries an upstream
// token endpoint's RFC 6749 error response inside an issue.
const OAuthErrorExtensionURL = "https://github.com/cqgate/cqgate/fhir/StructureDefinition/upstream-oauth-error"

// IssueType is a code from the FHIR IssueType value set.
type IssueType string

// The FHIR IssueType codes cqgate uses.
const (
	Invalid      IssueType = "invalid"
	Required     IssueType = "required"
	Value        IssueType = "value"
	Forbidden    IssueType = "forbidden"
	NotFound     IssueType = "not-found"
	NotSupported IssueType = "not-supported"
	Exception    IssueType = "exception"
	Timeout      IssueType = "timeout"
	Transient    IssueType = "transient"
	TooCostly    IssueType = "too-costly"
	Security     IssueType = "security"
	Login        IssueType = "login"
	Throttled    IssueType = "throttled"
)

// OperationOutcome is a FHIR R4 OperationOutcome resource.
type OperationOutcome struct {
	ResourceType string  `json:"resourceType"`
	Issue        []Issue `json:"issue"`
}

// Issue is one OperationOutcome.issue.
type Issue struct {
	Extension   []Extension      `json:"extension,omitempty"`
	Severity    string           `json:"severity"`
	Code        IssueType        `json:"code"`
	Details     *CodeableConcept `json:"details,omitempty"`
	Diagnostics string           `json:"diagnostics,omitempty"`
}

// CodeableConcept is a FHIR CodeableConcept.
type CodeableConcept struct {
	Coding []Coding `json:"coding,omitempty"`
	Text   string   `json:"text,omitempty"`
}

// Coding is a FHIR Coding.
type Coding struct {
	System  string `json:"system,omitempty"`
	Code    string `json:"code,omitempty"`
	Display string `json:"display,omitempty"`
}

// Extension is a FHIR extension with the value types cqgate needs.
type Extension struct {
	URL         string      `json:"url"`
	Extension   []Extension `json:"extension,omitempty"`
	ValueString string      `json:"valueString,omitempty"`
	ValueCode   string      `json:"valueCode,omitempty"`
	ValueURI    string      `json:"valueUri,omitempty"`
	ValueInt    int         `json:"valueInteger,omitempty"`
}

// New returns an OperationOutcome with one error issue.
func New(code IssueType, diagnostics string) *OperationOutcome {
	return &OperationOutcome{
		ResourceType: "OperationOutcome",
		Issue:        []Issue{{Severity: "error", Code: code, Diagnostics: diagnostics}},
	}
}

// Write writes oo with the given HTTP status.
func Write(w http.ResponseWriter, status int, oo *OperationOutcome) {
	body, err := json.Marshal(oo)
	if err != nil {
		// The types above always marshal; keep the response well-formed
		// even if that ever changes.
		body = []byte(`{"resourceType":"OperationOutcome","issue":[{"severity":"fatal","code":"exception"}]}`)
	}
	h := w.Header()
	h.Set("Content-Type", ContentType)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// WriteError is the error boundary: it classifies err (FromError) and
// writes the matching OperationOutcome, with Retry-After when the failure
// knows when asking again makes sense and X-Upstream-Request-Id when an
// upstream answered with an id. It returns the status and issue type
// written, for logs and audit records.
func WriteError(w http.ResponseWriter, err error) (int, IssueType) {
	status, oo := FromError(err)
	if rid := UpstreamRequestID(err); rid != "" {
		w.Header().Set("X-Upstream-Request-Id", rid)
	}
	var ra failure.RetryAfter
	if errors.As(err, &ra) {
		setRetryAfter(w, ra.RetryAfter())
	}
	Write(w, status, oo)
	return status, oo.Issue[0].Code
}

// setRetryAfter sets Retry-After in whole seconds, at least 1.
func setRetryAfter(w http.ResponseWriter, d time.Duration) {
	secs := int(math.Ceil(d.Seconds()))
	w.Header().Set("Retry-After", strconv.Itoa(max(secs, 1)))
}

// WriteErrorFor is WriteError answering r, with the issue type written
// noted where r's observers read it: on r's span (cqgate.outcome,
// tracing.SetOutcome) and in the audit record r's context carries
// (audit.FromContext), if any. Every part that answers a failure (the
// router's steps, the proxy) goes through it, so that the span, the
// audit line and the OperationOutcome say the same, whichever part
// answered.
func WriteErrorFor(w http.ResponseWriter, r *http.Request, err error) (int, IssueType) {
	status, code := WriteError(w, err)
	ctx := r.Context()
	tracing.SetOutcome(ctx, string(code))
	if rec := audit.FromContext(ctx); rec != nil {
		rec.Error = string(code)
	}
	return status, code
}
