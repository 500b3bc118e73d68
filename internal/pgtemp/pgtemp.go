// Package pgtemp runs a throwaway PostgreSQL server: for tests (through
// internal/pgtest) and for `walcast demo`.
//
// Start runs initdb into a fresh temporary directory and starts postgres on a
// free 127.0.0.1 port with wal_level=logical (so logical replication works),
// trust authentication, a unix socket inside the data directory and, unless
// Options.Fsync is set, fsync=off for speed. PostgreSQL refuses to run as
// root, so when the process is root the server runs as the system user
// "walcasttest" (created with useradd when absent) and the directory is
// chowned to it.
//
// The binaries are taken from /usr/lib/postgresql/<newest>/bin, or from PATH
// (override with the PGTEST_BINDIR environment variable).
//
// The superuser is named "postgres". CreateRole makes a login role with or
// without REPLICATION. Options.TLS generates a self-signed certificate for
// 127.0.0.1 (crypto/x509) and turns ssl on; RootCertFile names the
// certificate so clients can use sslmode=verify-full.
//
// Stop("fast"|"smart"|"immediate") and Start restart the same server on the
// same port and data directory (crash tests use "immediate"); Close stops it
// and removes the directory.
//
// It does not import testing: the walcast binary links it for its demo.
package pgtemp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/walcast/walcast/internal/loopback"
)

// SystemUser is the unprivileged account the server runs as when the
// process is root.
const SystemUser = "walcasttest"

// Superuser is the database superuser role initdb creates.
const Superuser = "postgres"

// Options configure a server.
type Options struct {
	// Fsync keeps fsync (and full_page_writes) on. Off by default: tests
	// rarely need durability against an operating-system crash, and a
	// "pg_ctl stop -m immediate" crash loses no committed transaction either
	// way (synchronous_commit stays on and the kernel keeps the pages).
	Fsync bool
	// TLS generates a self-signed server certificate and sets ssl=on.
	TLS bool
	// Settings are extra postgresql.conf lines, name to value (values are
	// written verbatim, so quote strings: "'1GB'").
	Settings map[string]string
}

// Server is a running (or stopped) throwaway PostgreSQL.
type Server struct {
	binDir  string
	dir     string // temporary root, removed by Close
	dataDir string
	logFile string
	port    int
	cred    *syscall.Credential // nil when not running as root
	tls     bool

	mu      sync.Mutex
	running bool
	dbSeq   int
}

