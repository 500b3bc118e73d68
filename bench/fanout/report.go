package main

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

func fmtMs(v *float64) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf("%.1f", *v)
}

func fmtDurMs(d time.Duration) string {
	if d < 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f", float64(d.Microseconds())/1e3)
}

func usPerMsg(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }

func mb(b int64) string { return fmt.Sprintf("%.0f", float64(b)/(1<<20)) }

func printRun(w io.Writer, r serverRun) {
	fmt.Fprintf(w, "\n== %s, %d clients + %d probes + %d slow (connected in %v): empty RSS %s MB, idle RSS %s MB, %.1f KB per idle connection\n",
		r.server, r.clients, r.probes, r.slow, r.connectTaking.Round(time.Millisecond), mb(r.emptyRSS), mb(r.idleRSS), r.idlePerConn()/1024)
	if b := idleBreakdown(r); b != "" {
		fmt.Fprintf(w, "   per idle connection, by the server's own count: %s\n", b)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "offered msg/s\tevents/s\tsent/events\tdelivered/offered\tCPU µs/msg\tsys µs\tCPU %\tclient CPU %\tp50 ms\tp99 ms\tclient p50\tp99\tRSS MB\tpeak MB\tTCP buf MB\tcut\tslow held\tslow got\t\t")
	for _, g := range r.rungs {
		verdict := "ok"
		if g.behind() {
			verdict = "BEHIND"
		}
		fmt.Fprintf(tw, "%.0f\t%.1f\t%d/%d\t%.4f\t%.2f\t%.2f\t%.0f\t%.0f\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d/%d\t%.2f\t%s\t\n",
			g.rate, g.eventsPerS, g.sent, g.events, g.ratio(), usPerMsg(g.cpuPerMsg()), usPerMsg(g.sysPerMsg()),
			100*g.cpu.Seconds()/g.elapsed.Seconds(), 100*g.clientCPU.Seconds()/g.elapsed.Seconds(), fmtMs(g.probe.P50ms), fmtMs(g.probe.P99ms),
			fmtDurMs(g.clientP50), fmtDurMs(g.clientP99), mb(g.rss), mb(g.peakRSS), mb(g.tcpMem), g.cut, g.slowHeld, r.slow, slowShare(g, r), verdict)
	}
	tw.Flush()
	if r.aborted != "" {
		fmt.Fprintf(w, "   ladder %s\n", r.aborted)
	}
	fmt.Fprintf(w, "   sustained: %.0f msg/s\n", r.sustained)
	if r.profileFile != "" {
		fmt.Fprintf(w, "   cpu profile: %s (go tool pprof -top %s)\n", r.profileFile, r.profileFile)
	}
}

// slowShare is the fraction of the rung's events an average slow reader
// read by the end of the rung.
func slowShare(g rung, r serverRun) float64 {
	if r.slow == 0 || g.sent == 0 {
		return 0
	}
	return float64(g.slowGot) / float64(g.sent*r.slow)
}

// idleBreakdown spreads the growth of each memory figure the server reports
// over its idle connections: goroutines per connection, KB of Go stack and
// heap, or of V8 heap and buffers.
func idleBreakdown(r serverRun) string {
	conns := float64(r.clients + r.probes + r.slow)
	var keys []string
	for k := range r.idleStats {
		if _, ok := r.emptyStats[k]; ok && k != "sockets" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		d := (r.idleStats[k] - r.emptyStats[k]) / conns
		if k == "goroutines" {
			parts = append(parts, fmt.Sprintf("%s %.2f", k, d))
		} else {
			parts = append(parts, fmt.Sprintf("%s %.1f KB", k, d/1024))
		}
	}
	return strings.Join(parts, ", ")
}

// The targets of the fan-out work (issue 13), each judged against the
// references measured in the same run.
const (
	targetUserUs         = 2.0 // user CPU µs per delivery, at 20 and 80 events/s per socket
	targetNodeRatio      = 0.5 // total CPU per delivery as a share of node's, at 20 events/s per socket
	targetSustainedXNode = 5.0 // sustained deliveries/s as a multiple of node's
	targetIdleKB         = 8.0 // idle RSS per connection
)

// references are the servers walcast is set beside, in column order.
var references = []string{"node", "centrifuge", "floor", "baseline"}

