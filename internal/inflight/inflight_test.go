package inflight

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/cqgate/cqgate/internal/metrics"
	"github.com/cqgate/cqgate/internal/outcome"
)

// gate is a handler that holds every request until opened, and records
// how many it held at most at once.
type gate struct {
	open    chan struct{}
	now     atomic.Int64
	peak    atomic.Int64
	served  atomic.Int64
	entered chan struct{}
}

func newGate() *gate {
	return &gate{open: make(chan struct{}), entered: make(chan struct{}, 1024)}
}

func (g *gate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := g.now.Add(1)
	for {
		p := g.peak.Load()
		if n <= p || g.peak.CompareAndSwap(p, n) {
			break
		}
	}
	g.entered <- struct{}{}
	<-g.open
	g.now.Add(-1)
	g.served.Add(1)
	w.WriteHeader(http.StatusOK)
}

func get(h http.Handler, path string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec
}

// checkRefusal asserts rec is the 503 OperationOutcome with Retry-After.
func checkRefusal(t *testing.T, rec *httptest.ResponseRecorder, wantRetry, wantText string) {
	t.Helper()
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503; body %s", rec.Code, rec.Body)
	}
	if got := rec.Header().Get("Retry-After"); got != wantRetry {
		t.Errorf("Retry-After %q, want %q", got, wantRetry)
	}
	if ct := rec.Header().Get("Content-Type"); ct != outcome.ContentType {
		t.Errorf("Content-Type %q", ct)
	}
	var oo outcome.OperationOutcome
	if err := json.Unmarshal(rec.Body.Bytes(), &oo); err != nil {
		t.Fatalf("body is not an OperationOutcome: %v: %s", err, rec.Body)
	}
	if oo.ResourceType != "OperationOutcome" || len(oo.Issue) != 1 || oo.Issue[0].Code != outcome.Transient {
		t.Fatalf("outcome %+v", oo)
	}
	if !strings.Contains(oo.Issue[0].Diagnostics, wantText) {
		t.Errorf("diagnostics %q, want it to mention %q", oo.Issue[0].Diagnostics, wantText)
	}
}

// Under many concurrent requests no more than Max are served at once,
// exactly Max+Queue get a turn, and every other one is answered 503.
func TestCapHoldsUnderConcurrency(t *testing.T) {
	tests := []struct {
		name       string
		max, queue int
		requests   int
	}{
		{name: "no queue", max: 4, queue: 0, requests: 64},
		{name: "queue", max: 3, queue: 5, requests: 64},
		{name: "queue holds the whole burst", max: 8, queue: 100, requests: 64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newGate()
			lim := New(Config{Max: tt.max, Queue: tt.queue, Wait: time.Minute})
			h := lim.Wrap(g, FHIR)
			recs := make([]*httptest.ResponseRecorder, tt.requests)
			var wg sync.WaitGroup
			for i := range recs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					recs[i] = get(h, "/fhir/2.16.840.1/Patient/1")
				}()
			}
			admitted := min(tt.requests, tt.max+tt.queue)
			// Wait until every request is either being served, queued
			// or refused, then let them all go.
			deadline := time.Now().Add(10 * time.Second)
			for lim.InFlight()+lim.Queued()+int(lim.Refused()) < tt.requests || lim.InFlight() < min(tt.max, tt.requests) {
				if time.Now().After(deadline) {
					t.Fatalf("in flight %d, queued %d, refused %d", lim.InFlight(), lim.Queued(), lim.Refused())
				}
				time.Sleep(time.Millisecond)
			}
			if got := lim.InFlight(); got != tt.max {
				t.Errorf("in flight %d, want %d", got, tt.max)
			}
			close(g.open)
			wg.Wait()
			if p := g.peak.Load(); p > int64(tt.max) {
				t.Errorf("%d requests served at once, cap %d", p, tt.max)
			}
			var ok, refused int
			for _, rec := range recs {
				switch rec.Code {
				case http.StatusOK:
					ok++
				default:
					checkRefusal(t, rec, "1", "server.max_inflight")
					refused++
				}
			}
			if ok != admitted || refused != tt.requests-admitted || int(lim.Refused()) != refused {
				t.Errorf("%d served, %d refused (limiter counted %d), want %d served", ok, refused, lim.Refused(), admitted)
			}
			if lim.InFlight() != 0 || lim.Queued() != 0 {
				t.Errorf("after the burst: in flight %d, queued %d", lim.InFlight(), lim.Queued())
			}
		})
	}
}

