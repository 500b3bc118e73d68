package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/walcast/walcast/e2e/sioclient"
	"github.com/walcast/walcast/internal/logbuf"
	"github.com/walcast/walcast/internal/redistest"
)

var updateNginxConf = flag.Bool("update-nginx-conf", false, "rewrite deploy/nginx.conf from deploy/nginx.conf.tmpl")

// nginxConf is what deploy/nginx.conf.tmpl is filled with.
type nginxConf struct {
	User      string
	Workers   string
	PID       string
	ErrorLog  string
	AccessLog string
	TempDir   string
	Listen    string
	Instances []nginxInstance
}

type nginxInstance struct{ ID, Addr string }

// composeNginxConf are the values of the docker-compose deployment: the
// official nginx image's user and paths (its logs are links to stdout and
// stderr), two instances named as in docker-compose.yml.
var composeNginxConf = nginxConf{
	User:      "nginx",
	Workers:   "auto",
	PID:       "/var/run/nginx.pid",
	ErrorLog:  "/var/log/nginx/error.log",
	AccessLog: "/var/log/nginx/access.log",
	Listen:    "80",
	Instances: []nginxInstance{{"w1", "walcast1:8080"}, {"w2", "walcast2:8080"}},
}

func renderNginxConf(t *testing.T, c nginxConf) []byte {
	t.Helper()
	src, err := os.ReadFile(filepath.Join("..", "..", "deploy", "nginx.conf.tmpl"))
	if err != nil {
		t.Fatalf("read nginx template: %v", err)
	}
	tmpl, err := template.New("nginx.conf").Option("missingkey=error").Parse(string(src))
	if err != nil {
		t.Fatalf("parse deploy/nginx.conf.tmpl: %v", err)
	}
	var b bytes.Buffer
	if err := tmpl.Execute(&b, c); err != nil {
		t.Fatalf("render deploy/nginx.conf.tmpl: %v", err)
	}
	return b.Bytes()
}

