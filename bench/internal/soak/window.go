package soak

import (
	"slices"
	"sync"
	"time"

	"github.com/cqgate/cqgate/bench/internal/load"
	"github.com/cqgate/cqgate/bench/internal/proc"
)

// SlowAnswer is the latency above which an answer counts as slow.
const SlowAnswer = time.Second

// Window is what the load saw between two samples, and who used the CPUs
// meanwhile: a stall of cqgate and a machine busy with other work look
// alike from the load's side.
type Window struct {
	Answers int64 `json:"answers"`
	// Latency of the answers, from when each request was due.
	P50 time.Duration `json:"p50"`
	P99 time.Duration `json:"p99"`
	Max time.Duration `json:"max"`
	// Slow counts answers that took more than SlowAnswer; Behind the
	// requests not sent (ErrBehind).
	Slow   int64 `json:"slow"`
	Behind int64 `json:"behind"`
	// CPU use in CPUs (CPU seconds per second): cqgate's, the soak
	// process's (the load and the upstream), everything else on the
	// machine, and the time the hypervisor gave to other machines.
	CPUCqgate float64 `json:"cpu_cqgate"`
	CPUSoak   float64 `json:"cpu_soak"`
	CPUOther  float64 `json:"cpu_other"`
	CPUSteal  float64 `json:"cpu_steal"`
}

// MaxSlowest is how many of the slowest answers Latencies keeps.
const MaxSlowest = 10

// Latencies gathers answer latencies for the current window, and the
// slowest answers of all windows. It is safe for concurrent use.
type Latencies struct {
	mu      sync.Mutex
	lat     []time.Duration
	behind  int64
	slowest []Response // the slowest answers so far, slowest first
	// CPU readings at the window's start.
	at                 time.Time
	sys                proc.System
	cqgate, self       time.Duration
	cqgatePID, selfPID int
}

// NewLatencies starts the first window; the pids are read for CPU use
// (0: not read).
func NewLatencies(cqgatePID, selfPID int) *Latencies {
	l := &Latencies{cqgatePID: cqgatePID, selfPID: selfPID}
	l.at, l.sys, l.cqgate, l.self = l.cpu()
	return l
}

func (l *Latencies) cpu() (time.Time, proc.System, time.Duration, time.Duration) {
	now := time.Now()
	sys, _ := proc.ReadSystem()
	var gw, self time.Duration
	if l.cqgatePID > 0 {
		if s, err := proc.Read(l.cqgatePID); err == nil {
			gw = s.CPU
		}
	}
	if l.selfPID > 0 {
		if s, err := proc.Read(l.selfPID); err == nil {
			self = s.CPU
		}
	}
	return now, sys, gw, self
}

// Add records one answer.
func (l *Latencies) Add(r Response) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if r.Err == ErrBehind.Error() {
		l.behind++
		return
	}
	d := r.Done.Sub(r.Sent)
	l.lat = append(l.lat, d)
	if len(l.slowest) < MaxSlowest || d > latency(l.slowest[len(l.slowest)-1]) {
		i, _ := slices.BinarySearchFunc(l.slowest, d, func(x Response, d time.Duration) int { return -cmpDuration(latency(x), d) })
		l.slowest = slices.Insert(l.slowest, i, r)
		if len(l.slowest) > MaxSlowest {
			l.slowest = l.slowest[:MaxSlowest]
		}
	}
}

func latency(r Response) time.Duration { return r.Done.Sub(r.Sent) }

func cmpDuration(a, b time.Duration) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Slowest returns the slowest answers so far, slowest first.
func (l *Latencies) Slowest() []Response {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.slowest)
}

// Take closes the current window, returns it and starts the next one.
func (l *Latencies) Take() Window {
	at, sys, gw, self := l.cpu()
	l.mu.Lock()
	lat, behind := l.lat, l.behind
	l.lat, l.behind = make([]time.Duration, 0, len(lat)), 0
	prevAt, prevSys, prevGw, prevSelf := l.at, l.sys, l.cqgate, l.self
	l.at, l.sys, l.cqgate, l.self = at, sys, gw, self
	l.mu.Unlock()

	w := Window{Answers: int64(len(lat)), Behind: behind}
	if len(lat) > 0 {
		slices.Sort(lat)
		w.P50, w.P99, w.Max = load.Percentile(lat, 50), load.Percentile(lat, 99), lat[len(lat)-1]
		i, _ := slices.BinarySearch(lat, SlowAnswer+1)
		w.Slow = int64(len(lat) - i)
	}
	if secs := at.Sub(prevAt).Seconds(); secs > 0 {
		w.CPUCqgate = (gw - prevGw).Seconds() / secs
		w.CPUSoak = (self - prevSelf).Seconds() / secs
		busy := (sys.Busy - prevSys.Busy).Seconds() / secs
		w.CPUOther = max(busy-w.CPUCqgate-w.CPUSoak, 0)
		w.CPUSteal = (sys.Steal - prevSys.Steal).Seconds() / secs
	}
	return w
}
