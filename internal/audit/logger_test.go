package audit_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cqgate/cqgate/internal/audit"
)

func record(rid string) *audit.Record {
	r := &audit.Record{
		Time: t0, RequestID: rid, Caller: "billing-svc", CallerMethod: "api_key", OID: "1.2.3.4",
		Method: "GET", Status: 200, Duration: 3 * time.Millisecond,
		PurposeOfUse: []string{"urn:oid:2.16.840.1.113883.5.8#TREAT"},
	}
	r.SetPath("Patient/123?name=x")
	return r
}

// lines reads a file's JSON lines and returns their request ids.
func lines(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return requestIDs(t, data)
}

func requestIDs(t *testing.T, data []byte) []string {
	t.Helper()
	var ids []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		var m struct {
			RequestID string `json:"request_id"`
		}
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		ids = append(ids, m.RequestID)
	}
	if len(data) > 0 && data[len(data)-1] != '\n' {
		t.Fatalf("output does not end in a newline: %q", data)
	}
	return ids
}

func TestOpenFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.jsonl")
	l, err := audit.Open("file:" + path)
	if err != nil {
		t.Fatal(err)
	}
	if got := l.Destination(); got != "file:"+path {
		t.Errorf("Destination = %q", got)
	}
	for _, id := range []string{"a", "b"} {
		if err := l.Write(record(id)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := st.Mode().Perm(); perm != 0o600 {
		t.Errorf("mode %v, want 0600", perm)
	}

	// Opening again appends; file:/// works too.
	l, err = audit.Open("file://" + path)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Write(record("c")); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(lines(t, path), ","); got != "a,b,c" {
		t.Fatalf("request ids %s, want a,b,c", got)
	}
	data, _ := os.ReadFile(path)
	if bytes.Contains(data, []byte("name=x")) {
		t.Errorf("query in the audit file: %s", data)
	}

	// After Close, writes fail and are counted; closing again is harmless.
	if err := l.Write(record("d")); !errors.Is(err, audit.ErrClosed) {
		t.Errorf("Write after Close = %v", err)
	}
	if err := l.Reopen(); !errors.Is(err, audit.ErrClosed) {
		t.Errorf("Reopen after Close = %v", err)
	}
	if l.Errors() != 1 {
		t.Errorf("Errors = %d, want 1", l.Errors())
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	notDir := filepath.Join(dir, "file")
	if err := os.WriteFile(notDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		dest string
		want string
	}{
		{"", "want stdout, stderr or file:/path"},
		{"syslog", `destination "syslog": want stdout, stderr or file:/path`},
		{"STDOUT", "want stdout"},
		{"file:", "no file path"},
		{"file://host/var/log/audit", "file://host/ is not supported"},
		{"file:" + filepath.Join(dir, "missing", "audit.jsonl"), "directory " + filepath.Join(dir, "missing") + " does not exist"},
		{"file:" + filepath.Join(notDir, "audit.jsonl"), "is not a directory"},
		{"file:" + dir, "is a directory"},
	}
	for _, tt := range tests {
		t.Run(tt.dest, func(t *testing.T) {
			l, err := audit.Open(tt.dest)
			if err == nil {
				l.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "audit: ") {
				t.Fatalf("err = %q, want it to contain %q", err, tt.want)
			}
			// cqgate -check refuses what Open refuses.
			if err := audit.Check(tt.dest); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Check: %v, want it to contain %q", err, tt.want)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "missing")); !os.IsNotExist(err) {
		t.Error("Open created the missing directory")
	}
}

// Check accepts what Open accepts, without creating the file.
func TestCheckCreatesNothing(t *testing.T) {
	dir := t.TempDir()
	existing := filepath.Join(dir, "existing.jsonl")
	if err := os.WriteFile(existing, []byte("{}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "new.jsonl")
	for _, dest := range []string{"stdout", "stderr", "file:" + existing, "file:" + missing, "file://" + missing} {
		if err := audit.Check(dest); err != nil {
			t.Errorf("Check(%q): %v", dest, err)
		}
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Error("Check created the audit file")
	}
	if b, _ := os.ReadFile(existing); string(b) != "{}\n" {
		t.Errorf("Check changed the existing file: %q", b)
	}
}

func TestOpenStdStreams(t *testing.T) {
	for _, dest := range []string{"stdout", "stderr"} {
		l, err := audit.Open(dest)
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Reopen(); err != nil {
			t.Errorf("%s: Reopen: %v", dest, err)
		}
		if err := l.Close(); err != nil {
			t.Errorf("%s: Close: %v", dest, err)
		}
	}
	// Close did not close the process's streams.
	if _, err := os.Stdout.Stat(); err != nil {
		t.Fatalf("stdout: %v", err)
	}
}

func TestReopen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.jsonl")
	rotated := path + ".1"
	l, err := audit.Open("file:" + path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	write := func(id string) {
		t.Helper()
		if err := l.Write(record(id)); err != nil {
			t.Fatal(err)
		}
	}
	write("1")
	// logrotate moves the file away; until Reopen, lines go to the moved file.
	if err := os.Rename(path, rotated); err != nil {
		t.Fatal(err)
	}
	write("2")
	if err := l.Reopen(); err != nil {
		t.Fatal(err)
	}
	write("3")
	if got := strings.Join(lines(t, rotated), ","); got != "1,2" {
		t.Errorf("rotated file has %s, want 1,2", got)
	}
	if got := strings.Join(lines(t, path), ","); got != "3" {
		t.Errorf("new file has %s, want 3", got)
	}

	// If the file cannot be opened again, writing goes on to the old one.
	if err := os.Rename(dir, dir+".gone"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir + ".gone") })
	if err := l.Reopen(); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("Reopen into a missing directory = %v", err)
	}
	write("4")
	if got := strings.Join(lines(t, filepath.Join(dir+".gone", "audit.jsonl")), ","); got != "3,4" {
		t.Errorf("file after a failed Reopen has %s, want 3,4", got)
	}
	if l.Errors() != 0 {
		t.Errorf("Errors = %d", l.Errors())
	}
}

// failingWriter fails every write after the first n.
type failingWriter struct {
	n     int
	short bool
}

func (w *failingWriter) Write(p []byte) (int, error) {
	if w.n > 0 {
		w.n--
		return len(p), nil
	}
	if w.short {
		return len(p) / 2, nil
	}
	return 0, errors.New("no space left on device")
}

func TestWriteErrors(t *testing.T) {
	l := audit.New(&failingWriter{n: 1})
	if err := l.Write(record("ok")); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		err := l.Write(record(fmt.Sprint(i)))
		if err == nil || !strings.Contains(err.Error(), "audit: writing to writer: no space left on device") {
			t.Fatalf("err = %v", err)
		}
	}
	if got := l.Errors(); got != 3 {
		t.Fatalf("Errors = %d, want 3", got)
	}
	short := audit.New(&failingWriter{short: true})
	if err := short.Write(record("x")); !errors.Is(err, io.ErrShortWrite) {
		t.Fatalf("short write: %v", err)
	}
	if short.Errors() != 1 {
		t.Fatalf("Errors = %d, want 1", short.Errors())
	}
}

func TestWriteZeroTime(t *testing.T) {
	var buf bytes.Buffer
	l := audit.New(&buf)
	before := time.Now()
	if err := l.Write(&audit.Record{RequestID: "r"}); err != nil {
		t.Fatal(err)
	}
	after := time.Now()
	var m struct {
		Time time.Time `json:"time"`
	}
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	if m.Time.Before(before.Add(-time.Second)) || m.Time.After(after.Add(time.Second)) {
		t.Errorf("time %v, want the time of writing", m.Time)
	}
}

// lockedBuffer lets the test read what concurrent writes produced.
type lockedBuffer struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	writes int
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.writes++
	return b.buf.Write(p)
}

func TestConcurrentWrites(t *testing.T) {
	var out lockedBuffer
	l := audit.New(&out)
	const workers, each = 8, 50
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				rec := record(fmt.Sprintf("w%d-%d", w, i))
				rec.Caller = strings.Repeat("c", w*100) // lines of different lengths
				if err := l.Write(rec); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	ids := requestIDs(t, out.buf.Bytes())
	if len(ids) != workers*each || out.writes != workers*each {
		t.Fatalf("%d lines in %d writes, want %d of each", len(ids), out.writes, workers*each)
	}
	seen := make(map[string]bool)
	for _, id := range ids {
		seen[id] = true
	}
	if len(seen) != workers*each {
		t.Fatalf("%d distinct lines, want %d", len(seen), workers*each)
	}
}

func TestWriteAllocations(t *testing.T) {
	l := audit.New(io.Discard)
	rec := record("0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0")
	allocs := testing.AllocsPerRun(200, func() {
		if err := l.Write(rec); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 2 {
		t.Fatalf("Write allocates %v times per record, want at most 2", allocs)
	}
}

func BenchmarkWrite(b *testing.B) {
	l := audit.New(io.Discard)
	rec := record("0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0")
	b.ReportAllocs()
	for b.Loop() {
		if err := l.Write(rec); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkWriteParallel(b *testing.B) {
	l := audit.New(io.Discard)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		rec := record("0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0")
		for pb.Next() {
			if err := l.Write(rec); err != nil {
				b.Fatal(err)
			}
		}
	})
}
