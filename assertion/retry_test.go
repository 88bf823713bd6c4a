package assertion

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cqgate/cqgate/internal/clocktest"
)

// sequence answers the n-th request with steps[n] (the last one
// repeats).
func sequence(steps ...func(http.ResponseWriter, *http.Request, url.Values)) func(http.ResponseWriter, *http.Request, url.Values) {
	var mu sync.Mutex
	n := 0
	return func(w http.ResponseWriter, r *http.Request, form url.Values) {
		mu.Lock()
		step := steps[min(n, len(steps)-1)]
		n++
		mu.Unlock()
		step(w, r, form)
	}
}

func TestExchangeRetries(t *testing.T) {
	ok := jsonResponse(200, `{"access_token":"`+testAccessToken+`","token_type":"Bearer","expires_in":300}`)
	e500 := jsonResponse(500, `<html>oops</html>`)
	truncated := func(w http.ResponseWriter, _ *http.Request, _ url.Values) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", "100")
		w.WriteHeader(200)
		_, _ = io.WriteString(w, `{"access_`) // and the connection ends
	}
	tests := []struct {
		name      string
		attempts  int
		respond   func(http.ResponseWriter, *http.Request, url.Values)
		wantCalls int
		wantCode  int    // status of the final RetrieveError; 0: success
		wantOAuth string // its error code
	}{
		{"500, 500, 200", 0, sequence(e500, e500, ok), 3, 0, ""},
		{"503 then 200", 0, sequence(jsonResponse(503, ``), ok), 2, 0, ""},
		{"502 always", 0, jsonResponse(502, `bad gateway`), 3, 502, ""},
		{"fosite's expired assertion: 500 error", 0, jsonResponse(500, `{"error":"error","error_description":"The error is unrecognizable"}`), 3, 500, "error"},
		{"body cut off, then 200", 0, sequence(truncated, ok), 2, 0, ""},
		{"401 invalid_client", 0, jsonResponse(401, `{"error":"invalid_client"}`), 1, 401, "invalid_client"},
		{"400 invalid_grant", 0, jsonResponse(400, `{"error":"invalid_grant"}`), 1, 400, "invalid_grant"},
		{"400 invalid_scope", 0, jsonResponse(400, `{"error":"invalid_scope"}`), 1, 400, "invalid_scope"},
		{"400 unauthorized_client", 0, jsonResponse(400, `{"error":"unauthorized_client"}`), 1, 400, "unauthorized_client"},
		{"400 unsupported_grant_type", 0, jsonResponse(400, `{"error":"unsupported_grant_type"}`), 1, 400, "unsupported_grant_type"},
		{"500 invalid_client", 0, jsonResponse(500, `{"error":"invalid_client"}`), 1, 500, "invalid_client"},
		{"429", 0, jsonResponse(429, `{"error":"throttled"}`), 1, 429, "throttled"},
		{"404 HTML", 0, jsonResponse(404, `not found`), 1, 404, ""},
		{"200 without access_token", 0, jsonResponse(200, `{}`), 1, 200, ""},
		{"307", 0, func(w http.ResponseWriter, r *http.Request, _ url.Values) {
			http.Redirect(w, r, "https://elsewhere.example/token", http.StatusTemporaryRedirect)
		}, 1, 307, ""},
		{"retries off", 1, e500, 1, 500, ""},
		{"five attempts", 5, e500, 5, 500, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts := newTokenServer(t, tc.respond)
			e := newExchanger(t, newFakeClock(), ts.Client())
			sl := &clocktest.Sleeper{}
			e.Retry = RetryPolicy{Attempts: tc.attempts, Sleep: sl.Sleep}
			tok, err := e.Exchange(context.Background(), Request{TokenURL: ts.URL + "/token", ClientID: "c"})
			if ts.calls() != tc.wantCalls {
				t.Errorf("%d calls, want %d", ts.calls(), tc.wantCalls)
			}
			if len(sl.Waits()) != tc.wantCalls-1 {
				t.Errorf("%d waits, want %d", len(sl.Waits()), tc.wantCalls-1)
			}
			jtis := map[string]bool{}
			for _, f := range ts.forms {
				_, payload := rawSegments(t, f.Get("client_assertion"))
				jtis[payload["jti"].(string)] = true
			}
			if len(jtis) != ts.calls() {
				t.Errorf("%d distinct jti in %d attempts: an assertion was resent", len(jtis), ts.calls())
			}
			if tc.wantCode == 0 {
				if err != nil || tok.AccessToken != testAccessToken {
					t.Fatalf("Exchange = %v, %v", tok, err)
				}
				return
			}
			var re *RetrieveError
			if !errors.As(err, &re) || re.StatusCode != tc.wantCode || re.ErrorCode != tc.wantOAuth {
				t.Fatalf("err = %#v, want a RetrieveError %d %q", err, tc.wantCode, tc.wantOAuth)
			}
			for _, f := range ts.forms {
				checkNoLeaks(t, err, nil, f.Get("client_assertion"), testAccessToken)
			}
		})
	}
}

func TestExchangeRetryConnectionRefused(t *testing.T) {
	ts := httptest.NewServer(http.NotFoundHandler())
	addr := ts.URL
	ts.Close()
	e := newExchanger(t, newFakeClock(), nil)
	sl := &clocktest.Sleeper{}
	e.Retry.Sleep = sl.Sleep
	_, err := e.Exchange(context.Background(), Request{TokenURL: addr + "/token", ClientID: "c"})
	var re *RetrieveError
	if !errors.As(err, &re) || re.StatusCode != 0 || re.Err == nil {
		t.Fatalf("err = %v", err)
	}
	if len(sl.Waits()) != DefaultRetryAttempts-1 {
		t.Errorf("%d waits, want %d retries", len(sl.Waits()), DefaultRetryAttempts-1)
	}
}

