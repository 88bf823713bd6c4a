package sandbox

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
)

// FHIR Bulk Data Access 2.0 (HL7 bulk-data IG, export.md), small: the
// sandbox exports its Patients and Observations as NDJSON.
const (
	// GroupID is the one Group the sandbox can export: every Patient.
	GroupID = "sandbox-patients"

	bulkStatusPath = fhirBasePath + "/bulkstatus/"
	bulkFilePath   = fhirBasePath + "/bulkfiles/"
	storagePath    = "/bulk/"

	mediaNDJSON = "application/fhir+ndjson"

	// maxJobs bounds the exports remembered at once; a kick-off beyond it
	// gets 429.
	maxJobs = 64
	// defaultExportPolls is how many status polls answer 202 before the
	// manifest.
	defaultExportPolls = 1
)

// exportTypes are the resource types the sandbox exports, in order.
var exportTypes = []string{"Patient", "Observation"}

// exportJob is one kick-off.
type exportJob struct {
	request         string    // the kick-off URL
	transactionTime time.Time // when it was kicked off
	files           []*exportFile
	polls           int    // 202 answers given so far
	signature       string // the storage URL's "sig"
}

// exportFile is one NDJSON output file.
type exportFile struct {
	typ   string
	name  string // "<Type>.ndjson"
	body  []byte
	count int
	// redirect: downloads are answered with a 307 to the storage
	// listener, as Oracle Health's are.
	redirect bool
}

// exports holds the jobs of a Sandbox.
type exports struct {
	polls          int
	mu             sync.Mutex
	jobs           map[string]*exportJob
	storageRejects atomic.Int64
}

func newExports(polls int) *exports {
	return &exports{polls: polls, jobs: make(map[string]*exportJob)}
}

// job returns the job id, or nil.
func (e *exports) job(id string) *exportJob {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.jobs[id]
}

// StorageAuthRejects is the number of storage requests refused because
// they carried an Authorization header: a client that sends its token
// to the storage origin counts here.
func (s *Sandbox) StorageAuthRejects() int64 { return s.bulk.storageRejects.Load() }

// handleExport answers a kick-off: [base]/$export (level "system"),
// [base]/Patient/$export ("patient") and [base]/Group/[id]/$export
// ("group"), by GET or POST, with Prefer: respond-async: 202 and the
// status URL in Content-Location.
func (s *Sandbox) handleExport(w http.ResponseWriter, r *http.Request) {
	if !s.authorized(w, r) {
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		writeMethodNotAllowed(w, r, "GET, POST")
		return
	}
	if !acceptsJSON(r, explicit) {
		writeNotAcceptable(w, explicit)
		return
	}
	if !preferAsync(r) {
		writeOutcome(w, http.StatusBadRequest, issueInvalid, "a bulk export needs the header Prefer: respond-async")
		return
	}
	if g := r.PathValue("group"); g != "" && g != GroupID {
		writeOutcome(w, http.StatusNotFound, issueNotFound, "Group/"+g+" was not found")
		return
	}
	params, msg := exportParams(r)
	if msg != "" {
		writeOutcome(w, http.StatusBadRequest, issueInvalid, msg)
		return
	}
	if f := params.Get("_outputFormat"); f != "" && f != mediaNDJSON && f != "application/ndjson" && f != "ndjson" {
		writeOutcome(w, http.StatusBadRequest, issueNotSupported, "_outputFormat "+f+" is not supported; the sandbox writes application/fhir+ndjson")
		return
	}
	if v := params.Get("_since"); v != "" {
		if _, err := time.Parse(time.RFC3339, v); err != nil {
			writeOutcome(w, http.StatusBadRequest, issueInvalid, "_since must be a FHIR instant")
			return
		}
	}
	types := exportTypes
	if v := params.Get("_type"); v != "" {
		types = nil
		for _, t := range strings.Split(v, ",") {
			t = strings.TrimSpace(t)
			if !slices.Contains(exportTypes, t) {
				writeOutcome(w, http.StatusBadRequest, issueNotSupported, "_type "+t+" is not exported by the sandbox (Patient, Observation)")
				return
			}
			if !slices.Contains(types, t) {
				types = append(types, t)
			}
		}
	}

	id := uuid.NewString()
	job := &exportJob{
		request:         s.URL + r.URL.RequestURI(),
		transactionTime: time.Now().UTC().Truncate(time.Second),
		signature:       uuid.NewString(),
	}
	for _, t := range types {
		if f := s.exportFile(t); f != nil {
			job.files = append(job.files, f)
		}
	}
	s.bulk.mu.Lock()
	full := len(s.bulk.jobs) >= maxJobs
	if !full {
		s.bulk.jobs[id] = job
	}
	s.bulk.mu.Unlock()
	if full {
		w.Header().Set("Retry-After", "60")
		writeOutcome(w, http.StatusTooManyRequests, "throttled", "too many bulk exports; cancel one with DELETE on its status URL")
		return
	}
	w.Header().Set("Content-Location", s.FHIRBase+"/bulkstatus/"+id)
	writeOutcomeInfo(w, http.StatusAccepted, "export "+id+" started")
}

