package cluster

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cqgate/cqgate/internal/redistest"
)

// observer records the failed operations a Cluster reports.
type observer struct {
	mu   sync.Mutex
	ops  map[string]int
	errs []error
}

func (o *observer) StoreError(op string, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.ops == nil {
		o.ops = map[string]int{}
	}
	o.ops[op]++
	o.errs = append(o.errs, err)
}

func (o *observer) count(op string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.ops[op]
}

// replica is one cqgate replica's Cluster on srv.
func replica(t testing.TB, srv *redistest.Server, edit func(*Config), opts ...Option) *Cluster {
	t.Helper()
	// A generous timeout: the machine running the tests may be busy, and
	// tests of timeouts set their own.
	cfg := Config{Redis: RedisConfig{URL: srv.URL()}, EncryptionKey: testKey(1), Timeout: 2 * time.Second}
	if edit != nil {
		edit(&cfg)
	}
	c, err := New(cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// raw is a plain client on srv, to look at what is stored.
func raw(t testing.TB, srv *redistest.Server) *redis.Client {
	t.Helper()
	r := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// eventually polls cond every 10ms until it holds or d passes.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// subscribed waits until the subscriptions of cs (replicas sharing one
// channel) are up, so tests that count on notifications do not race them.
func subscribed(t testing.TB, srv *redistest.Server, cs ...*Cluster) {
	t.Helper()
	r := raw(t, srv)
	ch := cs[0].channel
	eventually(t, 5*time.Second, "subscriptions", func() bool {
		n, err := r.PubSubNumSub(context.Background(), ch).Result()
		return err == nil && n[ch] >= int64(len(cs))
	})
}
