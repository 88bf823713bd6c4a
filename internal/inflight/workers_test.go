package inflight

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

func (p *workers) count() (made, idle int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.made, len(p.idle)
}

// An admitted request runs on a worker goroutine, not on the caller's,
// and sequential requests reuse one worker: the deep stacks a burst
// grows are bounded by Max, not by the number of connections.
func TestAdmittedRequestsRunOnReusedWorkers(t *testing.T) {
	var stacks []string
	var mu sync.Mutex
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		buf := make([]byte, 16<<10)
		mu.Lock()
		stacks = append(stacks, string(buf[:runtime.Stack(buf, false)]))
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})
	lim := New(Config{Max: 4})
	defer lim.Close()
	wrapped := lim.Wrap(h, FHIR)
	for range 50 {
		if rec := get(wrapped, "/fhir/2.16.840.1/Patient/1"); rec.Code != http.StatusNoContent {
			t.Fatalf("status %d", rec.Code)
		}
	}
	if made, idle := lim.workers.count(); made != 1 || idle != 1 {
		t.Errorf("50 sequential requests made %d workers (%d idle), want 1", made, idle)
	}
	for _, s := range stacks {
		if !strings.Contains(s, "inflight.(*worker).run") || strings.Contains(s, "testing.tRunner") {
			t.Fatalf("handler did not run on a worker:\n%s", s)
		}
	}
	// Uncapped routes are served in place.
	stacks = nil
	get(wrapped, "/healthz")
	if len(stacks) != 1 || !strings.Contains(stacks[0], "testing.tRunner") {
		t.Errorf("an uncapped request left the caller's goroutine:\n%s", stacks)
	}
}

// Max requests at once make Max workers, and the next wave reuses them.
func TestWorkersBoundedByMax(t *testing.T) {
	const max = 5
	lim := New(Config{Max: max, Queue: 100, Wait: time.Minute})
	defer lim.Close()
	for wave := range 3 {
		g := newGate()
		h := lim.Wrap(g, FHIR)
		var wg sync.WaitGroup
		for range 3 * max {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if rec := get(h, "/fhir/2.16.840.1/Patient/1"); rec.Code != http.StatusOK {
					t.Errorf("status %d", rec.Code)
				}
			}()
		}
		for range max {
			<-g.entered
		}
		close(g.open)
		wg.Wait()
		if made, idle := lim.workers.count(); made != max || idle != max {
			t.Fatalf("wave %d: %d workers made, %d idle; want %d", wave, made, idle, max)
		}
	}
}

// A handler's panic is raised again on the caller's goroutine, where
// net/http recovers it: http.ErrAbortHandler as itself (net/http compares
// it by identity and then closes the connection quietly), anything else
// as a *Panic that carries the value and the worker's stack.
func TestPanicsReachTheCaller(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name  string
		value any
		check func(t *testing.T, got any)
	}{
		{"abort handler", http.ErrAbortHandler, func(t *testing.T, got any) {
			if got != http.ErrAbortHandler {
				t.Errorf("recovered %#v, want http.ErrAbortHandler itself", got)
			}
		}},
		{"error", boom, func(t *testing.T, got any) {
			p, ok := got.(*Panic)
			if !ok || !errors.Is(p, boom) || !strings.Contains(string(p.Stack), "inflight.serveTask") {
				t.Errorf("recovered %#v, want a *Panic wrapping boom with the worker's stack", got)
			}
		}},
		{"string", "bad", func(t *testing.T, got any) {
			p, ok := got.(*Panic)
			if !ok || p.Value != "bad" || !strings.Contains(p.Error(), "bad") {
				t.Errorf("recovered %#v, want a *Panic of \"bad\"", got)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lim := New(Config{Max: 1})
			defer lim.Close()
			h := lim.Wrap(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic(tt.value) }), FHIR)
			got := func() (v any) {
				defer func() { v = recover() }()
				get(h, "/fhir/2.16.840.1/Patient/1")
				return nil
			}()
			tt.check(t, got)
			// The turn and the worker are free again.
			if lim.InFlight() != 0 {
				t.Errorf("in flight %d after the panic", lim.InFlight())
			}
			if made, idle := lim.workers.count(); made != 1 || idle != 1 {
				t.Errorf("%d workers made, %d idle after the panic; want 1, 1", made, idle)
			}
		})
	}
}

