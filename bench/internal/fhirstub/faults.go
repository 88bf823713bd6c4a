package fhirstub

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// InjectedHeader marks every HTTP answer the stub made up on purpose; its
// value is the status code. A client can tell an injected 503 or 401 that
// was passed through to it from one made elsewhere.
const InjectedHeader = "X-Fhirstub-Injected"

// RequestIDHeader is the header whose value identifies a request in the
// stub's records (the id cqgate forwards, and keeps on its retries).
const RequestIDHeader = "X-Request-Id"

// DefaultMaxRecords bounds the request ids Faults remembers.
const DefaultMaxRecords = 200_000

// Faults injects failures into Patient reads that carry a valid token,
// each attempt independently, so that a soak can check how a proxy in
// front of the stub copes. Probabilities are in [0, 1] and their sum at
// most 1.
type Faults struct {
	// Unavailable is the probability of a 503 OperationOutcome.
	Unavailable float64
	// Reset is the probability that the connection is reset (TCP RST)
	// before any byte of the answer.
	Reset float64
	// Unauthorized is the probability of a 401 for a token that is still
	// valid, as a server does that revoked it or lost its session.
	Unauthorized float64
	// Rand returns uniform numbers in [0, 1); math/rand/v2's Float64 when
	// nil. It must be safe for concurrent use.
	Rand func() float64
	// MaxRecords bounds the request ids remembered (see Server.Records);
	// DefaultMaxRecords when zero.
	MaxRecords int
}

// Validate reports probabilities out of range.
func (f Faults) Validate() error {
	var errs []error
	for _, p := range []struct {
		name string
		v    float64
	}{{"unavailable", f.Unavailable}, {"reset", f.Reset}, {"unauthorized", f.Unauthorized}} {
		if !(p.v >= 0 && p.v <= 1) {
			errs = append(errs, fmt.Errorf("fhirstub: fault %s: probability %v is not in [0, 1]", p.name, p.v))
		}
	}
	if sum := f.Unavailable + f.Reset + f.Unauthorized; sum > 1 {
		errs = append(errs, fmt.Errorf("fhirstub: fault probabilities add up to %v, more than 1", sum))
	}
	if f.MaxRecords < 0 {
		errs = append(errs, errors.New("fhirstub: MaxRecords must not be negative"))
	}
	return errors.Join(errs...)
}

func (f Faults) enabled() bool { return f.Unavailable > 0 || f.Reset > 0 || f.Unauthorized > 0 }

// Outcome is what the stub did with one Patient read attempt.
type Outcome string

// Outcomes of a Patient read attempt.
const (
	// OutcomeOK: the Patient was served.
	OutcomeOK Outcome = "ok"
	// OutcomeInjected503: a 503 was injected.
	OutcomeInjected503 Outcome = "injected-503"
	// OutcomeInjectedReset: the connection was reset on purpose.
	OutcomeInjectedReset Outcome = "injected-reset"
	// OutcomeInjected401: a valid token was refused on purpose.
	OutcomeInjected401 Outcome = "injected-401"
	// OutcomeExpiredToken: the token had expired (not injected: the
	// client used a token too long).
	OutcomeExpiredToken Outcome = "expired-token"
	// OutcomeUnknownToken: no token, or one the stub never issued for
	// this organization (not injected).
	OutcomeUnknownToken Outcome = "unknown-token"
)

// Injected reports whether the stub caused o on purpose.
func (o Outcome) Injected() bool {
	return o == OutcomeInjected503 || o == OutcomeInjectedReset || o == OutcomeInjected401
}

// Attempt is one Patient read attempt in the stub's records.
type Attempt struct {
	Outcome Outcome   `json:"outcome"`
	OID     string    `json:"oid"`
	At      time.Time `json:"at"`
	// For OutcomeInjected401: the refused token's age, whether it was the
	// newest token issued for OID, and whether this was the first 401
	// injected for it. A client that drops a refused token and gets a
	// new one needs one exchange per first refusal of its newest token
	// (unless it rate-limits them).
	TokenAge     time.Duration `json:"token_age,omitempty"`
	Newest       bool          `json:"newest,omitempty"`
	FirstRefusal bool          `json:"first_refusal,omitempty"`
}

// InjectedCounts counts the failures injected.
type InjectedCounts struct {
	Unavailable  int64 `json:"unavailable"`
	Reset        int64 `json:"reset"`
	Unauthorized int64 `json:"unauthorized"`
	// RecordsDropped counts attempts that were not recorded because
	// MaxRecords request ids were already kept; Unrecorded those that
	// had no X-Request-Id.
	RecordsDropped int64 `json:"records_dropped"`
	Unrecorded     int64 `json:"unrecorded"`
}

