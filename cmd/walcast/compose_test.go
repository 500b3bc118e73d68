package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/walcast/walcast/internal/redistest"
	"github.com/walcast/walcast/sql"
)

// docker-compose.yml cannot run on the development machines (no Docker
// engine), so these tests check what can be checked without one: that the
// file says what walcast, the Dockerfile and deploy/nginx.conf expect
// (TestComposeFile), and that walcast processes started with the compose
// environment become ready and pass the compose healthcheck, with nginx in
// front routing by the compose instance ids (TestComposeTopology).

// composeFile is the part of docker-compose.yml these tests read.
type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
}

type composeService struct {
	Image       string                      `yaml:"image"`
	Build       any                         `yaml:"build"`
	Command     []string                    `yaml:"command"`
	Entrypoint  []string                    `yaml:"entrypoint"`
	Environment composeEnv                  `yaml:"environment"`
	DependsOn   map[string]composeDependsOn `yaml:"depends_on"`
	Healthcheck *struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
	Volumes []string `yaml:"volumes"`
	Ports   []string `yaml:"ports"`
}

type composeDependsOn struct {
	Condition string `yaml:"condition"`
}

// composeEnv is a service's environment, in either of compose's forms
// (a mapping, or a list of NAME=value), before interpolation.
type composeEnv map[string]string

func (e *composeEnv) UnmarshalYAML(n *yaml.Node) error {
	*e = composeEnv{}
	switch n.Kind {
	case yaml.MappingNode:
		var m map[string]string
		if err := n.Decode(&m); err != nil {
			return fmt.Errorf("environment mapping: %w", err)
		}
		for k, v := range m {
			(*e)[k] = v
		}
	case yaml.SequenceNode:
		var l []string
		if err := n.Decode(&l); err != nil {
			return fmt.Errorf("environment list: %w", err)
		}
		for _, kv := range l {
			k, v, _ := strings.Cut(kv, "=")
			(*e)[k] = v
		}
	default:
		return fmt.Errorf("environment at line %d is neither a mapping nor a list", n.Line)
	}
	return nil
}

// readCompose parses docker-compose.yml; yaml.v3 resolves the anchors and
// merge keys (<<: *walcast) as compose does.
func readCompose(t *testing.T) composeFile {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "docker-compose.yml"))
	if err != nil {
		t.Fatalf("read docker-compose.yml: %v", err)
	}
	var f composeFile
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatalf("parse docker-compose.yml (environment must be a mapping or NAME=value list, depends_on the long form with condition:, healthcheck test an exec-form list): %v", err)
	}
	return f
}

// composeInterpolate resolves compose's variable syntax in a value with the
// shell environment shell: $$, $VAR, ${VAR}, ${VAR:-default},
// ${VAR-default}, ${VAR:?message} and ${VAR?message} (an error when unset).
func composeInterpolate(v string, shell map[string]string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] != '$' || i+1 == len(v) {
			b.WriteByte(v[i])
			continue
		}
		i++
		switch {
		case v[i] == '$':
			b.WriteByte('$')
		case v[i] == '{':
			end := strings.IndexByte(v[i:], '}')
			if end < 0 {
				return "", fmt.Errorf("%q: unterminated ${", v)
			}
			expr := v[i+1 : i+end]
			i += end
			name, op, arg := expr, "", ""
			if j := strings.IndexAny(expr, ":-?"); j >= 0 {
				name = expr[:j]
				if expr[j] == ':' && j+1 < len(expr) {
					op, arg = expr[j:j+2], expr[j+2:]
				} else {
					op, arg = expr[j:j+1], expr[j+1:]
				}
			}
			val, set := shell[name]
			switch op {
			case "":
				b.WriteString(val)
			case ":-":
				if val == "" {
					val = arg
				}
				b.WriteString(val)
			case "-":
				if !set {
					val = arg
				}
				b.WriteString(val)
			case ":?", "?":
				if !set || (op == ":?" && val == "") {
					return "", fmt.Errorf("required variable %s is missing a value: %s", name, arg)
				}
				b.WriteString(val)
			default:
				return "", fmt.Errorf("%q: unsupported ${%s}", v, expr)
			}
		default:
			j := i
			for j < len(v) && (v[j] == '_' || 'a' <= v[j] && v[j] <= 'z' || 'A' <= v[j] && v[j] <= 'Z' || '0' <= v[j] && v[j] <= '9') {
				j++
			}
			b.WriteString(shell[v[i:j]])
			i = j - 1
		}
	}
	return b.String(), nil
}

