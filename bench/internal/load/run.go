package load

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"time"
)

// Bounds on a run.
const (
	MaxConnections = 10000
	MaxDuration    = 10 * time.Minute
	MaxSamples     = 50_000_000
	// DefaultTimeout bounds one request when Config.Timeout is zero.
	DefaultTimeout = 10 * time.Second
)

// Config describes a fixed-duration closed-loop run.
type Config struct {
	// URL is the loopback http URL to GET.
	URL string
	// URLs, when set, are GET instead of URL: every one equally often,
	// in an order shuffled once per run, each connection starting at its
	// own place in it. They must all be on the same host and port.
	URLs []string
	// Header holds extra request header fields.
	Header http.Header
	// Connections is the number of concurrent connections.
	Connections int
	// Duration is how long requests are sent.
	Duration time.Duration
	// Timeout bounds one request; DefaultTimeout when zero.
	Timeout time.Duration
	// Rate, when positive, is the total requests per second to send, on
	// a fixed schedule spread evenly over the connections (as wrk2
	// does). Latency then counts from when a request was due, not from
	// when a busy connection got round to sending it, so a stall shows in
	// the percentiles instead of silently lowering the rate (coordinated
	// omission). Zero sends as fast as the answers come back.
	Rate float64
}

// Latency summarises a latency distribution. Percentiles are nearest-rank
// over every sample kept.
type Latency struct {
	P50, P75, P90, P99, P999, Max, Mean time.Duration
}

// Result is what a run measured.
type Result struct {
	Connections int
	// Duration is the measured wall time of the run.
	Duration time.Duration
	// Requests counts complete responses, whatever their status.
	Requests int64
	// Status counts responses by status code.
	Status map[int]int64
	// Errors counts requests that got no complete response.
	Errors int64
	// FirstError describes one of them.
	FirstError string
	// Latency is over the complete responses.
	Latency Latency
}

// RPS is complete responses per second.
func (r *Result) RPS() float64 {
	if r.Duration <= 0 {
		return 0
	}
	return float64(r.Requests) / r.Duration.Seconds()
}

// Non2xx counts responses whose status is not 2xx.
func (r *Result) Non2xx() int64 {
	var n int64
	for code, c := range r.Status {
		if code < 200 || code > 299 {
			n += c
		}
	}
	return n
}

type worker struct {
	samples  []time.Duration
	status   map[int]int64
	errors   int64
	firstErr error
}

