package cdc

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// TeardownResult says what Teardown removed.
type TeardownResult struct {
	SlotDropped        bool
	PublicationDropped bool
}

// Teardown drops walcast's slot and publication (`walcast teardown`), so an
// uninstalled walcast leaves nothing that pins WAL. Absent objects are not
// an error. A slot in use by a running reader is refused unless
// terminateReader, which ends that reader's replication connection first.
func Teardown(ctx context.Context, cfg Config, terminateReader bool) (TeardownResult, error) {
	cfg = cfg.withDefaults()
	var res TeardownResult
	conn, err := pgx.Connect(ctx, cfg.ConnString)
	if err != nil {
		return res, fmt.Errorf("teardown: connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))

	var activePID *int32
	var exists bool
	err = conn.QueryRow(ctx, "SELECT count(*) > 0, max(active_pid) FROM pg_replication_slots WHERE slot_name = $1", cfg.Slot).Scan(&exists, &activePID)
	if err != nil {
		return res, fmt.Errorf("teardown: look up slot %q: %w", cfg.Slot, err)
	}
	if exists {
		if activePID != nil {
			if !terminateReader {
				return res, fmt.Errorf("teardown: slot %q is in use by process %d (a running walcast): stop it first", cfg.Slot, *activePID)
			}
			if _, err := conn.Exec(ctx, "SELECT pg_terminate_backend($1)", *activePID); err != nil {
				return res, fmt.Errorf("teardown: terminate reader %d: %w", *activePID, err)
			}
		}
		// wait=true in SQL form: pg_drop_replication_slot fails on an
		// active slot, and the terminated walsender takes a moment to go.
		if _, err := conn.Exec(ctx, `DO $$
			DECLARE i int := 0;
			BEGIN
				LOOP
					BEGIN
						PERFORM pg_drop_replication_slot(`+quoteLiteral(cfg.Slot)+`);
						RETURN;
					EXCEPTION WHEN object_in_use THEN
						i := i + 1;
						IF i > 50 THEN RAISE; END IF;
						PERFORM pg_sleep(0.1);
					END;
				END LOOP;
			END $$`); err != nil {
			return res, fmt.Errorf("teardown: drop slot %q: %w", cfg.Slot, err)
		}
		res.SlotDropped = true
	}

	var pubExists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)", cfg.Publication).Scan(&pubExists); err != nil {
		return res, fmt.Errorf("teardown: look up publication %q: %w", cfg.Publication, err)
	}
	if pubExists {
		if _, err := conn.Exec(ctx, "DROP PUBLICATION IF EXISTS "+quoteIdent(cfg.Publication)); err != nil {
			return res, fmt.Errorf("teardown: drop publication %q (its owner or a superuser can run: DROP PUBLICATION %s;): %w", cfg.Publication, quoteIdent(cfg.Publication), err)
		}
		res.PublicationDropped = true
	}
	return res, nil
}
