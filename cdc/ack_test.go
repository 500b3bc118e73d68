package cdc

import (
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
)

func TestAckTracker(t *testing.T) {
	type step struct {
		op   string // begin, dispatch, accept, keepalive, reset, raise
		lsn  pglogrepl.LSN
		want pglogrepl.LSN // confirmed position after the step
	}
	cases := []struct {
		name  string
		start pglogrepl.LSN
		steps []step
	}{
		{"idle keepalive confirms server WAL end", 100, []step{
			{"keepalive", 500, 500},
			{"keepalive", 400, 500}, // never backwards
		}},
		{"accepted transaction confirms its END LSN", 100, []step{
			{"begin", 0, 100},
			{"dispatch", 0, 100},
			{"accept", 250, 250},
		}},
		{"keepalive inside an open transaction is ignored", 100, []step{
			{"begin", 0, 100},
			{"keepalive", 900, 100},
			{"dispatch", 0, 100},
			{"accept", 300, 300},
			{"keepalive", 900, 900},
		}},
		{"keepalive does not jump a dispatched but unaccepted transaction", 100, []step{
			{"begin", 0, 100},
			{"dispatch", 0, 100},
			{"keepalive", 900, 100},
			{"begin", 0, 100},
			{"dispatch", 0, 100},
			{"accept", 300, 300},
			{"keepalive", 900, 300}, // second still pending
			{"accept", 400, 400},
			{"keepalive", 900, 900},
		}},
		{"session reset drops the unaccepted and keeps the confirmed", 100, []step{
			{"begin", 0, 100},
			{"dispatch", 0, 100},
			{"begin", 0, 100},
			{"reset", 0, 100},
			{"keepalive", 700, 700},
		}},
		{"raise only moves forward", 100, []step{
			{"raise", 50, 100},
			{"raise", 300, 300},
		}},
		{"never zero", 0, []step{
			{"keepalive", 0, 0},
			{"raise", 10, 10},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := newAckTracker(tc.start)
			for i, s := range tc.steps {
				switch s.op {
				case "begin":
					a.begin()
				case "dispatch":
					a.dispatchCommit()
				case "accept":
					a.accept(s.lsn, time.Now())
				case "keepalive":
					a.keepalive(s.lsn)
				case "reset":
					a.resetSession()
				case "raise":
					a.raise(s.lsn)
				}
				if got := a.position(); got != s.want {
					t.Fatalf("step %d (%s %s): confirmed %s, want %s", i, s.op, s.lsn, got, s.want)
				}
			}
		})
	}
}
