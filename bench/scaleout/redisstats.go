package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
)

// printCommandStats lists, per phase, the commands Redis ran while it wrote,
// as calls and µs per committed event, busiest first.
func printCommandStats(out io.Writer, results []phase) {
	fmt.Fprintln(out, "\nRedis commands per event while writing (INFO commandstats; commands inside Lua scripts are also counted under eval/evalsha):")
	tw := tabwriter.NewWriter(out, 2, 8, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "C\tinstances\tcommand\tcalls/event\tµs/event\tµs/call\t")
	for _, ph := range results {
		if ph.events == 0 {
			continue
		}
		names := make([]string, 0, len(ph.redisCmds))
		for n := range ph.redisCmds {
			names = append(names, n)
		}
		slices.SortFunc(names, func(a, b string) int {
			if d := ph.redisCmds[b].Usec - ph.redisCmds[a].Usec; d != 0 {
				return int(d)
			}
			return strings.Compare(a, b)
		})
		for _, n := range names[:min(len(names), 6)] {
			st := ph.redisCmds[n]
			fmt.Fprintf(tw, "%d\t%d\t%s\t%.2f\t%.1f\t%.1f\t\n", ph.clients, ph.instances, n,
				float64(st.Calls)/float64(ph.events), float64(st.Usec)/float64(ph.events), float64(st.Usec)/float64(st.Calls))
		}
	}
	tw.Flush()
}
