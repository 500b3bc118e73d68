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

// printComparison sets each walcast variant beside Node at each offered
// rate both ran.
func printComparison(w io.Writer, runs []serverRun) {
	var nd *serverRun
	for i := range runs {
		if runs[i].server == "node" {
			nd = &runs[i]
		}
	}
	if nd == nil {
		return
	}
	for i := range runs {
		if runs[i].server != "node" {
			compareWithNode(w, &runs[i], nd)
		}
	}
}

func compareWithNode(w io.Writer, wc, nd *serverRun) {
	fmt.Fprintf(w, "\n== %s / node, %d clients (target: CPU per message <= 0.33 of node's)\n", wc.server, wc.clients)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "offered msg/s\tCPU/msg %[1]s µs\tnode µs\tratio\tuser µs %[1]s\tnode\tratio\tp99 %[1]s ms\tnode ms\tRSS %[1]s MB\tnode MB\tboth keep up\t\n", wc.server)
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, a := range wc.rungs {
		for _, b := range nd.rungs {
			if a.rate != b.rate {
				continue
			}
			ratio, userRatio := "-", "-"
			if b.cpuPerMsg() > 0 {
				r := float64(a.cpuPerMsg()) / float64(b.cpuPerMsg())
				ratio = fmt.Sprintf("%.2f", r)
				if !a.behind() && !b.behind() {
					lo, hi = math.Min(lo, r), math.Max(hi, r)
				}
			}
			if u := b.cpuPerMsg() - b.sysPerMsg(); u > 0 {
				userRatio = fmt.Sprintf("%.2f", float64(a.cpuPerMsg()-a.sysPerMsg())/float64(u))
			}
			both := "yes"
			if a.behind() || b.behind() {
				both = "no"
			}
			fmt.Fprintf(tw, "%.0f\t%.2f\t%.2f\t%s\t%.2f\t%.2f\t%s\t%s\t%s\t%s\t%s\t%s\t\n", a.rate,
				usPerMsg(a.cpuPerMsg()), usPerMsg(b.cpuPerMsg()), ratio,
				usPerMsg(a.cpuPerMsg()-a.sysPerMsg()), usPerMsg(b.cpuPerMsg()-b.sysPerMsg()), userRatio,
				fmtMs(a.probe.P99ms), fmtMs(b.probe.P99ms), mb(a.rss), mb(b.rss), both)
		}
	}
	tw.Flush()
	if lo <= hi {
		verdict := "met"
		if hi > 1.0/3 {
			verdict = fmt.Sprintf("MISSED (worst rung %.1fx the allowance)", hi*3)
		}
		fmt.Fprintf(w, "   CPU/msg ratio where both keep up: %.2f-%.2f, target <= 0.33: %s\n", lo, hi, verdict)
	} else {
		fmt.Fprintln(w, "   CPU/msg ratio: no rung where both keep up")
	}
	idle := wc.idlePerConn() / 1024
	verdict := "met"
	if idle > 12 {
		verdict = fmt.Sprintf("MISSED by %.0f%%", (idle/12-1)*100)
	}
	fmt.Fprintf(w, "   idle KB/conn: %s %.1f, node %.1f, ratio %.2f; target <= 12 KB: %s\n",
		wc.server, idle, nd.idlePerConn()/1024, wc.idlePerConn()/nd.idlePerConn(), verdict)
	sust := "-"
	if nd.sustained > 0 {
		sust = fmt.Sprintf("%.2f", wc.sustained/nd.sustained)
	}
	fmt.Fprintf(w, "   sustained msg/s: %s %.0f, node %.0f, ratio %s (a ladder top that never fell behind is a floor, not the limit)\n",
		wc.server, wc.sustained, nd.sustained, sust)
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
