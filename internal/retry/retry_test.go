package retry

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cqgate/cqgate/internal/clocktest"
)

func TestDo(t *testing.T) {
	tests := []struct {
		name      string
		policy    Policy
		verdicts  []Verdict // what each attempt says; the last repeats
		deadline  time.Duration
		sleepErr  error
		wantCalls int
		wantWaits int
		wantErr   error
		wantEarly bool
	}{
		{name: "success ends at once", policy: Policy{Attempts: 5}, verdicts: []Verdict{Stop}, wantCalls: 1},
		{name: "retries until a stop", policy: Policy{Attempts: 5}, verdicts: []Verdict{Again, Again, Stop}, wantCalls: 3, wantWaits: 2},
		{name: "attempts bound retries", policy: Policy{Attempts: 3}, verdicts: []Verdict{Again}, wantCalls: 3, wantWaits: 2},
		{name: "zero attempts is one try", verdicts: []Verdict{Again}, wantCalls: 1},
		{name: "negative attempts is one try", policy: Policy{Attempts: -2}, verdicts: []Verdict{Again}, wantCalls: 1},
		{name: "a wait past the deadline is not begun", policy: Policy{Attempts: 5, Initial: time.Hour, Max: time.Hour}, verdicts: []Verdict{{Retry: true, After: time.Hour}}, deadline: time.Minute, wantCalls: 1, wantErr: context.DeadlineExceeded, wantEarly: true},
		{name: "an interrupted wait ends it", policy: Policy{Attempts: 5}, verdicts: []Verdict{Again}, sleepErr: context.Canceled, wantCalls: 1, wantWaits: 1, wantErr: context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			if tt.deadline > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.deadline)
				defer cancel()
			}
			rec := &clocktest.Sleeper{Err: tt.sleepErr}
			p := tt.policy
			p.Sleep = rec.Sleep
			calls := 0
			err := p.Do(ctx, func(context.Context) Verdict {
				v := tt.verdicts[min(calls, len(tt.verdicts)-1)]
				calls++
				return v
			})
			if calls != tt.wantCalls || len(rec.Waits()) != tt.wantWaits {
				t.Errorf("%d calls and %d waits, want %d and %d", calls, len(rec.Waits()), tt.wantCalls, tt.wantWaits)
			}
			if !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			var se *StoppedError
			if err != nil && (!errors.As(err, &se) || se.Early != tt.wantEarly) {
				t.Errorf("err = %#v, want a *StoppedError with Early %v", err, tt.wantEarly)
			}
		})
	}
}

func TestDoRetryAfterIsAFloor(t *testing.T) {
	rec := &clocktest.Sleeper{}
	p := Policy{Attempts: 3, Initial: time.Millisecond, Max: time.Millisecond, Sleep: rec.Sleep}
	_ = p.Do(context.Background(), func(context.Context) Verdict { return Verdict{Retry: true, After: 3 * time.Second} })
	for _, w := range rec.Waits() {
		if w < 3*time.Second {
			t.Errorf("wait %v, want at least the 3s asked for", w)
		}
	}
}

func TestDoStopsWhenContextEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	err := Policy{Attempts: 5, Sleep: func(context.Context, time.Duration) error { return nil }}.Do(ctx, func(context.Context) Verdict {
		calls++
		cancel()
		return Again
	})
	if calls != 1 || err != nil {
		t.Errorf("%d calls, err %v: want one call and no error once ctx is done", calls, err)
	}
}

func TestBackOff(t *testing.T) {
	tests := []struct {
		name   string
		policy Policy
		// lo and hi bound each of the first waits.
		lo, hi []time.Duration
	}{
		{
			name:   "full jitter, capped, doubling",
			policy: Policy{Initial: 100 * time.Millisecond, Max: 400 * time.Millisecond},
			lo:     []time.Duration{0, 0, 0, 0},
			hi:     []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 400 * time.Millisecond},
		},
		{
			name:   "initial clipped to max",
			policy: Policy{Initial: 5 * time.Second, Max: time.Second},
			lo:     []time.Duration{0, 0},
			hi:     []time.Duration{time.Second, time.Second},
		},
		{
			name:   "spread ±50%, growth 1.5",
			policy: Policy{Initial: time.Second, Max: time.Minute, Multiplier: 1.5, Jitter: Spread},
			lo:     []time.Duration{500 * time.Millisecond, 750 * time.Millisecond, 1125 * time.Millisecond},
			hi:     []time.Duration{1500 * time.Millisecond, 2250 * time.Millisecond, 3375 * time.Millisecond},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			distinct := map[time.Duration]bool{}
			for range 50 {
				b := tt.policy.BackOff()
				for i := range tt.hi {
					w := b.NextBackOff()
					if w < tt.lo[i] || w > tt.hi[i] {
						t.Fatalf("wait %d = %v, want within [%v, %v]", i, w, tt.lo[i], tt.hi[i])
					}
					distinct[w] = true
				}
			}
			if len(distinct) < 10 {
				t.Errorf("only %d distinct waits: no jitter?", len(distinct))
			}
		})
	}
}
