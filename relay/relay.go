// Package relay carries committed transactions from cdc, through route,
// into the broadcast hub: each transaction becomes one unit of events, the
// account changes every instance's handshake check applies (the
// transaction's State, accounts.Encode) and account revocations, and cdc
// may confirm it to PostgreSQL only once the hub accepted it.
//
//	reader.Run(ctx, relay.New(relay.Config{Hub: hub, Router: router}))
//
// How the unit travels (memory, Redis pub/sub, a fenced Redis stream) is
// the hub's business: relay asks it only whether several transactions
// should go in one call (GroupsTransactions), and then implements
// cdc.GroupCommitter so that the reader hands over, in one go, the
// transactions it has already read.
package relay

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/walcast/walcast/accounts"
	"github.com/walcast/walcast/broadcast"
	"github.com/walcast/walcast/cdc"
	"github.com/walcast/walcast/route"
)

// Hub is where transactions are delivered: a *broadcast.Hub.
type Hub interface {
	Publish(ctx context.Context, txs []broadcast.Transaction) (delivered []bool, err error)
	GroupsTransactions() bool
}

// Config wires a relay.
type Config struct {
	Hub    Hub
	Router *route.Router
	Logger *slog.Logger
	// Now is the clock that decides whether a lock-out is in force;
	// default time.Now.
	Now func() time.Time
	// Observer, when set, counts transactions, rows and events (metrics).
	Observer Observer
}

// MaxGroupEntries bounds the events and revocations one Publish call
// carries: a group of transactions is published by itself once it holds
// this many, so neither the call (one Redis script, which every lock
// operation waits behind) nor the relay's memory grows with a backlog.
const MaxGroupEntries = 1024

// New returns the consumer for a cdc.Reader: a cdc.GroupCommitter when the
// hub groups transactions, a plain cdc.Consumer otherwise.
func New(cfg Config) cdc.Consumer {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	r := &relay{hub: cfg.Hub, router: cfg.Router, log: cfg.Logger, now: cfg.Now, obs: cfg.Observer}
	if r.obs != nil {
		r.rows = map[rowKey]int{}
	}
	if cfg.Hub.GroupsTransactions() {
		return &groupRelay{relay: r}
	}
	return r
}

// relay delivers each transaction as it commits.
type relay struct {
	hub    Hub
	router *route.Router
	log    *slog.Logger
	now    func() time.Time

	// open: a transaction began and has not been committed. A Begin while
	// one is open means the connection dropped mid-transaction.
	open bool
	// pending are routed transactions not yet published, with what they
	// revoke (for the log) and how many entries they hold.
	pending []broadcast.Transaction
	revoked []revoked
	entries int

	// obs, when set, is told what pending transactions carry once the hub
	// delivered them: tallies[i] is pending[i]'s; rows counts the open
	// transaction's changes.
	obs     Observer
	tallies []tally
	rows    map[rowKey]int
}

type revoked struct {
	user, why string
	except    []string
}

func (r *relay) Begin(_ context.Context, tx cdc.TxInfo) error {
	if r.open {
		r.Reset()
	}
	r.open = true
	r.router.Begin(tx)
	clear(r.rows) // an interrupted transaction's changes come again
	return nil
}

func (r *relay) Change(_ context.Context, c *cdc.Change) error {
	r.router.Change(c)
	if r.obs != nil {
		r.countRow(c)
	}
	return nil
}

// Commit publishes the transaction; nil means the hub accepted it.
func (r *relay) Commit(ctx context.Context, tx cdc.TxInfo) error {
	r.stage(tx)
	return r.Flush(ctx)
}

// stage routes the committed transaction into pending.
func (r *relay) stage(tx cdc.TxInfo) {
	r.open = false
	b := r.router.Commit(tx)
	t := broadcast.Transaction{Position: uint64(tx.EndLSN)}
	for _, e := range b.Emits {
		if !e.All && len(e.Rooms) == 0 {
			continue // nobody is in the audience of this row
		}
		t.Events = append(t.Events, broadcast.Event{Name: e.Event, Rooms: e.Rooms, Except: e.Except, Payload: e.Payload})
	}
	if len(b.Users) > 0 {
		state, err := accounts.Encode(r.accountChanges(b.Users))
		if err != nil {
			// An id too long for the wire: the revocations below still
			// cut its sockets; the handshake check misses the change
			// until the next reload or restart.
			r.log.Error("encode account changes", "end_lsn", tx.EndLSN, "err", err)
		} else {
			t.State = state
		}
	}
	now := r.now()
	for _, u := range b.Users {
		rev, why, ok := revocation(u, now)
		if !ok {
			continue
		}
		t.Revocations = append(t.Revocations, rev)
		r.revoked = append(r.revoked, revoked{user: u.ID, why: why, except: rev.Except})
	}
	r.pending = append(r.pending, t)
	r.entries += len(t.Events) + len(t.Revocations)
	if r.obs != nil {
		if len(r.tallies) < len(r.pending) {
			r.tallies = append(r.tallies, tally{})
		}
		t := &r.tallies[len(r.pending)-1]
		r.tallyRows(t)
		tallyOf(b.Emits, t)
	}
}

