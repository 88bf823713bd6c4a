package scale

import (
	"context"
	"math/rand/v2"
	"runtime"
	"time"

	"golang.org/x/sync/errgroup"
)

// Fill calls f for every n in [from, to), on workers goroutines at once
// (at least 1). The first error cancels the rest and is returned.
func Fill(ctx context.Context, from, to, workers int, f func(ctx context.Context, n int) error) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(max(workers, 1))
	for n := from; n < to; n++ {
		if ctx.Err() != nil {
			break
		}
		g.Go(func() error { return f(ctx, n) })
	}
	return g.Wait()
}

// LiveHeap is the heap in use after two full garbage collections (the
// second also frees what sync.Pools held): runtime.MemStats.HeapAlloc.
func LiveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// HeapGrowth is how much live heap run leaves behind: LiveHeap after run
// minus LiveHeap before. Whatever run fills must stay reachable after it
// returns (keep it alive with runtime.KeepAlive after the call), and run
// should release what it used only temporarily (Server.Quiesce).
func HeapGrowth(run func() error) (int64, error) {
	before := LiveHeap()
	if err := run(); err != nil {
		return 0, err
	}
	return int64(LiveHeap()) - int64(before), nil
}

// Workers is how many organizations FillCaches resolves at once: more
// only adds scheduling overhead on a small machine.
const Workers = 4

// FillCaches fills caches through s with organizations 0 to orgs-1 by
// calling f for each (f asks the caches, which fetch from s), and returns
// the live heap that left behind per organization. Before the baseline it
// calls f for organization orgs (outside the range), so that connection
// pools, sync.Pools and lazily built state exist already; between the
// measurements it closes every connection (Quiesce). What f fills must
// stay reachable until FillCaches returns.
func (s *Server) FillCaches(ctx context.Context, orgs int, f func(ctx context.Context, n int) error) (perOrg float64, err error) {
	if err := f(ctx, orgs); err != nil {
		return 0, err
	}
	if err := s.Quiesce(quiesceTimeout); err != nil {
		return 0, err
	}
	grew, err := HeapGrowth(func() error {
		if err := Fill(ctx, 0, orgs, Workers, f); err != nil {
			return err
		}
		return s.Quiesce(quiesceTimeout)
	})
	if err != nil {
		return 0, err
	}
	return float64(grew) / float64(max(orgs, 1)), nil
}

const quiesceTimeout = 30 * time.Second

// Picks returns count organization numbers below orgs in a fixed
// pseudo-random order, for lookups of "a random cached organization"
// without generating them in the timed loop. count is rounded up to a
// power of two so that callers can index with i&(len-1).
func Picks(orgs, count int) []int {
	size := 1
	for size < count {
		size <<= 1
	}
	rng := rand.New(rand.NewPCG(6, 2026))
	out := make([]int, size)
	for i := range out {
		out[i] = rng.IntN(max(orgs, 1))
	}
	return out
}
