package soak

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cqgate/cqgate/bench/internal/fhirstub"
	"github.com/cqgate/cqgate/bench/internal/loopback"
)

// Bounds of a drive.
const (
	MaxRate     = 5000
	MaxDuration = 2 * time.Hour
	// maxBody bounds an answer's body; a larger one is read no further.
	maxBody = 1 << 20
	// maxDiagnostics bounds Response.Diagnostics.
	maxDiagnostics = 200
)

// DriveConfig describes a steady open-loop load.
type DriveConfig struct {
	// BaseURL is cqgate's loopback http URL (http://127.0.0.1:port).
	BaseURL string
	// OIDs are used in turn: request i goes to OIDs[i%len(OIDs)].
	OIDs      []string
	PatientID string
	// Rate is the requests per second, sent on a fixed schedule whatever
	// the answers (open loop), for Duration.
	Rate     float64
	Duration time.Duration
	// MaxInFlight bounds the requests waiting for an answer; a request
	// due while that many are waiting is not sent and is reported with
	// the error ErrBehind. 256 when zero.
	MaxInFlight int
	// Timeout bounds one request; 30 s when zero.
	Timeout time.Duration
	// IDPrefix starts every X-Request-Id ("soak" when empty); the ids
	// are IDPrefix-N.
	IDPrefix string
	// Client sends the requests; a keep-alive client with MaxInFlight
	// connections when nil.
	Client *http.Client
	// OnResponse gets every answer (also from concurrent goroutines);
	// it must be safe for concurrent use.
	OnResponse func(Response)
}

// ErrBehind is the Response.Err of a request that was not sent because
// MaxInFlight requests were still waiting: the target stalled.
var ErrBehind = errors.New("soak: not sent: too many requests still waiting for an answer")

// DriveResult counts what a drive did.
type DriveResult struct {
	Sent, Behind int64
	Elapsed      time.Duration
}

// NewClient returns the driver's HTTP client: keep-alive connections, at
// most maxConns of them.
func NewClient(maxConns int, timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			MaxIdleConns:        maxConns,
			MaxIdleConnsPerHost: maxConns,
			MaxConnsPerHost:     maxConns,
			IdleConnTimeout:     90 * time.Second,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

func (cfg *DriveConfig) check() error {
	switch {
	case len(cfg.OIDs) == 0:
		return errors.New("soak: no OIDs")
	case !(cfg.Rate > 0 && cfg.Rate <= MaxRate):
		return fmt.Errorf("soak: rate must be in (0, %d]", MaxRate)
	case cfg.Duration <= 0 || cfg.Duration > MaxDuration:
		return fmt.Errorf("soak: duration must be in (0, %s]", MaxDuration)
	case cfg.OnResponse == nil:
		return errors.New("soak: OnResponse is required")
	}
	if _, err := loopback.CheckURL(cfg.BaseURL); err != nil {
		return fmt.Errorf("soak: %w", err)
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = 256
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.IDPrefix == "" {
		cfg.IDPrefix = "soak"
	}
	if cfg.Client == nil {
		cfg.Client = NewClient(cfg.MaxInFlight, cfg.Timeout)
	}
	return nil
}

// Drive sends cfg.Rate requests per second for cfg.Duration, or until
// ctx ends, and waits for their answers.
func Drive(ctx context.Context, cfg DriveConfig) (DriveResult, error) {
	if err := cfg.check(); err != nil {
		return DriveResult{}, err
	}
	base := strings.TrimRight(cfg.BaseURL, "/")
	sem := make(chan struct{}, cfg.MaxInFlight)
	var wg sync.WaitGroup
	var sent, behind atomic.Int64
	start := time.Now()
	end := start.Add(cfg.Duration)
	period := time.Duration(float64(time.Second) / cfg.Rate)
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	for i := int64(0); ; i++ {
		due := start.Add(time.Duration(i) * period)
		if !due.Before(end) {
			break
		}
		if d := time.Until(due); d > 0 {
			timer.Reset(d)
			select {
			case <-ctx.Done():
				wg.Wait()
				return DriveResult{Sent: sent.Load(), Behind: behind.Load(), Elapsed: time.Since(start)}, ctx.Err()
			case <-timer.C:
			}
		}
		oid := cfg.OIDs[int(i%int64(len(cfg.OIDs)))]
		id := cfg.IDPrefix + "-" + strconv.FormatInt(i, 10)
		select {
		case sem <- struct{}{}:
		default:
			behind.Add(1)
			cfg.OnResponse(Response{ID: id, OID: oid, Sent: due, Done: time.Now(), Err: ErrBehind.Error()})
			continue
		}
		sent.Add(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			cfg.OnResponse(send(ctx, cfg.Client, base, oid, cfg.PatientID, id, due))
		}()
	}
	wg.Wait()
	return DriveResult{Sent: sent.Load(), Behind: behind.Load(), Elapsed: time.Since(start)}, nil
}

func send(ctx context.Context, hc *http.Client, base, oid, patientID, id string, due time.Time) Response {
	r := Response{ID: id, OID: oid, Sent: due}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/fhir/"+oid+"/Patient/"+patientID, nil)
	if err != nil {
		r.Err, r.Done = err.Error(), time.Now()
		return r
	}
	req.Header.Set(fhirstub.RequestIDHeader, id)
	resp, err := hc.Do(req)
	if err != nil {
		r.Err, r.Done = err.Error(), time.Now()
		return r
	}
	defer resp.Body.Close()
	r.Status = resp.StatusCode
	r.Injected = resp.Header.Get(fhirstub.InjectedHeader)
	r.RetryAfter = resp.Header.Get("Retry-After")
	if resp.StatusCode == http.StatusOK {
		if _, err := io.Copy(io.Discard, io.LimitReader(resp.Body, maxBody)); err != nil {
			r.Err = "reading the body: " + err.Error()
		}
	} else {
		body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
		if err != nil {
			r.Err = "reading the body: " + err.Error()
		}
		r.Diagnostics = diagnostics(body)
	}
	r.Done = time.Now()
	return r
}

// diagnostics returns the first issue's diagnostics of an
// OperationOutcome, or the start of the body.
func diagnostics(body []byte) string {
	var oo struct {
		Issue []struct {
			Diagnostics string `json:"diagnostics"`
		} `json:"issue"`
	}
	s := ""
	if json.Unmarshal(body, &oo) == nil && len(oo.Issue) > 0 {
		s = oo.Issue[0].Diagnostics
	} else {
		s = string(body)
	}
	if len(s) > maxDiagnostics {
		s = s[:maxDiagnostics] + "…"
	}
	return s
}
