package proc

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"testing"
	"time"
)

func writeProc(t *testing.T, root string, pid int, stat, status string) {
	t.Helper()
	dir := filepath.Join(root, strconv.Itoa(pid))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "stat"), []byte(stat), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "status"), []byte(status), 0o644); err != nil {
		t.Fatal(err)
	}
}

const status = "Name:\tx\nVmPeak:\t  9000 kB\nVmHWM:\t    2048 kB\nVmRSS:\t    1024 kB\n"

func TestReadAt(t *testing.T) {
	tests := []struct {
		name    string
		stat    string
		status  string
		want    Sample
		wantErr bool
	}{
		{
			name:   "plain",
			stat:   "42 (cqgate) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 8 0 100 0 0",
			status: status,
			want:   Sample{CPU: 3 * time.Second, HWM: 2 << 20, RSS: 1 << 20},
		},
		{
			name:   "command with spaces and parentheses",
			stat:   "42 (nginx: worker (x) ) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 8 0 100 0 0",
			status: status,
			want:   Sample{CPU: 30 * time.Millisecond, HWM: 2 << 20, RSS: 1 << 20},
		},
		{name: "truncated stat", stat: "42 (x) S 1 2", status: status, wantErr: true},
		{name: "no memory lines", stat: "42 (x) S 1 42 42 0 -1 0 0 0 0 0 1 2 0 0 20 0 8 0 100 0 0", status: "Name:\tx\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			writeProc(t, root, 42, tt.stat, tt.status)
			got, err := readAt(root, 42)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err %v, want error %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestChildrenAt(t *testing.T) {
	root := t.TempDir()
	line := func(pid, ppid int) string {
		return strconv.Itoa(pid) + " (p q) S " + strconv.Itoa(ppid) + " 1 1 0 -1 0 0 0 0 0 1 2 0 0 20 0 1 0 1 0 0"
	}
	writeProc(t, root, 10, line(10, 1), status)
	writeProc(t, root, 11, line(11, 10), status)
	writeProc(t, root, 12, line(12, 10), status)
	writeProc(t, root, 13, line(13, 11), status)
	got, err := childrenAt(root, 10)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	if !slices.Equal(got, []int{11, 12}) {
		t.Errorf("children %v, want [11 12]", got)
	}
}

func TestReadLiveProcessTree(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Skipf("cannot start a child: %v", err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	self, err := Read(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if self.HWM <= 0 || self.RSS <= 0 || self.HWM < self.RSS {
		t.Errorf("own sample %+v", self)
	}
	kids, err := Children(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(kids, cmd.Process.Pid) {
		t.Errorf("children %v lack %d", kids, cmd.Process.Pid)
	}
	tree, err := ReadTree(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if tree.HWM <= self.HWM {
		t.Errorf("tree %+v does not add the child to %+v", tree, self)
	}
}

func TestParseSystem(t *testing.T) {
	tests := []struct {
		name    string
		stat    string
		want    System
		wantErr bool
	}{
		{
			name: "typical",
			stat: "cpu  100 10 50 1000 20 5 5 7 0 0\ncpu0 50 5 25 500 10 2 2 3 0 0\n",
			want: System{Busy: 1700 * time.Millisecond, Idle: 10200 * time.Millisecond, Steal: 70 * time.Millisecond},
		},
		{name: "no cpu line", stat: "intr 1 2 3\n", wantErr: true},
		{name: "short", stat: "cpu 1 2 3\n", wantErr: true},
		{name: "garbage", stat: "cpu 1 2 x 4 5 6 7 8\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseSystem([]byte(tt.stat))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err %v", err)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
	if _, err := ReadSystem(); err != nil {
		t.Errorf("ReadSystem on this machine: %v", err)
	}
}

// ResetPeak writes 5 to clear_refs, and fails when there is no such
// process.
func TestResetPeakAt(t *testing.T) {
	root := t.TempDir()
	writeProc(t, root, 42, "", status)
	refs := filepath.Join(root, "42", "clear_refs")
	if err := os.WriteFile(refs, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := resetPeakAt(root, 42); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(refs); string(b) != "5" {
		t.Errorf("clear_refs holds %q, want 5", b)
	}
	if err := resetPeakAt(root, 43); err == nil {
		t.Error("no error for a process that does not exist")
	}
}

// On this process: after a 64 MiB peak is given back, ResetPeak brings
// VmHWM down to about VmRSS.
func TestResetPeakOnThisProcess(t *testing.T) {
	big := make([]byte, 64<<20)
	for i := 0; i < len(big); i += 4096 {
		big[i] = 1
	}
	peak, err := Read(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	big = nil
	runtime.GC()
	debug.FreeOSMemory()
	if err := ResetPeak(os.Getpid()); err != nil {
		t.Skipf("this kernel or sandbox does not let the peak be reset: %v", err)
	}
	after, err := Read(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if after.HWM > peak.HWM-32<<20 || after.HWM < after.RSS {
		t.Errorf("VmHWM %d KiB after the reset (RSS %d KiB), %d KiB at the peak", after.HWM>>10, after.RSS>>10, peak.HWM>>10)
	}
	_ = big
}
