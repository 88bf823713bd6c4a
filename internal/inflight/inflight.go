package inflight

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sync/semaphore"

	"github.com/cqgate/cqgate/internal/metrics"
	"github.com/cqgate/cqgate/internal/outcome"
)

// DefaultRetryAfter is the Retry-After a refusal carries when
// Config.RetryAfter is zero.
const DefaultRetryAfter = time.Second

// logEvery bounds how often refusals are logged: a burst that is refused
// must not turn into a burst of log lines.
const logEvery = 10 * time.Second

// Config says how many requests a Limiter admits.
type Config struct {
	// Max is how many requests are served at once; 0 caps nothing.
	Max int
	// Queue is how many more may wait for a turn; 0 refuses at once
	// beyond Max.
	Queue int
	// Wait is the longest a request waits in the queue before it is
	// refused. With a Queue it must be more than 0.
	Wait time.Duration
	// RetryAfter is what a refusal asks the caller to wait; 0 means
	// DefaultRetryAfter.
	RetryAfter time.Duration
	// Log receives at most one warning per 10 s while requests are
	// refused (with the counts so far, so a burst of refusals is one
	// line, not one per request); nil logs nothing.
	Log logrus.FieldLogger
	// Now is the clock for the log's rate; nil means time.Now.
	Now func() time.Time
	// Observer counts every refusal answered 503; nil counts none.
	Observer Observer
}

// Observer counts refused requests; *metrics.Metrics is one.
type Observer interface {
	InflightRejected(metrics.RejectReason)
}

// Reasons a request is refused.
var (
	// ErrQueueFull: Max requests were in flight and Queue waiting.
	ErrQueueFull = errors.New("inflight: too many requests in flight and waiting")
	// ErrWaitExpired: the request waited Config.Wait without a turn.
	ErrWaitExpired = errors.New("inflight: no turn within the queue's wait")
)

// Limiter admits a bounded number of requests at a time. It is safe for
// concurrent use.
type Limiter struct {
	cfg      Config
	sem      *semaphore.Weighted
	inflight atomic.Int64
	queued   atomic.Int64
	refused  atomic.Int64
	lastLog  atomic.Int64 // unix nanoseconds of the last refusal logged
}

// New returns a Limiter for cfg.
func New(cfg Config) *Limiter {
	if cfg.RetryAfter <= 0 {
		cfg.RetryAfter = DefaultRetryAfter
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	l := &Limiter{cfg: cfg}
	if cfg.Max > 0 {
		l.sem = semaphore.NewWeighted(int64(cfg.Max))
	}
	return l
}

// Acquire takes a turn, waiting in the queue if every turn is taken. On
// success the caller must call release exactly once when done. The
// error is ErrQueueFull, ErrWaitExpired or ctx's error.
func (l *Limiter) Acquire(ctx context.Context) (release func(), err error) {
	if l.sem == nil {
		return func() {}, nil
	}
	if err := l.acquire(ctx); err != nil {
		return nil, err
	}
	var once atomic.Bool
	return func() {
		if once.CompareAndSwap(false, true) {
			l.release()
		}
	}, nil
}

// acquire takes a turn, waiting as Acquire does; release gives it back.
// Wrap uses them directly: Acquire's release function costs two
// allocations on every request.
func (l *Limiter) acquire(ctx context.Context) error {
	if !l.sem.TryAcquire(1) {
		if err := l.wait(ctx); err != nil {
			l.refused.Add(1)
			return err
		}
	}
	l.inflight.Add(1)
	return nil
}

func (l *Limiter) release() {
	l.inflight.Add(-1)
	l.sem.Release(1)
}

func (l *Limiter) wait(ctx context.Context) error {
	if l.queued.Add(1) > int64(l.cfg.Queue) {
		l.queued.Add(-1)
		return ErrQueueFull
	}
	defer l.queued.Add(-1)
	wctx, cancel := context.WithTimeout(ctx, l.cfg.Wait)
	defer cancel()
	if err := l.sem.Acquire(wctx, 1); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return ErrWaitExpired
	}
	return nil
}

// InFlight is how many requests hold a turn now.
func (l *Limiter) InFlight() int { return int(l.inflight.Load()) }

// Queued is how many requests wait for a turn now.
func (l *Limiter) Queued() int { return int(l.queued.Load()) }

// Refused is how many requests were refused so far.
func (l *Limiter) Refused() int64 { return l.refused.Load() }

// Wrap returns h with the requests capped selects admitted through l;
// the others go straight to h. With Max 0 it returns h itself.
func (l *Limiter) Wrap(h http.Handler, capped func(*http.Request) bool) http.Handler {
	if l.sem == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !capped(r) {
			h.ServeHTTP(w, r)
			return
		}
		if err := l.acquire(r.Context()); err != nil {
			l.refuse(w, r, err)
			return
		}
		defer l.release()
		h.ServeHTTP(w, r)
	})
}

// refuse answers a request that got no turn.
func (l *Limiter) refuse(w http.ResponseWriter, r *http.Request, err error) {
	if r.Context().Err() != nil {
		return // the caller is gone; there is no one to answer
	}
	l.logRefusal(err)
	var msg string
	reason := metrics.RejectWaitExpired
	switch {
	case errors.Is(err, ErrQueueFull):
		reason = metrics.RejectQueueFull
		msg = fmt.Sprintf("cqgate is serving as many requests as it may (server.max_inflight %d, with %d more waiting); try again shortly", l.cfg.Max, l.cfg.Queue)
	default:
		msg = fmt.Sprintf("cqgate is serving as many requests as it may (server.max_inflight %d) and this request waited %s without a turn; try again shortly", l.cfg.Max, l.cfg.Wait)
	}
	if l.cfg.Observer != nil {
		l.cfg.Observer.InflightRejected(reason)
	}
	secs := int((l.cfg.RetryAfter + time.Second - 1) / time.Second)
	w.Header().Set("Retry-After", strconv.Itoa(max(secs, 1)))
	outcome.Write(w, http.StatusServiceUnavailable, outcome.New(outcome.Transient, msg))
}

func (l *Limiter) logRefusal(err error) {
	if l.cfg.Log == nil {
		return
	}
	now := l.cfg.Now().UnixNano()
	last := l.lastLog.Load()
	if last != 0 && now-last < int64(logEvery) {
		return
	}
	if !l.lastLog.CompareAndSwap(last, now) {
		return
	}
	l.cfg.Log.WithFields(logrus.Fields{
		"max_inflight": l.cfg.Max, "in_flight": l.InFlight(), "queued": l.Queued(), "refused_total": l.Refused(),
		"reason": err.Error(),
	}).Warn("inflight: refusing FHIR requests with 503 (server.max_inflight reached)")
}

// FHIR selects cqgate's FHIR routes, /fhir/{oid}/...; health, readiness,
// metrics and directory search are not selected.
func FHIR(r *http.Request) bool {
	p := r.URL.Path
	return p == "/fhir" || strings.HasPrefix(p, "/fhir/")
}
