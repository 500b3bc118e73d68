package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/walcast/walcast/broadcast/redisadapter"
	"github.com/walcast/walcast/internal/pgtemp"
	"github.com/walcast/walcast/sql"
)

// demo runs walcast against a throwaway PostgreSQL holding the example
// schema and serves a page at "/" where an admin's and a viewer's sockets
// show what reaches them as its buttons write rows. It prints the URL,
// tokens and a few ways to watch; everything is deleted on exit.
func demo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("walcast demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:8080", "HTTP listen address (the page's write buttons answer only to an IP address or localhost)")
	every := fs.Duration("every", 0, "how often to write a sample change besides the page's buttons (0: never)")
	clientDir := fs.String("socketio-client", defaultSocketIOClient, "socket.io-client 4 package folder whose browser bundle the page loads (npm ci --prefix cmd/walcast/demo installs it)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("walcast demo takes no arguments, got %q", fs.Args())
	}
	client, err := findSocketIOClient(*clientDir)
	if err != nil {
		return err
	}
	fmt.Fprintln(stderr, "starting a throwaway PostgreSQL (wal_level=logical)...")
	pg, err := pgtemp.Start(pgtemp.Options{})
	if err != nil {
		return fmt.Errorf("start PostgreSQL (is the postgresql package installed?): %w", err)
	}
	defer pg.Close()
	if err := pg.CreateDatabase(ctx, "gracegiver"); err != nil {
		return err
	}
	dsn := pg.ConnString("gracegiver")
	if err := execSQL(ctx, dsn, sql.GraceGiverSchema+demoSeed); err != nil {
		return fmt.Errorf("load example schema: %w", err)
	}
	secretBytes := make([]byte, 16)
	_, _ = rand.Read(secretBytes)
	secret := hex.EncodeToString(secretBytes)
	admin, err := signToken([]byte(secret), "1", "admin", "super_admin", "", 24*time.Hour)
	if err != nil {
		return err
	}
	viewer, err := signToken([]byte(secret), "2", "ann", "viewer", demoViewerMember, 24*time.Hour)
	if err != nil {
		return err
	}

	cfg, err := parseServe([]string{"--listen", *listen, "--cors-origins", "*", "--admin-listen", "127.0.0.1:0"}, []string{"DATABASE_URL=" + dsn, "JWT_SECRET=" + secret}, stderr)
	if err != nil {
		return err
	}
	log := newLogger(stderr, cfg.LogLevel, cfg.LogFormat)
	redis.SetLogger(redisadapter.NewClientLogger(log, 0))
	srv, err := newServer(ctx, cfg, log)
	if err != nil {
		return err
	}
	page := newDemoPage(dsn, client, cfg, admin, viewer, log)
	srv.http.Handler = page.handler(srv.http.Handler)
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", *listen, err)
	}
	url := "http://" + browsableAddr(ln.Addr())
	fmt.Fprintf(stdout, `open %s/

walcast demo is up: a throwaway PostgreSQL with the example schema, and walcast
reading its WAL. The page shows an admin's and a viewer's socket side by side;
its buttons write rows, walcast sends the events.
  Socket.IO URL:  %s   (path %s)
  DATABASE_URL:   %s
  JWT_SECRET:     %s
  admin token:    %s
  viewer token:   %s   (member m-ann: sees only her own donations)

Write a change yourself, and watch it arrive on the page:
  psql '%s' -c "INSERT INTO donations (member_id, amount, fund) VALUES ('m-ann', 25, 'Tithes')"

Watch events in a terminal (needs Node.js; 'npm ci --prefix e2e' once):
  node scripts/watch.mjs %s %s

In a browser app:
  io(%q, { auth: { token: "<token>" } }).on("donation:update", console.log)

%sCtrl-C stops and deletes everything.
`, url, url, cfg.Path, dsn, secret, admin, viewer, dsn, url, admin, url, samplesNote(*every))
	if srv.adminLn != nil {
		fmt.Fprintf(stdout, "Prometheus metrics: http://%s/metrics\n", srv.adminLn.Addr())
	}
	if *every > 0 {
		go writeSamples(ctx, dsn, *every, log.Info)
	}
	return srv.run(ctx, ln)
}

// browsableAddr is addr as a browser on this machine reaches it: a server
// listening on every interface is reached at 127.0.0.1.
func browsableAddr(addr net.Addr) string {
	tcp, ok := addr.(*net.TCPAddr)
	if !ok || !tcp.IP.IsUnspecified() {
		return addr.String()
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(tcp.Port))
}

func samplesNote(every time.Duration) string {
	if every <= 0 {
		return ""
	}
	return fmt.Sprintf("Sample changes are written every %s. ", every)
}

const demoSeed = `
INSERT INTO settings (name, address, phone, email, tax_id)
VALUES ('Grace Church', '1 Main St', '555-0100', 'office@grace.example', '12-3456789')
ON CONFLICT DO NOTHING;
INSERT INTO members (id, first_name, last_name, email) VALUES ('m-ann', 'Ann', 'Lee', 'ann@example.org'), ('m-bob', 'Bob', 'Diaz', 'bob@example.org')
ON CONFLICT DO NOTHING;
INSERT INTO users (username, password_hash, role, member_id) VALUES ('admin', 'x', 'super_admin', NULL), ('ann', 'x', 'viewer', 'm-ann')
ON CONFLICT DO NOTHING;
`

// writeSamples cycles through the kinds of change GraceGiver makes.
func writeSamples(ctx context.Context, dsn string, every time.Duration, logf func(string, ...any)) {
	steps := []string{
		`INSERT INTO donations (member_id, amount, fund, notes, entered_by) VALUES ('m-ann', 100.00, 'Tithes', 'Sunday tithe', 'admin')`,
		`INSERT INTO members (id, first_name, last_name, skills) VALUES ('m-' || substr(md5(random()::text), 1, 8), 'Sam', 'Park', '{music,teaching}')`,
		`UPDATE donations SET amount = amount + 5 WHERE id = (SELECT max(id) FROM donations)`,
		`UPDATE settings SET phone = '555-' || (1000 + floor(random() * 9000))::int`,
		`INSERT INTO donations (member_id, amount, fund, entered_by) VALUES (NULL, 20.00, 'Missions', 'admin')`,
		`DELETE FROM donations WHERE id = (SELECT min(id) FROM donations)`,
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		stmt := steps[i%len(steps)]
		if err := execSQL(ctx, dsn, stmt); err != nil && !errors.Is(err, context.Canceled) {
			logf("demo write failed", "err", err)
			continue
		}
		logf("demo wrote", "sql", stmt)
	}
}

// execSQL runs each statement as its own transaction, in order, on one
// connection.
func execSQL(ctx context.Context, dsn string, stmts ...string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	for _, s := range stmts {
		if _, err := conn.Exec(ctx, s); err != nil {
			return err
		}
	}
	return nil
}