// exportFile builds the NDJSON file of one resource type.
func (s *Sandbox) exportFile(typ string) *exportFile {
	var buf bytes.Buffer
	n := 0
	add := func(raw json.RawMessage) {
		buf.Write(raw)
		buf.WriteByte('\n')
		n++
	}
	switch typ {
	case "Patient":
		for _, p := range s.data.patients {
			add(p.raw)
		}
	case "Observation":
		for _, o := range s.data.observations {
			add(o.raw)
		}
	}
	if n == 0 {
		return nil
	}
	return &exportFile{typ: typ, name: typ + ".ndjson", body: buf.Bytes(), count: n, redirect: typ == "Observation"}
}

// preferAsync reports whether a Prefer header asks for respond-async.
func preferAsync(r *http.Request) bool {
	for _, v := range r.Header.Values("Prefer") {
		for _, p := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(p), "respond-async") {
				return true
			}
		}
	}
	return false
}

// parameters is the part of a FHIR Parameters resource a kick-off reads.
type parameters struct {
	ResourceType string `json:"resourceType"`
	Parameter    []struct {
		Name         string `json:"name"`
		ValueString  string `json:"valueString"`
		ValueCode    string `json:"valueCode"`
		ValueInstant string `json:"valueInstant"`
	} `json:"parameter"`
}

// maxParametersBody bounds a POST kick-off's body.
const maxParametersBody = 64 << 10

// exportParams returns the kick-off parameters: the query of a GET, the
// Parameters body of a POST (repeated _type values joined by commas).
// msg says what is wrong with them.
func exportParams(r *http.Request) (url.Values, string) {
	if r.Method == http.MethodGet {
		return r.URL.Query(), ""
	}
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if !isJSONMediaType(mt) {
		return nil, "a POST kick-off carries a FHIR Parameters resource (Content-Type: application/fhir+json)"
	}
	var p parameters
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, maxParametersBody))
	if err := dec.Decode(&p); err != nil || p.ResourceType != "Parameters" {
		return nil, "the POST body is not a FHIR Parameters resource"
	}
	v := url.Values{}
	for _, pp := range p.Parameter {
		val := pp.ValueString + pp.ValueCode + pp.ValueInstant
		if prev := v.Get(pp.Name); prev != "" && pp.Name == "_type" {
			val = prev + "," + val
		}
		v.Set(pp.Name, val)
	}
	return v, ""
}

// manifest is the completion manifest.
type manifest struct {
	TransactionTime     string           `json:"transactionTime"`
	Request             string           `json:"request"`
	RequiresAccessToken bool             `json:"requiresAccessToken"`
	Output              []manifestOutput `json:"output"`
	Error               []manifestOutput `json:"error"`
}

type manifestOutput struct {
	Type  string `json:"type"`
	URL   string `json:"url"`
	Count int    `json:"count,omitempty"`
}