// faultState is the Server's fault injection and its records.
type faultState struct {
	cfg Faults
	rnd func() float64

	n503, nReset, n401, dropped, unrecorded atomic.Int64

	mu      sync.Mutex
	records map[string][]Attempt // request id → attempts, once one was not OK
	newestT map[string]string    // OID → newest token issued
}

func newFaultState(cfg Faults) *faultState {
	if cfg.MaxRecords <= 0 {
		cfg.MaxRecords = DefaultMaxRecords
	}
	f := &faultState{cfg: cfg, rnd: cfg.Rand, records: make(map[string][]Attempt), newestT: make(map[string]string)}
	if f.rnd == nil {
		f.rnd = rand.Float64
	}
	return f
}

func (f *faultState) counts() InjectedCounts {
	return InjectedCounts{
		Unavailable: f.n503.Load(), Reset: f.nReset.Load(), Unauthorized: f.n401.Load(),
		RecordsDropped: f.dropped.Load(), Unrecorded: f.unrecorded.Load(),
	}
}

func (f *faultState) newest(oid, tok string) {
	f.mu.Lock()
	f.newestT[oid] = tok
	f.mu.Unlock()
}

// record keeps a for r's request id: every attempt that was not OK, and
// every later attempt of a request id that had one. Nil-safe.
func (f *faultState) record(r *http.Request, a Attempt) {
	if f == nil {
		return
	}
	id := r.Header.Get(RequestIDHeader)
	if id == "" {
		if a.Outcome != OutcomeOK {
			f.unrecorded.Add(1)
		}
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	prev, known := f.records[id]
	switch {
	case known:
		f.records[id] = append(prev, a)
	case a.Outcome == OutcomeOK:
	case len(f.records) >= f.cfg.MaxRecords:
		f.dropped.Add(1)
	default:
		f.records[id] = []Attempt{a}
	}
}

// inject decides the fate of a Patient read with a valid token. It
// returns true when it answered (or reset) the request itself.
func (f *faultState) inject(w http.ResponseWriter, r *http.Request, oid, tok string, it *issued, now time.Time) bool {
	x := f.rnd()
	c := f.cfg
	switch {
	case x < c.Unavailable:
		f.n503.Add(1)
		f.record(r, Attempt{Outcome: OutcomeInjected503, OID: oid, At: now})
		w.Header().Set(InjectedHeader, "503")
		writeOutcome(w, http.StatusServiceUnavailable, "transient", "injected failure: service unavailable")
		return true
	case x < c.Unavailable+c.Reset:
		f.nReset.Add(1)
		f.record(r, Attempt{Outcome: OutcomeInjectedReset, OID: oid, At: now})
		reset(w)
		return true
	case x < c.Unavailable+c.Reset+c.Unauthorized:
		f.n401.Add(1)
		f.mu.Lock()
		newest := f.newestT[oid] == tok
		f.mu.Unlock()
		f.record(r, Attempt{
			Outcome: OutcomeInjected401, OID: oid, At: now,
			TokenAge: now.Sub(it.issued), Newest: newest, FirstRefusal: it.refused.CompareAndSwap(false, true),
		})
		w.Header().Set(InjectedHeader, "401")
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		writeOutcome(w, http.StatusUnauthorized, "login", "injected failure: token refused")
		return true
	}
	f.record(r, Attempt{Outcome: OutcomeOK, OID: oid, At: now})
	return false
}

// reset closes the connection with a TCP RST before any answer: the
// client sees "connection reset by peer". Without a hijackable TCP
// connection the handler is aborted, which closes it plainly.
func reset(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler)
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}

// Records returns, per request id (X-Request-Id), every Patient read
// attempt of the requests that had at least one attempt that was not OK,
// in order. Attempts are recorded only when Config.Faults injects
// something; at most Faults.MaxRecords request ids are kept.
func (s *Server) Records() map[string][]Attempt {
	f := s.faults
	if f == nil {
		return map[string][]Attempt{}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string][]Attempt, len(f.records))
	for id, as := range f.records {
		out[id] = slices.Clone(as)
	}
	return out
}

// Attempts returns the recorded attempts of one request id (see Records).
func (s *Server) Attempts(id string) []Attempt {
	f := s.faults
	if f == nil {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.records[id])
}
