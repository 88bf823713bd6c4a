package outcome

import (
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/cqgate/cqgate/assertion"
	"github.com/cqgate/cqgate/internal/failure"
)

type waitError struct{ d time.Duration }

func (e waitError) Error() string             { return "limited" }
func (e waitError) RetryAfter() time.Duration { return e.d }

func TestWriteErrorRetryAfter(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		wantStatus int
		want       string
	}{
		{"rate limit, rounded up", failure.Errorf(failure.Throttled, "%w", waitError{1500 * time.Millisecond}), 429, "2"},
		{"rate limit under a second says 1", failure.Errorf(failure.Throttled, "%w", waitError{10 * time.Millisecond}), 429, "1"},
		{"exchange throttled", fmt.Errorf("x: %w", &assertion.ThrottledError{RetryAt: time.Now().Add(30 * time.Second)}), 503, "30"},
		{"nothing to wait for", failure.Errorf(failure.Invalid, "bad"), 400, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			WriteError(w, tt.err)
			if w.Code != tt.wantStatus {
				t.Errorf("status %d, want %d", w.Code, tt.wantStatus)
			}
			if got := w.Header().Get("Retry-After"); got != tt.want && !(tt.want == "30" && got == "29") {
				t.Errorf("Retry-After %q, want %q", got, tt.want)
			}
		})
	}
}