// Start initialises a new cluster in a temporary directory and starts it.
func Start(opts Options) (*Server, error) {
	binDir, err := findBinDir()
	if err != nil {
		return nil, err
	}
	s := &Server{binDir: binDir, tls: opts.TLS}
	if os.Geteuid() == 0 {
		cred, err := systemUser()
		if err != nil {
			return nil, err
		}
		s.cred = cred
	}
	dir, err := os.MkdirTemp("", "pgtemp-")
	if err != nil {
		return nil, fmt.Errorf("create temp dir: %w", err)
	}
	s.dir = dir
	s.dataDir = filepath.Join(dir, "data")
	s.logFile = filepath.Join(dir, "postgres.log")
	if err := s.chown(dir); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	if err := s.initdb(opts); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	if err := s.Start(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	return s, nil
}

func findBinDir() (string, error) {
	if d := os.Getenv("PGTEST_BINDIR"); d != "" {
		return d, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	// Newest major version first; the glob sorts "9" after "15" lexically.
	sort.Slice(dirs, func(i, j int) bool { return majorOf(dirs[i]) > majorOf(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", errors.New("no PostgreSQL binaries: install postgresql (initdb not in /usr/lib/postgresql/*/bin nor PATH) or set PGTEST_BINDIR")
}

func majorOf(binDir string) float64 {
	v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(binDir)), 64)
	return v
}

var userMu sync.Mutex

// systemUser returns the credentials of SystemUser, creating the account
// when absent. Several test binaries may race to create it; a failed useradd
// is fine when the account exists afterwards.
func systemUser() (*syscall.Credential, error) {
	userMu.Lock()
	defer userMu.Unlock()
	u, err := user.Lookup(SystemUser)
	if err != nil {
		out, addErr := exec.Command("useradd", "--system", "--no-create-home",
			"--shell", "/usr/sbin/nologin", SystemUser).CombinedOutput()
		u, err = user.Lookup(SystemUser)
		if err != nil {
			return nil, fmt.Errorf("create system user %s for postgres (it refuses to run as root): %v: %s", SystemUser, addErr, out)
		}
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("uid of %s: %w", SystemUser, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("gid of %s: %w", SystemUser, err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}, nil
}

func (s *Server) chown(path string) error {
	if s.cred == nil {
		return nil
	}
	if err := os.Chown(path, int(s.cred.Uid), int(s.cred.Gid)); err != nil {
		return fmt.Errorf("chown %s to %s: %w", path, SystemUser, err)
	}
	return nil
}

// command builds a PostgreSQL tool invocation that runs as the server's
// owner.
func (s *Server) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(s.binDir, name), args...)
	cmd.Env = []string{"PATH=" + s.binDir + ":/usr/bin:/bin", "LC_ALL=C", "LANG=C", "TZ=UTC", "HOME=" + s.dir}
	cmd.Dir = s.dir
	if s.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	}
	return cmd
}

func (s *Server) run(name string, args ...string) error {
	out, err := s.command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w\n%s%s", name, strings.Join(args, " "), err, out, s.logTail())
	}
	return nil
}

func (s *Server) logTail() string {
	b, err := os.ReadFile(s.logFile)
	if err != nil || len(b) == 0 {
		return ""
	}
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return "\n--- postgres log (tail) ---\n" + string(b)
}

func (s *Server) initdb(opts Options) error {
	if err := s.run("initdb", "-D", s.dataDir, "-U", Superuser, "--auth=trust",
		"--encoding=UTF8", "--locale=C", "--no-sync"); err != nil {
		return err
	}
	port, err := loopback.FreePort()
	if err != nil {
		return err
	}
	s.port = port
	conf := map[string]string{
		"listen_addresses":        "'127.0.0.1'",
		"port":                    strconv.Itoa(port),
		"unix_socket_directories": "'" + s.dataDir + "'",
		"wal_level":               "logical",
		"max_wal_senders":         "20",
		"max_replication_slots":   "20",
		"max_connections":         "100",
		"shared_buffers":          "32MB",
		"fsync":                   "off",
		"full_page_writes":        "off",
		"log_min_messages":        "warning",
		"log_timezone":            "'UTC'",
		"timezone":                "'UTC'",
	}
	if opts.Fsync {
		conf["fsync"] = "on"
		conf["full_page_writes"] = "on"
	}
	if opts.TLS {
		if err := s.writeCert(); err != nil {
			return err
		}
		conf["ssl"] = "on"
		conf["ssl_cert_file"] = "'server.crt'"
		conf["ssl_key_file"] = "'server.key'"
	}
	for k, v := range opts.Settings {
		conf[k] = v
	}
	keys := make([]string, 0, len(conf))
	for k := range conf {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("\n# pgtemp\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "%s = %s\n", k, conf[k])
	}
	f, err := os.OpenFile(filepath.Join(s.dataDir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("open postgresql.conf: %w", err)
	}
	if _, err := f.WriteString(b.String()); err != nil {
		f.Close()
		return fmt.Errorf("write postgresql.conf: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write postgresql.conf: %w", err)
	}
	// initdb's default pg_hba.conf has no "replication" lines for TCP on
	// every version; make both trust explicitly.
	hba := "local all all trust\nlocal replication all trust\n" +
		"host all all 127.0.0.1/32 trust\nhost replication all 127.0.0.1/32 trust\n"
	if err := os.WriteFile(filepath.Join(s.dataDir, "pg_hba.conf"), []byte(hba), 0o600); err != nil {
		return fmt.Errorf("write pg_hba.conf: %w", err)
	}
	return s.chown(filepath.Join(s.dataDir, "pg_hba.conf"))
}

// Start starts a stopped server (Start the package function already did
// this once).
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running {
		return nil
	}
	if err := s.run("pg_ctl", "start", "-w", "-t", "60", "-D", s.dataDir, "-l", s.logFile); err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	s.running = true
	return nil
}

// Stop stops the server. mode is pg_ctl's shutdown mode: "smart", "fast"
// (clean, the default when empty) or "immediate" (a crash: recovery runs at
// the next Start).
func (s *Server) Stop(mode string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.running {
		return nil
	}
	if mode == "" {
		mode = "fast"
	}
	if err := s.run("pg_ctl", "stop", "-w", "-t", "60", "-D", s.dataDir, "-m", mode); err != nil {
		return fmt.Errorf("stop postgres (%s): %w", mode, err)
	}
	s.running = false
	return nil
}

// Restart stops the server with mode and starts it again on the same port.
func (s *Server) Restart(mode string) error {
	if err := s.Stop(mode); err != nil {
		return err
	}
	return s.Start()
}

// Close stops the server (immediately: its data is thrown away) and removes
// its directory.
func (s *Server) Close() error {
	stopErr := s.Stop("immediate")
	// After an immediate stop, exiting server processes may still be
	// writing for a moment: RemoveAll can race them, so retry briefly.
	var err error
	for range 50 {
		if err = os.RemoveAll(s.dir); err == nil {
			return stopErr
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("remove %s: %w", s.dir, err)
}

// Port is the TCP port on 127.0.0.1.
func (s *Server) Port() int { return s.port }

// DataDir is the cluster's data directory (also holds the unix socket).
func (s *Server) DataDir() string { return s.dataDir }

// BinDir is the directory of the PostgreSQL binaries in use.
func (s *Server) BinDir() string { return s.binDir }

// LogFile is the server's log file.
func (s *Server) LogFile() string { return s.logFile }

// ConnString is a URL connecting as the superuser to database dbname over
// TCP (sslmode=disable; see TLSConnString).
func (s *Server) ConnString(dbname string) string {
	return s.ConnStringAs(Superuser, dbname)
}

// ConnStringAs is a URL connecting as role to dbname (trust auth: no
// password).
func (s *Server) ConnStringAs(role, dbname string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.User(role),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)),
		Path:     "/" + dbname,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// TLSConnString is a URL that requires TLS and verifies the server's
// self-signed certificate (sslmode=verify-full). The server must have been
// started with Options.TLS.
func (s *Server) TLSConnString(dbname string) string {
	q := url.Values{"sslmode": {"verify-full"}, "sslrootcert": {s.RootCertFile()}}
	u := url.URL{
		Scheme:   "postgres",
		User:     url.User(Superuser),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)),
		Path:     "/" + dbname,
		RawQuery: q.Encode(),
	}
	return u.String()
}

// RootCertFile is the PEM file of the self-signed server certificate
// (Options.TLS), usable as sslrootcert.
func (s *Server) RootCertFile() string { return filepath.Join(s.dir, "root.crt") }

// Exec runs SQL statements as the superuser in dbname.
func (s *Server) Exec(ctx context.Context, dbname, sql string) error {
	conn, err := pgx.Connect(ctx, s.ConnString(dbname))
	if err != nil {
		return fmt.Errorf("connect to %s: %w", dbname, err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, sql); err != nil {
		return fmt.Errorf("exec in %s: %w", dbname, err)
	}
	return nil
}

// CreateDatabase creates database name.
func (s *Server) CreateDatabase(ctx context.Context, name string) error {
	return s.Exec(ctx, "postgres", "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
}

// CreateRole creates a login role without superuser, with REPLICATION when
// replication is true.
func (s *Server) CreateRole(ctx context.Context, name string, replication bool) error {
	attr := "NOREPLICATION"
	if replication {
		attr = "REPLICATION"
	}
	return s.Exec(ctx, "postgres", "CREATE ROLE "+pgx.Identifier{name}.Sanitize()+" LOGIN "+attr)
}

var nonIdent = regexp.MustCompile(`[^a-z0-9_]+`)

// NewDatabase creates a database whose name starts with a sequence number
// unique on this server, followed by hint reduced to [a-z0-9_], and returns
// the superuser connection string to it.
func (s *Server) NewDatabase(ctx context.Context, hint string) (string, error) {
	s.mu.Lock()
	s.dbSeq++
	seq := s.dbSeq
	s.mu.Unlock()
	name := nonIdent.ReplaceAllString(strings.ToLower(hint), "_")
	if len(name) > 40 {
		name = name[:40]
	}
	name = fmt.Sprintf("t%d_%s", seq, name)
	if err := s.CreateDatabase(ctx, name); err != nil {
		return "", err
	}
	return s.ConnString(name), nil
}

// DatabaseName returns the database name of a connection string made by
// this package.
func DatabaseName(connString string) string {
	u, err := url.Parse(connString)
	if err != nil {
		return ""
	}
	return strings.TrimPrefix(u.Path, "/")
}
