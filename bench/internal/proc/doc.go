// Package proc reads a process's CPU time and peak resident memory from
// Linux's /proc, for the benchmark's per-request CPU cost and peak RSS.
//
// CPU is utime+stime from /proc/<pid>/stat, in clock ticks of
// USER_HZ (100 per second on Linux, whatever the kernel's HZ); peak
// memory is VmHWM from /proc/<pid>/status.
package proc