// Close ends the idle workers; requests afterwards are still served, in
// place.
func TestCloseEndsWorkers(t *testing.T) {
	lim := New(Config{Max: 8, Queue: 8, Wait: time.Minute})
	g := newGate()
	h := lim.Wrap(g, FHIR)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() { defer wg.Done(); get(h, "/fhir/2.16.840.1/Patient/1") }()
	}
	for range 8 {
		<-g.entered
	}
	before := runtime.NumGoroutine()
	close(g.open)
	wg.Wait()
	lim.Close()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before-8-8 { // the 8 callers and the 8 workers
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines, want at most %d after Close", runtime.NumGoroutine(), before-16)
		}
		time.Sleep(time.Millisecond)
	}
	if rec := get(lim.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusAccepted) }), FHIR),
		"/fhir/2.16.840.1/Patient/1"); rec.Code != http.StatusAccepted {
		t.Errorf("after Close: status %d", rec.Code)
	}
}

// Handing a request to a worker allocates nothing.
func TestHandoffAllocatesNothing(t *testing.T) {
	var p workers
	defer p.close()
	h := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	w, r := httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/fhir/x", nil)
	p.serve(h, w, r) // start the worker
	if n := testing.AllocsPerRun(1000, func() { p.serve(h, w, r) }); n != 0 {
		t.Errorf("%v allocations per handoff, want 0", n)
	}
}

// An admitted request costs no allocation of the limiter's own: taking
// and giving back a turn and the handoff to a worker.
func TestAdmissionAllocatesNothing(t *testing.T) {
	lim := New(Config{Max: 4, Queue: 4, Wait: time.Second})
	defer lim.Close()
	h := lim.Wrap(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}), FHIR)
	w, r := httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/fhir/2.16.840.1/Patient/1", nil)
	h.ServeHTTP(w, r) // start a worker
	if n := testing.AllocsPerRun(1000, func() { h.ServeHTTP(w, r) }); n != 0 {
		t.Errorf("%v allocations per admitted request, want 0", n)
	}
	if lim.InFlight() != 0 {
		t.Errorf("%d requests in flight after they all ended", lim.InFlight())
	}
}

// BenchmarkHandoff is the cost of running a request on a worker against
// running it in place.
func BenchmarkHandoff(b *testing.B) {
	h := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	w, r := httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/fhir/x", nil)
	b.Run("in-place", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			h.ServeHTTP(w, r)
		}
	})
	b.Run("worker", func(b *testing.B) {
		var p workers
		defer p.close()
		b.ReportAllocs()
		for b.Loop() {
			p.serve(h, w, r)
		}
	})
}

// A handler that calls runtime.Goexit ends its caller's goroutine too, as
// it would have in place, instead of leaving the caller waiting for ever;
// the lost worker is replaced by the next request.
func TestGoexitEndsTheCaller(t *testing.T) {
	lim := New(Config{Max: 1})
	defer lim.Close()
	exit := true
	h := lim.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if exit {
			runtime.Goexit()
		}
		w.WriteHeader(http.StatusNoContent)
	}), FHIR)
	returned, ended := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(ended)
		get(h, "/fhir/2.16.840.1/Patient/1")
		close(returned)
	}()
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
		t.Fatal("the caller still waits after the handler's Goexit")
	}
	select {
	case <-returned:
		t.Fatal("the caller returned normally after the handler's Goexit")
	default:
	}
	if made, idle := lim.workers.count(); made != 0 || idle != 0 {
		t.Errorf("after Goexit: %d workers made, %d idle; want 0, 0", made, idle)
	}
	if lim.InFlight() != 0 {
		t.Errorf("in flight %d after Goexit", lim.InFlight())
	}
	exit = false
	if rec := get(h, "/fhir/2.16.840.1/Patient/1"); rec.Code != http.StatusNoContent {
		t.Errorf("next request: status %d", rec.Code)
	}
}
