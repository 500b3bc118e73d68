package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/walcast/walcast/broadcast"
	"github.com/walcast/walcast/broadcast/redisadapter"
	"github.com/walcast/walcast/cdc"
	"github.com/walcast/walcast/internal/redisprobe"
	"github.com/walcast/walcast/locks"
	"github.com/walcast/walcast/route"
)

// Checks of walcast check beside cdc's.
const (
	checkSettings    = "settings"
	checkRouting     = "routing"
	checkAudience    = "audience"
	checkRedis       = "redis"
	checkRedisAccess = "redis_access"
)

// redisACL is the Redis user's rights walcast needs (README, "Several
// instances"); a PSUBSCRIBE pattern needs an entry of its own.
const redisACL = "~socket.io* ~walcast:* ~lock:* &socket.io* &socket.io#/#* +@all -@dangerous"

// errProblemsFound makes walcast check exit 1: it ran, and something would
// stop walcast from starting.
var errProblemsFound = errors.New("problems found")

// check runs `walcast check`: what `walcast serve` checks before it
// serves, with the same settings, without starting anything.
func check(ctx context.Context, args, env []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("walcast check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print the findings as JSON")
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: walcast check [--json] [serve's flags]\n\n"+
			"Checks the settings, the database, the publication, the slot and Redis as\n"+
			"`walcast serve` would, and changes nothing. Exits 0 when nothing stops walcast\n"+
			"from starting, 1 otherwise.\n\n  --json  print the findings as JSON\n\n")
		printSettingsUsage(stderr)
	}
	cfg, problems, err := parseSettings(fs, args, env)
	if err != nil {
		return err
	}
	// The Redis client's own complaints (an unreachable Redis) go to
	// stderr in walcast's log format; the findings say what they mean.
	redis.SetLogger(redisadapter.NewClientLogger(newLogger(stderr, cfg.LogLevel, cfg.LogFormat), 0))
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var findings []cdc.Finding
	for _, p := range problems {
		findings = append(findings, cdc.Finding{Check: checkSettings, Severity: cdc.SeverityProblem, Message: p.Error()})
	}
	if cfg.JWTSecret != "" || cfg.JWTPublicKey != "" {
		if _, err := newVerifier(cfg); err != nil {
			findings = append(findings, cdc.Finding{Check: checkSettings, Severity: cdc.SeverityProblem, Message: err.Error()})
		}
	}
	findings = append(findings, checkDatabase(ctx, cfg)...)
	findings = append(findings, checkRedisServer(ctx, cfg)...)
	if err := report(stdout, findings, *asJSON); err != nil {
		return err
	}
	for _, f := range findings {
		if f.Severity == cdc.SeverityProblem {
			return errProblemsFound
		}
	}
	return nil
}

// checkDatabase resolves the routing against the database and runs cdc's
// checks on the tables it would publish.
func checkDatabase(ctx context.Context, cfg *settings) []cdc.Finding {
	if cfg.DatabaseURL == "" {
		return nil // a settings problem already
	}
	var out []cdc.Finding
	cdcCfg := cdc.Config{ConnString: cfg.DatabaseURL, Publication: cfg.Publication, Slot: cfg.Slot, RecreateSlot: cfg.RecreateSlot}
	routing, err := loadRouting(cfg)
	if err != nil {
		out = append(out, cdc.Finding{Check: checkRouting, Severity: cdc.SeverityProblem, Message: err.Error()})
	} else if catalog, err := cdc.DescribeDatabase(ctx, cfg.DatabaseURL); err == nil {
		// (a failed connection is cdc.Check's to report)
		resolved, err := route.Resolve(routing, catalog)
		if err != nil {
			out = append(out, cdc.Finding{Check: checkRouting, Severity: cdc.SeverityProblem, Message: err.Error()})
		} else {
			out = append(out, cdc.Finding{Check: checkRouting, Message: fmt.Sprintf("the routing names %d tables, all in the database", len(resolved.Config.Tables))})
			for _, n := range resolved.Notes {
				sev := cdc.SeverityOK
				if n.Warning {
					sev = cdc.SeverityWarning
				}
				out = append(out, cdc.Finding{Check: checkAudience, Subject: n.Table, Severity: sev, Message: n.Message, Fix: n.Fix})
			}
			cdcCfg.Tables = resolved.Tables
		}
	}
	for _, f := range cdc.Check(ctx, cdcCfg) {
		if advice := adviceFor(f.Err, cfg.Slot); advice != "" {
			f.Fix = advice
		}
		out = append(out, f)
	}
	return out
}