func TestExchangeRetryBackoff(t *testing.T) {
	ts := newTokenServer(t, jsonResponse(503, ``))
	e := newExchanger(t, newFakeClock(), ts.Client())
	for range 20 { // the waits are random: look at many schedules
		sl := &clocktest.Sleeper{}
		e.Retry = RetryPolicy{Attempts: 8, InitialBackoff: 100 * time.Millisecond, MaxBackoff: 500 * time.Millisecond, Sleep: sl.Sleep}
		if _, err := e.Exchange(context.Background(), Request{TokenURL: ts.URL + "/token", ClientID: "c"}); err == nil {
			t.Fatal("no error")
		}
		if len(sl.Waits()) != 7 {
			t.Fatalf("%d waits, want 7", len(sl.Waits()))
		}
		caps := []time.Duration{100, 200, 400, 500, 500, 500, 500}
		for i, w := range sl.Waits() {
			if c := caps[i] * time.Millisecond; w < 0 || w >= c {
				t.Errorf("wait %d = %v, want in [0, %v)", i+1, w, c)
			}
		}
	}
}

func TestExchangeRetryContext(t *testing.T) {
	t.Run("deadline before the next attempt", func(t *testing.T) {
		ts := newTokenServer(t, jsonResponse(500, ``))
		e := newExchanger(t, newFakeClock(), ts.Client())
		sl := &clocktest.Sleeper{}
		e.Retry = RetryPolicy{InitialBackoff: time.Hour, MaxBackoff: time.Hour, Sleep: sl.Sleep}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		// The wait is uniform in [0, 1h): it passes the 10s deadline
		// unless it is very short, when the next attempt is allowed.
		_, err := e.Exchange(ctx, Request{TokenURL: ts.URL + "/token", ClientID: "c"})
		if ts.calls() == 1 {
			if len(sl.Waits()) != 0 {
				t.Error("waited although the deadline comes first")
			}
			if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "not retried") {
				t.Errorf("err = %v, want the last failure and the deadline", err)
			}
		}
		var re *RetrieveError
		if !errors.As(err, &re) || re.StatusCode != 500 {
			t.Errorf("err = %v, want the RetrieveError kept", err)
		}
	})
	t.Run("cancelled while waiting", func(t *testing.T) {
		ts := newTokenServer(t, jsonResponse(500, ``))
		e := newExchanger(t, newFakeClock(), ts.Client())
		ctx, cancel := context.WithCancel(context.Background())
		e.Retry.Sleep = func(ctx context.Context, _ time.Duration) error {
			cancel()
			return ctx.Err()
		}
		_, err := e.Exchange(ctx, Request{TokenURL: ts.URL + "/token", ClientID: "c"})
		var re *RetrieveError
		if !errors.Is(err, context.Canceled) || !errors.As(err, &re) || ts.calls() != 1 {
			t.Errorf("err = %v after %d calls, want cancellation after 1", err, ts.calls())
		}
	})
	t.Run("deadline during the request is not retried", func(t *testing.T) {
		ts := newTokenServer(t, func(w http.ResponseWriter, r *http.Request, _ url.Values) { <-r.Context().Done() })
		e := newExchanger(t, newFakeClock(), ts.Client())
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		_, err := e.Exchange(ctx, Request{TokenURL: ts.URL + "/token", ClientID: "c"})
		if !errors.Is(err, context.DeadlineExceeded) || ts.calls() != 1 {
			t.Errorf("err = %v after %d calls", err, ts.calls())
		}
	})
	t.Run("done before the first attempt", func(t *testing.T) {
		ts := newTokenServer(t, jsonResponse(500, ``))
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := newExchanger(t, newFakeClock(), ts.Client()).Exchange(ctx, Request{TokenURL: ts.URL + "/token", ClientID: "c"})
		if !errors.Is(err, context.Canceled) || ts.calls() != 0 {
			t.Errorf("err = %v after %d calls", err, ts.calls())
		}
	})
}

// A token endpoint's Retry-After is a floor for the wait before the next
// attempt (RFC 9110 section 10.2.3); one longer than MaxRetryAfter ends
// the retries at once, and the caller's answer carries it.
func TestExchangeHonoursRetryAfter(t *testing.T) {
	for _, tt := range []struct {
		name       string
		retryAfter string
		wantCalls  int
		wantWait   time.Duration // the least wait between attempts
	}{
		{"a wait within bounds", "2", 3, 2 * time.Second},
		{"a wait too long", "30", 1, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ts := newTokenServer(t, jsonResponse(503, `{"error":"temporarily_unavailable"}`, "Retry-After", tt.retryAfter))
			e := newExchanger(t, newFakeClock(), ts.Client())
			sl := &clocktest.Sleeper{}
			e.Retry = RetryPolicy{Sleep: sl.Sleep}
			_, err := e.Exchange(context.Background(), Request{TokenURL: ts.URL + "/token", ClientID: "c"})
			var re *RetrieveError
			if !errors.As(err, &re) || re.RetryAfter() <= 0 {
				t.Fatalf("err %v: want a RetrieveError with the Retry-After", err)
			}
			if n := ts.calls(); n != tt.wantCalls {
				t.Errorf("%d token requests, want %d", n, tt.wantCalls)
			}
			for i, w := range sl.Waits() {
				if w < tt.wantWait {
					t.Errorf("retry %d after %v, though the token endpoint asked for Retry-After: %s", i+1, w, tt.retryAfter)
				}
			}
		})
	}
}
