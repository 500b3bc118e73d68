package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/walcast/walcast/bench/internal/procstat"
)

// snapshot is one moment of the server's memory, as the kernel and the Go
// runtime tell it.
type snapshot struct {
	rss        int64
	goroutines int
	// From runtime.MemStats after a collection: heapInuse is live objects
	// and the free space in their spans, heapIdle-heapReleased what the
	// heap freed but has not returned to the kernel, which RSS still counts.
	heapInuse, stackInuse, heapIdle, heapReleased int64
	tcpMem                                         int64 // machine-wide, both ends of every loopback connection
	heapFile, goroutineFile                        string
}

// profile is one kind's snapshots against one server: before the attack
// and once its connections are held.
type profile struct {
	admin     string
	pid       int
	prefix    string // of the saved files' paths
	base, top snapshot
	err       error
}

func startProfile(dir, cfg, kind, admin string, pid int) (*profile, error) {
	p := &profile{admin: admin, pid: pid, prefix: filepath.Join(dir, strings.ReplaceAll(cfg+"-"+kind, " ", "-"))}
	var err error
	p.base, err = p.take("base")
	if err != nil {
		return nil, fmt.Errorf("profile before the attack: %w", err)
	}
	return p, nil
}

// held is attack's hook for when the connections are held.
func (p *profile) held(string) {
	p.top, p.err = p.take("held")
}

func (p *profile) take(when string) (snapshot, error) {
	s := snapshot{heapFile: p.prefix + "-" + when + ".heap.pb.gz", goroutineFile: p.prefix + "-" + when + ".goroutine.pb.gz"}
	// gc=1: what is live now, not what the last cycle happened to leave.
	heap, err := p.get("/debug/pprof/heap?gc=1")
	if err != nil {
		return s, err
	}
	goroutines, err := p.get("/debug/pprof/goroutine")
	if err != nil {
		return s, err
	}
	for file, b := range map[string][]byte{s.heapFile: heap, s.goroutineFile: goroutines} {
		if err := os.WriteFile(file, b, 0o644); err != nil {
			return s, fmt.Errorf("save a profile: %w", err)
		}
	}
	stats, err := p.get("/debug/pprof/heap?debug=1")
	if err != nil {
		return s, err
	}
	for name, v := range map[string]*int64{"HeapInuse": &s.heapInuse, "Stack": &s.stackInuse, "HeapIdle": &s.heapIdle, "HeapReleased": &s.heapReleased} {
		if *v, err = memStat(stats, name); err != nil {
			return s, err
		}
	}
	count, err := p.get("/debug/pprof/goroutine?debug=1")
	if err != nil {
		return s, err
	}
	first, _, _ := bytes.Cut(count, []byte("\n"))
	if s.goroutines, err = strconv.Atoi(strings.TrimPrefix(string(first), "goroutine profile: total ")); err != nil {
		return s, fmt.Errorf("goroutine count in %q: %w", first, err)
	}
	if s.rss, err = procstat.RSS(p.pid); err != nil {
		return s, err
	}
	if s.tcpMem, err = procstat.TCPMemory(); err != nil {
		return s, err
	}
	return s, nil
}

func (p *profile) get(path string) ([]byte, error) {
	c := http.Client{Timeout: 30 * time.Second}
	res, err := c.Get("http://" + p.admin + path)
	if err != nil {
		return nil, fmt.Errorf("profiler: %w", err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return nil, fmt.Errorf("profiler %s: %w", path, err)
	}
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("profiler %s: %s", path, res.Status)
	}
	return b, nil
}

// memStat reads "# Name = N" from the runtime.MemStats that
// /debug/pprof/heap?debug=1 ends with; of "# Stack = inuse / sys", inuse.
func memStat(text []byte, name string) (int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(text))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "# "+name+" = "); ok {
			v, _, _ = strings.Cut(v, " ")
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, fmt.Errorf("no %s in the heap profile's statistics", name)
}

// topKind is the kind whose profiles' top entries are printed.
const topKind = "trickling POST"

// printProfiles says, for each kind with a profile, where the RSS its
// held connections added went, per accepted connection.
func (r report) printProfiles() {
	var profiled bool
	for _, k := range r.kinds {
		profiled = profiled || k.profile != nil
	}
	if !profiled {
		return
	}
	fmt.Printf("where the held RSS went, KB per accepted connection (after a GC, over the same before the attack; kernel TCP buffers machine-wide, both ends, not in RSS):\n")
	tw := tabwriter.NewWriter(os.Stdout, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "kind\taccepted\tgoroutines +\tRSS\tGo heap in use\tgoroutine stacks\theap freed, not returned\trest of RSS\tkernel TCP buffers")
	for _, k := range r.kinds {
		p := k.profile
		if p == nil {
			continue
		}
		if p.err != nil {
			fmt.Fprintf(tw, "%s\t%d\tprofile failed: %v\n", k.name, k.accepted, p.err)
			continue
		}
		per := func(b int64) string {
			if k.accepted == 0 {
				return "-"
			}
			return fmt.Sprintf("%.1f", float64(b)/1024/float64(k.accepted))
		}
		rss := p.top.rss - p.base.rss
		heap := p.top.heapInuse - p.base.heapInuse
		stacks := p.top.stackInuse - p.base.stackInuse
		idle := (p.top.heapIdle - p.top.heapReleased) - (p.base.heapIdle - p.base.heapReleased)
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\n", k.name, k.accepted, p.top.goroutines-p.base.goroutines,
			per(rss), per(heap), per(stacks), per(idle), per(rss-heap-stacks-idle), per(p.top.tcpMem-p.base.tcpMem))
	}
	tw.Flush()
	for _, k := range r.kinds {
		if p := k.profile; p != nil && p.err == nil && k.name == topKind {
			fmt.Printf("%s, held over before the attack (the heap profile samples one allocation per 512 KiB, scaled up):\n", k.name)
			printTop(p.base.heapFile, p.top.heapFile, "-sample_index=inuse_space", "-nodecount=15")
			printTop(p.base.goroutineFile, p.top.goroutineFile, "-nodecount=8")
		}
	}
}

func printTop(base, held string, args ...string) {
	cmd := exec.Command("go", append(append([]string{"tool", "pprof", "-top"}, args...), "-diff_base", base, held)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		fmt.Printf("go tool pprof: %v\n%s", err, out)
		return
	}
	os.Stdout.Write(out)
}
