package soak

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/cqgate/cqgate/bench/internal/loopback"
)

// maxMetricsBody bounds a /metrics answer.
const maxMetricsBody = 8 << 20

// Sample is one scrape of cqgate's /metrics.
type Sample struct {
	At time.Time `json:"at"`
	// Goroutines is go_goroutines.
	Goroutines float64 `json:"goroutines"`
	// HeapInuse, HeapAlloc and NextGC are go_memstats_heap_inuse_bytes,
	// go_memstats_heap_alloc_bytes and go_memstats_next_gc_bytes (the
	// heap goal: with GOGC=100, twice the heap live after the last GC).
	HeapInuse float64 `json:"heap_inuse_bytes"`
	HeapAlloc float64 `json:"heap_alloc_bytes"`
	NextGC    float64 `json:"next_gc_bytes"`
	// RSS is process_resident_memory_bytes.
	RSS float64 `json:"rss_bytes"`
	// Exchanges is cqgate_token_exchanges_total by outcome.
	Exchanges map[string]float64 `json:"exchanges"`
	// CacheHits and CacheMisses are cqgate_token_cache_requests_total.
	CacheHits   float64 `json:"cache_hits"`
	CacheMisses float64 `json:"cache_misses"`
	// Requests is cqgate_requests_total by code_class, over all
	// organizations and methods.
	Requests map[string]float64 `json:"requests"`
	// Window is what the load saw since the previous sample under load.
	Window *Window `json:"window,omitempty"`
}

// ParseMetrics reads a Prometheus text exposition. go_goroutines, the
// heap gauges and process_resident_memory_bytes must be there.
func ParseMetrics(r io.Reader) (Sample, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return Sample{}, fmt.Errorf("soak: metrics: %w", err)
	}
	s := Sample{Exchanges: map[string]float64{}, Requests: map[string]float64{}}
	var missing []string
	single := func(name string, dst *float64) {
		f := fams[name]
		if f == nil || len(f.GetMetric()) == 0 {
			missing = append(missing, name)
			return
		}
		*dst = value(f.GetMetric()[0])
	}
	single("go_goroutines", &s.Goroutines)
	single("go_memstats_heap_inuse_bytes", &s.HeapInuse)
	single("go_memstats_heap_alloc_bytes", &s.HeapAlloc)
	single("go_memstats_next_gc_bytes", &s.NextGC)
	single("process_resident_memory_bytes", &s.RSS)
	if len(missing) > 0 {
		return Sample{}, fmt.Errorf("soak: metrics: missing %s", strings.Join(missing, ", "))
	}
	for _, m := range fams["cqgate_token_exchanges_total"].GetMetric() {
		s.Exchanges[label(m, "outcome")] += value(m)
	}
	for _, m := range fams["cqgate_token_cache_requests_total"].GetMetric() {
		switch label(m, "result") {
		case "hit":
			s.CacheHits += value(m)
		case "miss":
			s.CacheMisses += value(m)
		}
	}
	for _, m := range fams["cqgate_requests_total"].GetMetric() {
		s.Requests[label(m, "code_class")] += value(m)
	}
	return s, nil
}

func value(m *dto.Metric) float64 {
	switch {
	case m.GetGauge() != nil:
		return m.GetGauge().GetValue()
	case m.GetCounter() != nil:
		return m.GetCounter().GetValue()
	case m.GetUntyped() != nil:
		return m.GetUntyped().GetValue()
	}
	return 0
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// Scrape GETs a loopback metrics URL and parses it. hc should not keep
// connections alive, so that a scrape leaves no goroutine behind in the
// scraped process; nil uses such a client with a 10 s timeout.
func Scrape(ctx context.Context, hc *http.Client, url string) (Sample, error) {
	if _, err := loopback.CheckURL(url); err != nil {
		return Sample{}, fmt.Errorf("soak: %w", err)
	}
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return Sample{}, fmt.Errorf("soak: metrics request: %w", err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return Sample{}, fmt.Errorf("soak: scraping %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Sample{}, fmt.Errorf("soak: scraping %s: HTTP %d", url, resp.StatusCode)
	}
	body := io.LimitReader(resp.Body, maxMetricsBody+1)
	lr := &countingReader{r: body}
	s, err := ParseMetrics(lr)
	if lr.n > maxMetricsBody {
		return Sample{}, errors.New("soak: metrics answer larger than 8 MiB")
	}
	if err != nil {
		return Sample{}, err
	}
	s.At = time.Now()
	return s, nil
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
