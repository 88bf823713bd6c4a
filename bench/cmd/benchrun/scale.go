package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cqgate/cqgate/bench/internal/proc"
	"github.com/cqgate/cqgate/bench/internal/report"
)

// scaleFew is how many organizations the small cqgate of the scale
// comparison serves (issue 18: "within 10 % of 10 organizations").
const scaleFew = 10

// scaleOIDBase numbers the scale comparison's organizations
// 2.999.7.<scaleOIDBase+i>, clear of warmOID and coldOID.
const scaleOIDBase = 1000

// maxOrgHosts bounds -org-hosts (upstream's -fhir-hosts).
const maxOrgHosts = 10000

// warmConcurrency bounds the first requests that warm a scale target.
const warmConcurrency = 32

// scaleOIDs are the OIDs of n organizations for the scale comparison;
// the first scaleFew are the small target's too.
func scaleOIDs(n int) []string {
	oids := make([]string, n)
	for i := range oids {
		oids[i] = "2.999.7." + strconv.Itoa(scaleOIDBase+i)
	}
	return oids
}

// startScale starts the two cqgate processes of the scale comparison:
// one configured with, warmed for and loaded over scaleFew organizations,
// the other over o.orgs. Each must start within startCtx; warming, which
// takes a while for many organizations, has its own bound under ctx.
func startScale(startCtx, ctx context.Context, sup *supervisor, o options, upBase, apiKey string) ([]*target, error) {
	all := scaleOIDs(o.orgs)
	var ts []*target
	for _, oids := range [][]string{all[:scaleFew], all} {
		t := &target{
			key:  report.ScaleKey(len(oids)),
			name: fmt.Sprintf("cqgate, %d organizations", len(oids)),
		}
		if err := startCqgateFor(startCtx, sup, o, t, upBase, apiKey, oids); err != nil {
			return nil, err
		}
		t.urls = make([]string, len(oids))
		for i, oid := range oids {
			t.urls[i] = t.base + "/fhir/" + oid + "/Patient/" + patientID
		}
		t.url = t.urls[0]
		start := time.Now()
		if err := warm(ctx, t.urls); err != nil {
			return nil, fmt.Errorf("warming %s: %w", t.name, err)
		}
		var rss string
		if s, err := t.proxy.sample(); err == nil {
			rss = fmt.Sprintf(", RSS %.1f MiB (peak %.1f MiB)", float64(s.RSS)/(1<<20), float64(s.HWM)/(1<<20))
		}
		// The rows' peak RSS is the passes', not the warm-up's.
		if err := proc.ResetPeak(t.proxy.pid()); err != nil {
			rss += "; " + err.Error() + ": the peak RSS reported includes the warm-up"
		}
		fmt.Fprintf(os.Stderr, "benchrun: %s: warmed in %s%s\n", t.name, time.Since(start).Round(time.Millisecond), rss)
		ts = append(ts, t)
	}
	return ts, nil
}

// warm GETs every URL once, warmConcurrency at a time; every answer must
// be 200.
func warm(ctx context.Context, urls []string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: warmConcurrency}}
	defer client.CloseIdleConnections()
	var next atomic.Int64
	var wg sync.WaitGroup
	var first error
	var once sync.Once
	for range warmConcurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(urls) || ctx.Err() != nil {
					return
				}
				if err := get(ctx, client, urls[i]); err != nil {
					// The first failure, not the cancellations it causes.
					once.Do(func() { first = err; cancel() })
					return
				}
			}
		}()
	}
	wg.Wait()
	if first == nil && ctx.Err() != nil && next.Load() < int64(len(urls)) {
		return fmt.Errorf("warming stopped after %d of %d organizations: %w", next.Load(), len(urls), ctx.Err())
	}
	return first
}

func get(ctx context.Context, client *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}

// fhirConnsOpened reads cqgate_fhir_connections_opened_total from a
// cqgate's metrics; an error when metricsURL is empty (not a cqgate) or
// the metric is missing.
func fhirConnsOpened(ctx context.Context, metricsURL string) (int64, error) {
	if metricsURL == "" {
		return 0, errors.New("no metrics")
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, metricsURL, nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET %s: %s", metricsURL, resp.Status)
	}
	return metricValue(resp.Body, "cqgate_fhir_connections_opened_total")
}

// metricValue finds the unlabelled sample name in a Prometheus text
// exposition.
func metricValue(r io.Reader, name string) (int64, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				return 0, fmt.Errorf("%s: %w", name, err)
			}
			return int64(f), nil
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("no %s in the metrics", name)
}