// printComparison sets each walcast variant beside the references at each
// offered rate they ran, and judges the targets.
func printComparison(w io.Writer, runs []serverRun) {
	var refs []*serverRun
	for _, name := range references {
		for i := range runs {
			if runs[i].server == name {
				refs = append(refs, &runs[i])
			}
		}
	}
	if len(refs) == 0 {
		return
	}
	for i := range runs {
		if strings.HasPrefix(runs[i].server, "walcast") {
			compare(w, &runs[i], refs)
		}
	}
}

// rungAt returns r's rung at rate, nil when it did not run it.
func (r *serverRun) rungAt(rate float64) *rung {
	for i := range r.rungs {
		if r.rungs[i].rate == rate {
			return &r.rungs[i]
		}
	}
	return nil
}

// perSocketRate is the rung of r that carries eventsPerSocket events/s to
// each client (the ladder is in deliveries/s, the same at every client
// count), nil when the ladder has none.
func (r *serverRun) perSocketRate(eventsPerSocket float64) *rung {
	for i := range r.rungs {
		if math.Abs(r.rungs[i].rate/float64(r.clients)-eventsPerSocket) < 0.5 {
			return &r.rungs[i]
		}
	}
	return nil
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

func keepsUp(g *rung) string {
	if g.behind() {
		return "no"
	}
	return "yes"
}

func compare(w io.Writer, wc *serverRun, refs []*serverRun) {
	names := make([]string, len(refs))
	for i, r := range refs {
		names[i] = r.server
	}
	fmt.Fprintf(w, "\n== %s beside %s, %d clients: CPU µs per delivery (user + sys), probe p99\n", wc.server, strings.Join(names, " and "), wc.clients)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	head := fmt.Sprintf("offered msg/s\tev/s per socket\t%s µs\tuser\tsys\tp99 ms\tkeeps up", wc.server)
	for _, r := range refs {
		head += fmt.Sprintf("\t%s µs\tuser\tsys\tratio\tp99 ms\tkeeps up", r.server)
	}
	fmt.Fprintln(tw, head+"\t")
	for _, a := range wc.rungs {
		line := fmt.Sprintf("%.0f\t%.0f\t%.2f\t%.2f\t%.2f\t%s\t%s", a.rate, a.rate/float64(wc.clients),
			usPerMsg(a.cpuPerMsg()), usPerMsg(a.cpuPerMsg()-a.sysPerMsg()), usPerMsg(a.sysPerMsg()), fmtMs(a.probe.P99ms), keepsUp(&a))
		for _, r := range refs {
			b := r.rungAt(a.rate)
			if b == nil {
				line += "\t-\t-\t-\t-\t-\t-"
				continue
			}
			ratio := "-"
			if b.cpuPerMsg() > 0 {
				ratio = fmt.Sprintf("%.2f", float64(a.cpuPerMsg())/float64(b.cpuPerMsg()))
			}
			line += fmt.Sprintf("\t%.2f\t%.2f\t%.2f\t%s\t%s\t%s", usPerMsg(b.cpuPerMsg()), usPerMsg(b.cpuPerMsg()-b.sysPerMsg()),
				usPerMsg(b.sysPerMsg()), ratio, fmtMs(b.probe.P99ms), keepsUp(b))
		}
		fmt.Fprintln(tw, line+"\t")
	}
	tw.Flush()

	fmt.Fprintln(w, "   targets:")
	for _, evs := range []float64{20, 80} {
		g := wc.perSocketRate(evs)
		if g == nil {
			fmt.Fprintf(w, "   - user CPU per delivery <= %.1f µs at %.0f events/s per socket: not measured (no rung of %.0f msg/s in -rates)\n", targetUserUs, evs, evs*float64(wc.clients))
			continue
		}
		u := usPerMsg(g.cpuPerMsg() - g.sysPerMsg())
		fmt.Fprintf(w, "   - user CPU per delivery <= %.1f µs at %.0f events/s per socket: %.2f µs: %s\n", targetUserUs, evs, u, verdict(u <= targetUserUs && !g.behind()))
	}
	for _, r := range refs {
		switch r.server {
		case "node":
			a, b := wc.perSocketRate(20), r.perSocketRate(20)
			if a == nil || b == nil || b.cpuPerMsg() == 0 {
				fmt.Fprintf(w, "   - CPU per delivery <= %.1f of node's at 20 events/s per socket: not measured\n", targetNodeRatio)
				break
			}
			ratio := float64(a.cpuPerMsg()) / float64(b.cpuPerMsg())
			fmt.Fprintf(w, "   - CPU per delivery <= %.1f of node's at 20 events/s per socket: %.2f: %s\n", targetNodeRatio, ratio, verdict(ratio <= targetNodeRatio))
		case "centrifuge":
			lo, hi, n := math.Inf(1), math.Inf(-1), 0
			for _, a := range wc.rungs {
				b := r.rungAt(a.rate)
				if b == nil || a.behind() || b.behind() || b.cpuPerMsg() == 0 {
					continue
				}
				ratio := float64(a.cpuPerMsg()) / float64(b.cpuPerMsg())
				lo, hi, n = math.Min(lo, ratio), math.Max(hi, ratio), n+1
			}
			if n == 0 {
				fmt.Fprintln(w, "   - CPU per delivery below centrifuge's where both keep up: no rung where both keep up")
				break
			}
			fmt.Fprintf(w, "   - CPU per delivery below centrifuge's at every rung where both keep up (%d): ratio %.2f-%.2f: %s\n", n, lo, hi, verdict(hi < 1))
		}
	}
	for _, r := range refs {
		if r.server != "floor" {
			continue
		}
		f, n := r.perSocketRate(20), (*rung)(nil)
		for _, o := range refs {
			if o.server == "node" {
				n = o.perSocketRate(20)
			}
		}
		if f == nil || n == nil || n.cpuPerMsg() == 0 {
			break
		}
		fmt.Fprintf(w, "   - the floor at 20 events/s per socket (one write(2) per delivery, nothing else): %.2f µs per delivery, %.2f of node's\n",
			usPerMsg(f.cpuPerMsg()), float64(f.cpuPerMsg())/float64(n.cpuPerMsg()))
	}
	for _, r := range refs {
		if r.server == "floor" || r.server == "baseline" {
			continue
		}
		x := "-"
		if r.sustained > 0 {
			x = fmt.Sprintf("%.2fx", wc.sustained/r.sustained)
		}
		var ok bool
		want := ""
		switch r.server {
		case "node":
			ok, want = wc.sustained >= targetSustainedXNode*r.sustained && r.sustained > 0, fmt.Sprintf(">= %.0fx", targetSustainedXNode)
		default:
			ok, want = wc.sustained > r.sustained, "above it"
		}
		top := ""
		if len(wc.rungs) > 0 && wc.sustained == wc.rungs[len(wc.rungs)-1].rate {
			top = " (walcast kept up at the ladder's top: a floor, not its limit)"
		}
		fmt.Fprintf(w, "   - sustained msg/s: %s %.0f, %s %.0f, %s, target %s: %s%s\n", wc.server, wc.sustained, r.server, r.sustained, x, want, verdict(ok), top)
	}
	idle := wc.idlePerConn() / 1024
	line := fmt.Sprintf("   - idle KB/conn: %s %.1f", wc.server, idle)
	for _, r := range refs {
		line += fmt.Sprintf(", %s %.1f", r.server, r.idlePerConn()/1024)
	}
	fmt.Fprintf(w, "%s; target <= %.0f KB: %s\n", line, targetIdleKB, verdict(idle <= targetIdleKB))
}

func printSummary(w io.Writer, all []serverRun) {
	fmt.Fprintln(w, "\n== summary")
	for _, r := range all {
		var lost []string
		for _, g := range r.rungs {
			if !g.behind() && g.delivered != g.offered {
				lost = append(lost, fmt.Sprintf("%.0f msg/s: %d of %d", g.rate, g.offered-g.delivered, g.offered))
			}
		}
		lossNote := "nothing lost below saturation"
		if len(lost) > 0 {
			lossNote = "LOST below saturation: " + strings.Join(lost, "; ")
		}
		fmt.Fprintf(w, "%-13s C=%-5d sustained %7.0f msg/s, idle %.1f KB/conn, %s\n", r.server, r.clients, r.sustained, r.idlePerConn()/1024, lossNote)
	}
}