// A queued request that waits longer than Wait is refused with a
// message naming the wait and the configured Retry-After.
func TestWaitExpires(t *testing.T) {
	g := newGate()
	defer close(g.open)
	lim := New(Config{Max: 1, Queue: 1, Wait: 20 * time.Millisecond, RetryAfter: 2500 * time.Millisecond})
	h := lim.Wrap(g, FHIR)
	go get(h, "/fhir/1.2.3/Patient")
	<-g.entered
	start := time.Now()
	rec := get(h, "/fhir/1.2.3/Patient")
	if d := time.Since(start); d < 20*time.Millisecond {
		t.Errorf("refused after %s, before the 20ms wait", d)
	}
	checkRefusal(t, rec, "3", "waited 20ms")
	if lim.Queued() != 0 {
		t.Errorf("queued %d after the wait expired", lim.Queued())
	}
}

// A queued request whose caller goes away leaves the queue at once, and
// nothing is written for it.
func TestCallerGoneWhileQueued(t *testing.T) {
	g := newGate()
	defer close(g.open)
	lim := New(Config{Max: 1, Queue: 4, Wait: time.Minute})
	h := lim.Wrap(g, FHIR)
	go get(h, "/fhir/1.2.3/Patient")
	<-g.entered
	ctx, cancel := context.WithCancel(context.Background())
	rec := httptest.NewRecorder()
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/fhir/1.2.3/Patient", nil).WithContext(ctx))
	}()
	for lim.Queued() != 1 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the queued request did not leave when its caller went away")
	}
	if lim.Queued() != 0 || rec.Body.Len() != 0 || rec.Code != http.StatusOK /* recorder default: nothing written */ {
		t.Errorf("queued %d, response %d %q", lim.Queued(), rec.Code, rec.Body)
	}
}

