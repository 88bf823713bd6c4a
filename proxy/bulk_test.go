package proxy

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// The manifest check's verdict is the one the whole 512-byte head
// gives: a resource told by its first key, a manifest by its keys
// wherever they are, and anything else not a manifest.
func TestNotManifest(t *testing.T) {
	for _, tt := range []struct {
		name, head string
		want       bool
	}{
		{"resource, resourceType first", `{"resourceType":"Patient","id":"1"}`, true},
		{"resource, whitespace around", " \r\n{ \t\n\"resourceType\" : \"Bundle\"}", true},
		{"resource, resourceType later", `{"id":"1","meta":{},"resourceType":"Patient"}`, true},
		{"manifest", `{"transactionTime":"2024-01-01T00:00:00Z","request":"x","output":[]}`, false},
		{"manifest, output first", `{"output":[{"type":"Patient","url":"https://x/1.ndjson"}],"transactionTime":"t"}`, false},
		{"manifest keys inside a resource", `{"resourceType":"Parameters","output":[],"transactionTime":"t"}`, true},
		{"neither", `{"a":1}`, true},
		{"not an object", `["output","transactionTime"]`, false},
		{"byte order mark", "\ufeff{\"resourceType\":\"Patient\"}", true},
		{"resourceType at the very end", `{"id":"1","x":"Type","resourceType"`, true},
		{"transactionTime at the very start", `"transactionTime":"t"`, false},
		{"cut-off keys", `{"resourceTyp`, true},
		{"cut-off transactionTime", `{"a":"T","transactionTim`, true},
		{"capital Ts elsewhere", `{"lastTime":"T","Type":"TT","output":[]}`, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := notManifest([]byte(tt.head)); got != tt.want {
				t.Errorf("notManifest(%q) = %v, want %v", tt.head, got, tt.want)
			}
		})
	}
}

// readHead stops at the first key of a resource, reads a manifest's
// head whole, and says whether the body ended.
func TestReadHead(t *testing.T) {
	resource := `{"resourceType":"Patient","name":[` + strings.Repeat(`{"family":"x"},`, 60) + `{}]}`
	manifest := `{"transactionTime":"t","output":[` + strings.Repeat(`{"type":"Patient","url":"https://files.example/p.ndjson"},`, 20) + `{}]}`
	broken := errors.New("connection reset")
	for _, tt := range []struct {
		name         string
		r            io.Reader
		wantN        int
		wantComplete bool
		wantErr      error
	}{
		{"resource, one byte at a time", iotest.OneByteReader(strings.NewReader(resource)), len(`{"resourceType"`), false, nil},
		{"resource, at once", strings.NewReader(resource), peekSize, false, nil},
		{"manifest, one byte at a time", iotest.OneByteReader(strings.NewReader(manifest)), peekSize, false, nil},
		{"short body", strings.NewReader(`{"a":1}`), len(`{"a":1}`), true, nil},
		{"empty body", strings.NewReader(""), 0, true, nil},
		{"broken body", io.MultiReader(strings.NewReader(`{"a"`), iotest.ErrReader(broken)), 4, false, broken},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var buf [peekSize]byte
			n, complete, err := readHead(tt.r, buf[:])
			if n != tt.wantN || complete != tt.wantComplete || !errors.Is(err, tt.wantErr) {
				t.Errorf("readHead = %d, %v, %v; want %d, %v, %v", n, complete, err, tt.wantN, tt.wantComplete, tt.wantErr)
			}
		})
	}
}

// notManifest gives the verdict of searching the head for each key.
func FuzzNotManifest(f *testing.F) {
	for _, s := range []string{`{"resourceType":"Patient"}`, `{"transactionTime":"t","output":[]}`, `{"output":[],"x":"resourceType"}`, `TT"transactionTime"T`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, head []byte) {
		want := bytes.Contains(head, []byte(`"resourceType"`)) ||
			(!bytes.Contains(head, []byte(`"transactionTime"`)) && !bytes.Contains(head, []byte(`"output"`)))
		if got := notManifest(head); got != want {
			t.Errorf("notManifest(%q) = %v, want %v", head, got, want)
		}
	})
}

// BenchmarkNotManifest: the head of a resource whose resourceType is not
// its first key (the bench upstream's Patient, keys sorted), the case
// that needs the whole check.
func BenchmarkNotManifest(b *testing.B) {
	head := []byte(`{"active":true,"address":[{"city":"Loopback","country":"USA","line":["100 Benchmark Way","Apt 2"],"period":{"start":"2010-01-01"},"postalCode":"65000","state":"MO","use":"home"}],"birthDate":"1970-01-02","communication":[{"language":{"coding":[{"code":"en-US","system":"urn:ietf:bcp:47"}]},"preferred":true}],"contact":[{"name":{"family":"Example-Bench","given":["Casey"]},"relationship":[{"coding":[{"code":"C","system":"http://terminology.hl7.org/CodeSystem/v2-0131"}]}],"telecom":[{"system":"phone","value":"555-0101"}]}],"gender":"other","generalPractitioner":[{"display":"Dr. Ada Sample","reference":"Pra`)[:peekSize]
	for b.Loop() {
		if !notManifest(head) {
			b.Fatal("a Patient taken for a manifest")
		}
	}
}
