package sandbox

import (
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/sirupsen/logrus"
)

// Paths served, relative to Sandbox.URL.
const (
	directoryPath  = "/directory/fhir"
	fhirBasePath   = "/fhir/r4/" + TenantID
	tokenPath      = fhirBasePath + "/Authorization/token"
	authServerPath = "/tenants/" + TenantID
	plainTokenPath = authServerPath + "/protocols/oauth2/profiles/smart-v1/token"
	authorizePath  = authServerPath + "/personas/provider/authorize"
)

// requestIDHeader carries a fresh UUID on every response, as Cerner's
// servers do.
const requestIDHeader = "X-Request-Id"

// handler routes every sandbox endpoint. Patterns carry no method so that
// a wrong method gets the endpoint's own error format (an OperationOutcome
// or an OAuth error) rather than net/http's plain text.
func (s *Sandbox) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc(directoryPath+"/Organization/{oid}", s.handleOrganization)
	mux.HandleFunc(directoryPath+"/Organization", s.handleOrganizationSearch)
	mux.HandleFunc(fhirBasePath+"/metadata", s.handleMetadata)
	mux.HandleFunc(tokenPath, s.handleToken)
	mux.HandleFunc(registerPath, s.handleRegister)
	mux.HandleFunc(plainTokenPath, s.handlePlainToken)
	mux.HandleFunc(fhirBasePath+"/$export", s.handleExport)
	mux.HandleFunc(fhirBasePath+"/Patient/$export", s.handleExport)
	mux.HandleFunc(fhirBasePath+"/Group/{group}/$export", s.handleExport)
	mux.HandleFunc(bulkStatusPath+"{job}", s.handleBulkStatus)
	mux.HandleFunc(bulkFilePath+"{job}/{file}", s.handleBulkFile)
	mux.HandleFunc(fhirBasePath+"/{type}", s.handleFHIR)
	mux.HandleFunc(fhirBasePath+"/{type}/{id}", s.handleFHIR)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeOutcome(w, http.StatusNotFound, issueNotFound, "no sandbox endpoint at "+r.URL.Path)
	})
	return s.withRequestID(mux)
}

// withRequestID stamps each response with a fresh X-Request-Id and logs
// the request. The query string is never logged: it may hold the
// directory API key.
func (s *Sandbox) withRequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := uuid.NewString()
		w.Header().Set(requestIDHeader, id)
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		start := time.Now()
		next.ServeHTTP(rec, r)
		s.log.WithFields(logrus.Fields{
			"request_id": id,
			"method":     r.Method,
			"path":       r.URL.Path,
			"status":     rec.status,
			"duration":   time.Since(start).String(),
		}).Debug("sandbox request")
	})
}

// requestID returns the X-Request-Id already set on w.
func requestID(w http.ResponseWriter) string { return w.Header().Get(requestIDHeader) }

// statusRecorder remembers the status code written, for the request log.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
