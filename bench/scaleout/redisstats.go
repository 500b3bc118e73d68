package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/redis/go-redis/v9"
)

// cmdStat is one command's line of INFO commandstats.
type cmdStat struct {
	calls, usec int64
}

// commandStats reads INFO commandstats: where Redis's CPU per event goes.
// Commands run by a Lua script are counted both under eval/evalsha and
// under their own names, so the rows overlap and do not add up.
func commandStats(ctx context.Context, rdb *redis.Client) (map[string]cmdStat, error) {
	info, err := rdb.Info(ctx, "commandstats").Result()
	if err != nil {
		return nil, fmt.Errorf("redis INFO commandstats: %w", err)
	}
	return parseCommandStats(info)
}

// parseCommandStats reads lines like
// "cmdstat_xadd:calls=3,usec=25,usec_per_call=8.33,rejected_calls=0,failed_calls=0".
func parseCommandStats(info string) (map[string]cmdStat, error) {
	out := map[string]cmdStat{}
	for line := range strings.Lines(info) {
		line = strings.TrimSpace(line)
		rest, ok := strings.CutPrefix(line, "cmdstat_")
		if !ok {
			continue
		}
		name, fields, ok := strings.Cut(rest, ":")
		if !ok {
			return nil, fmt.Errorf("parse commandstats line %q: no ':'", line)
		}
		var st cmdStat
		for f := range strings.SplitSeq(fields, ",") {
			k, v, _ := strings.Cut(f, "=")
			var err error
			switch k {
			case "calls":
				st.calls, err = strconv.ParseInt(v, 10, 64)
			case "usec":
				st.usec, err = strconv.ParseInt(v, 10, 64)
			}
			if err != nil {
				return nil, fmt.Errorf("parse commandstats line %q: %s: %w", line, k, err)
			}
		}
		out[name] = st
	}
	return out, nil
}

// diffStats is after - before, per command, commands without calls left out.
func diffStats(before, after map[string]cmdStat) map[string]cmdStat {
	out := map[string]cmdStat{}
	for name, a := range after {
		b := before[name]
		if d := (cmdStat{a.calls - b.calls, a.usec - b.usec}); d.calls > 0 {
			out[name] = d
		}
	}
	return out
}

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
			if d := ph.redisCmds[b].usec - ph.redisCmds[a].usec; d != 0 {
				return int(d)
			}
			return strings.Compare(a, b)
		})
		for _, n := range names[:min(len(names), 6)] {
			st := ph.redisCmds[n]
			fmt.Fprintf(tw, "%d\t%d\t%s\t%.2f\t%.1f\t%.1f\t\n", ph.clients, ph.instances, n,
				float64(st.calls)/float64(ph.events), float64(st.usec)/float64(ph.events), float64(st.usec)/float64(st.calls))
		}
	}
	tw.Flush()
}
