package procstat

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
)

// TCPMemory returns the bytes the kernel holds in TCP socket buffers,
// machine-wide (/proc/net/sockstat "TCP: ... mem <pages>"). A server's queue
// for a slow client continues in its kernel send buffer, which RSS does not
// show; on loopback the client side's receive buffers count here too.
func TCPMemory() (int64, error) {
	b, err := os.ReadFile("/proc/net/sockstat")
	if err != nil {
		return 0, fmt.Errorf("read tcp memory: %w", err)
	}
	return parseSockstatTCPMem(b, int64(os.Getpagesize()))
}

func parseSockstatTCPMem(b []byte, pageSize int64) (int64, error) {
	for line := range bytes.Lines(b) {
		rest, ok := bytes.CutPrefix(line, []byte("TCP:"))
		if !ok {
			continue
		}
		f := bytes.Fields(rest)
		for i := 0; i+1 < len(f); i += 2 {
			if string(f[i]) != "mem" {
				continue
			}
			pages, err := strconv.ParseInt(string(f[i+1]), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("parse sockstat TCP mem: %w", err)
			}
			return pages * pageSize, nil
		}
		return 0, fmt.Errorf("parse sockstat: TCP line without mem: %q", bytes.TrimSpace(line))
	}
	return 0, fmt.Errorf("parse sockstat: no TCP line")
}
