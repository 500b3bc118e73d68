package main

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/walcast/walcast/cdc"
)

// TestAdvice: cdc's errors name conditions; the binary adds the command
// or flag that deals with each, and leaves other errors as they are.
func TestAdvice(t *testing.T) {
	cases := []struct {
		err  error
		want []string
	}{
		{fmt.Errorf("setup: %w: slot gone", cdc.ErrSlotLost), []string{"--recreate-slot", "refetch"}},
		{fmt.Errorf("replication reader: %w: lost", cdc.ErrSlotInvalidated), []string{"walcast teardown", "pg_drop_replication_slot('s1')", "--recreate-slot", "max_slot_wal_keep_size"}},
		{fmt.Errorf("replication reader: %w", cdc.ErrSlotMissing), []string{"restart walcast", "--recreate-slot"}},
		{fmt.Errorf("replication reader: %w", cdc.ErrPublicationMissing), []string{"restart walcast", "sql/publication.sql"}},
	}
	for _, tc := range cases {
		got := withAdvice(tc.err, "s1")
		if !errors.Is(got, tc.err) || !strings.HasPrefix(got.Error(), tc.err.Error()) {
			t.Errorf("withAdvice(%v) = %v: lost the error", tc.err, got)
		}
		for _, w := range tc.want {
			if !strings.Contains(got.Error(), w) {
				t.Errorf("withAdvice(%v) = %q, lacks %q", tc.err, got, w)
			}
		}
	}
	plain := errors.New("listen on :1: address in use")
	if got := withAdvice(plain, "s1"); got != plain {
		t.Errorf("withAdvice changed an error it has no advice for: %v", got)
	}
	if withAdvice(nil, "s1") != nil {
		t.Error("withAdvice(nil) is not nil")
	}
}
