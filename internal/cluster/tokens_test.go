package cluster

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cqgate/cqgate/internal/clocktest"
	"github.com/cqgate/cqgate/internal/ratelimit"
	"github.com/cqgate/cqgate/internal/redistest"
)

const cacheKey = "token_url=https%3A%2F%2Fauth.partner.example%2Ftoken&client_id=gateway.example.org&scope=system%2F%2A.read"

func TestStoreLoad(t *testing.T) {
	srv := redistest.Start(t)
	clock := clocktest.New(time.Now())
	a := replica(t, srv, nil, WithClock(clock.Now))
	b := replica(t, srv, nil)
	r := raw(t, srv)
	ctx := context.Background()

	if _, _, ok, err := b.Load(ctx, cacheKey); ok || err != nil {
		t.Fatalf("Load before Store: ok %v, %v", ok, err)
	}
	expiry := clock.Now().Add(5 * time.Minute).Truncate(time.Millisecond)
	if err := a.Store(ctx, cacheKey, []byte("token-one"), expiry); err != nil {
		t.Fatal(err)
	}
	got, gotExpiry, ok, err := b.Load(ctx, cacheKey)
	if err != nil || !ok || string(got) != "token-one" || !gotExpiry.Equal(expiry) {
		t.Fatalf("another replica's Load = %q, %s, %v, %v; want token-one, %s", got, gotExpiry, ok, err, expiry)
	}
	name := "cqgate:tok:" + Ref(cacheKey)
	pttl := r.PTTL(ctx, name).Val()
	if want := 5*time.Minute - DefaultStoreMargin; pttl > want || pttl < want-time.Second {
		t.Errorf("PTTL %s, want about %s (token expiry minus the margin)", pttl, want)
	}

	// A value with less life left than the margin is not stored.
	if err := a.Store(ctx, "other", []byte("token-two"), clock.Now().Add(DefaultStoreMargin/2)); err != nil {
		t.Fatal(err)
	}
	if n := r.Exists(ctx, "cqgate:tok:"+Ref("other")).Val(); n != 0 {
		t.Error("a value about to expire was stored")
	}
}

func TestInvalidate(t *testing.T) {
	srv := redistest.Start(t)
	a := replica(t, srv, nil)
	b := replica(t, srv, nil)
	subscribed(t, srv, a, b)
	ctx := context.Background()

	var mu sync.Mutex
	var got []Invalidation
	stop := b.OnInvalidation(func(inv Invalidation) {
		mu.Lock()
		got = append(got, inv)
		mu.Unlock()
	})
	defer stop()
	received := func(n int) []Invalidation {
		eventually(t, 2*time.Second, "invalidation received", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(got) >= n
		})
		mu.Lock()
		defer mu.Unlock()
		return append([]Invalidation(nil), got...)
	}

	exp := time.Now().Add(time.Hour)
	if err := a.Store(ctx, cacheKey, []byte("new-token"), exp); err != nil {
		t.Fatal(err)
	}
	// A 401 for an older token leaves the newer one in place, but still
	// tells every replica to drop the old one.
	removed, err := a.Invalidate(ctx, cacheKey, []byte("old-token"))
	if err != nil || removed {
		t.Fatalf("Invalidate(old) = %v, %v; want not removed", removed, err)
	}
	if v, _, ok, _ := b.Load(ctx, cacheKey); !ok || string(v) != "new-token" {
		t.Fatalf("after invalidating an older token, Load = %q, %v", v, ok)
	}
	inv := received(1)[0]
	if !inv.Matches(cacheKey, []byte("old-token")) || inv.Matches(cacheKey, []byte("new-token")) || inv.Matches("other", []byte("old-token")) {
		t.Errorf("invalidation %+v matches the wrong token or key", inv)
	}

	removed, err = a.Invalidate(ctx, cacheKey, []byte("new-token"))
	if err != nil || !removed {
		t.Fatalf("Invalidate(current) = %v, %v; want removed", removed, err)
	}
	if _, _, ok, _ := b.Load(ctx, cacheKey); ok {
		t.Error("invalidated token still loads")
	}
	if inv := received(2)[1]; !inv.Matches(cacheKey, []byte("new-token")) || inv.Ref != Ref(cacheKey) {
		t.Errorf("second invalidation %+v does not match the token", inv)
	}
	stop()
	if _, err := a.Invalidate(ctx, cacheKey, []byte("x")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if n := len(received(2)); n != 2 {
		t.Errorf("%d invalidations after stop, want none", n-2)
	}
}

// A value copied to another key does not open there; a value sealed
// under a key a replica lacks is an error, never plaintext.
func TestLoadRefusesMovedAndForeignValues(t *testing.T) {
	srv := redistest.Start(t)
	obs := &observer{}
	a := replica(t, srv, nil, WithObserver(obs))
	r := raw(t, srv)
	ctx := context.Background()
	exp := time.Now().Add(time.Hour)
	if err := a.Store(ctx, "key-a", []byte("token-a"), exp); err != nil {
		t.Fatal(err)
	}
	sealed := r.Get(ctx, "cqgate:tok:"+Ref("key-a")).Val()
	r.Set(ctx, "cqgate:tok:"+Ref("key-b"), sealed, time.Hour)
	v, _, ok, err := a.Load(ctx, "key-b")
	var se *StoreError
	if !errors.As(err, &se) || se.Op != OpLoad || !errors.Is(err, ErrTampered) || ok || v != nil {
		t.Fatalf("Load of a moved value = %q, %v, %v; want a StoreError{load} wrapping ErrTampered", v, ok, err)
	}

	foreign := replica(t, srv, func(c *Config) { c.EncryptionKey = testKey(9) })
	if err := foreign.Store(ctx, "key-c", []byte("token-c"), exp); err != nil {
		t.Fatal(err)
	}
	if v, _, ok, err := a.Load(ctx, "key-c"); !errors.Is(err, ErrUnknownKey) || ok || v != nil {
		t.Fatalf("Load of a value under another key = %q, %v, %v; want ErrUnknownKey", v, ok, err)
	}
	if obs.count(OpLoad) != 2 {
		t.Errorf("observer counted %d load errors, want 2", obs.count(OpLoad))
	}
}