// handleBulkStatus answers the status URL: 202 with X-Progress and
// Retry-After for the first polls, then 200 and the manifest; DELETE
// cancels (202) and forgets the job.
func (s *Sandbox) handleBulkStatus(w http.ResponseWriter, r *http.Request) {
	if !s.authorized(w, r) {
		return
	}
	id := r.PathValue("job")
	switch r.Method {
	case http.MethodGet:
	case http.MethodDelete:
		s.bulk.mu.Lock()
		_, ok := s.bulk.jobs[id]
		delete(s.bulk.jobs, id)
		s.bulk.mu.Unlock()
		if !ok {
			writeOutcome(w, http.StatusNotFound, issueNotFound, "no bulk export "+id)
			return
		}
		writeOutcomeInfo(w, http.StatusAccepted, "export "+id+" cancelled")
		return
	default:
		writeMethodNotAllowed(w, r, "GET, DELETE")
		return
	}
	s.bulk.mu.Lock()
	job, ok := s.bulk.jobs[id]
	running := ok && job.polls < s.bulk.polls
	var polls int
	if running {
		job.polls++
		polls = job.polls
	}
	s.bulk.mu.Unlock()
	switch {
	case !ok:
		writeOutcome(w, http.StatusNotFound, issueNotFound, "no bulk export "+id)
	case running:
		w.Header().Set("X-Progress", "in progress: poll "+strconv.Itoa(polls)+" of "+strconv.Itoa(s.bulk.polls+1))
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusAccepted)
	default:
		m := manifest{
			TransactionTime:     job.transactionTime.Format(time.RFC3339),
			Request:             job.request,
			RequiresAccessToken: true,
			Output:              []manifestOutput{},
			Error:               []manifestOutput{},
		}
		for _, f := range job.files {
			m.Output = append(m.Output, manifestOutput{Type: f.typ, URL: s.FHIRBase + "/bulkfiles/" + id + "/" + f.name, Count: f.count})
		}
		w.Header().Set("Expires", time.Now().Add(time.Hour).UTC().Format(http.TimeFormat))
		writeJSON(w, http.StatusOK, mediaJSON, m)
	}
}

// handleBulkFile serves an output file, with Range support; a file
// marked redirect is answered with a 307 to the storage listener instead.
func (s *Sandbox) handleBulkFile(w http.ResponseWriter, r *http.Request) {
	if !s.authorized(w, r) {
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		writeMethodNotAllowed(w, r, "GET")
		return
	}
	id, name := r.PathValue("job"), r.PathValue("file")
	job, f := s.bulk.file(id, name)
	if f == nil {
		writeOutcome(w, http.StatusNotFound, issueNotFound, "no bulk file "+id+"/"+name)
		return
	}
	if f.redirect {
		http.Redirect(w, r, s.StorageURL+"/"+id+"/"+name+"?sig="+url.QueryEscape(job.signature), http.StatusTemporaryRedirect)
		return
	}
	serveNDJSON(w, r, job, f)
}

// file returns a completed job's file, or nil.
func (e *exports) file(id, name string) (*exportJob, *exportFile) {
	e.mu.Lock()
	defer e.mu.Unlock()
	job, ok := e.jobs[id]
	if !ok || job.polls < e.polls {
		return nil, nil
	}
	for _, f := range job.files {
		if f.name == name {
			return job, f
		}
	}
	return nil, nil
}

// serveNDJSON writes the file with http.ServeContent: Range,
// If-Range and conditional requests work.
func serveNDJSON(w http.ResponseWriter, r *http.Request, job *exportJob, f *exportFile) {
	w.Header().Set("Content-Type", mediaNDJSON)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	http.ServeContent(w, r, f.name, job.transactionTime, bytes.NewReader(f.body))
}

// handleStorage serves redirected files on the storage listener, like a
// cloud bucket behind a signed URL: the sig parameter authorizes, and a
// request carrying an Authorization header is refused (400), as S3 and
// Azure refuse a second authentication mechanism.
func (s *Sandbox) handleStorage(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "" {
		s.bulk.storageRejects.Add(1)
		writeOutcome(w, http.StatusBadRequest, issueInvalid, "the storage origin does not accept an Authorization header; the URL is signed")
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		writeMethodNotAllowed(w, r, "GET")
		return
	}
	job, f := s.bulk.file(r.PathValue("job"), r.PathValue("file"))
	sig := r.URL.Query().Get("sig")
	if f == nil || !f.redirect || subtle.ConstantTimeCompare([]byte(sig), []byte(job.signature)) != 1 {
		writeOutcome(w, http.StatusForbidden, "forbidden", "the signature does not match a file")
		return
	}
	serveNDJSON(w, r, job, f)
}

// writeOutcomeInfo answers status with an informational OperationOutcome.
func writeOutcomeInfo(w http.ResponseWriter, status int, diagnostics string) {
	writeJSON(w, status, mediaFHIRJSON, operationOutcome{
		ResourceType: "OperationOutcome",
		Issue:        []outcomeIssue{{Severity: "information", Code: "informational", Diagnostics: diagnostics}},
	})
}
