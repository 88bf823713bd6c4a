package cluster

import (
	"context"
	"testing"
	"time"

	"github.com/cqgate/cqgate/internal/ratelimit"
	"github.com/cqgate/cqgate/internal/redistest"
)

// Everything works for a Redis ACL user with only the rights doc.go
// lists, with the credentials supplied apart from the URL.
func TestACLUser(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	r := raw(t, srv)
	if err := r.Do(ctx, "ACL", "SETUSER", "cqgate", "on", ">acl-test-password", "resetkeys", "~cqgate:*", "~rate:cqgate:*",
		"resetchannels", "&cqgate:events", "-@all", "+get", "+set", "+del", "+exists", "+pexpire", "+pttl", "+eval", "+evalsha",
		"+publish", "+subscribe", "+ping", "+hello", "+time").Err(); err != nil {
		t.Fatal(err)
	}
	obs := &observer{}
	edit := func(c *Config) { c.Redis.Username, c.Redis.Password = "cqgate", "acl-test-password" }
	a := replica(t, srv, edit, WithObserver(obs))
	b := replica(t, srv, edit, WithObserver(obs))
	subscribed(t, srv, a, b)

	exp := time.Now().Add(time.Hour)
	lease, ok, err := a.Lock(ctx, cacheKey, time.Minute)
	if !ok || err != nil {
		t.Fatalf("Lock: %v, %v", ok, err)
	}
	if err := lease.Extend(ctx, time.Minute); err != nil {
		t.Fatalf("Extend: %v", err)
	}
	woken := make(chan error, 1)
	go func() { woken <- b.Wait(ctx, cacheKey) }()
	if err := a.Store(ctx, cacheKey, []byte("token"), exp); err != nil {
		t.Fatalf("Store: %v", err)
	}
	if err := <-woken; err != nil {
		t.Fatalf("Wait: %v", err)
	}
	if err := lease.Release(ctx); err != nil {
		t.Fatalf("Release: %v", err)
	}
	if v, _, ok, err := b.Load(ctx, cacheKey); !ok || err != nil || string(v) != "token" {
		t.Fatalf("Load: %v, %v", ok, err)
	}
	if removed, err := b.Invalidate(ctx, cacheKey, []byte("token")); !removed || err != nil {
		t.Fatalf("Invalidate: %v, %v", removed, err)
	}
	if turn, err := a.MinInterval(ctx, cacheKey, time.Minute); !turn.Allowed || err != nil {
		t.Fatalf("MinInterval: %+v, %v", turn, err)
	}
	if err := a.RateLimiter(ratelimit.Limit{RequestsPerSecond: 1, Burst: 1}, nil, nil).Wait(ctx, "1.2.3"); err != nil {
		t.Fatalf("RateLimiter: %v", err)
	}
	if len(obs.errs) != 0 {
		t.Errorf("errors with the ACL user: %v", obs.errs)
	}
	// The user really is confined.
	if err := r.Set(ctx, "other:key", "x", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := a.rdb.Get(ctx, "other:key").Err(); err == nil {
		t.Error("the ACL user read a key outside its patterns")
	}
}
