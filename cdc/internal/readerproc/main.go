// Command readerproc is a test-only reader process: it runs cdc.Setup and
// a cdc.Reader and prints every delivered change as one JSON line on
// stdout, accepting each transaction as soon as its changes are printed.
// The crash-safety test kills it with SIGKILL mid-stream and starts it
// again.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/walcast/walcast/cdc"
)

// line is one delivered change.
type line struct {
	XID       uint32 `json:"xid"`
	CommitLSN string `json:"commit_lsn"`
	Position  int    `json:"pos"`
	Op        string `json:"op"`
	Table     string `json:"table"`
	ID        string `json:"id"` // text of the first new (or old) column
}

type printer struct{ enc *json.Encoder }

func (p printer) Begin(context.Context, cdc.TxInfo) error { return nil }

func (p printer) Change(_ context.Context, c *cdc.Change) error {
	l := line{XID: c.Tx.XID, CommitLSN: c.Tx.CommitLSN.String(), Position: c.Position, Op: c.Op.String(), Table: c.Table.String()}
	row := c.New
	if len(row) == 0 {
		row = c.Old
	}
	if len(row) > 0 {
		l.ID = string(row[0].Text)
	}
	if err := p.enc.Encode(l); err != nil {
		return fmt.Errorf("print change: %w", err)
	}
	return nil
}

func (p printer) Commit(context.Context, cdc.TxInfo) error { return nil }

func main() {
	dsn := flag.String("dsn", "", "DATABASE_URL")
	tables := flag.String("tables", "", "comma-separated tables (no column lists)")
	slot := flag.String("slot", "walcast", "slot name")
	pub := flag.String("publication", "walcast", "publication name")
	flag.Parse()

	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	cfg := cdc.Config{ConnString: *dsn, Slot: *slot, Publication: *pub, StatusInterval: 200 * time.Millisecond, Logger: log}
	for _, t := range strings.Split(*tables, ",") {
		spec, err := cdc.ParseTableSpec(t)
		if err != nil {
			log.Error("bad table", "err", err)
			os.Exit(2)
		}
		cfg.Tables = append(cfg.Tables, spec)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if _, err := cdc.Setup(ctx, cfg); err != nil {
		log.Error("setup", "err", err)
		os.Exit(1)
	}
	// os.Stdout is unbuffered: a line is out before the transaction is
	// accepted, so a SIGKILL can only lose acks, never printed lines.
	if err := cdc.NewReader(cfg).Run(ctx, printer{enc: json.NewEncoder(os.Stdout)}); err != nil {
		log.Error("reader", "err", err)
		os.Exit(1)
	}
}
