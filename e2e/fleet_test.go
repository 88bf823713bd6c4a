package e2e

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sirupsen/logrus"

	"github.com/cqgate/cqgate/config"
	"github.com/cqgate/cqgate/gateway"
	"github.com/cqgate/cqgate/internal/redistest"
)

// Issue 15, end to end: three gateway replicas (each its own in-process
// token cache) share one real redis-server and one fosite partner.

const fleetKey = "ZmxlZXQtdGVzdC1rZXktMzItYnl0ZXMtbG9uZy4uLi4=" // 32 bytes

// fleet is three replicas of one configuration, served on loopback.
type fleet struct {
	*world
	redis    *redistest.Server
	replicas []*httptest.Server
	next     atomic.Int64
}

func newFleet(t *testing.T) *fleet {
	t.Helper()
	srv := redistest.Start(t)
	var cfg *config.Config
	w := newWorld(t, worldOptions{flavor: "r4", tune: func(c *config.Config, _ *world) {
		c.Tokens.MinInterval = 0 // the revocation is replaced at once
		c.Cluster.Redis.URL = srv.URL()
		c.Cluster.EncryptionKey = fleetKey
		// A generous timeout for a busy test machine; the Redis-down
		// test still sees connection refused at once.
		c.Cluster.Timeout = time.Second
		cfg = c
	}})
	f := &fleet{world: w, redis: srv, replicas: []*httptest.Server{w.gateway}}
	t.Cleanup(func() { _ = w.gw.Close() })
	for range 2 {
		log := logrus.New()
		log.SetOutput(w.logs)
		log.SetFormatter(&logrus.JSONFormatter{})
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		g, err := gateway.New(ctx, cfg, gateway.Options{Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = g.Close() })
		wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
		if err := g.WaitReady(wctx); err != nil {
			t.Fatal(err)
		}
		wcancel()
		s := httptest.NewServer(g.Handler)
		t.Cleanup(s.Close)
		f.replicas = append(f.replicas, s)
	}
	// Every replica listens for the others' notifications.
	r := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer r.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		n, err := r.PubSubNumSub(context.Background(), "cqgate:events").Result()
		if err == nil && n["cqgate:events"] >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("replicas not subscribed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return f
}

// burst sends n concurrent GETs of the Patient, round robin over the
// replicas, and returns the failures.
func (f *fleet) burst(n int) []string {
	var mu sync.Mutex
	var failed []string
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if msg := f.get(); msg != "" {
				mu.Lock()
				failed = append(failed, msg)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return failed
}

// get sends one GET to the next replica; "" when it succeeded.
func (f *fleet) get() string {
	s := f.replicas[int(f.next.Add(1))%len(f.replicas)]
	resp, err := http.Get(s.URL + "/fhir/" + cernerOID + "/Patient/1316024")
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	var b strings.Builder
	_, _ = fmt.Fprint(&b, resp.StatusCode)
	if resp.StatusCode != http.StatusOK {
		return b.String()
	}
	return ""
}

func TestFleetOneExchangeRevocationAndRedisDown(t *testing.T) {
	f := newFleet(t)

	// 300 concurrent cold requests on three replicas: one exchange.
	if failed := f.burst(300); len(failed) > 0 {
		t.Fatalf("%d of 300 cold requests failed, e.g. %s\nlogs:\n%s", len(failed), failed[0], f.logs)
	}
	if n := f.auth.Exchanges(); n != 1 {
		t.Fatalf("%d token exchanges for 300 cold requests on 3 replicas, want 1", n)
	}

	// The partner revokes the token: every replica's requests are
	// refused once, and the fleet makes one new exchange.
	f.auth.ExpireAll()
	if failed := f.burst(300); len(failed) > 0 {
		t.Fatalf("%d of 300 requests after the revocation failed, e.g. %s; %d exchanges\nlogs:\n%s", len(failed), failed[0], f.auth.Exchanges(), f.logs)
	}
	if n := f.auth.Exchanges(); n != 2 {
		t.Fatalf("%d token exchanges after one revocation, want 2 in all", n)
	}

	// Nothing in Redis is a token, an assertion or a key, in plaintext
	// or encoded.
	f.scanRedis(t)

	// Redis dies mid-run: no request fails; the partner revokes again
	// while Redis is down, and each replica exchanges for itself (at
	// most once).
	var stop atomic.Bool
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failed []string
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				if msg := f.get(); msg != "" {
					mu.Lock()
					failed = append(failed, msg)
					mu.Unlock()
				}
			}
		}()
	}
	time.Sleep(100 * time.Millisecond)
	f.redis.Kill()
	time.Sleep(200 * time.Millisecond)
	f.auth.ExpireAll()
	for i, s := range f.replicas {
		if resp, err := http.Get(s.URL + "/readyz"); err != nil || resp.StatusCode != http.StatusOK {
			t.Errorf("replica %d not ready while Redis is down: %v %v", i, resp, err)
		} else {
			resp.Body.Close()
		}
	}
	time.Sleep(300 * time.Millisecond)
	stop.Store(true)
	wg.Wait()
	if len(failed) > 0 {
		t.Fatalf("%d requests failed while Redis was down, e.g. %s\nlogs:\n%s", len(failed), failed[0], f.logs)
	}
	t.Logf("exchanges in all: %d (1 cold, 1 revocation, then Redis down and a second revocation)", f.auth.Exchanges())
	if n := f.auth.Exchanges(); n < 3 || n > 5 {
		t.Errorf("%d exchanges in all after a revocation with Redis down, want 3 to 5 (at most one per replica)", n)
	}
	if !strings.Contains(f.logs.String(), "the shared Redis failed") {
		t.Error("Redis failures were not logged")
	}
	f.assertNoSecrets()
}