// TestDeployNginxConf: the nginx.conf docker-compose mounts is the
// template the sticky-session test runs, filled with the compose values.
func TestDeployNginxConf(t *testing.T) {
	want := renderNginxConf(t, composeNginxConf)
	path := filepath.Join("..", "..", "deploy", "nginx.conf")
	if *updateNginxConf {
		if err := os.WriteFile(path, want, 0o644); err != nil {
			t.Fatalf("write %s: %v", path, err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read deploy/nginx.conf: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("deploy/nginx.conf is not deploy/nginx.conf.tmpl rendered for docker-compose; run\n  go test ./cmd/walcast -run TestDeployNginxConf -update-nginx-conf")
	}
}

// nginxProc is a foreground nginx with everything in one temp dir.
type nginxProc struct {
	URL, dir, accessLog string
}

// startNginx runs Debian's nginx with deploy/nginx.conf.tmpl filled for
// loopback instances, and waits until it accepts connections.
func startNginx(t *testing.T, instances []nginxInstance) *nginxProc {
	t.Helper()
	bin, err := exec.LookPath("nginx")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/nginx"); serr != nil {
			t.Fatal("nginx is not installed: the sticky-session tests run Debian's nginx (apt-get install nginx)")
		}
		bin = "/usr/sbin/nginx"
	}
	dir := t.TempDir()
	port := freePort(t)
	c := nginxConf{
		Workers:   "1",
		PID:       filepath.Join(dir, "nginx.pid"),
		ErrorLog:  filepath.Join(dir, "error.log"),
		AccessLog: filepath.Join(dir, "access.log"),
		TempDir:   dir,
		Listen:    fmt.Sprintf("127.0.0.1:%d", port),
		Instances: instances,
	}
	if os.Geteuid() == 0 {
		// Workers of a root master otherwise become nobody, who cannot
		// write to this test's private temp dir.
		c.User = "root"
	}
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, renderNginxConf(t, c), 0o644); err != nil {
		t.Fatalf("write nginx.conf: %v", err)
	}
	logs := &logbuf.Buffer{}
	cmd := exec.Command(bin, "-p", dir, "-c", conf, "-e", c.ErrorLog, "-g", "daemon off;")
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("start nginx: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	p := &nginxProc{URL: "http://" + c.Listen, dir: dir, accessLog: c.AccessLog}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			errLog, _ := os.ReadFile(c.ErrorLog)
			acc, _ := os.ReadFile(c.AccessLog)
			t.Logf("nginx output:\n%s\nerror.log:\n%s\naccess.log:\n%s", logs.String(), errLog, acc)
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", c.Listen, time.Second)
		if err == nil {
			conn.Close()
			return p
		}
		select {
		case <-done:
			errLog, _ := os.ReadFile(c.ErrorLog)
			t.Fatalf("nginx exited at start:\n%s\n%s", logs.String(), errLog)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx not listening after 15s: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// startBehindNginx starts two instances sharing a slot and Redis, alpha
// reading the WAL and Beta2 standing by (both serve sockets), and nginx in
// front of them.
func startBehindNginx(t *testing.T) (dsn string, alpha *instance, ng *nginxProc, addrOf map[string]string) {
	t.Helper()
	rs := redistest.Run(t, redistest.Options{})
	dsn = newDB(t)
	// the users of the tokens the tests mint (users u1..u4, viewers)
	for i := 1; i <= 4; i++ {
		addUsers(t, dsn, mint(t, i, fmt.Sprintf("u%d", i), "viewer", nil, time.Hour))
	}
	env := []string{"REDIS_URL=" + rs.URL()}
	a := startWalcast(t, dsn, serveOpts{env: env, args: []string{"--instance-id", "alpha"}})
	b := startWalcast(t, dsn, serveOpts{env: env, slot: a.Slot, args: []string{"--instance-id", "Beta2"}})
	waitReadyz(t, b, 200, "standby")
	instances := []nginxInstance{{"alpha", strings.TrimPrefix(a.URL, "http://")}, {"Beta2", strings.TrimPrefix(b.URL, "http://")}}
	addrOf = map[string]string{"alpha": instances[0].Addr, "Beta2": instances[1].Addr}
	return dsn, a, startNginx(t, instances), addrOf
}

// accessLine is one line of the walcast log_format.
type accessLine struct {
	Status, Instance, Upstream, Method, Transport, SID string
	raw                                                string
}

func (p *nginxProc) accessLines(t *testing.T) []accessLine {
	t.Helper()
	b, err := os.ReadFile(p.accessLog)
	if err != nil && !os.IsNotExist(err) {
		t.Fatalf("read access log: %v", err)
	}
	var out []accessLine
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if l == "" {
			continue
		}
		f := strings.Split(l, "|")
		if len(f) != 7 {
			t.Fatalf("access log line %q does not have the walcast format's 7 fields", l)
		}
		for i := range f {
			if f[i] == "-" { // nginx's way of logging an empty variable
				f[i] = ""
			}
		}
		out = append(out, accessLine{f[0], f[1], f[2], f[3], f[4], f[5], l})
	}
	return out
}

// TestNginxStickySessions: with deploy/nginx.conf in front of two
// instances, the official client's handshakes go round-robin to both, and
// every later request of a session, long-polling or the WebSocket upgrade,
// reaches the instance that made it: no "Session ID unknown", and the
// session's events arrive.
func TestNginxStickySessions(t *testing.T) {
	dsn, _, ng, addrOf := startBehindNginx(t)

	const clients, rounds = 4, 12
	seen := 0                    // access log lines checked by earlier phases
	earlier := map[string]bool{} // their sessions, whose last lines (the
	// aborted poll, 499) may be written after the phase ended
	for _, phase := range []struct {
		name       string
		transports []string
	}{
		{"polling only", []string{"polling"}},
		{"polling then websocket", nil},
	} {
		tokens := make([]any, clients)
		for i := range tokens {
			tokens[i] = authOf(mint(t, i+1, fmt.Sprintf("u%d", i+1), "viewer", nil, time.Hour))
		}
		c := sioclient.Start(t, ng.URL, sioclient.ClientConfig{Count: clients, Auths: tokens, Transports: phase.transports})
		sockets := make([]int, clients)
		for i := range sockets {
			sockets[i] = i
			l := c.WaitFor(10*time.Second, func(l sioclient.Line) bool {
				return l.Client == i && (l.Kind == "connect" || l.Kind == "connect_error")
			})
			if l.Kind != "connect" {
				t.Fatalf("%s: socket %d refused through nginx: %s", phase.name, i, l.Raw)
			}
		}
		// Each round is one transaction every socket must receive: with
		// long-polling each delivery ends a GET and starts the next one.
		for r := 0; r < rounds; r++ {
			barrier(t, dsn, c, sockets...)
		}
		for _, l := range c.Lines() {
			if l.Kind == "disconnect" || l.Kind == "connect_error" {
				t.Errorf("%s: %s", phase.name, l.Raw)
			}
		}
		c.Close()

		// A WebSocket's line is written when it closes: wait for them.
		var lines []accessLine
		deadline := time.Now().Add(10 * time.Second)
		for {
			lines = ng.accessLines(t)[seen:]
			ws := 0
			for _, l := range lines {
				if l.Transport == "websocket" {
					ws++
				}
			}
			if phase.transports != nil || ws >= clients || time.Now().After(deadline) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		seen += len(lines)

		perSID := map[string][]accessLine{}
		handshakes := map[string]int{} // upstream -> handshakes it answered
		for _, l := range lines {
			if earlier[l.SID] {
				continue
			}
			switch l.Status {
			case "200", "101":
			case "499": // the poll still pending when the client exited
			default:
				t.Errorf("%s: nginx answered %s: %s", phase.name, l.Status, l.raw)
			}
			if l.SID == "" {
				handshakes[l.Upstream]++
				continue
			}
			perSID[l.SID] = append(perSID[l.SID], l)
		}
		if len(perSID) != clients {
			t.Fatalf("%s: %d sessions in the access log, want %d:\n%v", phase.name, len(perSID), clients, lines)
		}
		for sid := range perSID {
			earlier[sid] = true
		}
		landed := map[string]int{}
		totalPolls, totalUpgrades := 0, 0
		for sid, ls := range perSID {
			id, _, ok := strings.Cut(sid, ".")
			if !ok || addrOf[id] == "" {
				t.Errorf("%s: sid %q does not start with an instance id and a dot", phase.name, sid)
				continue
			}
			landed[id]++
			polls, upgrades := 0, 0
			for _, l := range ls {
				if l.Instance != id || l.Upstream != addrOf[id] {
					t.Errorf("%s: request of session %s went to %q (map said %q), want %s: %s", phase.name, sid, l.Upstream, l.Instance, addrOf[id], l.raw)
				}
				if l.Method == "GET" && l.Transport == "polling" {
					polls++
				}
				if l.Transport == "websocket" && l.Status == "101" {
					upgrades++
				}
			}
			totalPolls += polls
			totalUpgrades += upgrades
			if phase.transports != nil && polls < rounds {
				t.Errorf("%s: session %s made %d polling GETs, want at least %d (one per delivered event)", phase.name, sid, polls, rounds)
			}
			if phase.transports == nil && upgrades != 1 {
				t.Errorf("%s: session %s upgraded to WebSocket %d times through nginx, want 1", phase.name, sid, upgrades)
			}
		}
		t.Logf("%s: %d requests; sessions per instance %v; %d polling GETs, %d WebSocket upgrades after the handshakes", phase.name, len(lines), landed, totalPolls, totalUpgrades)
		if landed["alpha"] == 0 || landed["Beta2"] == 0 {
			t.Errorf("%s: sessions per instance %v: round robin should use both", phase.name, landed)
		}
		if handshakes[addrOf["alpha"]] == 0 || handshakes[addrOf["Beta2"]] == 0 {
			t.Errorf("%s: handshakes per upstream %v: round robin should use both", phase.name, handshakes)
		}
	}
	// The lines written after their phase was checked: still each at its
	// session's instance, and no error.
	for _, l := range ng.accessLines(t) {
		if id, _, ok := strings.Cut(l.SID, "."); ok && l.Upstream != addrOf[id] {
			t.Errorf("request of session %s went to %q, want %s: %s", l.SID, l.Upstream, addrOf[id], l.raw)
		}
		if l.Status != "200" && l.Status != "101" && l.Status != "499" {
			t.Errorf("nginx answered %s: %s", l.Status, l.raw)
		}
	}
}

// TestInstanceIDSetting: --instance-id becomes the sid prefix nginx routes
// by, so only ids the map's regex and a URL carry unchanged are accepted.
func TestInstanceIDSetting(t *testing.T) {
	base := []string{"DATABASE_URL=postgres://x/db", "JWT_SECRET=s"}
	cases := []struct {
		name    string
		args    []string
		env     []string
		want    string // "" with ok: a random id
		wantErr bool
	}{
		{"flag", []string{"--instance-id", "w1"}, nil, "w1", false},
		{"env", nil, []string{"WALCAST_INSTANCE_ID=Beta2"}, "Beta2", false},
		{"flag wins", []string{"--instance-id", "a"}, []string{"WALCAST_INSTANCE_ID=b"}, "a", false},
		{"16 chars", []string{"--instance-id", "abcdefghijklmnop"}, nil, "abcdefghijklmnop", false},
		{"17 chars", []string{"--instance-id", "abcdefghijklmnopq"}, nil, "", true},
		{"dot would end the prefix early", []string{"--instance-id", "a.b"}, nil, "", true},
		{"dash", []string{"--instance-id", "w-1"}, nil, "", true},
		{"non-ASCII", []string{"--instance-id", "wé"}, nil, "", true},
		{"unset: random", nil, nil, "", false},
	}
	for _, tc := range cases {
		s, err := parseServe(tc.args, append(append([]string{}, base...), tc.env...), io.Discard)
		if tc.wantErr {
			if err == nil || !strings.Contains(err.Error(), "--instance-id (WALCAST_INSTANCE_ID)") {
				t.Errorf("%s: error %v, want one naming --instance-id (WALCAST_INSTANCE_ID)", tc.name, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if tc.want != "" && s.InstanceID != tc.want {
			t.Errorf("%s: instance id %q, want %q", tc.name, s.InstanceID, tc.want)
		}
		if !validInstanceID(s.InstanceID) {
			t.Errorf("%s: instance id %q is not 1-16 letters or digits", tc.name, s.InstanceID)
		}
	}
	// Unnamed instances must not share a prefix, or their sessions would
	// look alike to a proxy.
	ids := map[string]bool{}
	for range 20 {
		s, err := parseServe(nil, base, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		ids[s.InstanceID] = true
	}
	if len(ids) != 20 {
		t.Errorf("20 unnamed instances got %d distinct ids", len(ids))
	}
}

// TestNginxRollingRestart: SIGTERM to one instance behind nginx (a rolling
// deploy) drops its sockets; the official client reconnects through nginx,
// which sends the new handshakes to the instance still running, and the
// sockets get events again once the standby took over the WAL.
func TestNginxRollingRestart(t *testing.T) {
	dsn, alpha, ng, addrOf := startBehindNginx(t)
	const clients = 4
	tokens := make([]any, clients)
	sockets := make([]int, clients)
	for i := range tokens {
		tokens[i] = authOf(mint(t, i+1, fmt.Sprintf("u%d", i+1), "viewer", nil, time.Hour))
		sockets[i] = i
	}
	c := sioclient.Start(t, ng.URL, sioclient.ClientConfig{Count: clients, Auths: tokens, Reconnection: true})
	for i := range sockets {
		if l := c.WaitFor(10*time.Second, func(l sioclient.Line) bool {
			return l.Client == i && (l.Kind == "connect" || l.Kind == "connect_error")
		}); l.Kind != "connect" {
			t.Fatalf("socket %d refused through nginx: %s", i, l.Raw)
		}
	}
	barrier(t, dsn, c, sockets...)
	before := len(ng.accessLines(t))

	onAlpha := map[string]bool{}
	for _, l := range ng.accessLines(t)[:before] {
		if strings.HasPrefix(l.SID, "alpha.") {
			onAlpha[l.SID] = true
		}
	}
	if len(onAlpha) == 0 || len(onAlpha) == clients {
		t.Fatalf("%d of %d sessions on alpha: round robin should put some on each", len(onAlpha), clients)
	}

	if err := alpha.stop(); err != nil {
		t.Fatalf("alpha exit after SIGTERM: %v", err)
	}
	var dropped []int
	deadline := time.Now().Add(10 * time.Second)
	for {
		dropped = dropped[:0]
		for i := range sockets {
			if c.Count(func(l sioclient.Line) bool { return l.Client == i && l.Kind == "disconnect" }) > 0 {
				dropped = append(dropped, i)
			}
		}
		if len(dropped) >= len(onAlpha) || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(dropped) != len(onAlpha) {
		t.Fatalf("%d sockets dropped when alpha stopped, want the %d on alpha:\n%s", len(dropped), len(onAlpha), dumpLines(c))
	}
	for _, i := range dropped {
		c.WaitFor(20*time.Second, func(l sioclient.Line) bool {
			return l.Client == i && l.Kind == "connect" && c.Count(func(m sioclient.Line) bool { return m.Client == i && m.Kind == "connect" }) >= 2
		})
	}
	// Beta2 takes the slot over within its standby retry (5 s).
	barrier(t, dsn, c, sockets...)

	for _, l := range ng.accessLines(t)[before:] {
		// Tried in turn ("alpha, Beta2" when alpha refused): the last answered.
		tried := strings.Split(l.Upstream, ", ")
		if l.SID == "" && l.Status == "200" && tried[len(tried)-1] != addrOf["Beta2"] {
			t.Errorf("a handshake after alpha stopped was answered by %q, want Beta2 at %s: %s", l.Upstream, addrOf["Beta2"], l.raw)
		}
		if strings.HasPrefix(l.SID, "Beta2.") && l.Status != "200" && l.Status != "101" && l.Status != "499" {
			t.Errorf("a request of a Beta2 session failed: %s", l.raw)
		}
	}
	for _, l := range c.Lines() {
		if l.Kind == "connect_error" {
			t.Errorf("reconnect refused: %s", l.Raw)
		}
	}
	t.Logf("%d of %d sockets were on alpha, dropped by its SIGTERM and reconnected through nginx to Beta2", len(dropped), clients)
}
