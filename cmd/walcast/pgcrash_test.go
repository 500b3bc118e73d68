package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/walcast/walcast/e2e/sioclient"
	"github.com/walcast/walcast/internal/redistest"
)

// TestPostgresCrashDoublesNothing: PostgreSQL stopped with -m immediate in
// the middle of a stream and started again re-sends everything since its
// last checkpoint's record of the slot; the fence in Redis drops what was
// already published, so every client gets every committed row exactly once
// (and nothing for a transaction the crash rolled back).
func TestPostgresCrashDoublesNothing(t *testing.T) {
	rs := redistest.Run(t, redistest.Options{AppendOnly: true})
	dsn := newDB(t)
	env := []string{"REDIS_URL=" + rs.URL()}
	first := startWalcast(t, dsn, serveOpts{env: env})
	second := startWalcast(t, dsn, serveOpts{env: env, slot: first.Slot})
	waitReadyz(t, second, http.StatusOK, "standby")
	clients := []*sioclient.Client{
		connect(t, first, mint(t, 1, "u1", "manager", nil, time.Hour)),
		connect(t, second, mint(t, 2, "u2", "manager", nil, time.Hour)),
	}

	const rows = 1500
	written := make(chan []int, 1)
	writeErr := make(chan error, 1)
	go func() {
		ids, err := insertMembersThroughCrash(dsn, rows)
		written <- ids
		writeErr <- err
	}()
	waitEvents(t, clients[1], 0, "member:update", rows/3, 60*time.Second)
	if err := pg.Stop("immediate"); err != nil {
		t.Fatalf("stop PostgreSQL: %v", err)
	}
	time.Sleep(500 * time.Millisecond)
	if err := pg.Start(); err != nil {
		t.Fatalf("start PostgreSQL: %v", err)
	}
	ids := <-written
	if err := <-writeErr; err != nil {
		t.Fatalf("write rows: %v", err)
	}
	for i, in := range []*instance{first, second} {
		t.Logf("instance %d: %d transactions fenced as already published", i, strings.Count(in.logs.String(), "transaction already published"))
	}
	committed := queryInt(t, dsn, `SELECT count(*) FROM members`)
	if committed != len(ids) {
		t.Fatalf("%d members in the table, the writer knows of %d", committed, len(ids))
	}
	for n, c := range clients {
		waitEvents(t, c, 0, "member:update", committed, 90*time.Second)
		time.Sleep(time.Second) // a duplicate would trail the last change
		got := events(c, 0, "member:update")
		seen := map[string]int{}
		for _, l := range got {
			var p struct {
				Data struct{ ID string } `json:"data"`
			}
			if l.Arg(0, &p) != nil {
				t.Fatalf("client %d: bad event %s", n, l.Raw)
			}
			seen[p.Data.ID]++
		}
		dups, missing := 0, 0
		for _, id := range ids {
			switch seen[fmt.Sprintf("m-%d", id)] {
			case 0:
				missing++
			case 1:
			default:
				dups++
			}
		}
		if dups != 0 || missing != 0 || len(got) != committed {
			t.Errorf("client %d: %d events for %d committed rows: %d duplicates, %d missing", n, len(got), committed, dups, missing)
		}
	}
}

// insertMembersThroughCrash inserts members m-1..m-n, one per transaction,
// riding out a PostgreSQL restart: after a failed statement it reconnects
// and asks whether the row made it before retrying. It returns the ids that
// are committed.
func insertMembersThroughCrash(dsn string, n int) ([]int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			conn.Close(ctx)
		}
	}()
	var ids []int
	for i := 1; i <= n; i++ {
		for {
			if conn == nil {
				c, err := pgx.Connect(ctx, dsn)
				if err != nil {
					if ctx.Err() != nil {
						return ids, err
					}
					time.Sleep(100 * time.Millisecond)
					continue
				}
				conn = c
				// Did the statement the crash interrupted commit?
				var exists bool
				if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM members WHERE id = $1)`, fmt.Sprintf("m-%d", i)).Scan(&exists); err != nil {
					conn.Close(ctx)
					conn = nil
					continue
				}
				if exists {
					break
				}
			}
			_, err := conn.Exec(ctx, `INSERT INTO members (id, first_name, last_name) VALUES ($1, 'F', 'L')`, fmt.Sprintf("m-%d", i))
			if err == nil {
				break
			}
			if errors.Is(err, context.DeadlineExceeded) {
				return ids, err
			}
			conn.Close(ctx)
			conn = nil
		}
		ids = append(ids, i)
		if i%20 == 0 {
			time.Sleep(20 * time.Millisecond)
		}
	}
	return ids, nil
}