// scanRedis reads every key and value in Redis and looks for every access
// token fosite issued, every client assertion (and its signature) and the
// private key, as they are, in base64 (standard and URL) and
// percent-encoded.
func (f *fleet) scanRedis(t *testing.T) {
	t.Helper()
	r := redis.NewClient(&redis.Options{Addr: f.redis.Addr()})
	defer r.Close()
	ctx := context.Background()
	var dump []string
	iter := r.Scan(ctx, 0, "*", 100).Iterator()
	for iter.Next(ctx) {
		k := iter.Val()
		dump = append(dump, k)
		if v, err := r.Get(ctx, k).Result(); err == nil {
			dump = append(dump, v)
		}
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	if len(dump) == 0 {
		t.Fatal("Redis holds nothing: the tokens were not shared")
	}
	secrets := map[string]string{}
	for i, tok := range f.auth.AccessTokens() {
		secrets[fmt.Sprintf("access token #%d", i)] = tok
	}
	for i, a := range f.auth.Assertions() {
		secrets[fmt.Sprintf("assertion #%d", i)] = a
		if parts := strings.Split(a, "."); len(parts) == 3 {
			secrets[fmt.Sprintf("assertion #%d signature", i)] = parts[2]
		}
	}
	for i, line := range strings.Split(string(f.keyPEM), "\n") {
		if len(line) > 40 && !strings.HasPrefix(line, "-----") {
			secrets[fmt.Sprintf("private key line %d", i)] = line
		}
	}
	if len(f.auth.AccessTokens()) < 2 {
		t.Fatal("no tokens to look for")
	}
	for what, s := range secrets {
		forms := map[string]string{
			"plain": s, "base64": base64.StdEncoding.EncodeToString([]byte(s)), "base64url": base64.RawURLEncoding.EncodeToString([]byte(s)),
			"percent-encoded": url.QueryEscape(s),
		}
		for form, needle := range forms {
			for _, h := range dump {
				if strings.Contains(h, needle) {
					t.Errorf("Redis holds %s (%s)", what, form)
				}
			}
		}
	}
}
