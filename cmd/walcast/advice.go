package main

import (
	"errors"
	"fmt"

	"github.com/walcast/walcast/cdc"
)

// withAdvice adds what to do at the command line to the errors of cdc,
// which name conditions only.
func withAdvice(err error, slot string) error {
	advice := adviceFor(err, slot)
	if advice == "" {
		return err
	}
	return fmt.Errorf("%w\nwhat to do: %s", err, advice)
}

// adviceFor is what to do about one of cdc's conditions; empty for other
// errors.
func adviceFor(err error, slot string) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, cdc.ErrSlotLost):
		return "restart with --recreate-slot (WALCAST_RECREATE_SLOT=true) to accept the gap: clients will be told to refetch"
	case errors.Is(err, cdc.ErrSlotInvalidated):
		return fmt.Sprintf("run `walcast teardown` (or SELECT pg_drop_replication_slot('%s');) and restart with --recreate-slot: clients will be told to refetch. Raise max_slot_wal_keep_size to avoid it", slot)
	case errors.Is(err, cdc.ErrSlotMissing):
		return "restart walcast so its setup checks the slot (it refuses, and says why, when changes were lost; --recreate-slot accepts them)"
	case errors.Is(err, cdc.ErrPublicationMissing):
		return "restart walcast so its setup recreates the publication, or create it by hand (sql/publication.sql)"
	}
	return ""
}
