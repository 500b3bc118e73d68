package metrics

import (
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// The deployment files under deploy/ are tested here, against the
// catalogue: every query in them must name metrics walcast exports.

var (
	stringLiteral = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|` + "`[^`]*`")
	labelMatchers = regexp.MustCompile(`\{[^}]*\}`)
	rangeSelector = regexp.MustCompile(`\[[^\]]*\]`)
	groupingLists = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	identifier    = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
	promqlWords   = map[string]bool{"and": true, "or": true, "unless": true, "bool": true, "offset": true, "inf": true, "nan": true, "atan2": true, "by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true}
)

// metricNames lists the metric names a PromQL expression selects: the
// identifiers left once strings, label matchers, ranges and grouping
// labels are gone, other than function names and keywords.
func metricNames(expr string) []string {
	s := stringLiteral.ReplaceAllString(expr, `""`)
	s = labelMatchers.ReplaceAllString(s, " ")
	s = rangeSelector.ReplaceAllString(s, " ")
	s = groupingLists.ReplaceAllString(s, " ")
	var out []string
	for _, loc := range identifier.FindAllStringIndex(s, -1) {
		name := s[loc[0]:loc[1]]
		if loc[0] > 0 && strings.ContainsRune("0123456789.$", rune(s[loc[0]-1])) {
			continue // inside a number (1e9) or a variable
		}
		if rest := strings.TrimLeft(s[loc[1]:], " \t\n"); strings.HasPrefix(rest, "(") || promqlWords[strings.ToLower(name)] {
			continue // a function call or a keyword
		}
		if !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	return out
}

func TestMetricNames(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want []string
	}{
		{`walcast_ready == 0`, []string{"walcast_ready"}},
		{`max by (slot) (walcast_replication_slot_lag_bytes) > 512 * 1024 * 1e6`, []string{"walcast_replication_slot_lag_bytes"}},
		{`histogram_quantile(0.99, sum by (le, op) (rate(walcast_lock_ack_duration_seconds_bucket{instance=~"$instance", op!="x y"}[$__rate_interval])))`, []string{"walcast_lock_ack_duration_seconds_bucket"}},
		{`(sum(walcast_replication_reader_state{state="reading"}) or vector(0)) < 1`, []string{"walcast_replication_reader_state"}},
		{`a_total / on (instance) group_left (job) b_info unless c offset 5m`, []string{"a_total", "b_info", "c"}},
		{`label_values(walcast_build_info{job=~"$job"}, instance)`, []string{"walcast_build_info", "instance"}},
	} {
		if got := metricNames(tc.expr); !slices.Equal(got, tc.want) {
			t.Errorf("metricNames(%q) = %q, want %q", tc.expr, got, tc.want)
		}
	}
}

// exported reports whether a name in a query is a series walcast exports:
// a catalogue metric, or a histogram's (summary's) _bucket, _sum or _count.
func exported(name string) bool {
	for _, m := range Catalogue() {
		if m.Name == name {
			return true
		}
		if m.Kind == Histogram || m.Kind == "summary" {
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if name == m.Name+suffix {
					return true
				}
			}
		}
	}
	return false
}

func deployPath(parts ...string) string {
	return filepath.Join(append([]string{"..", "deploy"}, parts...)...)
}

func promtool(t *testing.T, dir string, args ...string) string {
	t.Helper()
	if _, err := exec.LookPath("promtool"); err != nil {
		t.Fatal("promtool is not installed: apt-get install -y prometheus (scripts/test.sh installs it)")
	}
	cmd := exec.Command("promtool", args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert  string            `yaml:"alert"`
			Record string            `yaml:"record"`
			Expr   string            `yaml:"expr"`
			For    string            `yaml:"for"`
			Labels map[string]string `yaml:"labels"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// TestAlertRules: promtool accepts alerts.yml and passes its unit tests
// (alerts_test.yml); every alert names only metrics walcast exports, and
// the alerts cover what the issue asks for.
func TestAlertRules(t *testing.T) {
	dir := deployPath("prometheus")
	promtool(t, dir, "check", "rules", "alerts.yml")
	out := promtool(t, dir, "test", "rules", "alerts_test.yml")
	if !strings.Contains(out, "SUCCESS") {
		t.Fatalf("promtool test rules: %s", out)
	}

	b, err := os.ReadFile(filepath.Join(dir, "alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var rf ruleFile
	if err := yaml.Unmarshal(b, &rf); err != nil {
		t.Fatalf("alerts.yml: %v", err)
	}
	used := map[string]bool{}
	tested, err := os.ReadFile(filepath.Join(dir, "alerts_test.yml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			names := metricNames(r.Expr)
			if len(names) == 0 {
				t.Errorf("alert %s: %q names no metric", r.Alert, r.Expr)
			}
			for _, n := range names {
				used[n] = true
				if !exported(n) {
					t.Errorf("alert %s: %s is not a metric walcast exports (see metrics.Catalogue)", r.Alert, n)
				}
			}
			if sev := r.Labels["severity"]; sev != "warning" && sev != "critical" {
				t.Errorf("alert %s: severity %q, want warning or critical", r.Alert, sev)
			}
			if !strings.Contains(string(tested), "alertname: "+r.Alert+"\n") {
				t.Errorf("alert %s has no unit test in alerts_test.yml", r.Alert)
			}
		}
	}
	for _, want := range []string{
		"walcast_replication_slot_lag_bytes",          // slot lag over a threshold
		"walcast_replication_slot_retained_wal_bytes", // retained WAL over a threshold
		"walcast_replication_reader_state",            // no instance reading the slot for 30 s
		"walcast_redis_up",                            // Redis unreachable
		"walcast_ready",                               // readiness false
		"walcast_slow_consumer_cuts_total",            // slow-consumer cuts spiking
	} {
		if !used[want] {
			t.Errorf("no alert uses %s", want)
		}
	}
}

// TestDashboard: every query of the Grafana dashboard (panels and template
// variables) names only metrics walcast exports, and the dashboard shows
// what the issue asks for.
func TestDashboard(t *testing.T) {
	b, err := os.ReadFile(deployPath("grafana", "walcast.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Title  string `json:"title"`
		UID    string `json:"uid"`
		Panels []struct {
			Type    string `json:"type"`
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Name  string `json:"name"`
				Type  string `json:"type"`
				Query any    `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("walcast.json: %v", err)
	}
	if d.Title == "" || d.UID == "" {
		t.Errorf("dashboard title %q uid %q: both are needed to import it", d.Title, d.UID)
	}
	used := map[string]bool{}
	check := func(where, expr string) {
		for _, n := range metricNames(expr) {
			used[n] = true
			if !exported(n) {
				t.Errorf("%s: %s is not a metric walcast exports (see metrics.Catalogue)", where, n)
			}
		}
	}
	queries := 0
	for _, p := range d.Panels {
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			if len(metricNames(tg.Expr)) == 0 {
				t.Errorf("panel %q: %q names no metric", p.Title, tg.Expr)
			}
			check("panel "+p.Title, tg.Expr)
			queries++
		}
	}
	for _, v := range d.Templating.List {
		if q, ok := v.Query.(string); ok && v.Type == "query" {
			// label_values(metric, label): the label is not a metric.
			if m := regexp.MustCompile(`^label_values\((.*),\s*[a-zA-Z_]+\)$`).FindStringSubmatch(q); m != nil {
				q = m[1]
			}
			check("variable "+v.Name, q)
		}
	}
	for _, want := range []string{
		"walcast_replication_slot_lag_bytes",            // lag
		"walcast_replication_slot_retained_wal_bytes",   // retained WAL
		"walcast_replication_rows_total",                // events/s by table
		"walcast_deliveries_total",                      // deliveries/s
		"walcast_sockets",                               // sockets
		"walcast_lock_operations_total",                 // lock ops
		"walcast_redis_publish_duration_seconds_bucket", // Redis latency
	} {
		if !used[want] {
			t.Errorf("the dashboard does not show %s", want)
		}
	}
	t.Logf("%d panel queries checked", queries)
}

// TestComposeMonitoring: docker-compose.yml's Prometheus runs only under
// the "monitoring" profile, mounts deploy/prometheus/prometheus.yml and
// alerts.yml side by side (the config loads the rules by a relative path),
// and that config is valid and scrapes every walcast service on the port of
// its operator listener, which listens beyond the container's loopback.
func TestComposeMonitoring(t *testing.T) {
	promtool(t, deployPath("prometheus"), "check", "config", "prometheus.yml")

	b, err := os.ReadFile(filepath.Join("..", "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var compose struct {
		Services map[string]struct {
			Build       any               `yaml:"build"`
			Profiles    []string          `yaml:"profiles"`
			Volumes     []string          `yaml:"volumes"`
			Environment map[string]string `yaml:"environment"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(b, &compose); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	prom, ok := compose.Services["prometheus"]
	if !ok {
		t.Fatal("docker-compose.yml has no prometheus service")
	}
	if !slices.Equal(prom.Profiles, []string{"monitoring"}) {
		t.Errorf("prometheus profiles %v, want [monitoring]: the default stack stays small", prom.Profiles)
	}
	mounts := map[string]string{}
	for _, v := range prom.Volumes {
		f := strings.Split(v, ":")
		if len(f) >= 2 {
			mounts[filepath.Clean(f[0])] = f[1]
		}
	}
	cfgDst, rulesDst := mounts["deploy/prometheus/prometheus.yml"], mounts["deploy/prometheus/alerts.yml"]
	if cfgDst == "" || rulesDst == "" || filepath.Dir(cfgDst) != filepath.Dir(rulesDst) || filepath.Base(rulesDst) != "alerts.yml" {
		t.Errorf("prometheus mounts %v: want ./deploy/prometheus/prometheus.yml and alerts.yml in one directory", prom.Volumes)
	}

	cb, err := os.ReadFile(deployPath("prometheus", "prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		RuleFiles     []string `yaml:"rule_files"`
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal(cb, &cfg); err != nil {
		t.Fatalf("prometheus.yml: %v", err)
	}
	if !slices.Contains(cfg.RuleFiles, "alerts.yml") {
		t.Errorf("prometheus.yml rule_files %v does not load alerts.yml", cfg.RuleFiles)
	}
	var targets []string
	for _, sc := range cfg.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			targets = append(targets, st.Targets...)
		}
	}
	var want []string
	for name, s := range compose.Services {
		if s.Build == nil {
			continue // not walcast
		}
		if len(s.Profiles) != 0 {
			t.Errorf("walcast service %s has profiles %v: it belongs to the default stack", name, s.Profiles)
		}
		listen := s.Environment["WALCAST_ADMIN_LISTEN"]
		host, port, err := net.SplitHostPort(listen)
		if err != nil {
			t.Errorf("service %s: WALCAST_ADMIN_LISTEN %q: %v", name, listen, err)
			continue
		}
		if ip := net.ParseIP(host); host == "localhost" || (ip != nil && ip.IsLoopback()) {
			t.Errorf("service %s: the operator listener %q is on the container's loopback, out of Prometheus's reach", name, listen)
		}
		want = append(want, net.JoinHostPort(name, port))
	}
	slices.Sort(want)
	slices.Sort(targets)
	if len(want) < 2 || !slices.Equal(targets, want) {
		t.Errorf("prometheus.yml scrapes %v, want every walcast service's operator listener %v", targets, want)
	}
}

// TestREADMEListsMetrics: README's "Operating walcast" table has a row for
// every metric of the catalogue.
func TestREADMEListsMetrics(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range catalogue {
		if !strings.Contains(string(b), "| `"+m.Name+"` | "+string(m.Kind)+" |") {
			t.Errorf("README does not list %s (%s)", m.Name, m.Kind)
		}
	}
}