// Run sends requests on cfg.Connections connections for cfg.Duration, or
// until ctx ends.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	switch {
	case cfg.Connections < 1 || cfg.Connections > MaxConnections:
		return nil, fmt.Errorf("load: connections must be 1..%d", MaxConnections)
	case cfg.Duration <= 0 || cfg.Duration > MaxDuration:
		return nil, fmt.Errorf("load: duration must be in (0, %s]", MaxDuration)
	case cfg.Rate < 0 || cfg.Rate > 1e7:
		return nil, fmt.Errorf("load: rate must be 0 (unlimited) or up to 1e7 per second")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	reqs, err := requests(cfg)
	if err != nil {
		return nil, err
	}
	perWorker := MaxSamples / cfg.Connections
	workers := make([]*worker, cfg.Connections)
	var wg sync.WaitGroup
	start := time.Now()
	end := start.Add(cfg.Duration)
	// With a rate, connection i sends at start + i/rate + k*period.
	var period time.Duration
	if cfg.Rate > 0 {
		period = time.Duration(float64(cfg.Connections) / cfg.Rate * float64(time.Second))
	}
	for i := range workers {
		w := &worker{status: make(map[int]int64), samples: make([]time.Duration, 0, min(perWorker, 1<<16))}
		workers[i] = w
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := NewConn(reqs[0])
			defer c.Close()
			// Connection i walks the shuffled requests from its own
			// place, so that together they send each equally often.
			next := i * len(reqs) / cfg.Connections
			var due time.Time
			if period > 0 {
				due = start.Add(time.Duration(float64(i) / cfg.Rate * float64(time.Second)))
			}
			for ctx.Err() == nil {
				t0 := time.Now()
				if period > 0 {
					if !due.Before(end) {
						return
					}
					if wait := due.Sub(t0); wait > 0 {
						select {
						case <-time.After(wait):
						case <-ctx.Done():
							return
						}
					}
					t0, due = due, due.Add(period)
				} else if !t0.Before(end) {
					return
				}
				deadline := time.Now().Add(cfg.Timeout)
				code, err := c.Send(reqs[next], deadline)
				next = (next + 1) % len(reqs)
				if err != nil {
					// A request cut short by the end of the run is not an error.
					if time.Now().Before(end) {
						w.errors++
						if w.firstErr == nil {
							w.firstErr = err
						}
					}
					if ctx.Err() == nil && time.Now().Before(end) {
						// Do not spin on a refused connection.
						time.Sleep(time.Millisecond)
					}
					continue
				}
				if len(w.samples) < perWorker {
					w.samples = append(w.samples, time.Since(t0))
				}
				w.status[code]++
			}
		}()
	}
	wg.Wait()
	// Responses to requests sent before the end are counted, so the
	// rate is over the time until the last of them arrived (as wrk does).
	elapsed := time.Since(start)
	res := &Result{Connections: cfg.Connections, Duration: elapsed, Status: make(map[int]int64)}
	var all []time.Duration
	for _, w := range workers {
		for code, n := range w.status {
			res.Status[code] += n
			res.Requests += n
		}
		res.Errors += w.errors
		if w.firstErr != nil && res.FirstError == "" {
			res.FirstError = w.firstErr.Error()
		}
		all = append(all, w.samples...)
	}
	res.Latency = Summarize(all)
	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("load: run interrupted: %w", err)
	}
	if res.Requests == 0 && res.Errors > 0 {
		return res, errors.New("load: no request succeeded: " + res.FirstError)
	}
	return res, nil
}

// requests prepares cfg's URL, or its URLs in a shuffled order.
func requests(cfg Config) ([]*Request, error) {
	if len(cfg.URLs) == 0 {
		req, err := NewRequest(cfg.URL, cfg.Header)
		if err != nil {
			return nil, err
		}
		return []*Request{req}, nil
	}
	reqs := make([]*Request, len(cfg.URLs))
	for i, u := range cfg.URLs {
		req, err := NewRequest(u, cfg.Header)
		if err != nil {
			return nil, err
		}
		if i > 0 && req.addr != reqs[0].addr {
			return nil, fmt.Errorf("load: %s is not on %s, where the other URLs are", u, reqs[0].addr)
		}
		reqs[i] = req
	}
	rand.Shuffle(len(reqs), func(i, j int) { reqs[i], reqs[j] = reqs[j], reqs[i] })
	return reqs, nil
}

// Summarize sorts samples in place and returns their distribution.
func Summarize(samples []time.Duration) Latency {
	if len(samples) == 0 {
		return Latency{}
	}
	slices.Sort(samples)
	var sum time.Duration
	for _, s := range samples {
		sum += s
	}
	return Latency{
		P50:  Percentile(samples, 50),
		P75:  Percentile(samples, 75),
		P90:  Percentile(samples, 90),
		P99:  Percentile(samples, 99),
		P999: Percentile(samples, 99.9),
		Max:  samples[len(samples)-1],
		Mean: sum / time.Duration(len(samples)),
	}
}

// Percentile returns the nearest-rank p-th percentile (0 < p <= 100) of
// sorted samples: the smallest sample that at least p% of the samples do
// not exceed.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	// Integer arithmetic in thousandths of a percent avoids float rounding
	// pushing an exact rank to the next sample.
	pm := int64(p*1000 + 0.5)
	rank := (pm*int64(n) + 100_000 - 1) / 100_000 // ceil(p/100 * n)
	if rank < 1 {
		rank = 1
	}
	if rank > int64(n) {
		rank = int64(n)
	}
	return sorted[rank-1]
}
