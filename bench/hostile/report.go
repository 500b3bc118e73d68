package main

import (
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

func mb(b int64) float64 { return float64(b) / (1 << 20) }

// authedKB is the median per-socket cost of the authenticated sockets over
// the configuration's starts, with the lowest and highest.
func (r report) authedKBMedian() (median, lo, hi float64) {
	kb := slices.Sorted(slices.Values(r.authedKB))
	return kb[len(kb)/2], kb[0], kb[len(kb)-1]
}

func (r report) print(o options) {
	fmt.Printf("\n== %s: %s; %d hostile connections of each kind from %d address(es); %d authenticated idle sockets held throughout; load average %s-%s\n",
		r.cfg.name, r.cfg.about, o.conns, o.attackers, o.authed, r.loadBefore, r.loadAfter)
	med, lo, hi := r.authedKBMedian()
	fmt.Printf("RSS empty %.1f MB, with %d authenticated idle sockets %.1f MB: %.1f KB per socket (median of %d starts, %.1f-%.1f; target <= %.0f KB: %s)\n",
		mb(r.emptyRSS), o.authed, mb(r.authedRSS), med, len(r.authedKB), lo, hi, targetAuthedKB, verdict(med <= targetAuthedKB))
	tw := tabwriter.NewWriter(os.Stdout, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "kind\taccepted\tpeak +MB\theld +MB\tKB per accepted\tclosed by server: p50\tmax\topen after wait\twhat closes it\tserver's answers")
	row := func(k kindResult, deadline string) {
		per := "-"
		if k.accepted > 0 {
			per = fmt.Sprintf("%.1f", float64(k.peak-k.base)/1024/float64(k.accepted))
		}
		p50, last := lifetimeRange(k.lifetimes)
		if !r.cfg.limits {
			deadline = "-"
		}
		fmt.Fprintf(tw, "%s\t%d/%d\t%.1f\t%.1f\t%s\t%s\t%s\t%d\t%s\t%s\n",
			k.name, k.accepted, k.tried, mb(k.peak-k.base), mb(k.held-k.base), per, p50, last, k.open, deadline, answers(k.answers))
	}
	for i, k := range r.kinds {
		row(k, o.kinds[i].deadline)
	}
	if r.together.name != "" {
		row(r.together, "")
	}
	tw.Flush()
	if r.together.name != "" {
		together := mb(r.together.peak - r.together.base)
		fmt.Printf("all kinds at once: +%.1f MB at the peak over the authenticated sockets (target <= %.0f MB: %s); %d of %d legitimate clients from another address authenticated meanwhile %v\n",
			together, targetHostileMB, verdict(together <= targetHostileMB), r.legitOK, o.legit, r.legitWhy)
	}
	open := r.together.open
	for _, k := range r.kinds {
		open += k.open
	}
	fmt.Printf("still open %s after their start: %d hostile connections; authenticated sockets the server closed during the run: %d\n", o.wait, open, r.authedCut)
	if r.cfg.limits {
		fmt.Printf("gone within what closes them (+1 s): %s\n", r.goneVerdict(o))
	}
	r.printProfiles()
}

// goneVerdict says, for a configuration with the limits, whether each
// kind's connections were all closed by the server within its deadline
// plus a second (the server's timers and this client's reading).
func (r report) goneVerdict(o options) string {
	var late []string
	for i, k := range r.kinds {
		last := lifetimeMax(k.lifetimes)
		if k.open > 0 || last > o.kinds[i].within+time.Second {
			late = append(late, k.name)
		}
	}
	if len(late) == 0 {
		return "met, every kind"
	}
	return "MISSED for " + strings.Join(late, ", ")
}

func lifetimeMax(ls []time.Duration) time.Duration {
	if len(ls) == 0 {
		return 0
	}
	return slices.Max(ls)
}

func lifetimeRange(ls []time.Duration) (p50, last string) {
	if len(ls) == 0 {
		return "-", "-"
	}
	s := slices.Sorted(slices.Values(ls))
	round := func(d time.Duration) string { return d.Round(10 * time.Millisecond).String() }
	return round(s[len(s)/2]), round(s[len(s)-1])
}

// printSummary puts the configurations side by side.
func printSummary(o options, rs []report) {
	if len(rs) == 0 {
		return
	}
	fmt.Printf("\n== side by side (%d connections of each kind from %d address(es); peak RSS over %d authenticated sockets, and when the last was closed by the server)\n",
		o.conns, o.attackers, o.authed)
	tw := tabwriter.NewWriter(os.Stdout, 2, 8, 2, ' ', 0)
	header := []string{""}
	for _, r := range rs {
		header = append(header, r.cfg.name)
	}
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	line := func(label string, cell func(r report) string) {
		cells := []string{label}
		for _, r := range rs {
			cells = append(cells, cell(r))
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	line("RSS empty", func(r report) string { return fmt.Sprintf("%.1f MB", mb(r.emptyRSS)) })
	line("per authenticated idle socket", func(r report) string {
		med, _, _ := r.authedKBMedian()
		return fmt.Sprintf("%.1f KB", med)
	})
	kindCell := func(k kindResult) string {
		last := lifetimeMax(k.lifetimes)
		gone := "last gone " + last.Round(100*time.Millisecond).String()
		if k.open > 0 {
			gone = fmt.Sprintf("%d open after %s", k.open, o.wait)
		}
		return fmt.Sprintf("+%.1f MB (%d accepted), %s", mb(k.peak-k.base), k.accepted, gone)
	}
	for i, k := range o.kinds {
		line(k.name, func(r report) string { return kindCell(r.kinds[i]) })
	}
	if len(o.kinds) > 1 {
		line("all kinds at once", func(r report) string { return kindCell(r.together) })
		line("legitimate clients meanwhile", func(r report) string { return fmt.Sprintf("%d of %d in", r.legitOK, o.legit) })
	}
	tw.Flush()
}

func answers(m map[string]int) string {
	keys := slices.Sorted(maps.Keys(m))
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s x%d", k, m[k])
	}
	return strings.Join(parts, "; ")
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}
