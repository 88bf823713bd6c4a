package load

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"
)

// BurstConfig describes a burst: N connections opened first, then one
// request on each, all released at the same instant.
type BurstConfig struct {
	URL    string
	Header http.Header
	N      int
	// Timeout bounds the whole burst after the release; DefaultTimeout
	// when zero.
	Timeout time.Duration
}

// BurstResult is what a burst measured. Latencies count from the
// release, so First is the time to the first complete response.
type BurstResult struct {
	N          int
	Status     map[int]int64
	Errors     int64
	FirstError string
	// Connect is how long opening the N connections took.
	Connect             time.Duration
	First, Median, Last time.Duration
}

// Burst runs a burst; it returns an error only if the burst could not be
// set up (connections refused); failed requests are counted in Errors.
func Burst(ctx context.Context, cfg BurstConfig) (*BurstResult, error) {
	if cfg.N < 1 || cfg.N > MaxConnections {
		return nil, fmt.Errorf("load: burst size must be 1..%d", MaxConnections)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	req, err := NewRequest(cfg.URL, cfg.Header)
	if err != nil {
		return nil, err
	}
	conns := make([]*Conn, cfg.N)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	t0 := time.Now()
	dialDeadline := t0.Add(cfg.Timeout)
	sem := make(chan struct{}, 64) // a bounded number of dials at once
	var mu sync.Mutex
	var dialErr error
	var wg sync.WaitGroup
	for i := range conns {
		conns[i] = NewConn(req)
		wg.Add(1)
		sem <- struct{}{}
		go func(c *Conn) {
			defer wg.Done()
			defer func() { <-sem }()
			if err := c.Dial(dialDeadline); err != nil {
				mu.Lock()
				dialErr = err
				mu.Unlock()
			}
		}(conns[i])
	}
	wg.Wait()
	if dialErr != nil {
		return nil, dialErr
	}
	res := &BurstResult{N: cfg.N, Status: make(map[int]int64), Connect: time.Since(t0)}
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	lat := make([]time.Duration, cfg.N)
	codes := make([]int, cfg.N)
	errs := make([]error, cfg.N)
	release := make(chan struct{})
	var ready, done sync.WaitGroup
	var start time.Time
	for i, c := range conns {
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			ready.Done()
			<-release
			codes[i], errs[i] = c.Do(start.Add(cfg.Timeout))
			lat[i] = time.Since(start)
		}()
	}
	ready.Wait()
	start = time.Now()
	close(release)
	done.Wait()

	ok := lat[:0:0]
	for i := range conns {
		if errs[i] != nil {
			res.Errors++
			if res.FirstError == "" {
				res.FirstError = errs[i].Error()
			}
			continue
		}
		res.Status[codes[i]]++
		ok = append(ok, lat[i])
	}
	if len(ok) > 0 {
		slices.Sort(ok)
		res.First, res.Median, res.Last = ok[0], Percentile(ok, 50), ok[len(ok)-1]
	}
	return res, nil
}
