package assertion

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cqgate/cqgate/internal/cluster"
	"github.com/cqgate/cqgate/internal/redistest"
)

// partnerSource is a token endpoint shared by all replicas: it counts
// exchanges and issues tokens that expire in an hour.
type partnerSource struct {
	n     atomic.Int64
	delay time.Duration
}

func (s *partnerSource) Token(ctx context.Context) (*Token, error) {
	n := s.n.Add(1)
	time.Sleep(s.delay)
	return &Token{AccessToken: fmt.Sprintf("secret-token-%d", n), TokenType: "Bearer", ExpiresIn: time.Hour, Expiry: time.Now().Add(time.Hour)}, nil
}

type storeErrors struct {
	mu  sync.Mutex
	ops map[string]int
}

func (o *storeErrors) StoreError(op string, _ error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.ops == nil {
		o.ops = map[string]int{}
	}
	o.ops[op]++
}

func (o *storeErrors) total() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := 0
	for _, v := range o.ops {
		n += v
	}
	return n
}

var clusterKey = base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))

// fleet is n replicas' token caches over one Redis.
func fleet(t *testing.T, srv *redistest.Server, n int, cfg CacheConfig, obs *storeErrors) []*Cache {
	t.Helper()
	caches := make([]*Cache, n)
	clusters := make([]*cluster.Cluster, n)
	for i := range caches {
		cl, err := cluster.New(cluster.Config{Redis: cluster.RedisConfig{URL: srv.URL()}, EncryptionKey: clusterKey, Timeout: time.Second, PollInterval: 50 * time.Millisecond},
			cluster.WithObserver(obs))
		if err != nil {
			t.Fatal(err)
		}
		clusters[i] = cl
		cfg := cfg
		cfg.Shared = cl
		caches[i] = NewCache(cfg)
		t.Cleanup(func() { caches[i].Close(); _ = cl.Close() })
	}
	// Wait until every replica listens for notifications.
	r := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer r.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		m, err := r.PubSubNumSub(context.Background(), "cqgate:events").Result()
		if err == nil && m["cqgate:events"] >= int64(n) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("replicas not subscribed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return caches
}

// acrossFleet asks every cache for key, per times in all, and returns
// the tokens received.
func acrossFleet(t *testing.T, caches []*Cache, key Key, src TokenSource, per int) map[string]int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var mu sync.Mutex
	got := map[string]int{}
	var wg sync.WaitGroup
	for i := range per {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tok, err := caches[i%len(caches)].Token(ctx, key, src)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				got["error: "+err.Error()]++
				return
			}
			got[tok.AccessToken]++
		}()
	}
	wg.Wait()
	return got
}