// checkRedisServer: Redis answers, is recent enough, and lets walcast's
// user run what walcast runs on its keys and channels.
func checkRedisServer(ctx context.Context, cfg *settings) []cdc.Finding {
	if cfg.RedisURL == "" {
		return []cdc.Finding{{Check: checkRedis, Message: "no REDIS_URL: one instance, events and locks in memory"}}
	}
	problem := func(msg, fix string) []cdc.Finding {
		return []cdc.Finding{{Check: checkRedis, Severity: cdc.SeverityProblem, Message: msg, Fix: fix}}
	}
	rdb, err := redisadapter.NewClient(cfg.RedisURL, nil)
	if err != nil {
		return problem("REDIS_URL: "+err.Error(), "")
	}
	defer rdb.Close()
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := rdb.Ping(pctx).Err(); err != nil {
		return problem("Redis does not answer: "+err.Error(), "check REDIS_URL (address, user, password, rediss:// for TLS) and that Redis runs and admits this client")
	}
	var out []cdc.Finding
	// INFO is among the commands a restricted user may lack; the version
	// is then not shown (the probes still try what walcast runs).
	version := "(version not visible to this user)"
	if info, err := rdb.Info(pctx, "server").Result(); err == nil {
		version = infoField(info, "redis_version")
	}
	out = append(out, cdc.Finding{Check: checkRedis, Message: fmt.Sprintf("Redis %s answers (%s adapter)", version, cfg.RedisAdapter)})
	streams := cfg.RedisAdapter == string(broadcast.AdapterStreams)
	probes := redisadapter.PubSubAccessProbes(redisadapter.PubSubOptions{})
	if streams {
		probes = redisadapter.StreamsAccessProbes(redisadapter.StreamsOptions{}, markKeyPrefix+cfg.Slot)
	}
	probes = append(probes, locks.RedisAccessProbes()...)
	denied, err := redisprobe.Run(pctx, rdb, probes)
	if err != nil {
		return append(out, problem("Redis refused a command walcast runs: "+err.Error(), "the streams adapter needs Redis 6.2 or later (XADD MINID); or use --redis-adapter pubsub")...)
	}
	user, err := rdb.Do(pctx, "acl", "whoami").Text()
	if err != nil {
		user = "<user>"
	}
	fix := fmt.Sprintf("ACL SETUSER %s %s", user, redisACL)
	for _, d := range denied {
		out = append(out, cdc.Finding{Check: checkRedisAccess, Subject: d.Probe.Command(), Severity: cdc.SeverityProblem,
			Message: fmt.Sprintf("Redis user %q may not %s (%s): %s", user, d.Probe.What, d.Probe.Command(), d.Answer), Fix: fix})
	}
	if len(denied) == 0 {
		out = append(out, cdc.Finding{Check: checkRedisAccess, Message: fmt.Sprintf("Redis user %q may run everything walcast runs on its keys and channels (%d commands tried, nothing written)", user, len(probes))})
	}
	return out
}

// infoField reads one field of an INFO answer.
func infoField(info, name string) string {
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
			return v
		}
	}
	return ""
}

// report prints the findings, as text or JSON.
func report(w io.Writer, findings []cdc.Finding, asJSON bool) error {
	var problems, warnings int
	for _, f := range findings {
		switch f.Severity {
		case cdc.SeverityProblem:
			problems++
		case cdc.SeverityWarning:
			warnings++
		}
	}
	if asJSON {
		type finding struct {
			Check    string       `json:"check"`
			Subject  string       `json:"subject,omitempty"`
			Severity cdc.Severity `json:"severity"`
			Message  string       `json:"message"`
			Fix      string       `json:"fix,omitempty"`
		}
		out := struct {
			OK       bool      `json:"ok"`
			Problems int       `json:"problems"`
			Warnings int       `json:"warnings"`
			Findings []finding `json:"findings"`
		}{OK: problems == 0, Problems: problems, Warnings: warnings, Findings: []finding{}}
		for _, f := range findings {
			out.Findings = append(out.Findings, finding{f.Check, f.Subject, f.Severity, f.Message, f.Fix})
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	for _, f := range findings {
		fmt.Fprintf(w, "%-8s %-23s %s\n", f.Severity, f.Check, f.Message)
		if f.Fix != "" {
			fmt.Fprintf(w, "%-8s %-23s fix: %s\n", "", "", f.Fix)
		}
	}
	switch {
	case problems > 0:
		fmt.Fprintf(w, "\n%d problem(s) stop walcast from starting, %d warning(s).\n", problems, warnings)
	default:
		fmt.Fprintf(w, "\nNothing stops walcast from starting (%d warning(s)).\n", warnings)
	}
	return nil
}
