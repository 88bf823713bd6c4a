package redistest

import (
	"fmt"
	"strings"
	"testing"
)

func TestStartKillRestart(t *testing.T) {
	srv := Start(t)
	if err := ping(srv.Addr()); err != nil {
		t.Fatalf("started server: %v", err)
	}
	if got, want := srv.URL(), "redis://"+srv.Addr()+"/0"; got != want {
		t.Errorf("URL %q, want %q", got, want)
	}
	srv.Kill()
	if err := ping(srv.Addr()); err == nil {
		t.Fatal("killed server still answers PING")
	}
	srv.Restart()
	if err := ping(srv.Addr()); err != nil {
		t.Fatalf("restarted server: %v", err)
	}
}

func TestFreezeThaw(t *testing.T) {
	srv := Start(t)
	srv.Freeze()
	if err := ping(srv.Addr()); err == nil {
		t.Fatal("frozen server answered PING")
	}
	srv.Thaw()
	if err := ping(srv.Addr()); err != nil {
		t.Fatalf("thawed server: %v", err)
	}
}

// recorder stands in for the test given to Start, to see whether a
// missing binary skips or fails.
type recorder struct {
	testing.TB
	skipped, failed string
}

type stopped struct{}

func (r *recorder) Helper() {}
func (r *recorder) Skip(args ...any) {
	r.skipped = fmt.Sprint(args...)
	panic(stopped{})
}
func (r *recorder) Fatal(args ...any) {
	r.failed = fmt.Sprint(args...)
	panic(stopped{})
}

func TestMissingBinary(t *testing.T) {
	for _, tt := range []struct {
		ci       string
		wantFail bool
	}{{"", false}, {"false", false}, {"true", true}} {
		t.Run("CI="+tt.ci, func(t *testing.T) {
			t.Setenv("PATH", t.TempDir())
			t.Setenv("CI", tt.ci)
			r := &recorder{TB: t}
			func() {
				defer func() {
					if p := recover(); p != nil {
						if _, ok := p.(stopped); !ok {
							panic(p)
						}
					}
				}()
				Start(r)
			}()
			got := r.skipped
			if tt.wantFail {
				got = r.failed
			}
			if got == "" || (tt.wantFail && r.skipped != "") || (!tt.wantFail && r.failed != "") {
				t.Fatalf("skipped %q, failed %q; want only a %s", r.skipped, r.failed, map[bool]string{true: "failure", false: "skip"}[tt.wantFail])
			}
			if !strings.Contains(got, InstallHint) {
				t.Errorf("%q does not give the install hint", got)
			}
		})
	}
}