// Health, readiness, metrics and anything outside /fhir/ pass while
// every FHIR turn is taken and the queue is full.
func TestOnlyFHIRRoutesAreCapped(t *testing.T) {
	g := newGate()
	lim := New(Config{Max: 1, Queue: 0, Wait: time.Second})
	mux := http.NewServeMux()
	mux.Handle("/fhir/", g)
	for _, p := range []string{"/healthz", "/readyz", "/metrics", "/fhirfoo", "/directory/Organization"} {
		mux.HandleFunc(p, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	}
	h := lim.Wrap(mux, FHIR)
	go get(h, "/fhir/1.2.3/Patient/1")
	<-g.entered
	for _, p := range []string{"/healthz", "/readyz", "/metrics", "/fhirfoo", "/directory/Organization"} {
		if rec := get(h, p); rec.Code != http.StatusNoContent {
			t.Errorf("%s: %d, want it served while FHIR is at its cap", p, rec.Code)
		}
	}
	for _, p := range []string{"/fhir/1.2.3/Patient/2", "/fhir", "/fhir/"} {
		checkRefusal(t, get(h, p), "1", "server.max_inflight 1")
	}
	close(g.open)
}

func TestNoCap(t *testing.T) {
	mux := http.NewServeMux()
	lim := New(Config{})
	if got, ok := lim.Wrap(mux, FHIR).(*http.ServeMux); !ok || got != mux {
		t.Fatal("Wrap with Max 0 did not return the handler itself")
	}
	for range 1000 {
		if _, err := lim.Acquire(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}

// Releasing twice frees one turn only.
func TestReleaseOnce(t *testing.T) {
	lim := New(Config{Max: 1})
	release, err := lim.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	release()
	release()
	r1, err := lim.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer r1()
	if _, err := lim.Acquire(context.Background()); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("second turn: %v, want ErrQueueFull (a double release freed two turns)", err)
	}
}

// A burst of refusals logs one warning per 10 s, not one per request,
// and the warning carries counts only.
func TestRefusalsLogRarely(t *testing.T) {
	logger, hook := logtest.NewNullLogger()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	lim := New(Config{Max: 1, Log: logger, Now: func() time.Time { return now }})
	release, err := lim.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	h := lim.Wrap(http.NotFoundHandler(), FHIR)
	for range 50 {
		get(h, "/fhir/1.2.3/Patient")
	}
	now = now.Add(11 * time.Second)
	get(h, "/fhir/1.2.3/Patient")
	if n := len(hook.AllEntries()); n != 2 {
		t.Fatalf("%d log entries for 51 refusals over 11 s, want 2", n)
	}
	e := hook.LastEntry()
	if e.Level != logrus.WarnLevel || e.Data["refused_total"] != int64(51) || e.Data["max_inflight"] != 1 {
		t.Errorf("entry %v %v", e.Level, e.Data)
	}
}

// rejections counts InflightRejected by reason.
type rejections struct {
	mu sync.Mutex
	n  map[metrics.RejectReason]int
}

func (r *rejections) InflightRejected(reason metrics.RejectReason) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.n == nil {
		r.n = map[metrics.RejectReason]int{}
	}
	r.n[reason]++
}

// Every refusal answered 503 is counted by its reason, a burst of them
// too (while the log has one line); a caller gone while queued is not
// answered and not counted.
func TestRefusalsAreCounted(t *testing.T) {
	for _, tc := range []struct {
		name    string
		queue   int
		wait    time.Duration
		refuse  int
		gone    bool
		want    map[metrics.RejectReason]int
		logHas1 bool
	}{
		{name: "queue full, a burst", refuse: 50, want: map[metrics.RejectReason]int{metrics.RejectQueueFull: 50}, logHas1: true},
		{name: "wait expired", queue: 1, wait: 5 * time.Millisecond, refuse: 2, want: map[metrics.RejectReason]int{metrics.RejectWaitExpired: 2}},
		{name: "caller gone while queued", queue: 1, wait: time.Minute, gone: true, want: map[metrics.RejectReason]int{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logger, hook := logtest.NewNullLogger()
			obs := &rejections{n: map[metrics.RejectReason]int{}}
			lim := New(Config{Max: 1, Queue: tc.queue, Wait: tc.wait, Log: logger, Observer: obs})
			release, err := lim.Acquire(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			defer release()
			h := lim.Wrap(http.NotFoundHandler(), FHIR)
			for range tc.refuse {
				checkRefusal(t, get(h, "/fhir/1.2.3/Patient"), "1", "server.max_inflight")
			}
			if tc.gone {
				ctx, cancel := context.WithCancel(context.Background())
				go func() {
					for lim.Queued() != 1 {
						time.Sleep(time.Millisecond)
					}
					cancel()
				}()
				h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/fhir/1.2.3/Patient", nil).WithContext(ctx))
			}
			obs.mu.Lock()
			defer obs.mu.Unlock()
			if len(obs.n) != len(tc.want) {
				t.Errorf("counted %v, want %v", obs.n, tc.want)
			}
			for reason, n := range tc.want {
				if obs.n[reason] != n {
					t.Errorf("counted %v, want %v", obs.n, tc.want)
				}
			}
			if tc.logHas1 && len(hook.AllEntries()) != 1 {
				t.Errorf("%d log lines for a burst of %d refusals, want 1", len(hook.AllEntries()), tc.refuse)
			}
		})
	}
}