// dropped waits until no cache holds a token for key: invalidations
// reach the other replicas by notification.
func dropped(t *testing.T, caches []*Cache, key Key) {
	t.Helper()
	for i, c := range caches {
		c.mu.RLock()
		st := c.states[key]
		c.mu.RUnlock()
		deadline := time.Now().Add(5 * time.Second)
		for st.entry.Load() != nil {
			if time.Now().After(deadline) {
				t.Fatalf("replica %d still holds the refused token", i)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

var noPolicies = CacheConfig{RefreshAhead: -1, MinInterval: -1, FailureHold: -1}

// 300 concurrent cold requests on three replicas: one exchange, and
// everyone gets its token; a refused token is replaced once fleet-wide.
func TestSharedOneExchangeFleetWide(t *testing.T) {
	srv := redistest.Start(t)
	obs := &storeErrors{}
	caches := fleet(t, srv, 3, noPolicies, obs)
	src := &partnerSource{delay: 50 * time.Millisecond}

	got := acrossFleet(t, caches, testKey, src, 300)
	if n := src.n.Load(); n != 1 {
		t.Fatalf("%d exchanges for 300 cold requests on 3 replicas, want 1 (Redis errors: %d)", n, obs.total())
	}
	if got["secret-token-1"] != 300 {
		t.Fatalf("tokens received: %v", got)
	}
	var hits int64
	for _, c := range caches {
		hits += c.Stats().SharedHits
	}
	if hits != 2 {
		t.Errorf("shared hits = %d, want 2 (the two replicas that did not exchange)", hits)
	}

	// Replica 0's partner refuses the token: every replica drops it, and
	// the fleet makes one new exchange.
	caches[0].Invalidate(testKey, "secret-token-1")
	dropped(t, caches[1:], testKey)
	got = acrossFleet(t, caches, testKey, src, 300)
	if n := src.n.Load(); n != 2 {
		t.Fatalf("%d exchanges after one refusal, want 2 in all", n)
	}
	if got["secret-token-2"] != 300 {
		t.Fatalf("tokens received after the refusal: %v", got)
	}
	if n := obs.total(); n != 0 {
		t.Errorf("%d Redis errors: %v", n, obs.ops)
	}
}

// tokens.min_interval holds across the fleet: a token refused right after
// its exchange is not replaced by any replica within the interval.
func TestSharedMinIntervalFleetWide(t *testing.T) {
	srv := redistest.Start(t)
	caches := fleet(t, srv, 2, CacheConfig{RefreshAhead: -1, MinInterval: time.Minute, FailureHold: -1}, &storeErrors{})
	src := &partnerSource{}
	for _, c := range caches {
		if tok, err := c.Token(context.Background(), testKey, src); err != nil || tok.AccessToken != "secret-token-1" {
			t.Fatalf("Token = %v, %v", tok, err)
		}
	}
	caches[1].Invalidate(testKey, "secret-token-1")
	dropped(t, caches, testKey)
	for i, c := range caches {
		_, err := c.Token(context.Background(), testKey, src)
		if !errors.Is(err, ErrThrottled) {
			t.Errorf("replica %d: err = %v, want ErrThrottled", i, err)
		}
	}
	if n := src.n.Load(); n != 1 {
		t.Errorf("%d exchanges, want 1: the refusal came within the minimum interval", n)
	}
}

// A replica that has never seen a token context takes it from Redis and
// schedules its refresh where the exchanging replica did.
func TestSharedFreshReplicaSamePolicy(t *testing.T) {
	srv := redistest.Start(t)
	caches := fleet(t, srv, 2, CacheConfig{MinInterval: time.Minute, FailureHold: -1}, &storeErrors{})
	src := &partnerSource{}
	if _, err := caches[0].Token(context.Background(), testKey, src); err != nil {
		t.Fatal(err)
	}
	if _, err := caches[1].Token(context.Background(), testKey, src); err != nil {
		t.Fatal(err)
	}
	a, b := caches[0].states[testKey].entry.Load(), caches[1].states[testKey].entry.Load()
	if a == nil || b == nil {
		t.Fatal("no entries")
	}
	// Obtained is kept in milliseconds.
	if d := a.refreshAt.Sub(b.refreshAt).Abs(); d > time.Millisecond {
		t.Errorf("refresh points differ by %s", d)
	}
	if b.token.AccessToken != a.token.AccessToken || src.n.Load() != 1 {
		t.Errorf("fresh replica got %q after %d exchanges", b.token.AccessToken, src.n.Load())
	}
}

// Redis down: every replica serves from its own cache and exchanges
// locally, at most once per token context; once Redis is back, the fleet
// converges to one exchange per context again.
func TestSharedRedisDown(t *testing.T) {
	srv := redistest.Start(t)
	obs := &storeErrors{}
	caches := fleet(t, srv, 3, noPolicies, obs)
	src := &partnerSource{delay: 10 * time.Millisecond}
	acrossFleet(t, caches, testKey, src, 30)

	srv.Kill()
	got := acrossFleet(t, caches, testKey, src, 300) // L1 hits
	if got["secret-token-1"] != 300 {
		t.Fatalf("with Redis down, cached tokens: %v", got)
	}
	other := testKey
	other.Scope = "system/Patient.read"
	before := src.n.Load()
	got = acrossFleet(t, caches, other, src, 300)
	for tok := range got {
		if strings.HasPrefix(tok, "error") {
			t.Fatalf("a request failed with Redis down: %v", got)
		}
	}
	if n := src.n.Load() - before; n < 1 || n > 3 {
		t.Errorf("%d exchanges for a new context on 3 replicas with Redis down, want 1 to 3", n)
	}
	if obs.total() == 0 {
		t.Error("no Redis errors counted")
	}

	srv.Restart()
	third := testKey
	third.Scope = "system/Observation.read"
	before = src.n.Load()
	deadline := time.Now().Add(10 * time.Second)
	for {
		// The subscriptions reconnect by themselves; until then a waiter
		// polls.
		got = acrossFleet(t, caches, third, src, 300)
		if n := src.n.Load() - before; n == 1 || time.Now().After(deadline) {
			if n != 1 {
				t.Errorf("%d exchanges for a new context after Redis came back, want 1", n)
			}
			break
		}
		third.Scope += "x"
		before = src.n.Load()
	}
	for tok := range got {
		if strings.HasPrefix(tok, "error") {
			t.Fatalf("a request failed after Redis came back: %v", got)
		}
	}
}

// A sealed value moved to another token context's name does not open: the
// replica exchanges for its own context and never serves the other's
// token.
func TestSharedValueBoundToItsKey(t *testing.T) {
	srv := redistest.Start(t)
	caches := fleet(t, srv, 2, noPolicies, &storeErrors{})
	src := &partnerSource{}
	if _, err := caches[0].Token(context.Background(), testKey, src); err != nil {
		t.Fatal(err)
	}
	other := testKey
	other.Resource = "https://other.example.com/fhir"
	r := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer r.Close()
	ctx := context.Background()
	v, err := r.Get(ctx, "cqgate:tok:"+cluster.Ref(testKey.String())).Bytes()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Set(ctx, "cqgate:tok:"+cluster.Ref(other.String()), v, time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	tok, err := caches[1].Token(ctx, other, src)
	if err != nil {
		t.Fatal(err)
	}
	if tok.AccessToken == "secret-token-1" {
		t.Fatal("a token context was served another context's token")
	}
}

// docs/scaling.md: "A token a partner refuses within
// tokens.min_interval of the fleet's last exchange for it is not replaced
// by any replica until the interval has passed (503 with Retry-After),
// whichever replica asks." That holds on a replica that had not yet used
// the token context (cold L1: scaled out, restarted, or its state swept):
// the refusal marks the fleet's interval.
func TestSharedColdReplicaKeepsTheFleetsMinInterval(t *testing.T) {
	srv := redistest.Start(t)
	caches := fleet(t, srv, 3, CacheConfig{RefreshAhead: -1, MinInterval: time.Minute, FailureHold: -1}, &storeErrors{})
	src := &partnerSource{}
	for _, c := range caches[:2] {
		if tok, err := c.Token(context.Background(), testKey, src); err != nil || tok.AccessToken != "secret-token-1" {
			t.Fatalf("Token = %v, %v", tok, err)
		}
	}
	caches[0].Invalidate(testKey, "secret-token-1")
	dropped(t, caches[:2], testKey)

	// The third replica is asked now, seconds after the fleet's exchange.
	tok, err := caches[2].Token(context.Background(), testKey, src)
	if !errors.Is(err, ErrThrottled) {
		t.Errorf("cold replica: Token = %v, %v; want ErrThrottled", tok, err)
	}
	if n := src.n.Load(); n != 1 {
		t.Errorf("%d exchanges, want 1: the refusal came within the fleet's minimum interval", n)
	}
}

// noExpirySource issues tokens without expires_in, as RFC 6749 allows.
type noExpirySource struct{ partnerSource }

func (s *noExpirySource) Token(ctx context.Context) (*Token, error) {
	tok, err := s.partnerSource.Token(ctx)
	if tok != nil {
		tok.ExpiresIn, tok.Expiry = 0, time.Time{}
	}
	return tok, err
}

// A token without expires_in (RFC 6749 only recommends it) is assumed
// to live DefaultLifetime from its exchange: a replica that reads it from
// Redis later computes the refresh point of the replica that exchanged
// it, not one restarted from its own read.
func TestSharedTokenWithoutExpiresInKeepsItsLifetime(t *testing.T) {
	srv := redistest.Start(t)
	start := time.Now()
	later := 3 * time.Minute // B first needs the context 3 minutes after A's exchange
	cfgA := CacheConfig{RefreshAhead: -1, MinInterval: time.Minute, FailureHold: -1, Clock: func() time.Time { return start.Add(time.Since(start)) }}
	caches := fleet(t, srv, 1, cfgA, &storeErrors{})
	cfgB := cfgA
	cfgB.Clock = func() time.Time { return start.Add(later + time.Since(start)) }
	b := fleet(t, srv, 1, cfgB, &storeErrors{})
	src := &noExpirySource{}
	if _, err := caches[0].Token(context.Background(), testKey, src); err != nil {
		t.Fatal(err)
	}
	if _, err := b[0].Token(context.Background(), testKey, src); err != nil {
		t.Fatal(err)
	}
	if n := src.n.Load(); n != 1 {
		t.Fatalf("%d exchanges, want 1 (B should take A's token from Redis)", n)
	}
	ea, eb := caches[0].states[testKey].entry.Load(), b[0].states[testKey].entry.Load()
	if ea == nil || eb == nil {
		t.Fatal("no entries")
	}
	if d := eb.refreshAt.Sub(ea.refreshAt); d > time.Second {
		t.Errorf("replica B serves the token until %s after the exchange, replica A until %s: B's assumed lifetime restarted at its read (expiry %s vs %s)",
			eb.refreshAt.Sub(start).Round(time.Second), ea.refreshAt.Sub(start).Round(time.Second), eb.expiry.Sub(start).Round(time.Second), ea.expiry.Sub(start).Round(time.Second))
	}
}

// clockSource issues tokens valid for life on the given clock.
type clockSource struct {
	n     atomic.Int64
	clock func() time.Time
	life  time.Duration
}

func (s *clockSource) Token(context.Context) (*Token, error) {
	n := s.n.Add(1)
	return &Token{AccessToken: fmt.Sprintf("secret-token-%d", n), TokenType: "Bearer", ExpiresIn: s.life, Expiry: s.clock().Add(s.life)}, nil
}

// With a shared tier, a background refresh in the refresh-ahead window
// exchanges ahead of time: it does not take back from the tier the very
// token it is replacing (which every such refresh once did, so that a
// caller waited for an exchange at the refresh point).
func TestSharedBackgroundRefreshExchanges(t *testing.T) {
	srv := redistest.Start(t)
	var offset atomic.Int64
	start := time.Now()
	clock := func() time.Time { return start.Add(time.Since(start) + time.Duration(offset.Load())) }
	caches := fleet(t, srv, 1, CacheConfig{RefreshMargin: time.Minute, RefreshAhead: 2 * time.Minute, MinInterval: time.Minute, FailureHold: -1, Clock: clock}, &storeErrors{})
	c := caches[0]
	src := &clockSource{clock: clock, life: 10 * time.Minute}
	mustToken(t, c, src, "secret-token-1") // refresh at 9m, ahead from 7m

	waitFlight := func() {
		t.Helper()
		st := c.states[testKey]
		deadline := time.Now().Add(5 * time.Second)
		for {
			st.mu.Lock()
			f := st.flight
			st.mu.Unlock()
			if f == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Fatal("background refresh did not end")
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	offset.Store(int64(7*time.Minute + 30*time.Second)) // inside the refresh-ahead window
	mustToken(t, c, src, "secret-token-1")
	waitFlight()
	if got := c.Stats().BackgroundRefreshes; got != 1 {
		t.Fatalf("background refreshes = %d, want 1", got)
	}
	if n := src.n.Load(); n != 2 {
		t.Errorf("after a background refresh in the refresh-ahead window: %d exchanges, want 2 (the refresh took back the token it was replacing; shared hits %d)",
			n, c.Stats().SharedHits)
	}
}