// Flush publishes every pending transaction in one hub call.
func (r *relay) Flush(ctx context.Context) error {
	if len(r.pending) == 0 {
		return nil
	}
	start := time.Now()
	delivered, err := r.hub.Publish(ctx, r.pending)
	if r.obs != nil {
		r.obs.Published(time.Since(start), err)
		if err == nil {
			r.reportAccepted(len(delivered))
		}
	}
	if err != nil {
		n := len(r.pending)
		r.Reset()
		return fmt.Errorf("publish %d transactions: %w", n, err)
	}
	for i, ok := range delivered {
		if !ok {
			r.log.Debug("transaction already published: skipped", "end_lsn", pglogrepl.LSN(r.pending[i].Position))
		}
	}
	for _, v := range r.revoked {
		r.log.Info("revoking sockets", "user", v.user, "reason", v.why, "except", v.except)
	}
	r.router.Accept()
	r.clearPending()
	return nil
}

// Reset drops what was not published: those transactions come again, and
// a router that remembered their rows would take them for unchanged.
func (r *relay) Reset() {
	r.clearPending()
	r.router.Discard()
}

func (r *relay) clearPending() {
	clear(r.pending)
	r.pending, r.revoked, r.entries = r.pending[:0], nil, 0
}

// groupRelay defers publishing to Flush, so the transactions the reader
// has already read go to the hub together.
type groupRelay struct{ *relay }

var _ cdc.GroupCommitter = (*groupRelay)(nil)

// CommitDeferred routes tx and keeps it for Flush; past MaxGroupEntries it
// publishes what it holds (making transactions durable before the reader
// accepts them is always safe: if the reader's own Flush fails later, they
// come again and the hub's fence skips them).
func (g *groupRelay) CommitDeferred(ctx context.Context, tx cdc.TxInfo) error {
	g.stage(tx)
	if g.entries >= MaxGroupEntries {
		return g.Flush(ctx)
	}
	return nil
}

// accountChanges turns the router's account facts into the directory's
// changes: what the row carried, nothing it did not.
func (r *relay) accountChanges(users []route.UserChange) []accounts.Change {
	lockOut := r.router.Config().Users.LockedUntilColumn != ""
	out := make([]accounts.Change, 0, len(users))
	for _, u := range users {
		c := accounts.Change{ID: u.ID, Deleted: u.Deleted}
		if !u.Deleted {
			if u.RoleKnown {
				c.Role = &u.Role
			}
			if u.MemberIDKnown {
				c.MemberID = &u.MemberID
			}
			if lockOut {
				c.LockedUntil = &u.LockedUntil
			}
		}
		out = append(out, c)
	}
	return out
}

// revocation says which sockets of every instance an account change cuts:
// all of the user's sockets when the row is deleted or locked out; on any
// other change of a row that carries the role, those whose token carries
// another role (a socket is in the room of its token's role). A row whose
// role is empty cuts every socket of the user: no room marks "no role",
// and cutting too many beats serving a demoted user. ok is false when
// nothing is cut. The cut closes the connections (Close): the client
// reconnects and its handshake, checked against the new row, answers
// connect_error "Authentication error: Invalid token", the contract's
// re-login case; a DISCONNECT would leave it silently offline.
//
// A member id change has no room expressing "in user:7 but not in
// member:m-2 together with role:x"; the handshake check's state (the
// transaction's State) reaches every instance first, and the gateway cuts
// the user's sockets whose token no longer matches it. Revocations remain
// the cut that Node peers sharing Redis understand.
func revocation(u route.UserChange, now time.Time) (rev broadcast.Revocation, why string, ok bool) {
	rev.Rooms = []string{route.UserRoom(u.ID)}
	rev.Close = true
	switch {
	case u.Deleted:
		return rev, "user deleted", true
	case u.LockedUntil.After(now):
		return rev, "user locked out", true
	case u.RoleKnown:
		if u.Role != "" {
			rev.Except = []string{route.RoleRoom(u.Role)}
		}
		return rev, "role changed", true
	}
	return broadcast.Revocation{}, "", false
}
