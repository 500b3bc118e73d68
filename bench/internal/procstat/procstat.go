// Package procstat reads a process's CPU time and resident memory from
// /proc, the figures the benchmarks charge to a server: they are the
// kernel's own accounting of that one process, so a load generator sharing
// the machine does not blur them.
package procstat

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"time"
)

// clockTicks is USER_HZ, the unit of utime/stime in /proc/PID/stat. It is
// 100 on every Linux architecture Go supports (the kernel fixes it for ABI
// compatibility), so it is not worth a cgo call to sysconf.
const clockTicks = 100

// CPU returns utime+stime of pid: the CPU the process has used so far,
// user and kernel, all threads.
func CPU(pid int) (time.Duration, error) {
	user, sys, err := Times(pid)
	return user + sys, err
}

// Times returns utime and stime of pid separately. On loopback the kernel
// half matters: a sender's write runs the receiver's TCP path too, so
// system time shows what the number of write calls costs.
func Times(pid int) (user, sys time.Duration, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, fmt.Errorf("read cpu of pid %d: %w", pid, err)
	}
	return parseStatTimes(b)
}

// parseStatTimes reads fields 14 and 15 (utime, stime) of /proc/PID/stat.
// The command name (field 2) may contain spaces and parentheses, so counting
// starts after its last ')'.
func parseStatTimes(b []byte) (user, sys time.Duration, err error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("parse /proc stat: no ')' after the command name")
	}
	fields := bytes.Fields(b[i+1:])
	// fields[0] is field 3 (state); utime is field 14, stime field 15.
	if len(fields) < 13 {
		return 0, 0, fmt.Errorf("parse /proc stat: %d fields after the command name, want >= 13", len(fields))
	}
	utime, err := strconv.ParseUint(string(fields[11]), 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("parse /proc stat utime: %w", err)
	}
	stime, err := strconv.ParseUint(string(fields[12]), 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("parse /proc stat stime: %w", err)
	}
	tick := time.Second / clockTicks
	return time.Duration(utime) * tick, time.Duration(stime) * tick, nil
}

// RSS returns the resident set size of pid in bytes (VmRSS).
func RSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("read rss of pid %d: %w", pid, err)
	}
	return parseStatusRSS(b)
}

func parseStatusRSS(b []byte) (int64, error) {
	for line := range bytes.Lines(b) {
		rest, ok := bytes.CutPrefix(line, []byte("VmRSS:"))
		if !ok {
			continue
		}
		fields := bytes.Fields(rest)
		if len(fields) != 2 || string(fields[1]) != "kB" {
			return 0, fmt.Errorf("parse VmRSS %q: want '<n> kB'", bytes.TrimSpace(rest))
		}
		kb, err := strconv.ParseInt(string(fields[0]), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parse VmRSS: %w", err)
		}
		return kb * 1024, nil
	}
	return 0, fmt.Errorf("parse /proc status: no VmRSS line (kernel thread or zombie?)")
}
