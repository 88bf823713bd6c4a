package audit

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ErrClosed is returned by Write and Reopen after Close.
var ErrClosed = errors.New("audit: logger is closed")

// maxPooledBuffer bounds the buffers kept for reuse, so that one huge
// record does not pin its buffer.
const maxPooledBuffer = 64 << 10

// Logger writes Records as JSON lines. It is safe for concurrent use;
// each record is written with a single Write call under a mutex.
type Logger struct {
	dest string // "stdout", "stderr", "file:/path" or "writer"
	path string // the file's path, or "" when not writing to a file
	now  func() time.Time
	bufs sync.Pool // *[]byte
	errs atomic.Uint64

	mu     sync.Mutex
	w      io.Writer
	file   *os.File
	closed bool
}

// New returns a Logger writing to w. Close does not close w.
func New(w io.Writer) *Logger {
	return newLogger("writer", w)
}

func newLogger(dest string, w io.Writer) *Logger {
	l := &Logger{dest: dest, w: w, now: time.Now}
	l.bufs.New = func() any {
		b := make([]byte, 0, 1024)
		return &b
	}
	return l
}

// Open returns a Logger writing to destination: "stdout", "stderr", or
// "file:" and a path ("file:/var/log/cqgate/audit.jsonl"; "file:///var/..."
// is accepted too). A file is opened for appending and created with mode
// 0600 if missing; its directory must exist.
func Open(destination string) (*Logger, error) {
	switch destination {
	case "stdout":
		return newLogger(destination, os.Stdout), nil
	case "stderr":
		return newLogger(destination, os.Stderr), nil
	}
	path, err := filePath(destination)
	if err != nil {
		return nil, err
	}
	f, err := openFile(path)
	if err != nil {
		return nil, err
	}
	l := newLogger(destination, f)
	l.path, l.file = path, f
	return l, nil
}

// Check returns why Open would refuse destination, without creating
// anything: for a configuration check before starting (cqgate -check).
// A file's directory must exist and, if the file exists, it must open
// for appending.
func Check(destination string) error {
	if destination == "stdout" || destination == "stderr" {
		return nil
	}
	path, err := filePath(destination)
	if err != nil {
		return err
	}
	if err := checkDir(path); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // Open creates it
	}
	if err != nil {
		return fmt.Errorf("audit: opening %s: %w", path, err)
	}
	return f.Close()
}

// filePath is the path of a "file:" destination.
func filePath(destination string) (string, error) {
	path, ok := strings.CutPrefix(destination, "file:")
	if !ok {
		return "", fmt.Errorf("audit: destination %q: want stdout, stderr or file:/path", destination)
	}
	if strings.HasPrefix(path, "//") {
		if !strings.HasPrefix(path, "///") {
			return "", fmt.Errorf("audit: destination %q: file://host/ is not supported; write file:/absolute/path", destination)
		}
		path = path[2:]
	}
	if path == "" {
		return "", fmt.Errorf("audit: destination %q: no file path", destination)
	}
	return path, nil
}

func openFile(path string) (*os.File, error) {
	if err := checkDir(path); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit: opening %s: %w", path, err)
	}
	return f, nil
}

// checkDir checks that path's directory exists: cqgate does not create
// it.
func checkDir(path string) error {
	dir := filepath.Dir(path)
	if st, err := os.Stat(dir); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("audit: opening %s: directory %s does not exist (cqgate does not create it)", path, dir)
		}
		return fmt.Errorf("audit: opening %s: %w", path, err)
	} else if !st.IsDir() {
		return fmt.Errorf("audit: opening %s: %s is not a directory", path, dir)
	}
	return nil
}

// Destination returns where the Logger writes, as given to Open.
func (l *Logger) Destination() string { return l.dest }

// Write writes rec as one JSON line (see Record.AppendJSON). A zero
// rec.Time is written as the current time. A failure is counted (Errors)
// and returned; the caller should log it.
func (l *Logger) Write(rec *Record) error {
	if rec == nil {
		l.errs.Add(1)
		return errors.New("audit: nil record")
	}
	t := rec.Time
	if t.IsZero() {
		t = l.now()
	}
	bp := l.bufs.Get().(*[]byte)
	b := rec.appendJSON((*bp)[:0], t)
	b = append(b, '\n')

	l.mu.Lock()
	var (
		n   int
		err error
	)
	if l.closed {
		err = ErrClosed
	} else {
		n, err = l.w.Write(b)
		if err == nil && n < len(b) {
			err = io.ErrShortWrite
		}
	}
	l.mu.Unlock()

	if cap(b) <= maxPooledBuffer {
		*bp = b
		l.bufs.Put(bp)
	}
	if err != nil {
		l.errs.Add(1)
		if errors.Is(err, ErrClosed) {
			return err
		}
		return fmt.Errorf("audit: writing to %s: %w", l.dest, err)
	}
	return nil
}

// Errors returns how many records could not be written.
func (l *Logger) Errors() uint64 { return l.errs.Load() }

// Reopen opens the file again by its path and writes to the new file from
// then on, for log rotation: after logrotate (or an operator) moved the
// file away, call Reopen, e.g. on SIGHUP. If the file cannot be opened,
// writing goes on to the old one and the error says why. For stdout,
// stderr or a writer, Reopen does nothing.
func (l *Logger) Reopen() error {
	if l.path == "" {
		return nil
	}
	f, err := openFile(l.path)
	if err != nil {
		return err
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		f.Close()
		return ErrClosed
	}
	old := l.file
	l.file, l.w = f, f
	l.mu.Unlock()
	if err := old.Close(); err != nil {
		return fmt.Errorf("audit: closing the previous %s: %w", l.path, err)
	}
	return nil
}

// Close stops the Logger and closes its file, if it opened one. Writes
// after Close fail with ErrClosed. Closing twice is harmless.
func (l *Logger) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	if l.file != nil {
		if err := l.file.Close(); err != nil {
			return fmt.Errorf("audit: closing %s: %w", l.path, err)
		}
	}
	return nil
}
