package audit_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/cqgate/cqgate/internal/audit"
	"github.com/cqgate/cqgate/internal/clocktest"
)

var t0 = time.Date(2030, 6, 1, 12, 0, 0, 123456789, time.FixedZone("CEST", 2*3600))

func TestRecordJSON(t *testing.T) {
	clock := clocktest.New(t0)
	full := audit.Record{
		Time:              clock.Now(),
		RequestID:         "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0",
		Caller:            "billing-svc",
		CallerMethod:      "api_key",
		CallerSubject:     "sha256:9f86d081884c",
		RemoteAddr:        "10.1.2.3:51234",
		OID:               "2.16.840.1.113883.3.13.1",
		Method:            "GET",
		Scope:             "system/Observation.read",
		PurposeOfUse:      []string{"urn:oid:2.16.840.1.113883.5.8#TREAT", "b"},
		ExchangePurpose:   "T-TREAT",
		Status:            200,
		UpstreamRequestID: "5e1d9a3c-0000-4000-8000-000000000001",
		Duration:          12345678 * time.Nanosecond,
	}
	full.SetPath("/Patient/1316024/Observation?code=http://loinc.org|4548-4")
	clock.Advance(1500 * time.Millisecond)
	failed := audit.Record{
		Time:         clock.Now(),
		RequestID:    "r2",
		Caller:       "anonymous",
		CallerMethod: "none",
		OID:          "1.2.3.4",
		Method:       "DELETE",
		Status:       403,
		Duration:     -time.Second,
		Error:        "forbidden",
	}
	failed.SetPath("Patient/1")

	tests := []struct {
		name string
		rec  audit.Record
		want string
	}{
		{
			name: "full",
			rec:  full,
			want: `{"log":"audit","time":"2030-06-01T10:00:00.123456789Z","request_id":"0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0",` +
				`"caller":"billing-svc","caller_method":"api_key","caller_subject":"sha256:9f86d081884c","remote_addr":"10.1.2.3:51234",` +
				`"oid":"2.16.840.1.113883.3.13.1","method":"GET","resource_type":"Observation","compartment":"Patient/1316024",` +
				`"scope":"system/Observation.read","purpose_of_use":["urn:oid:2.16.840.1.113883.5.8#TREAT","b"],"exchange_purpose":"T-TREAT","status":200,` +
				`"upstream_request_id":"5e1d9a3c-0000-4000-8000-000000000001","duration_ms":12.345}`,
		},
		{
			name: "failure",
			rec:  failed,
			want: `{"log":"audit","time":"2030-06-01T10:00:01.623456789Z","request_id":"r2","caller":"anonymous","caller_method":"none",` +
				`"oid":"1.2.3.4","method":"DELETE","resource_type":"Patient","resource_id":"1","status":403,"duration_ms":0,"error":"forbidden"}`,
		},
		{
			name: "zero record keeps the always-present fields",
			rec:  audit.Record{Time: time.Unix(0, 0)},
			want: `{"log":"audit","time":"1970-01-01T00:00:00Z","request_id":"","caller":"","caller_method":"","oid":"","method":"","status":0,"duration_ms":0}`,
		},
		{
			name: "operation",
			rec:  audit.Record{Time: time.Unix(0, 0), Method: "GET", ResourceType: "Observation", Operation: "$lastn", Duration: time.Microsecond},
			want: `{"log":"audit","time":"1970-01-01T00:00:00Z","request_id":"","caller":"","caller_method":"","oid":"","method":"GET","resource_type":"Observation","operation":"$lastn","status":0,"duration_ms":0.001}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(tt.rec.AppendJSON(nil))
			if got != tt.want {
				t.Fatalf("got\n%s\nwant\n%s", got, tt.want)
			}
			if !json.Valid([]byte(got)) {
				t.Fatal("not valid JSON")
			}
			var m map[string]any
			if err := json.Unmarshal([]byte(got), &m); err != nil {
				t.Fatal(err)
			}
		})
	}
	if line := string(full.AppendJSON(nil)); strings.Contains(line, "loinc") || strings.Contains(line, "4548") || strings.Contains(line, "code") {
		t.Errorf("the query reached the record: %s", line)
	}
}

// TestNoQueryValues checks that query values never reach the audit line,
// whatever the path looks like.
func TestNoQueryValues(t *testing.T) {
	const phi = "PETERS-1970"
	for _, path := range []string{
		"Patient?name=" + phi,
		"/Patient?family=" + phi + "&given=x",
		"Patient/_search?name=" + phi,
		"Patient/123/Observation?subject.name=" + phi,
		"?_content=" + phi,
		"metadata?x=" + phi,
		"Patient#" + phi,
	} {
		rec := audit.Record{Time: t0}
		rec.SetPath(path)
		if line := string(rec.AppendJSON(nil)); strings.Contains(line, phi) {
			t.Errorf("%q: query value in %s", path, line)
		}
	}
}

func TestEscaping(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{`plain`, `"plain"`},
		{`q"uote\back`, `"q\"uote\\back"`},
		{"nl\ncr\rtab\t", `"nl\ncr\rtab\t"`},
		{"nul\x00bel\x07esc\x1b", `"nul\u0000bel\u0007esc\u001b"`},
		{"del\x7f", "\"del\x7f\""},
		{"héllo ☃ 🎉", `"héllo ☃ 🎉"`},
		{"bad\xffutf8\xc3", `"bad\ufffdutf8\ufffd"`},
		{"ls\u2028ps\u2029", `"ls\u2028ps\u2029"`},
		{"</script>&", `"</script>&"`},
	}
	for _, tt := range tests {
		line := string((&audit.Record{Time: t0, Caller: tt.in}).AppendJSON(nil))
		if !strings.Contains(line, `"caller":`+tt.want+`,`) {
			t.Errorf("caller %q encoded in %s, want %s", tt.in, line, tt.want)
		}
		if !json.Valid([]byte(line)) {
			t.Errorf("caller %q: invalid JSON %s", tt.in, line)
		}
	}
}

// FuzzRecordJSON checks that every record encodes to one line of valid
// JSON whose string fields decode to what was written (invalid UTF-8
// bytes turned into U+FFFD, as encoding/json does).
func FuzzRecordJSON(f *testing.F) {
	f.Add("req-1", "billing-svc", "1.2.3.4", "Patient/1?name=x", "urn:oid:2.16.840.1.113883.5.8#TREAT", "forbidden", 200, int64(1500))
	f.Add("\x00\"\\\n", "\xff\xfe", "\u2028", "Patient/1/$everything", "a,b", "", 0, int64(-1))
	f.Add("", "", "", "", "", "</script>", 999, int64(1<<62))
	f.Fuzz(func(t *testing.T, rid, caller, oid, path, pou, errCode string, status int, dur int64) {
		rec := audit.Record{
			Time: t0, RequestID: rid, Caller: caller, CallerMethod: caller, OID: oid, Method: rid,
			PurposeOfUse: []string{pou, caller}, Status: status, Duration: time.Duration(dur), Error: errCode,
			Scope: oid, RemoteAddr: rid, UpstreamRequestID: errCode, ExchangePurpose: pou,
		}
		rec.SetPath(path)
		line := rec.AppendJSON(nil)
		if !json.Valid(line) {
			t.Fatalf("invalid JSON: %q", line)
		}
		if bytes.ContainsAny(line, "\n\r") {
			t.Fatalf("line break inside the record: %q", line)
		}
		var got struct {
			RequestID    string   `json:"request_id"`
			Caller       string   `json:"caller"`
			CallerMethod string   `json:"caller_method"`
			OID          string   `json:"oid"`
			Method       string   `json:"method"`
			ResourceType string   `json:"resource_type"`
			ResourceID   string   `json:"resource_id"`
			Compartment  string   `json:"compartment"`
			Operation    string   `json:"operation"`
			Scope        string   `json:"scope"`
			RemoteAddr   string   `json:"remote_addr"`
			PurposeOfUse []string `json:"purpose_of_use"`
			XP           string   `json:"exchange_purpose"`
			Status       int      `json:"status"`
			Upstream     string   `json:"upstream_request_id"`
			DurationMS   float64  `json:"duration_ms"`
			Error        string   `json:"error"`
		}
		if err := json.Unmarshal(line, &got); err != nil {
			t.Fatalf("unmarshal %q: %v", line, err)
		}
		checks := []struct{ name, got, want string }{
			{"request_id", got.RequestID, rid},
			{"caller", got.Caller, caller},
			{"caller_method", got.CallerMethod, caller},
			{"oid", got.OID, oid},
			{"method", got.Method, rid},
			{"resource_type", got.ResourceType, rec.ResourceType},
			{"resource_id", got.ResourceID, rec.ResourceID},
			{"compartment", got.Compartment, rec.Compartment},
			{"operation", got.Operation, rec.Operation},
			{"scope", got.Scope, oid},
			{"remote_addr", got.RemoteAddr, rid},
			{"upstream_request_id", got.Upstream, errCode},
			{"error", got.Error, errCode},
			{"purpose_of_use[0]", got.PurposeOfUse[0], pou},
			{"purpose_of_use[1]", got.PurposeOfUse[1], caller},
			{"exchange_purpose", got.XP, pou},
		}
		for _, c := range checks {
			if c.got != validUTF8(c.want) {
				t.Errorf("%s: got %q, want %q", c.name, c.got, validUTF8(c.want))
			}
		}
		if got.Status != status {
			t.Errorf("status %d, want %d", got.Status, status)
		}
		if got.DurationMS < 0 {
			t.Errorf("negative duration_ms %v", got.DurationMS)
		}
		if i := strings.IndexAny(path, "?#"); i >= 0 && i+1 < len(path) {
			query := path[i+1:]
			for _, s := range []string{rec.ResourceType, rec.ResourceID, rec.Compartment, rec.Operation} {
				// Text that the path itself holds before the "?" or "#"
				// may rightly appear in a path field.
				if len(query) > 3 && strings.Contains(s, query) && !strings.Contains(validUTF8(path[:i]), query) {
					t.Errorf("query %q reached a path field %q", query, s)
				}
			}
		}
	})
}

// validUTF8 replaces each invalid byte with U+FFFD.
func validUTF8(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		b.WriteRune(r) // RuneError for an invalid byte
		i += size
	}
	return b.String()
}

func TestRecordBulkJSON(t *testing.T) {
	base := audit.Record{Time: t0, RequestID: "r", Caller: "c", CallerMethod: "none", OID: "1.2", Method: "GET", Status: 200}
	prefix := `{"log":"audit","time":"2030-06-01T10:00:00.123456789Z","request_id":"r","caller":"c","caller_method":"none","oid":"1.2","method":"GET","status":200,"duration_ms":0`
	tests := []struct {
		name string
		bulk *audit.Bulk
		want string
	}{
		{"kick-off", &audit.Bulk{Event: audit.BulkKickoff, StatusPath: "/fhir/1.2/bulkstatus/7"},
			`,"bulk":{"event":"kickoff","status_path":"/fhir/1.2/bulkstatus/7"}}`},
		{"completion", &audit.Bulk{Event: audit.BulkComplete, Files: 3},
			`,"bulk":{"event":"complete","files":3}}`},
		{"completion without files", &audit.Bulk{Event: audit.BulkComplete},
			`,"bulk":{"event":"complete","files":0}}`},
		{"download", &audit.Bulk{Event: audit.BulkDownload, FileType: "Observation", Bytes: 5811},
			`,"bulk":{"event":"download","type":"Observation","bytes":5811}}`},
		{"download of unknown type", &audit.Bulk{Event: audit.BulkDownload, Bytes: 0},
			`,"bulk":{"event":"download","bytes":0}}`},
		{"no bulk event", nil, `}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := base
			rec.Bulk = tt.bulk
			got := string(rec.AppendJSON(nil))
			if got != prefix+tt.want {
				t.Errorf("got  %s\nwant %s", got, prefix+tt.want)
			}
			if !json.Valid([]byte(got)) {
				t.Errorf("not JSON: %s", got)
			}
		})
	}
}
