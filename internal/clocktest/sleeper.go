package clocktest

import (
	"context"
	"sync"
	"time"
)

// Sleeper stands in for a `Sleep func(ctx context.Context, d
// time.Duration) error`: it does not sleep but records each wait asked
// for, moves Clock on by it when Clock is set, and returns Err when set,
// else ctx.Err(). It is safe for concurrent use; pass its Sleep method.
type Sleeper struct {
	Clock *Clock
	Err   error

	mu    sync.Mutex
	waits []time.Duration
}

// Sleep records d as if it had been waited.
func (s *Sleeper) Sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.waits = append(s.waits, d)
	s.mu.Unlock()
	if s.Err != nil {
		return s.Err
	}
	if s.Clock != nil {
		s.Clock.Advance(d)
	}
	return ctx.Err()
}

// Waits returns the waits asked for so far, in order.
func (s *Sleeper) Waits() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.waits...)
}

// Reset forgets the waits recorded so far.
func (s *Sleeper) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.waits = nil
}
