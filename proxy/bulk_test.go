package proxy

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// The manifest check reads a JSON answer's top-level keys in order and
// stops at the first that settles it.
func TestKeyScan(t *testing.T) {
	const (
		no, maybe, open = notAManifest, mayBeManifest, undecided
	)
	for _, tt := range []struct {
		name, body string
		want       manifestVerdict
	}{
		{"resource, resourceType first", `{"resourceType":"Patient","id":"1"}`, no},
		{"resource, whitespace around", " \r\n{ \t\n\"resourceType\" : \"Bundle\"}", no},
		{"resource, keys sorted", `{"active":true,"id":"1","resourceType":"Patient"}`, no},
		{"Bundle, keys sorted", `{"entry":[{"fullUrl":"x","resource":{"transactionTime":"t"}}],"resourceType":"Bundle"}`, no},
		{"output first: read whole, parsed", `{"output":[{"type":{}}],"resourceType":"Task"}`, maybe},
		{"Task, keys sorted", `{"id":"1","intent":"order","output":[],"resourceType":"Task","status":"ready"}`, no},
		{"resource opening with a shared key", `{"extension":[{"url":"x"}],"id":"1","resourceType":"Basic"}`, no},
		{"manifest", `{"transactionTime":"2024-01-01T00:00:00Z","request":"x","output":[]}`, maybe},
		{"manifest, output first", `{"output":[{"type":"Patient","url":"https://x/1.ndjson"}],"transactionTime":"t"}`, maybe},
		{"manifest, keys sorted, deleted first", `{"deleted":[],"error":[],"output":[],"request":"x","requiresAccessToken":true,"transactionTime":"t"}`, maybe},
		{"manifest, keys sorted, error first", `{"error":[{"type":"OperationOutcome","url":"https://s/e.ndjson?sig=` + strings.Repeat("x", 600) + `"}],"output":[]}`, maybe},
		{"manifest, STU4 keys", `{"manifestType":"x","outputFormat":"application/fhir+ndjson"}`, maybe},
		{"only shared keys, whole object", `{"request":"x","link":[],"extension":{}}`, maybe},
		{"whitespace before the object", strings.Repeat(" ", 256) + `{"transactionTime":"t"}`, maybe},
		{"much whitespace before the object", strings.Repeat("\n", 300) + `{"transactionTime":"t"}`, maybe},
		{"manifest keys nested in a resource", `{"resourceType":"Parameters","output":[],"transactionTime":"t"}`, no},
		{"manifest keys as values", `{"a":"transactionTime","b":["error"]}`, no},
		{"key names in nested objects", `{"request":[{"resourceType":"x","id":"t"}],"link":"y"`, open},
		{"strings with quotes and brackets", `{"extension":"a\"}]{[","request":"\\","link":"}"`, open},
		{"neither", `{"a":1}`, no},
		{"empty object", `{}`, maybe},
		{"not an object", `["output","transactionTime"]`, no},
		{"not JSON", `<Bundle xmlns="http://hl7.org/fhir"/>`, no},
		{"byte order mark", "\ufeff{\"resourceType\":\"Patient\"}", no},
		{"escaped key: read whole, parsed", `{"resource\u0054ype":"Patient"}`, maybe},
		{"escaped key, then a settling one", `{"resource\u0054ype":"Patient","id":"1"}`, no},
		{"long key", `{"` + strings.Repeat("k", 40) + `":1,"transactionTime":"t"}`, no},
		{"cut-off key", `{"resourceTyp`, open},
		{"empty", ``, open},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var s keyScan
			if got := s.feed([]byte(tt.body)); got != tt.want {
				t.Errorf("feed(%q) = %v, want %v", tt.body, got, tt.want)
			}
			// Fed a byte at a time, the verdict is the same.
			var b keyScan
			got := undecided
			for i := 0; i < len(tt.body) && got == undecided; i++ {
				got = b.feed([]byte{tt.body[i]})
			}
			if got != tt.want {
				t.Errorf("byte by byte: %v, want %v", got, tt.want)
			}
		})
	}
}

