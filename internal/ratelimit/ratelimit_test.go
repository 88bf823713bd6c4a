package ratelimit

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cqgate/cqgate/internal/clocktest"
)

func TestWait(t *testing.T) {
	const oid = "1.2.3"
	type call struct {
		advance  time.Duration
		oid      string
		wantWait time.Duration // how long the call slept
		wantErr  time.Duration // >0: refused with this Retry-After
	}
	tests := []struct {
		name  string
		def   Limit
		per   map[string]Limit
		calls []call
	}{
		{"no limit", Limit{}, nil, []call{{oid: oid}, {oid: oid}, {oid: oid}}},
		{"burst goes at once, then refused without waiting", Limit{RequestsPerSecond: 10, Burst: 2}, nil, []call{
			{oid: oid}, {oid: oid},
			{oid: oid, wantErr: 100 * time.Millisecond},
			{advance: 100 * time.Millisecond, oid: oid},
		}},
		{"waits for its turn within max_wait", Limit{RequestsPerSecond: 10, Burst: 1, MaxWait: 150 * time.Millisecond}, nil, []call{
			{oid: oid},
			{oid: oid, wantWait: 100 * time.Millisecond},
			{oid: oid, wantWait: 100 * time.Millisecond},
		}},
		{"a zero burst still lets one through", Limit{RequestsPerSecond: 1}, nil, []call{
			{oid: oid}, {oid: oid, wantErr: time.Second},
		}},
		{"each organization has its own bucket", Limit{RequestsPerSecond: 1, Burst: 1}, nil, []call{
			{oid: "1.2.3"}, {oid: "1.2.4"}, {oid: "1.2.3", wantErr: time.Second},
		}},
		{"per-organization limit overrides the default", Limit{RequestsPerSecond: 1, Burst: 1},
			map[string]Limit{"1.2.9": {}}, []call{
				{oid: "1.2.9"}, {oid: "1.2.9"}, {oid: "1.2.9"},
				{oid: "1.2.3"}, {oid: "1.2.3", wantErr: time.Second},
			}},
		{"only the listed organization is limited", Limit{},
			map[string]Limit{"1.2.9": {RequestsPerSecond: 2, Burst: 1}}, []call{
				{oid: "1.2.3"}, {oid: "1.2.3"},
				{oid: "1.2.9"}, {oid: "1.2.9", wantErr: 500 * time.Millisecond},
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := clocktest.New(time.Date(2026, 11, 22, 8, 0, 0, 0, time.UTC))
			s := &clocktest.Sleeper{Clock: clock}
			l := New(tt.def, tt.per, WithClock(clock.Now), WithSleep(s.Sleep))
			for i, c := range tt.calls {
				clock.Advance(c.advance)
				s.Reset()
				err := l.Wait(context.Background(), c.oid)
				var le *LimitedError
				switch {
				case c.wantErr > 0 && !errors.As(err, &le):
					t.Fatalf("call %d: %v, want a LimitedError", i, err)
				case c.wantErr > 0:
					if le.RetryAfter() != c.wantErr || le.OID != c.oid {
						t.Errorf("call %d: retry after %s for %s, want %s for %s", i, le.RetryAfter(), le.OID, c.wantErr, c.oid)
					}
					if len(s.Waits()) != 0 {
						t.Errorf("call %d: refused after waiting %v; a refusal must be immediate", i, s.Waits())
					}
				case err != nil:
					t.Fatalf("call %d: %v", i, err)
				}
				var waited time.Duration
				for _, w := range s.Waits() {
					waited += w
				}
				if waited != c.wantWait {
					t.Errorf("call %d: waited %s, want %s", i, waited, c.wantWait)
				}
			}
		})
	}
}

// Turns queue up: with the clock standing still, each waits longer, and
// the first whose turn is past max_wait is refused.
func TestWaitRefusesBeyondMaxWait(t *testing.T) {
	clock := clocktest.New(time.Date(2026, 11, 22, 8, 0, 0, 0, time.UTC))
	l := New(Limit{RequestsPerSecond: 10, Burst: 1, MaxWait: 150 * time.Millisecond}, nil,
		WithClock(clock.Now), WithSleep(func(context.Context, time.Duration) error { return nil }))
	ctx := context.Background()
	for i := range 2 { // now, then 100ms away
		if err := l.Wait(ctx, "1.2.3"); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	err := l.Wait(ctx, "1.2.3") // 200ms away
	var le *LimitedError
	if !errors.As(err, &le) || le.Wait != 200*time.Millisecond {
		t.Fatalf("third call: %v, want refused with 200ms", err)
	}
	if !strings.Contains(err.Error(), "1.2.3") || !strings.Contains(err.Error(), "10 requests/s") {
		t.Errorf("error %q does not say which limit", err)
	}
}

// A caller that gives up while waiting gives its turn back.
func TestWaitCancelledGivesTheTurnBack(t *testing.T) {
	clock := clocktest.New(time.Date(2026, 11, 22, 8, 0, 0, 0, time.UTC))
	s := &clocktest.Sleeper{Clock: clock, Err: context.Canceled}
	l := New(Limit{RequestsPerSecond: 1, Burst: 1, MaxWait: 2 * time.Second}, nil, WithClock(clock.Now), WithSleep(s.Sleep))
	ctx := context.Background()
	if err := l.Wait(ctx, "1.2.3"); err != nil {
		t.Fatal(err)
	}
	if err := l.Wait(ctx, "1.2.3"); !errors.Is(err, context.Canceled) {
		t.Fatalf("%v, want context.Canceled", err)
	}
	// Had the cancelled turn been kept, the next would be 2s away.
	s.Err = nil
	s.Reset()
	if err := l.Wait(ctx, "1.2.3"); err != nil || len(s.Waits()) != 1 || s.Waits()[0] != time.Second {
		t.Fatalf("after a cancelled wait: %v, waited %v, want 1s", err, s.Waits())
	}
}

func TestRealSleepEndsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Fatalf("%v", err)
	}
	if err := sleep(context.Background(), time.Millisecond); err != nil {
		t.Fatal(err)
	}
}

func TestEnabled(t *testing.T) {
	var nilLimiter *Limiter
	if nilLimiter.Enabled() || nilLimiter.Wait(context.Background(), "1.2.3") != nil {
		t.Error("a nil Limiter must limit nothing")
	}
	for _, tt := range []struct {
		def  Limit
		per  map[string]Limit
		want bool
	}{
		{Limit{}, nil, false},
		{Limit{RequestsPerSecond: 1}, nil, true},
		{Limit{}, map[string]Limit{"1.2.3": {}}, false},
		{Limit{}, map[string]Limit{"1.2.3": {RequestsPerSecond: 5}}, true},
	} {
		if got := New(tt.def, tt.per).Enabled(); got != tt.want {
			t.Errorf("Enabled(%+v, %+v) = %v", tt.def, tt.per, got)
		}
	}
}
