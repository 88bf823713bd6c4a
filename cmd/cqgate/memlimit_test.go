package main

import (
	"testing"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
)

func TestApplyMemoryLimit(t *testing.T) {
	tests := []struct {
		name    string
		mib     int64
		env     map[string]string
		want    int64 // limit set, 0: none
		wantLog string
	}{
		{name: "unset leaves Go's default", mib: 0},
		{name: "set", mib: 96, want: 96 << 20, wantLog: "cqgate: Go soft memory limit set"},
		{name: "GOMEMLIMIT wins", mib: 96, env: map[string]string{"GOMEMLIMIT": "200MiB"},
			wantLog: "cqgate: server.memory_limit_mib is ignored: GOMEMLIMIT is set in the environment"},
		{name: "empty GOMEMLIMIT does not count", mib: 64, env: map[string]string{"GOMEMLIMIT": ""}, want: 64 << 20,
			wantLog: "cqgate: Go soft memory limit set"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			log, hook := logtest.NewNullLogger()
			var set []int64
			got := applyMemoryLimit(tt.mib, func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok },
				func(n int64) int64 { set = append(set, n); return 0 }, log)
			if got != tt.want {
				t.Errorf("returned %d, want %d", got, tt.want)
			}
			switch {
			case tt.want == 0 && len(set) != 0:
				t.Errorf("set the limit to %v, want it left alone", set)
			case tt.want != 0 && (len(set) != 1 || set[0] != tt.want):
				t.Errorf("set %v, want [%d]", set, tt.want)
			}
			var msg string
			if e := hook.LastEntry(); e != nil {
				msg = e.Message
				if e.Level > logrus.InfoLevel {
					t.Errorf("logged at %s", e.Level)
				}
			}
			if msg != tt.wantLog {
				t.Errorf("logged %q, want %q", msg, tt.wantLog)
			}
		})
	}
}
