package failure_test

import (
	"errors"
	"io/fs"
	"testing"

	"github.com/cqgate/cqgate/internal/failure"
)

func TestConfigError(t *testing.T) {
	tests := []struct {
		name     string
		err      *failure.ConfigError
		want     string
		wantIs   error
		wantNoIs error
	}{
		{
			name: "one problem",
			err:  &failure.ConfigError{Component: "cluster", Problems: []error{errors.New("cluster.redis.url: not set")}},
			want: "cluster: invalid configuration: cluster.redis.url: not set",
		},
		{
			name: "every problem, in order, each reachable",
			err: &failure.ConfigError{Component: "vault", Problems: []error{
				errors.New("address: not set"), &fs.PathError{Op: "open", Path: "/run/token", Err: fs.ErrNotExist},
			}},
			want:   "vault: invalid configuration: address: not set; open /run/token: file does not exist",
			wantIs: fs.ErrNotExist,
		},
		{
			name:     "no problem wrapped that was not reported",
			err:      &failure.ConfigError{Component: "vault", Problems: []error{errors.New("x")}},
			want:     "vault: invalid configuration: x",
			wantNoIs: fs.ErrNotExist,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error = tt.err
			if got := err.Error(); got != tt.want {
				t.Errorf("Error() = %q, want %q", got, tt.want)
			}
			var c failure.Classified
			if !errors.As(err, &c) || c.Kind() != failure.Misconfigured {
				t.Errorf("kind of %v is not %s", err, failure.Misconfigured)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("errors.Is(%v, %v) = false", err, tt.wantIs)
			}
			if tt.wantNoIs != nil && errors.Is(err, tt.wantNoIs) {
				t.Errorf("errors.Is(%v, %v) = true", err, tt.wantNoIs)
			}
		})
	}
}
