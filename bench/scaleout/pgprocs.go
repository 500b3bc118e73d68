package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
)

// pgProcs finds the PostgreSQL processes whose CPU the ladder reports: the
// walsender serving walcast's slot, and every child of the postmaster (the
// writers' backends, the walsender, the WAL writer, ...).
type pgProcs struct {
	postmaster int
}

// findPostmaster asks for the connection's own backend pid: its parent is
// the postmaster, which works however the test harness started the server.
func findPostmaster(ctx context.Context, c *pgx.Conn) (pgProcs, error) {
	var backend int
	if err := c.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&backend); err != nil {
		return pgProcs{}, fmt.Errorf("backend pid: %w", err)
	}
	ppid, err := parentOf(backend)
	if err != nil {
		return pgProcs{}, err
	}
	return pgProcs{postmaster: ppid}, nil
}

// walsender is the pid of the process sending walcast's slot: the active
// pid of the only active logical slot (0 when none is active).
func walsender(ctx context.Context, c *pgx.Conn) (int, error) {
	var pid int
	err := c.QueryRow(ctx, `SELECT coalesce(max(active_pid), 0) FROM pg_replication_slots WHERE active AND slot_type = 'logical'`).Scan(&pid)
	if err != nil {
		return 0, fmt.Errorf("walsender pid: %w", err)
	}
	return pid, nil
}

// snapshot is the CPU each of the postmaster's processes has used so far.
func (p pgProcs) snapshot() (map[int]time.Duration, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("list /proc: %w", err)
	}
	out := map[int]time.Duration{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if pid != p.postmaster {
			if pp, err := parentOf(pid); err != nil || pp != p.postmaster {
				continue
			}
		}
		if c, err := taskCPU(pid); err == nil {
			out[pid] = c
		}
	}
	return out, nil
}

// pgCPUDelta sums what the processes present in both snapshots used in
// between. Processes that started or ended inside the span (autovacuum
// workers) are left out: their share is small and cannot be split.
func pgCPUDelta(before, after map[int]time.Duration) time.Duration {
	var sum time.Duration
	for pid, a := range after {
		if b, ok := before[pid]; ok && a >= b {
			sum += a - b
		}
	}
	return sum
}

// parentOf reads field 4 (ppid) of /proc/PID/stat.
func parentOf(pid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("read stat of pid %d: %w", pid, err)
	}
	return parsePPID(b)
}

func parsePPID(b []byte) (int, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("parse /proc stat %q: no ')'", b)
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 2 {
		return 0, fmt.Errorf("parse /proc stat %q: too few fields", b)
	}
	return strconv.Atoi(string(f[1]))
}

// machineCPU reads the first line of /proc/stat: busy and total jiffies
// over all CPUs, so a span's busy share says how full the shared machine was.
func machineCPU() (busy, total int64, err error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, fmt.Errorf("read /proc/stat: %w", err)
	}
	return parseProcStat(b)
}

func parseProcStat(b []byte) (busy, total int64, err error) {
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := bytes.Fields(line)
	if len(f) < 5 || string(f[0]) != "cpu" {
		return 0, 0, fmt.Errorf("parse /proc/stat: first line %q", line)
	}
	var idle int64
	for i, v := range f[1:] {
		n, err := strconv.ParseInt(string(v), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("parse /proc/stat field %d: %w", i+1, err)
		}
		// guest and guest_nice (fields 9, 10) are already in user and nice.
		if i >= 8 {
			break
		}
		total += n
		if i == 3 || i == 4 { // idle, iowait
			idle += n
		}
	}
	return total - idle, total, nil
}