// readHead stops once the keys settle it, reads a manifest's keys
// across reads, gives up on an answer its keys leave open for too long,
// and says whether the body ended.
func TestReadHead(t *testing.T) {
	resource := `{"resourceType":"Patient","name":[` + strings.Repeat(`{"family":"x"},`, 60) + `{}]}`
	sorted := `{"active":true,"name":[` + strings.Repeat(`{"family":"x"},`, 60) + `{}],"resourceType":"Patient"}`
	manifest := `{"request":"r","extension":{"x":[` + strings.Repeat(`"https://files.example/p.ndjson",`, 40) + `""]},"transactionTime":"t","output":[]}`
	open := `{"request":"r","extension":{"x":"` + strings.Repeat("x", maxUndecided) + `"}}`
	broken := errors.New("connection reset")
	for _, tt := range []struct {
		name         string
		r            io.Reader
		wantN        int
		wantVerdict  manifestVerdict
		wantComplete bool
		wantErr      error
	}{
		{"resource, one byte at a time", iotest.OneByteReader(strings.NewReader(resource)), len(`{"resourceType"`), notAManifest, false, nil},
		{"resource, at once", strings.NewReader(resource), peekSize, notAManifest, false, nil},
		{"sorted resource, one byte at a time", iotest.OneByteReader(strings.NewReader(sorted)), len(`{"active"`), notAManifest, false, nil},
		{"manifest, transactionTime past 512 bytes", iotest.OneByteReader(strings.NewReader(manifest)), strings.Index(manifest, `"transactionTime"`) + len(`"transactionTime"`), mayBeManifest, false, nil},
		{"manifest, in halves", iotest.HalfReader(strings.NewReader(manifest)), -1, mayBeManifest, false, nil},
		{"open for too long: read whole", strings.NewReader(open), maxUndecided, undecided, false, nil},
		{"short body", strings.NewReader(`{"a":1}`), len(`{"a":1}`), notAManifest, false, nil},
		{"short body, undecided", strings.NewReader(`{"request":"x"`), len(`{"request":"x"`), undecided, true, nil},
		{"empty body", strings.NewReader(""), 0, undecided, true, nil},
		{"broken body", io.MultiReader(strings.NewReader(`{"request"`), iotest.ErrReader(broken)), len(`{"request"`), undecided, false, broken},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var scan keyScan
			head, v, complete, err := readHead(tt.r, &scan, make([]byte, 0, peekSize))
			if tt.wantN >= 0 && len(head) != tt.wantN || v != tt.wantVerdict || complete != tt.wantComplete || !errors.Is(err, tt.wantErr) {
				t.Errorf("readHead = %d bytes, %v, %v, %v; want %d, %v, %v, %v", len(head), v, complete, err, tt.wantN, tt.wantVerdict, tt.wantComplete, tt.wantErr)
			}
		})
	}
}

// keyScan's verdict on a JSON object is the one its top-level keys give
// in order, as encoding/json reads them (keys without escapes), and does
// not depend on how the bytes are split.
func FuzzKeyScan(f *testing.F) {
	for _, s := range []string{`{"resourceType":"Patient"}`, `{"transactionTime":"t","output":[]}`, `{"output":[],"x":"resourceType"}`,
		`{"output":[{"a":"}"}],"error":[]}`, `{"link":[],"request":"\"","id":1}`, ` {"extension":{"k":[1,{"error":2}]}}`} {
		f.Add([]byte(s), uint8(3))
	}
	f.Fuzz(func(t *testing.T, body []byte, split uint8) {
		var whole keyScan
		want := whole.feed(body)
		var parts keyScan
		got, n := undecided, max(int(split), 1)
		for i := 0; i < len(body) && got == undecided; i += n {
			got = parts.feed(body[i:min(i+n, len(body))])
		}
		if got != want {
			t.Fatalf("in parts of %d: %v, whole: %v (%q)", n, got, want, body)
		}
		if oracle, ok := topLevelVerdict(body); ok && oracle != want {
			t.Errorf("feed(%q) = %v, the keys as encoding/json reads them say %v", body, want, oracle)
		}
	})
}

// topLevelVerdict reads a JSON object's top-level keys with
// encoding/json and applies keyScan's rules; ok is false for anything
// else, or a key with an escape.
func topLevelVerdict(body []byte) (manifestVerdict, bool) {
	if !json.Valid(body) || bytes.Contains(body, []byte(`\`)) {
		return 0, false
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	tok, err := dec.Token()
	if d, isDelim := tok.(json.Delim); err != nil || !isDelim || d != '{' {
		return notAManifest, err == nil
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return 0, false
		}
		s := keyScan{keyLen: len(tok.(string))}
		copy(s.key[:], tok.(string))
		if v := s.verdict(); v != undecided {
			return v, true
		}
		var skip json.RawMessage
		if dec.Decode(&skip) != nil {
			return 0, false
		}
	}
	return mayBeManifest, true
}

// BenchmarkKeyScan: the bench upstream's Patient, whose keys are
// sorted (its first key settles it), and a resource that opens with
// resourceType.
func BenchmarkKeyScan(b *testing.B) {
	for _, body := range []string{
		`{"active":true,"address":[{"city":"Loopback","country":"USA","line":["100 Benchmark Way","Apt 2"]}],"resourceType":"Patient"}`,
		`{"resourceType":"Patient","id":"1","active":true}`,
	} {
		b.Run(body[2:8], func(b *testing.B) {
			for b.Loop() {
				var s keyScan
				if s.feed([]byte(body)) != notAManifest {
					b.Fatal("a Patient taken for a manifest")
				}
			}
		})
	}
}
