package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/cqgate/cqgate/bench/internal/proc"
)

// coldProbe watches cqgate through a cold-start burst, to show where the
// memory goes at the peak: it reads VmRSS every few milliseconds and, at
// each new high (in steps of stepBytes), saves cqgate's heap profile,
// goroutine profile and Go runtime metrics from its admin listener
// (admin.pprof) into dir. The samples cost cqgate some CPU during the
// burst; the probe is for finding out, not for the reported figures.
type coldProbe struct {
	dir   string
	pid   int
	admin string // base URL of cqgate's admin listener
	hc    *http.Client

	mu       sync.Mutex
	before   int64 // VmRSS when the burst started
	peak     int64
	peakAt   time.Duration
	timeline []string
}

const (
	probeEvery = 2 * time.Millisecond
	stepBytes  = 2 << 20
)

func newColdProbe(dir string, pid int, admin string) (*coldProbe, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	return &coldProbe{dir: dir, pid: pid, admin: admin, hc: &http.Client{Timeout: 5 * time.Second}}, nil
}

// run samples until ctx ends.
func (p *coldProbe) run(ctx context.Context) {
	t0 := time.Now()
	if s, err := proc.Read(p.pid); err == nil {
		p.before = s.RSS
	}
	next := p.before + stepBytes
	busy := make(chan struct{}, 1) // at most one snapshot at a time
	var wg sync.WaitGroup
	defer wg.Wait()
	tick := time.NewTicker(probeEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		s, err := proc.Read(p.pid)
		if err != nil {
			return
		}
		at := time.Since(t0)
		p.mu.Lock()
		if s.RSS > p.peak {
			p.peak, p.peakAt = s.RSS, at
		}
		p.timeline = append(p.timeline, fmt.Sprintf("%d\t%d", at.Milliseconds(), s.RSS>>10))
		p.mu.Unlock()
		if s.RSS < next {
			continue
		}
		select {
		case busy <- struct{}{}:
		default:
			continue
		}
		next = s.RSS + stepBytes
		wg.Add(1)
		go func(rss int64, at time.Duration) {
			defer wg.Done()
			defer func() { <-busy }()
			p.snapshot(ctx, fmt.Sprintf("%04dms-%dk", at.Milliseconds(), rss>>10))
		}(s.RSS, at)
	}
}

func (p *coldProbe) snapshot(ctx context.Context, tag string) {
	// Resident memory by kind: anonymous (heap, stacks) against file
	// pages (the executable's text and data).
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", p.pid)); err == nil {
		_ = os.WriteFile(filepath.Join(p.dir, tag+"-smaps"), b, 0o644)
	}
	for _, f := range []struct{ path, name string }{
		{"/metrics", "metrics"},
		{"/debug/pprof/heap", "heap"},
		{"/debug/pprof/goroutine", "goroutine"},
	} {
		p.fetch(ctx, f.path, filepath.Join(p.dir, tag+"-"+f.name))
	}
}

func (p *coldProbe) fetch(ctx context.Context, path, file string) {
	req, err := http.NewRequestWithContext(context.WithoutCancel(ctx), http.MethodGet, p.admin+path, nil)
	if err != nil {
		return
	}
	resp, err := p.hc.Do(req)
	if err != nil {
		return
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return
	}
	if strings.HasSuffix(file, "-metrics") {
		b = keepRuntimeMetrics(b)
	}
	_ = os.WriteFile(file, b, 0o644)
}

// keepRuntimeMetrics keeps the Go runtime's lines of a Prometheus page.
func keepRuntimeMetrics(b []byte) []byte {
	var out strings.Builder
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "go_") || strings.HasPrefix(l, "process_") {
			out.WriteString(l + "\n")
		}
	}
	return []byte(out.String())
}

// write saves the RSS timeline (ms since the burst began, KiB) and a
// summary.
func (p *coldProbe) write() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	tl := "ms\trss_kib\n" + strings.Join(p.timeline, "\n") + "\n"
	if err := os.WriteFile(filepath.Join(p.dir, "rss.tsv"), []byte(tl), 0o644); err != nil {
		return err
	}
	sum := fmt.Sprintf("rss before the burst: %.1f MiB\npeak rss: %.1f MiB at %d ms\n",
		float64(p.before)/(1<<20), float64(p.peak)/(1<<20), p.peakAt.Milliseconds())
	fmt.Fprint(os.Stderr, "benchrun: cold probe: "+strings.ReplaceAll(strings.TrimSpace(sum), "\n", "; ")+"; files in "+p.dir+"\n")
	return os.WriteFile(filepath.Join(p.dir, "summary.txt"), []byte(sum), 0o644)
}
