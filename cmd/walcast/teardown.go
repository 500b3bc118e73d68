package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/walcast/walcast/cdc"
)

// teardown drops the slot and publication, saying first what it will drop.
func teardown(ctx context.Context, args, env []string, stdout, stderr io.Writer) error {
	envOf := func(k, def string) string {
		for _, kv := range env {
			if v, ok := strings.CutPrefix(kv, k+"="); ok {
				return v
			}
		}
		return def
	}
	fs := flag.NewFlagSet("walcast teardown", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dsn := fs.String("database-url", envOf("DATABASE_URL", ""), "PostgreSQL URL [$DATABASE_URL]")
	pub := fs.String("publication", envOf("WALCAST_PUBLICATION", cdc.DefaultPublication), "publication to drop [$WALCAST_PUBLICATION]")
	slot := fs.String("slot", envOf("WALCAST_SLOT", "walcast"), "replication slot to drop [$WALCAST_SLOT]")
	force := fs.Bool("force", false, "also end a walcast still reading the slot")
	dryRun := fs.Bool("dry-run", false, "only say what would be dropped")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dsn == "" {
		return errors.New("--database-url (DATABASE_URL) is required")
	}
	fmt.Fprintf(stdout, "walcast teardown will drop replication slot %q and publication %q.\n", *slot, *pub)
	fmt.Fprintln(stdout, "Changes committed after this are no longer kept for walcast; a later 'walcast serve' starts afresh.")
	if *dryRun {
		return nil
	}
	res, err := cdc.Teardown(ctx, cdc.Config{ConnString: *dsn, Publication: *pub, Slot: *slot}, *force)
	if err != nil {
		return fmt.Errorf("teardown: %w", err)
	}
	say := func(what string, dropped bool) {
		if dropped {
			fmt.Fprintf(stdout, "dropped %s\n", what)
		} else {
			fmt.Fprintf(stdout, "%s did not exist\n", what)
		}
	}
	say(fmt.Sprintf("replication slot %q", *slot), res.SlotDropped)
	say(fmt.Sprintf("publication %q", *pub), res.PublicationDropped)
	return nil
}
