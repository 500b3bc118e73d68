// Package redisstats reads Redis's INFO commandstats, so a benchmark can
// say where Redis's CPU went while it ran.
package redisstats

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Stat is one command's line of INFO commandstats: calls and total µs.
type Stat struct {
	Calls, Usec int64
}

// Read reads INFO commandstats: where Redis's CPU per event goes.
// Commands run by a Lua script are counted both under eval/evalsha and
// under their own names, so the rows overlap and do not add up.
func Read(ctx context.Context, rdb *redis.Client) (map[string]Stat, error) {
	info, err := rdb.Info(ctx, "commandstats").Result()
	if err != nil {
		return nil, fmt.Errorf("redis INFO commandstats: %w", err)
	}
	return Parse(info)
}

// Parse reads lines like
// "cmdstat_xadd:calls=3,usec=25,usec_per_call=8.33,rejected_calls=0,failed_calls=0".
func Parse(info string) (map[string]Stat, error) {
	out := map[string]Stat{}
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
		var st Stat
		for f := range strings.SplitSeq(fields, ",") {
			k, v, _ := strings.Cut(f, "=")
			var err error
			switch k {
			case "calls":
				st.Calls, err = strconv.ParseInt(v, 10, 64)
			case "usec":
				st.Usec, err = strconv.ParseInt(v, 10, 64)
			}
			if err != nil {
				return nil, fmt.Errorf("parse commandstats line %q: %s: %w", line, k, err)
			}
		}
		out[name] = st
	}
	return out, nil
}

// Diff is after - before, per command, commands without calls left out.
func Diff(before, after map[string]Stat) map[string]Stat {
	out := map[string]Stat{}
	for name, a := range after {
		b := before[name]
		if d := (Stat{a.Calls - b.Calls, a.Usec - b.Usec}); d.Calls > 0 {
			out[name] = d
		}
	}
	return out
}
