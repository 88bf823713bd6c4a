package proc

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// userHZ is the unit of the times in /proc/<pid>/stat (sysconf(_SC_CLK_TCK)),
// fixed at 100 by the Linux user-space ABI.
const userHZ = 100

// Sample is one reading of a process (or a process tree).
type Sample struct {
	// CPU is user plus system time consumed so far.
	CPU time.Duration
	// HWM is the peak resident set size (VmHWM), RSS the current one
	// (VmRSS), in bytes.
	HWM, RSS int64
}

// Add returns the sum of s and o.
func (s Sample) Add(o Sample) Sample {
	return Sample{CPU: s.CPU + o.CPU, HWM: s.HWM + o.HWM, RSS: s.RSS + o.RSS}
}

// Read reads process pid.
func Read(pid int) (Sample, error) {
	return readAt("/proc", pid)
}

// ReadTree reads pid and its direct children (nginx's master and
// workers), adding them up. Peak memory added up over-counts pages the
// processes share.
func ReadTree(pid int) (Sample, error) {
	s, err := Read(pid)
	if err != nil {
		return Sample{}, err
	}
	kids, err := Children(pid)
	if err != nil {
		return Sample{}, err
	}
	for _, k := range kids {
		ks, err := Read(k)
		if err != nil {
			continue // exited meanwhile
		}
		s = s.Add(ks)
	}
	return s, nil
}

func readAt(root string, pid int) (Sample, error) {
	dir := filepath.Join(root, strconv.Itoa(pid))
	stat, err := os.ReadFile(filepath.Join(dir, "stat"))
	if err != nil {
		return Sample{}, fmt.Errorf("proc: %w", err)
	}
	f, err := statFields(stat)
	if err != nil {
		return Sample{}, fmt.Errorf("proc: %s/stat: %w", dir, err)
	}
	// Fields after "(comm)": state is field 3, utime 14, stime 15.
	if len(f) < 13 {
		return Sample{}, fmt.Errorf("proc: %s/stat: %d fields", dir, len(f)+2)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return Sample{}, fmt.Errorf("proc: %s/stat: %w", dir, err)
	}
	s := Sample{CPU: time.Duration(ut+st) * time.Second / userHZ}
	status, err := os.ReadFile(filepath.Join(dir, "status"))
	if err != nil {
		return Sample{}, fmt.Errorf("proc: %w", err)
	}
	s.HWM, s.RSS, err = memory(status)
	if err != nil {
		return Sample{}, fmt.Errorf("proc: %s/status: %w", dir, err)
	}
	return s, nil
}

// statFields returns the fields of a stat line after "(comm)", which may
// itself hold spaces and parentheses.
func statFields(stat []byte) ([]string, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return nil, errors.New("no command name")
	}
	return strings.Fields(string(stat[i+1:])), nil
}

// parentOf returns the parent pid from a stat line.
func parentOf(stat []byte) (int, error) {
	f, err := statFields(stat)
	if err != nil || len(f) < 2 {
		return 0, errors.New("malformed stat")
	}
	return strconv.Atoi(f[1])
}

// memory reads VmHWM and VmRSS (in kB) from a status file.
func memory(status []byte) (hwm, rss int64, err error) {
	sc := bufio.NewScanner(bytes.NewReader(status))
	found := 0
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || (k != "VmHWM" && k != "VmRSS") {
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			return 0, 0, fmt.Errorf("%s: unexpected %q", k, v)
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("%s: %w", k, err)
		}
		if k == "VmHWM" {
			hwm = n << 10
		} else {
			rss = n << 10
		}
		found++
	}
	if found != 2 {
		return 0, 0, errors.New("no VmHWM/VmRSS (a kernel thread or a zombie?)")
	}
	return hwm, rss, nil
}

// Children returns the pids of pid's direct children.
func Children(pid int) ([]int, error) {
	return childrenAt("/proc", pid)
}

func childrenAt(root string, pid int) ([]int, error) {
	ents, err := os.ReadDir(root)
	if err != nil {
		return nil, fmt.Errorf("proc: %w", err)
	}
	var out []int
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join(root, e.Name(), "stat"))
		if err != nil {
			continue // exited meanwhile
		}
		if pp, err := parentOf(stat); err == nil && pp == pid {
			out = append(out, p)
		}
	}
	return out, nil
}

// System is the whole machine's CPU time so far, over all CPUs.
type System struct {
	// Busy is user, nice, system, irq and softirq time; Steal is time the
	// hypervisor gave to others; Idle includes iowait.
	Busy, Idle, Steal time.Duration
}

// ReadSystem reads the first line of /proc/stat.
func ReadSystem() (System, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return System{}, fmt.Errorf("proc: %w", err)
	}
	return parseSystem(b)
}

func parseSystem(stat []byte) (System, error) {
	line, _, _ := bytes.Cut(stat, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 9 || f[0] != "cpu" {
		return System{}, errors.New("proc: /proc/stat: no cpu line")
	}
	var v [8]int64
	for i := range v {
		n, err := strconv.ParseInt(f[i+1], 10, 64)
		if err != nil {
			return System{}, fmt.Errorf("proc: /proc/stat: %w", err)
		}
		v[i] = n
	}
	tick := func(n int64) time.Duration { return time.Duration(n) * time.Second / userHZ }
	// user nice system idle iowait irq softirq steal
	return System{
		Busy:  tick(v[0] + v[1] + v[2] + v[5] + v[6]),
		Idle:  tick(v[3] + v[4]),
		Steal: tick(v[7]),
	}, nil
}

// ResetPeak resets pid's peak resident set size (VmHWM) to its current
// one, by writing 5 to /proc/<pid>/clear_refs (Linux 4.0 and later; the
// caller must own the process), so that a later VmHWM is the peak
// since.
func ResetPeak(pid int) error {
	return resetPeakAt("/proc", pid)
}

func resetPeakAt(root string, pid int) error {
	f, err := os.OpenFile(filepath.Join(root, strconv.Itoa(pid), "clear_refs"), os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("proc: resetting the peak RSS: %w", err)
	}
	_, err = f.WriteString("5")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("proc: resetting the peak RSS: %w", err)
	}
	return nil
}