// During a key rotation, replicas with the new key as current and the
// old as previous read what the others stored, and vice versa once all
// hold both.
func TestRotationAcrossReplicas(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	exp := time.Now().Add(time.Hour)
	old := replica(t, srv, func(c *Config) { c.EncryptionKey = "k1:" + testKey(1) })
	if err := old.Store(ctx, cacheKey, []byte("sealed-under-k1"), exp); err != nil {
		t.Fatal(err)
	}
	rotated := replica(t, srv, func(c *Config) {
		c.EncryptionKey = "k2:" + testKey(2)
		c.PreviousEncryptionKeys = []string{"k1:" + testKey(1)}
	})
	if v, _, ok, err := rotated.Load(ctx, cacheKey); err != nil || !ok || string(v) != "sealed-under-k1" {
		t.Fatalf("rotated replica reading an old value: %q, %v, %v", v, ok, err)
	}
	if err := rotated.Store(ctx, cacheKey, []byte("sealed-under-k2"), exp); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := old.Load(ctx, cacheKey); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("replica without k2: %v, want ErrUnknownKey", err)
	}
	if !strings.Contains(raw(t, srv).Get(ctx, "cqgate:tok:"+Ref(cacheKey)).Val(), "k2") {
		t.Error("stored value does not carry key id k2")
	}
}

// Nothing in Redis, keys or values or published messages, contains a
// token, a cache key or a client id in plaintext.
func TestNoPlaintextInRedis(t *testing.T) {
	srv := redistest.Start(t)
	r := raw(t, srv)
	ctx := context.Background()
	spy := r.PSubscribe(ctx, "*")
	defer spy.Close()
	if _, err := spy.Receive(ctx); err != nil {
		t.Fatal(err)
	}
	a := replica(t, srv, nil)
	b := replica(t, srv, nil)
	subscribed(t, srv, a, b)

	tokens := [][]byte{[]byte("eyJhbGciOiJSUzM4NCJ9.access-token-one.sig"), []byte("opaque-token-2f9c1d"), []byte("eyJraWQiOiJ4In0.access-token-three.sig")}
	exp := time.Now().Add(time.Hour)
	for i, tok := range tokens {
		c := []*Cluster{a, b}[i%2]
		lease, ok, err := c.Lock(ctx, cacheKey, time.Minute)
		if err != nil || !ok {
			t.Fatalf("Lock: %v %v", ok, err)
		}
		if err := c.Store(ctx, cacheKey, tok, exp); err != nil {
			t.Fatal(err)
		}
		if err := lease.Release(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := c.MinInterval(ctx, cacheKey, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.Invalidate(ctx, cacheKey, tokens[1]); err != nil {
		t.Fatal(err)
	}
	if err := a.Store(ctx, "identity=second&"+cacheKey, tokens[0], exp); err != nil {
		t.Fatal(err)
	}
	if err := a.RateLimiter(ratelimit.Limit{RequestsPerSecond: 5, Burst: 1}, nil, nil).Wait(ctx, "2.16.840.1.113883.3.13.1"); err != nil {
		t.Fatal(err)
	}

	forbidden := [][]byte{[]byte(cacheKey), []byte("gateway.example.org"), []byte("auth.partner.example"), []byte("access-token"), []byte("opaque-token")}
	forbidden = append(forbidden, tokens...)
	check := func(where string, b []byte) {
		for _, f := range forbidden {
			if bytes.Contains(b, f) {
				t.Errorf("%s contains %q", where, f)
			}
		}
	}
	var n int
	iter := r.Scan(ctx, 0, "*", 0).Iterator()
	for iter.Next(ctx) {
		k := iter.Val()
		n++
		check("key name "+k, []byte(k))
		switch typ := r.Type(ctx, k).Val(); typ {
		case "string":
			check("value of "+k, []byte(r.Get(ctx, k).Val()))
		case "hash":
			for f, v := range r.HGetAll(ctx, k).Val() {
				check("hash field of "+k, []byte(f+v))
			}
		default:
			t.Errorf("key %s has type %s, which this scan does not read", k, typ)
		}
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	if n < 4 { // token x2, min interval, rate
		t.Errorf("scanned only %d keys; the run stored more", n)
	}
	var msgs int
	for {
		m, err := spy.ReceiveTimeout(ctx, 200*time.Millisecond)
		if err != nil {
			break
		}
		if msg, ok := m.(interface{ String() string }); ok {
			check("published message", []byte(msg.String()))
			msgs++
		}
	}
	if msgs < 7 { // 4 stores, 3 releases, 1 invalidation
		t.Errorf("saw %d published messages, want at least 7", msgs)
	}
}
