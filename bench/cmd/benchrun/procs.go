package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cqgate/cqgate/bench/internal/proc"
)

// child is a process the benchmark started.
type child struct {
	name string
	cmd  *exec.Cmd
	log  string // its stdout and stderr
	done chan struct{}
	err  error
	// tree: account for its children too (nginx's workers).
	tree bool
}

// supervisor starts children and makes sure they all end.
type supervisor struct {
	dir     string
	pidFile string // every pid started is appended here, for run.sh's trap
	// taskset, when set, is the taskset binary startOn pins with.
	taskset string
	mu      sync.Mutex
	kids    []*child
}

// startOn starts a child pinned to cpus (taskset -c cpus, which execs
// the command, so the pid is the command's own) when s pins, else as
// start does.
func (s *supervisor) startOn(cpus, name string, env []string, path string, args ...string) (*child, error) {
	if s.taskset == "" || cpus == "" {
		return s.start(name, env, path, args...)
	}
	return s.start(name, env, s.taskset, append([]string{"-c", cpus, path}, args...)...)
}

func (s *supervisor) start(name string, env []string, path string, args ...string) (*child, error) {
	logPath := filepath.Join(s.dir, name+".log")
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(path, args...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.Env = append(os.Environ(), env...)
	// If the benchmark dies, so do its children.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		lf.Close()
		close(c.done)
	}()
	s.mu.Lock()
	s.kids = append(s.kids, c)
	s.mu.Unlock()
	s.recordPID(cmd.Process.Pid)
	return c, nil
}

func (s *supervisor) recordPID(pid int) {
	if s.pidFile == "" {
		return
	}
	f, err := os.OpenFile(s.pidFile, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return
	}
	fmt.Fprintln(f, pid)
	f.Close()
}

// stopAll ends every child: SIGTERM, then SIGKILL after a grace period;
// for process trees, the children that outlive their parent as well.
func (s *supervisor) stopAll() {
	s.mu.Lock()
	kids := s.kids
	s.mu.Unlock()
	for _, c := range kids {
		var grandkids []int
		if c.tree {
			grandkids, _ = proc.Children(c.cmd.Process.Pid)
		}
		c.stop()
		for _, pid := range grandkids {
			if p, err := os.FindProcess(pid); err == nil {
				_ = p.Signal(syscall.SIGKILL)
			}
		}
	}
}

// stop ends c: SIGTERM, then SIGKILL after a grace period. Stopping a
// child that has exited does nothing.
func (c *child) stop() {
	if c.exited() {
		return
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(3 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
}

func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

func (c *child) pid() int { return c.cmd.Process.Pid }

// sample reads the child's CPU and memory (with its children when tree).
func (c *child) sample() (proc.Sample, error) {
	if c.tree {
		return proc.ReadTree(c.pid())
	}
	return proc.Read(c.pid())
}

// logTail returns the end of the child's log, for error messages.
func (c *child) logTail() string {
	b, err := os.ReadFile(c.log)
	if err != nil {
		return ""
	}
	b = bytes.TrimSpace(b)
	if len(b) > 1500 {
		b = b[len(b)-1500:]
	}
	return string(b)
}

func (c *child) failure(what string, err error) error {
	state := "still running"
	if c.exited() {
		state = fmt.Sprintf("exited: %v", c.err)
	}
	return fmt.Errorf("%s: %s: %w (%s); log %s:\n%s", c.name, what, err, state, c.log, c.logTail())
}

// waitFile waits until path holds something, or the child exits.
func (c *child) waitFile(ctx context.Context, path string) (string, error) {
	for {
		if b, err := os.ReadFile(path); err == nil && len(bytes.TrimSpace(b)) > 0 {
			return string(bytes.TrimSpace(b)), nil
		}
		if err := c.pause(ctx); err != nil {
			return "", c.failure("waiting for "+filepath.Base(path), err)
		}
	}
}

// waitHTTP waits until GET url answers want.
func (c *child) waitHTTP(ctx context.Context, url string, want int) error {
	hc := &http.Client{Timeout: 2 * time.Second}
	var last string
	for {
		resp, err := hc.Get(url)
		if err == nil {
			body := make([]byte, 512)
			n, _ := resp.Body.Read(body)
			resp.Body.Close()
			if resp.StatusCode == want {
				return nil
			}
			last = fmt.Sprintf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(body[:n])))
		} else {
			last = err.Error()
		}
		if err := c.pause(ctx); err != nil {
			return c.failure(fmt.Sprintf("waiting for %d from %s (last: %s)", want, url, last), err)
		}
	}
}

// pause sleeps a little; it fails if ctx ends or the child exited.
func (c *child) pause(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-c.done:
		return errors.New("process exited")
	case <-time.After(25 * time.Millisecond):
		return nil
	}
}