// walcastServices are the services built from this repository's Dockerfile.
func walcastServices(f composeFile) []string {
	var names []string
	for name, s := range f.Services {
		if s.Build != nil {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

// composeEnvList interpolates a service's environment for shell and returns
// it as NAME=value lines, the form parseServe takes.
func composeEnvList(t *testing.T, service string, env composeEnv, shell map[string]string) ([]string, error) {
	t.Helper()
	var out []string
	for k, v := range env {
		r, err := composeInterpolate(v, shell)
		if err != nil {
			return nil, fmt.Errorf("service %s, %s: %w", service, k, err)
		}
		out = append(out, k+"="+r)
	}
	slices.Sort(out)
	return out, nil
}

// dockerfile is what the Dockerfile says about the binary.
type dockerfile struct {
	BuildOutput string    // go build -o of the build stage
	CopyFrom    [2]string // COPY --from=<build stage> src dst of the final stage
	Entrypoint  []string
	Cmd         []string
	Expose      []string
	Stages      int
}

func readDockerfile(t *testing.T) dockerfile {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "Dockerfile"))
	if err != nil {
		t.Fatalf("read Dockerfile: %v", err)
	}
	var d dockerfile
	var lines []string
	var cur strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(l, "#") {
			continue
		}
		if s, ok := strings.CutSuffix(l, `\`); ok {
			cur.WriteString(s + " ")
			continue
		}
		cur.WriteString(l)
		if cur.Len() > 0 {
			lines = append(lines, cur.String())
		}
		cur.Reset()
	}
	execForm := func(instr, rest string) []string {
		var a []string
		if err := json.Unmarshal([]byte(rest), &a); err != nil {
			t.Fatalf("Dockerfile: %s %s is not the exec (JSON) form: a distroless image has no shell to run the other", instr, rest)
		}
		return a
	}
	buildStage := ""
	for _, l := range lines {
		instr, rest, _ := strings.Cut(l, " ")
		rest = strings.TrimSpace(rest)
		switch strings.ToUpper(instr) {
		case "FROM":
			d.Stages++
			if f := strings.Fields(rest); len(f) == 3 && strings.EqualFold(f[1], "AS") && d.Stages == 1 {
				buildStage = f[2]
			}
			// A later stage starts afresh.
			d.Entrypoint, d.Cmd, d.Expose = nil, nil, nil
		case "RUN":
			if m := regexp.MustCompile(`go build .*-o (\S+) \./cmd/walcast\b`).FindStringSubmatch(rest); m != nil {
				d.BuildOutput = m[1]
			}
		case "COPY":
			f := strings.Fields(rest)
			if len(f) == 3 && f[0] == "--from="+buildStage {
				d.CopyFrom = [2]string{f[1], f[2]}
			}
		case "ENTRYPOINT":
			d.Entrypoint = execForm(instr, rest)
		case "CMD":
			d.Cmd = execForm(instr, rest)
		case "EXPOSE":
			d.Expose = append(d.Expose, strings.Fields(rest)...)
		}
	}
	return d
}

// nginxConfRouting reads deploy/nginx.conf's sid map (instance id ->
// upstream) and its upstreams' servers.
func nginxConfRouting(t *testing.T) (idToUpstream map[string]string, servers map[string][]string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "deploy", "nginx.conf"))
	if err != nil {
		t.Fatalf("read deploy/nginx.conf: %v", err)
	}
	conf := string(b)
	m := regexp.MustCompile(`(?s)map \$walcast_instance \$walcast_backend \{(.*?)\}`).FindStringSubmatch(conf)
	if m == nil {
		t.Fatal("deploy/nginx.conf has no `map $walcast_instance $walcast_backend { ... }`: the sticky routing these tests check is gone")
	}
	idToUpstream = map[string]string{}
	for _, l := range strings.Split(m[1], "\n") {
		f := strings.Fields(strings.TrimSuffix(strings.TrimSpace(l), ";"))
		if len(f) == 2 && f[0] != "default" && !strings.HasPrefix(f[0], "#") {
			idToUpstream[f[0]] = f[1]
		}
	}
	servers = map[string][]string{}
	for _, u := range regexp.MustCompile(`(?s)upstream (\S+) \{(.*?)\}`).FindAllStringSubmatch(conf, -1) {
		for _, s := range regexp.MustCompile(`(?m)^\s*server (\S+?)[ ;]`).FindAllStringSubmatch(u[2], -1) {
			servers[u[1]] = append(servers[u[1]], s[1])
		}
	}
	return idToUpstream, servers
}

// volumeOf finds the bind mount of host path src in a service's volumes and
// returns its container path.
func volumeOf(s composeService, src string) (string, bool) {
	for _, v := range s.Volumes {
		f := strings.Split(v, ":")
		if len(f) >= 2 && filepath.Clean(f[0]) == filepath.Clean(src) {
			return f[1], true
		}
	}
	return "", false
}

// TestComposeFile: docker-compose.yml, the Dockerfile, deploy/nginx.conf
// and walcast's own settings agree with one another.
func TestComposeFile(t *testing.T) {
	f := readCompose(t)
	df := readDockerfile(t)
	ws := walcastServices(f)
	if len(ws) != 2 {
		t.Fatalf("docker-compose.yml builds %d walcast services %v, want 2 (issue 7: two instances behind nginx)", len(ws), ws)
	}

	// Walcast's defaults, from its own parser: the port the healthcheck,
	// nginx and EXPOSE must use.
	defaults, err := parseServe(nil, []string{"DATABASE_URL=postgres://x/db", "JWT_SECRET=s"}, io.Discard)
	if err != nil {
		t.Fatalf("parseServe with defaults: %v", err)
	}
	_, defaultPort, err := net.SplitHostPort(defaults.Listen)
	if err != nil {
		t.Fatalf("default --listen %q: %v", defaults.Listen, err)
	}

	// The Dockerfile: the binary built is the one copied is the entrypoint,
	// and the container runs serve on the exposed port.
	if df.BuildOutput == "" || df.CopyFrom[0] != df.BuildOutput {
		t.Errorf("Dockerfile: the final stage copies %q from the build stage, but `go build -o` writes %q: fix the COPY --from line", df.CopyFrom[0], df.BuildOutput)
	}
	bin := df.CopyFrom[1]
	if bin == "" || len(df.Entrypoint) == 0 || df.Entrypoint[0] != bin {
		t.Errorf("Dockerfile: ENTRYPOINT %q does not run the binary COPY --from puts at %q", df.Entrypoint, bin)
	}
	if !slices.Equal(df.Cmd, []string{"serve"}) {
		t.Errorf("Dockerfile: CMD %q, want [\"serve\"]: the compose services run the image's default command", df.Cmd)
	}
	if !slices.Contains(df.Expose, defaultPort) {
		t.Errorf("Dockerfile: EXPOSE %v does not include walcast's default port %s", df.Expose, defaultPort)
	}

	pgEnv := f.Services["postgres"].Environment
	ids := map[string]string{} // service -> instance id
	for _, name := range ws {
		s := f.Services[name]
		if s.Command != nil || s.Entrypoint != nil {
			t.Errorf("service %s overrides the image's command/entrypoint (%q %q): the checks here assume `%s serve`", name, s.Entrypoint, s.Command, bin)
		}

		// Its environment is one walcast accepts, with JWT_SECRET unset in
		// the shell (the file's default applies, or compose refuses to
		// start when the file requires it) and set (it must reach walcast).
		for _, shell := range []map[string]string{{}, {"JWT_SECRET": "operator-secret", "WALCAST_CORS_ORIGINS": "https://app.example"}} {
			env, err := composeEnvList(t, name, s.Environment, shell)
			if err != nil {
				if len(shell) == 0 && strings.Contains(err.Error(), "required variable") {
					t.Logf("%v (compose refuses to start without it)", err)
					continue
				}
				t.Errorf("%v", err)
				continue
			}
			cfg, err := parseServe(nil, env, io.Discard)
			if err != nil {
				t.Errorf("service %s: walcast refuses the compose environment %q (shell %v): %v", name, env, shell, err)
				continue
			}
			if shell["JWT_SECRET"] != "" && cfg.JWTSecret != shell["JWT_SECRET"] {
				t.Errorf("service %s: JWT_SECRET=%s in the shell gives walcast the secret %q: the operator's secret must reach walcast (use ${JWT_SECRET...})", name, shell["JWT_SECRET"], cfg.JWTSecret)
			}
			if cfg.RedisURL == "" {
				t.Errorf("service %s: REDIS_URL is not set: two instances need Redis to share events, locks and recovery", name)
			}
			if cfg.RedisAdapter != "streams" {
				t.Errorf("service %s: redis adapter %q, want streams (recovery across instances needs the shared stream)", name, cfg.RedisAdapter)
			}
			if cfg.RecoveryWindow <= 0 {
				t.Errorf("service %s: connection state recovery is off (recovery window %s)", name, cfg.RecoveryWindow)
			}
			if cfg.Listen != defaults.Listen {
				t.Errorf("service %s: listens on %q, but the healthcheck, nginx and EXPOSE use walcast's default %q", name, cfg.Listen, defaults.Listen)
			}
			if s.Environment["WALCAST_INSTANCE_ID"] == "" {
				t.Errorf("service %s: no WALCAST_INSTANCE_ID: it gets a random id per start and nginx's sid map cannot route to it", name)
			}
			ids[name] = cfg.InstanceID

			// DATABASE_URL and REDIS_URL name the compose services and
			// the database and role postgres is told to create.
			db, err := url.Parse(cfg.DatabaseURL)
			if err != nil {
				t.Errorf("service %s: DATABASE_URL %q: %v", name, cfg.DatabaseURL, err)
			} else {
				pw, _ := db.User.Password()
				if _, ok := f.Services[db.Hostname()]; !ok || db.Hostname() != "postgres" {
					t.Errorf("service %s: DATABASE_URL host %q is not the postgres service", name, db.Hostname())
				}
				if db.User.Username() != pgEnv["POSTGRES_USER"] || pw != pgEnv["POSTGRES_PASSWORD"] || strings.TrimPrefix(db.Path, "/") != pgEnv["POSTGRES_DB"] {
					t.Errorf("service %s: DATABASE_URL %q does not match postgres's POSTGRES_USER/POSTGRES_PASSWORD/POSTGRES_DB %q/%q/%q", name, cfg.DatabaseURL, pgEnv["POSTGRES_USER"], pgEnv["POSTGRES_PASSWORD"], pgEnv["POSTGRES_DB"])
				}
			}
			if r, err := url.Parse(cfg.RedisURL); err != nil || r.Hostname() != "redis" {
				t.Errorf("service %s: REDIS_URL %q does not name the redis service (%v)", name, cfg.RedisURL, err)
			}
		}

		// The healthcheck runs walcast's healthcheck subcommand, in exec
		// form (distroless has no shell), against /readyz on the port
		// walcast listens on.
		if s.Healthcheck == nil {
			t.Errorf("service %s has no healthcheck: nginx waits for service_healthy", name)
		} else {
			hc := s.Healthcheck.Test
			if len(hc) != 4 || hc[0] != "CMD" || hc[2] != "healthcheck" {
				t.Errorf("service %s: healthcheck %q, want [\"CMD\", %q, \"healthcheck\", \"http://127.0.0.1:%s/readyz\"] (exec form: the distroless image has no shell)", name, hc, bin, defaultPort)
			} else {
				if hc[1] != bin {
					t.Errorf("service %s: the healthcheck runs %q but the Dockerfile puts walcast at %q", name, hc[1], bin)
				}
				u, err := url.Parse(hc[3])
				if err != nil || u.Scheme != "http" || u.Path != "/readyz" || u.Port() != defaultPort || (u.Hostname() != "127.0.0.1" && u.Hostname() != "localhost") {
					t.Errorf("service %s: healthcheck URL %q, want http://127.0.0.1:%s/readyz (walcast's default port, inside the container) (%v)", name, hc[3], defaultPort, err)
				}
			}
		}

		for _, dep := range []string{"postgres", "redis"} {
			d, ok := s.DependsOn[dep]
			if !ok || d.Condition != "service_healthy" {
				t.Errorf("service %s: depends_on %s is %+v (present %v), want condition: service_healthy", name, dep, d, ok)
			}
		}
	}

	// Distinct ids, and the ones nginx routes to each service.
	if len(ids) == 2 && ids[ws[0]] == ids[ws[1]] {
		t.Errorf("services %v share the instance id %q: nginx could not tell their sessions apart", ws, ids[ws[0]])
	}
	idToUpstream, servers := nginxConfRouting(t)
	want := map[string]string{} // id -> host:port nginx sends its sessions to
	for _, in := range composeNginxConf.Instances {
		want[in.ID] = in.Addr
	}
	for _, name := range ws {
		id := ids[name]
		addr := net.JoinHostPort(name, defaultPort)
		if want[id] != addr {
			t.Errorf("instance id %q of service %s: composeNginxConf (nginx_test.go) sends it to %q, want %q", id, name, want[id], addr)
		}
		up := idToUpstream[id]
		if up == "" {
			t.Errorf("deploy/nginx.conf's sid map has no line for instance id %q of service %s (map: %v)", id, name, idToUpstream)
		} else if !slices.Equal(servers[up], []string{addr}) {
			t.Errorf("deploy/nginx.conf routes instance id %q to upstream %s with servers %v, want [%s] (service %s)", id, up, servers[up], addr, name)
		}
	}
	if len(idToUpstream) != len(ws) || len(composeNginxConf.Instances) != len(ws) {
		t.Errorf("deploy/nginx.conf maps ids %v and composeNginxConf has %d instances, docker-compose.yml %d walcast services: they must be the same", idToUpstream, len(composeNginxConf.Instances), len(ws))
	}

	// PostgreSQL: logical decoding and the schema walcast embeds.
	pgs := f.Services["postgres"]
	if !slices.Contains(pgs.Command, "wal_level=logical") {
		t.Errorf("postgres command %q lacks -c wal_level=logical: walcast cannot read the WAL", pgs.Command)
	}
	if dst, ok := volumeOf(pgs, "./sql/gracegiver.sql"); !ok || !strings.HasPrefix(dst, "/docker-entrypoint-initdb.d/") || !strings.HasSuffix(dst, ".sql") {
		t.Errorf("postgres does not mount ./sql/gracegiver.sql as a /docker-entrypoint-initdb.d/*.sql script (volumes %q)", pgs.Volumes)
	}
	schema, err := os.ReadFile(filepath.Join("..", "..", "sql", "gracegiver.sql"))
	if err != nil {
		t.Errorf("read sql/gracegiver.sql: %v", err)
	} else if string(schema) != sql.GraceGiverSchema {
		t.Errorf("sql/gracegiver.sql is not the schema walcast embeds (sql.GraceGiverSchema)")
	} else if !strings.Contains(string(schema), "ALTER TABLE donations REPLICA IDENTITY FULL") {
		t.Errorf("sql/gracegiver.sql does not give donations REPLICA IDENTITY FULL (issue 7)")
	}

	// Redis: every write on disk before it is acknowledged.
	rc := strings.Join(f.Services["redis"].Command, " ")
	if !strings.Contains(rc, "--appendonly yes") || !strings.Contains(rc, "--appendfsync always") {
		t.Errorf("redis command %q, want --appendonly yes --appendfsync always", rc)
	}

	// nginx: the tested configuration, published.
	ng := f.Services["nginx"]
	if dst, ok := volumeOf(ng, "./deploy/nginx.conf"); !ok || dst != "/etc/nginx/nginx.conf" {
		t.Errorf("nginx does not mount ./deploy/nginx.conf at /etc/nginx/nginx.conf (volumes %q)", ng.Volumes)
	}
	published := false
	for _, p := range ng.Ports {
		f := strings.Split(p, ":")
		if len(f) >= 2 && strings.TrimSuffix(f[len(f)-1], "/tcp") == composeNginxConf.Listen {
			published = true
		}
	}
	if !published {
		t.Errorf("nginx ports %q publish no host port for its listen port %s", ng.Ports, composeNginxConf.Listen)
	}
	for _, name := range ws {
		if d := ng.DependsOn[name]; d.Condition != "service_healthy" {
			t.Errorf("nginx depends_on %s: %+v, want condition: service_healthy", name, d)
		}
	}

	// Every service_healthy dependency needs a healthcheck, or compose
	// never starts what waits for it.
	for name, s := range f.Services {
		for dep, d := range s.DependsOn {
			if _, ok := f.Services[dep]; !ok {
				t.Errorf("service %s depends on %s, which is not a service", name, dep)
			} else if hc := f.Services[dep].Healthcheck; d.Condition == "service_healthy" && (hc == nil || len(hc.Test) == 0) {
				t.Errorf("service %s waits for %s to be healthy, but %s has no healthcheck", name, dep, dep)
			}
		}
	}
}

// TestComposeTopology runs the compose deployment's processes as far as
// this machine can: two walcast processes with the compose environment
// (DATABASE_URL and REDIS_URL pointed at the test's PostgreSQL and Redis,
// which run with the compose settings: wal_level=logical, appendfsync
// always), sharing the default slot as the compose instances do, and nginx
// with deploy/nginx.conf.tmpl routing by their compose instance ids. Both
// become ready, the compose healthcheck command passes against each (and
// fails against a walcast that is not ready), and handshakes through nginx
// reach both instances, whose sessions nginx routes back to them.
func TestComposeTopology(t *testing.T) {
	f := readCompose(t)
	ws := walcastServices(f)
	if len(ws) != 2 {
		t.Fatalf("docker-compose.yml builds %d walcast services %v, want 2", len(ws), ws)
	}
	// Redis with the compose command's flags (they come after the
	// redistest defaults, so they win).
	rc := f.Services["redis"].Command
	if len(rc) == 0 || rc[0] != "redis-server" {
		t.Fatalf("redis command %q does not start redis-server (see TestComposeFile)", rc)
	}
	rs := redistest.Run(t, redistest.Options{ExtraArgs: rc[1:]})
	dsn := newDB(t)
	slot := uniqueSlot() // the compose instances share the default slot

	var instances []nginxInstance
	procs := map[string]*instance{}
	for i, name := range ws {
		env, err := composeEnvList(t, name, f.Services[name].Environment, map[string]string{"JWT_SECRET": testSecret})
		if err != nil {
			t.Fatal(err)
		}
		id := ""
		for j, kv := range env {
			k, _, _ := strings.Cut(kv, "=")
			switch k {
			case "DATABASE_URL":
				env[j] = "DATABASE_URL=" + dsn
			case "REDIS_URL":
				env[j] = "REDIS_URL=" + rs.URL()
			case "WALCAST_INSTANCE_ID":
				id = strings.TrimPrefix(kv, k+"=")
			}
		}
		// The second shares the first's slot and stands by, not ready
		// until it knows it is the standby.
		in := startWalcast(t, dsn, serveOpts{slot: slot, env: env, notReady: i > 0})
		waitReadyz(t, in, http.StatusOK, "")
		procs[name] = in
		instances = append(instances, nginxInstance{id, strings.TrimPrefix(in.URL, "http://")})
	}

	// The compose healthcheck, its URL pointed at each process.
	if f.Services[ws[0]].Healthcheck == nil || len(f.Services[ws[0]].Healthcheck.Test) != 4 {
		t.Fatalf("service %s: no healthcheck of the form [CMD, binary, healthcheck, URL] (see TestComposeFile)", ws[0])
	}
	hc := f.Services[ws[0]].Healthcheck.Test
	runHealthcheck := func(target string) (string, error) {
		u, err := url.Parse(hc[3])
		if err != nil {
			t.Fatalf("healthcheck URL %q: %v", hc[3], err)
		}
		u.Host = target
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, walcastBin, append(slices.Clone(hc[2:3]), u.String())...).CombinedOutput()
		return string(out), err
	}
	for _, name := range ws {
		in := procs[name]
		if out, err := runHealthcheck(strings.TrimPrefix(in.URL, "http://")); err != nil {
			t.Errorf("service %s: the compose healthcheck %q fails against the ready instance: %v\n%s", name, hc[1:], err, out)
		}
	}

	// nginx in front, routing by the compose ids: raw handshakes go round
	// robin to both, and a session's next request reaches its instance
	// (rawHandshake checks that).
	ng := startNginx(t, instances)
	viaNginx := &recoveryCluster{ng: ng}
	landed := map[string]int{}
	for range 4 {
		landed[viaNginx.rawHandshake(t)]++
	}
	for _, in := range instances {
		if landed[in.ID] == 0 {
			t.Errorf("no handshake through nginx reached instance %s (sessions per instance id: %v): the compose ids are not what walcast puts in its sids", in.ID, landed)
		}
	}

	// The healthcheck can fail: a walcast that is up but not ready (a
	// standby without REDIS_URL answers /healthz but /readyz 503) fails it,
	// so it checks readiness, not just that the process answers.
	env, err := composeEnvList(t, ws[0], f.Services[ws[0]].Environment, map[string]string{"JWT_SECRET": testSecret})
	if err != nil {
		t.Fatal(err)
	}
	env = slices.DeleteFunc(env, func(kv string) bool {
		return strings.HasPrefix(kv, "REDIS_URL=") || strings.HasPrefix(kv, "DATABASE_URL=") || strings.HasPrefix(kv, "WALCAST_INSTANCE_ID=")
	})
	unready := startWalcast(t, dsn, serveOpts{slot: slot, env: env, notReady: true})
	waitReadyz(t, unready, http.StatusServiceUnavailable, "standby")
	if out, err := runHealthcheck(strings.TrimPrefix(unready.URL, "http://")); err == nil {
		t.Errorf("the compose healthcheck %q passes against a walcast whose /readyz is 503:\n%s", hc[1:], out)
	}
}
