package cluster

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/cqgate/cqgate/internal/redistest"
)

// fetch is the recipe a token cache follows on an L1 miss: L2, else the
// fleet-wide lock and one exchange, else wait for the holder and look
// again. Redis failing at any step means a local exchange.
func fetch(ctx context.Context, c *Cluster, key string, exchange func() ([]byte, time.Time)) ([]byte, error) {
	for {
		if v, _, ok, err := c.Load(ctx, key); err != nil {
			v, _ := exchange()
			return v, nil
		} else if ok {
			return v, nil
		}
		lease, acquired, err := c.Lock(ctx, key, 10*time.Second)
		if err != nil {
			v, _ := exchange()
			return v, nil
		}
		if acquired {
			// Someone may have stored between our Load and Lock.
			if v, _, ok, err := c.Load(ctx, key); err == nil && ok {
				_ = lease.Release(ctx)
				return v, nil
			}
			v, exp := exchange()
			_ = c.Store(ctx, key, v, exp)
			_ = lease.Release(ctx)
			return v, nil
		}
		if err := c.Wait(ctx, key); err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			v, _ := exchange()
			return v, nil
		}
	}
}

// 300 concurrent cold requests on three replicas cost one exchange, and
// every request gets that exchange's token. Each replica first collapses
// its own concurrent requests (as its token cache's single flight does),
// so Redis sees one caller per replica.
func TestOneExchangeAcrossReplicas(t *testing.T) {
	srv := redistest.Start(t)
	obs := &observer{}
	replicas := []*Cluster{replica(t, srv, nil, WithObserver(obs)), replica(t, srv, nil, WithObserver(obs)), replica(t, srv, nil, WithObserver(obs))}
	local := make([]singleflight.Group, len(replicas))
	subscribed(t, srv, replicas...)
	var exchanges atomic.Int32
	exchange := func() ([]byte, time.Time) {
		exchanges.Add(1)
		time.Sleep(100 * time.Millisecond) // the partner's token endpoint
		return []byte("the-one-token"), time.Now().Add(time.Hour)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var wrong atomic.Int32
	start := time.Now()
	for i := range 300 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err, _ := local[i%3].Do(cacheKey, func() (any, error) {
				return fetch(ctx, replicas[i%3], cacheKey, exchange)
			})
			if err != nil || string(v.([]byte)) != "the-one-token" {
				wrong.Add(1)
			}
		}()
	}
	wg.Wait()
	if n := exchanges.Load(); n != 1 {
		t.Errorf("%d exchanges for 300 cold requests on 3 replicas, want 1; Redis errors: %v", n, obs.errs)
	}
	if n := wrong.Load(); n != 0 {
		t.Errorf("%d requests without the token", n)
	}
	t.Logf("300 requests served in %s", time.Since(start))
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Error("requests ran into the deadline")
	}
}
