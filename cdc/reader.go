package cdc

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// Consumer receives committed transactions in commit order.
//
// Calls come from one goroutine, one at a time: Begin, the transaction's
// Changes (Position 0, 1, ...), then Commit. When the replication
// connection is lost mid-transaction the partial transaction is never
// committed: the next call is a Begin of the same or a later transaction,
// and the consumer must discard what it buffered of the interrupted one.
// Delivery is at least once: after a crash of walcast or PostgreSQL,
// transactions already accepted may be delivered again (same CommitLSN and
// Positions), so consumers that must not repeat deduplicate on them.
//
// A consumer may block (Redis down...): the reader keeps the replication
// connection alive meanwhile and acknowledges nothing new. Returning an
// error ends the replication session; the reader reconnects after a
// backoff and PostgreSQL re-sends everything not yet accepted.
type Consumer interface {
	Begin(ctx context.Context, tx TxInfo) error
	Change(ctx context.Context, c *Change) error
	// Commit returning nil means the consumer accepted the whole
	// transaction: the reader may confirm tx.EndLSN to PostgreSQL.
	Commit(ctx context.Context, tx TxInfo) error
}

// State is the reader's role for health checks.
type State int32

const (
	StateStarting State = iota
	// StateLeader: this reader holds the slot and streams.
	StateLeader
	// StateStandby: another reader holds the slot; this one retries.
	StateStandby
	// StateReconnecting: the connection was lost; retrying with backoff.
	StateReconnecting
	StateStopped
)

func (s State) String() string {
	switch s {
	case StateStarting:
		return "starting"
	case StateLeader:
		return "leader"
	case StateStandby:
		return "standby"
	case StateReconnecting:
		return "reconnecting"
	case StateStopped:
		return "stopped"
	}
	return "unknown"
}

// Errors that stop Run for good: retrying cannot fix them, a human must.
var (
	// ErrSlotMissing: the slot does not exist (run Setup; if walcast
	// streamed before, Setup refuses unless RecreateSlot).
	ErrSlotMissing = errors.New("replication slot does not exist")
	// ErrSlotInvalidated: PostgreSQL removed WAL the slot still needed
	// (max_slot_wal_keep_size exceeded); changes were lost.
	ErrSlotInvalidated = errors.New("replication slot invalidated")
	// ErrPublicationMissing: the publication was dropped.
	ErrPublicationMissing = errors.New("publication does not exist")
	// ErrNotPermitted: authentication or privileges are insufficient.
	ErrNotPermitted = errors.New("not permitted")
)

// Reader streams committed changes from the slot to a Consumer.
type Reader struct {
	cfg  Config
	acks *ackTracker

	state        atomic.Int32
	stateSince   atomic.Int64 // unix nanoseconds
	lastStatusNs atomic.Int64 // last standby status sent to PostgreSQL
	mu           sync.Mutex
	lastErr      error
}

// NewReader returns a Reader for cfg (run Setup first).
func NewReader(cfg Config) *Reader {
	r := &Reader{cfg: cfg.withDefaults(), acks: newAckTracker(0)}
	r.setState(StateStarting)
	return r
}

func (r *Reader) setState(s State) {
	if State(r.state.Swap(int32(s))) != s {
		r.stateSince.Store(time.Now().UnixNano())
	}
}

// State is the reader's current role.
func (r *Reader) State() State { return State(r.state.Load()) }

// Run streams until ctx is cancelled (returns nil) or a fatal error
// (ErrSlotMissing, ErrSlotInvalidated, ErrPublicationMissing,
// ErrNotPermitted, a decoding error). Connection losses and PostgreSQL
// restarts are retried with backoff, resuming from the last confirmed
// position; while another reader holds the slot this one is standby and
// retries every StandbyRetry, taking over when the slot frees up.
func (r *Reader) Run(ctx context.Context, c Consumer) error {
	log := r.cfg.Logger
	const minBackoff = 100 * time.Millisecond
	backoff := minBackoff
	defer r.setState(StateStopped)
	for {
		began := time.Now()
		streamed, err := r.session(ctx, c)
		if ctx.Err() != nil {
			return nil
		}
		r.mu.Lock()
		r.lastErr = err
		r.mu.Unlock()
		// Only a session that streamed for a while resets the backoff, so
		// a connection that fails right after starting is not hammered.
		if streamed && time.Since(began) > 5*time.Second {
			backoff = minBackoff
		}
		wait := backoff
		var pgErr *pgconn.PgError
		switch {
		case err == nil:
			// The server ended the stream without an error; reconnect.
			r.setState(StateReconnecting)
		case isFatal(err):
			log.Error("replication stopped", "err", err)
			return err
		case errors.As(err, &pgErr) && pgErr.Code == "55006":
			if r.State() != StateStandby {
				log.Info("replication slot is held by another reader: standing by", "slot", r.cfg.Slot, "retry", r.cfg.StandbyRetry)
			}
			r.setState(StateStandby)
			wait = r.cfg.StandbyRetry
			backoff = minBackoff
		default:
			r.setState(StateReconnecting)
			log.Warn("replication interrupted, reconnecting", "err", err, "in", wait)
			backoff = min(backoff*2, r.cfg.MaxBackoff)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

func isFatal(err error) bool {
	for _, f := range []error{ErrSlotMissing, ErrSlotInvalidated, ErrPublicationMissing, ErrNotPermitted, ErrMalformed, ErrUnknownRelation, ErrTransactionOrder} {
		if errors.Is(err, f) {
			return true
		}
	}
	return false
}

// classify turns server errors that retrying cannot fix into the fatal
// errors, with what to do.
func (r *Reader) classify(err error) error {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return err
	}
	switch {
	case pgErr.Code == "55000" && strings.Contains(pgErr.Message, "replication slot"):
		return fmt.Errorf("%w: %s: PostgreSQL removed WAL that slot %q still needed, so changes were lost. Run `walcast teardown` (or SELECT pg_drop_replication_slot('%s')) and restart with --recreate-slot; clients will be told to refetch. Raise max_slot_wal_keep_size to avoid it",
			ErrSlotInvalidated, pgErr.Message, r.cfg.Slot, r.cfg.Slot)
	case pgErr.Code == "42704" && strings.Contains(pgErr.Message, "publication"):
		return fmt.Errorf("%w: %s: restart walcast so its setup recreates publication %q (or create it by hand)", ErrPublicationMissing, pgErr.Message, r.cfg.Publication)
	case pgErr.Code == "42704" && strings.Contains(pgErr.Message, "slot"):
		return fmt.Errorf("%w: %s: restart walcast so its setup checks the slot (use --recreate-slot to accept lost changes)", ErrSlotMissing, pgErr.Message)
	case strings.HasPrefix(pgErr.Code, "28") || pgErr.Code == "42501" || pgErr.Code == "3D000":
		return fmt.Errorf("%w: %w", ErrNotPermitted, err)
	}
	return err
}

// slotInfo is the slot's row in pg_replication_slots.
type slotInfo struct {
	confirmed pglogrepl.LSN
	walStatus string
}

// session runs one replication connection. streamed reports that
// START_REPLICATION succeeded (the backoff then restarts small).
func (r *Reader) session(ctx context.Context, c Consumer) (streamed bool, err error) {
	conn, err := connectReplication(ctx, r.cfg.ConnString)
	if err != nil {
		return false, r.classify(err)
	}
	defer conn.Close(context.WithoutCancel(ctx))

	slot, err := r.checkSlot(ctx, conn)
	if err != nil {
		return false, r.classify(err)
	}
	r.acks.raise(max(slot.confirmed, r.cfg.StartLSN))
	start := r.acks.position()

	resync, err := r.resyncPending(ctx, conn)
	if err != nil {
		return false, err
	}

	interval := r.statusInterval(ctx, conn) // SQL works only before streaming starts
	err = pglogrepl.StartReplication(ctx, conn, r.cfg.Slot, start, pglogrepl.StartReplicationOptions{
		PluginArgs: []string{"proto_version '1'", "publication_names " + quoteLiteral(r.cfg.Publication), "messages 'true'"},
	})
	if err != nil {
		return false, r.classify(fmt.Errorf("start replication from %s: %w", start, err))
	}
	r.setState(StateLeader)
	r.cfg.Logger.Info("streaming", "slot", r.cfg.Slot, "from", start)
	r.acks.resetSession()

	// The consumer runs in its own goroutine so that this one keeps
	// reading keepalives and sending status while the consumer blocks.
	// The channel bounds what is decoded ahead of the consumer.
	msgs := make(chan Message, 256)
	done := make(chan struct{})
	dctx, dcancel := context.WithCancel(ctx)
	var deliverErr error
	go func() {
		defer close(done)
		if resync {
			if deliverErr = r.deliverResync(dctx, c, start); deliverErr != nil {
				return
			}
		}
		deliverErr = r.deliver(dctx, c, msgs)
	}()
	err = r.receive(ctx, conn, msgs, done, interval)
	dcancel()
	<-done
	if err == nil || errors.Is(err, errConsumerStopped) {
		err = deliverErr
	}
	// Report what was accepted before leaving, also on shutdown.
	fctx, fcancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	if serr := r.sendStatus(fctx, conn, false); serr != nil && err == nil && ctx.Err() == nil {
		err = serr
	}
	fcancel()
	r.acks.resetSession()
	return true, r.classify(err)
}

// checkSlot reads the slot's state over the replication connection (plain
// SQL works on replication=database connections) and refuses invalidated
// or missing slots before streaming.
func (r *Reader) checkSlot(ctx context.Context, conn *pgconn.PgConn) (slotInfo, error) {
	var info slotInfo
	res, err := conn.Exec(ctx, "SELECT confirmed_flush_lsn::text, coalesce(wal_status, ''), "+
		"EXISTS (SELECT 1 FROM pg_publication WHERE pubname = "+quoteLiteral(r.cfg.Publication)+")::text "+
		"FROM pg_replication_slots WHERE slot_name = "+quoteLiteral(r.cfg.Slot)).ReadAll()
	if err != nil {
		return info, fmt.Errorf("read slot %q: %w", r.cfg.Slot, err)
	}
	if len(res) != 1 || len(res[0].Rows) == 0 {
		return info, fmt.Errorf("%w: slot %q: run walcast's setup (it refuses, and says why, when changes were lost)", ErrSlotMissing, r.cfg.Slot)
	}
	row := res[0].Rows[0]
	info.walStatus = string(row[1])
	if info.walStatus == "lost" {
		return info, fmt.Errorf("%w: slot %q has wal_status lost: PostgreSQL removed WAL it still needed, so changes were lost. Drop it (walcast teardown) and restart with --recreate-slot; clients will be told to refetch. Raise max_slot_wal_keep_size to avoid it",
			ErrSlotInvalidated, r.cfg.Slot)
	}
	if string(row[2]) != "true" {
		return info, fmt.Errorf("%w: publication %q: restart walcast so its setup recreates it", ErrPublicationMissing, r.cfg.Publication)
	}
	if row[0] != nil {
		if info.confirmed, err = pglogrepl.ParseLSN(string(row[0])); err != nil {
			return info, fmt.Errorf("slot %q confirmed_flush_lsn %q: %w", r.cfg.Slot, row[0], err)
		}
	}
	return info, nil
}

func (r *Reader) resyncPending(ctx context.Context, conn *pgconn.PgConn) (bool, error) {
	res, err := conn.Exec(ctx, "SELECT obj_description(oid, 'pg_publication') FROM pg_publication WHERE pubname = "+quoteLiteral(r.cfg.Publication)).ReadAll()
	if err != nil {
		return false, fmt.Errorf("read publication %q comment: %w", r.cfg.Publication, err)
	}
	if len(res) != 1 || len(res[0].Rows) == 0 || res[0].Rows[0][0] == nil {
		return false, nil
	}
	comment := string(res[0].Rows[0][0])
	return strings.HasPrefix(comment, markerPrefix) && strings.Contains(comment, `"resync":true`), nil
}

// deliverResync hands the consumer the resync notice as a transaction of
// its own at the start position, then clears the pending mark. A crash in
// between delivers it again, never loses it.
func (r *Reader) deliverResync(ctx context.Context, c Consumer, at pglogrepl.LSN) error {
	tx := TxInfo{CommitLSN: at, EndLSN: at, CommitTime: time.Now().UTC()}
	if err := c.Begin(ctx, tx); err != nil {
		return fmt.Errorf("consumer begin (resync): %w", err)
	}
	if err := c.Change(ctx, &Change{Op: OpResync, Tx: tx}); err != nil {
		return fmt.Errorf("consumer change (resync): %w", err)
	}
	if err := c.Commit(ctx, tx); err != nil {
		return fmt.Errorf("consumer commit (resync): %w", err)
	}
	conn, err := pgx.Connect(ctx, r.cfg.ConnString)
	if err != nil {
		return fmt.Errorf("clear resync mark: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	m, err := readMarker(ctx, conn, r.cfg.Publication)
	if err != nil {
		return fmt.Errorf("clear resync mark: %w", err)
	}
	m.Resync = false
	if err := writeMarker(ctx, conn, r.cfg.Publication, m); err != nil {
		return fmt.Errorf("clear resync mark: %w", err)
	}
	r.cfg.Logger.Warn("delivered resync notice after the replication slot was recreated", "slot", r.cfg.Slot)
	return nil
}

var errConsumerStopped = errors.New("consumer stopped")

// receive reads the replication stream until an error, decoding messages
// and queueing them for the consumer. It owns the connection: all status
// updates are sent from here.
func (r *Reader) receive(ctx context.Context, conn *pgconn.PgConn, msgs chan<- Message, done <-chan struct{}, interval time.Duration) error {
	dec := NewDecoder()
	next := time.Now().Add(interval)
	status := func() error {
		next = time.Now().Add(interval)
		return r.sendStatus(ctx, conn, false)
	}
	for {
		if !time.Now().Before(next) {
			if err := status(); err != nil {
				return err
			}
		}
		select {
		case <-done:
			return errConsumerStopped
		default:
		}
		rctx, cancel := context.WithDeadline(ctx, next)
		raw, err := conn.ReceiveMessage(rctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if pgconn.Timeout(err) {
				continue
			}
			return fmt.Errorf("receive: %w", err)
		}
		switch m := raw.(type) {
		case *pgproto3.ErrorResponse:
			return fmt.Errorf("replication stream: %w", pgconn.ErrorResponseToPgError(m))
		case *pgproto3.CopyDone:
			return nil
		case *pgproto3.CopyData:
			f, err := parseFrame(m.Data)
			if err != nil {
				return err
			}
			if f.keepalive {
				r.acks.keepalive(f.walEnd)
				if f.replyRequested {
					if err := status(); err != nil {
						return err
					}
				}
				continue
			}
			if f.walData == nil {
				continue
			}
			msg, err := dec.Decode(f.walData)
			if err != nil {
				return fmt.Errorf("decode message at %s: %w", f.walStart, err)
			}
			switch msg.Kind {
			case MsgOther:
				continue
			case MsgBegin:
				r.acks.begin()
			case MsgCommit:
				r.acks.dispatchCommit()
			}
			if err := r.enqueue(ctx, conn, msgs, msg, done, &next, interval); err != nil {
				return err
			}
		}
	}
}

// statusInterval is StatusInterval, shortened to a third of the server's
// wal_sender_timeout when that is shorter: a consumer blocked while the
// queue is full leaves this goroutine unable to answer keepalive requests,
// so periodic status is all that keeps the connection alive.
func (r *Reader) statusInterval(ctx context.Context, conn *pgconn.PgConn) time.Duration {
	interval := r.cfg.StatusInterval
	res, err := conn.Exec(ctx, "SELECT setting FROM pg_settings WHERE name = 'wal_sender_timeout'").ReadAll()
	if err != nil || len(res) != 1 || len(res[0].Rows) != 1 {
		return interval
	}
	ms, err := strconv.Atoi(string(res[0].Rows[0][0]))
	if err != nil || ms <= 0 {
		return interval
	}
	return max(min(interval, time.Duration(ms)*time.Millisecond/3), 100*time.Millisecond)
}

// frame is one CopyData message of the replication stream.
type frame struct {
	keepalive      bool
	walEnd         pglogrepl.LSN // keepalive: the server's WAL end
	replyRequested bool
	walStart       pglogrepl.LSN // XLogData: position of walData
	walData        []byte        // XLogData payload (a pgoutput message); nil for other frames
}

// parseFrame splits a replication CopyData message. Unknown frame types
// are ignored (nil walData), as the protocol allows new ones.
func parseFrame(data []byte) (frame, error) {
	if len(data) == 0 {
		return frame{}, fmt.Errorf("replication stream: %w: empty CopyData", ErrMalformed)
	}
	switch data[0] {
	case pglogrepl.PrimaryKeepaliveMessageByteID:
		ka, err := pglogrepl.ParsePrimaryKeepaliveMessage(data[1:])
		if err != nil {
			return frame{}, fmt.Errorf("replication stream: %w: keepalive: %w", ErrMalformed, err)
		}
		return frame{keepalive: true, walEnd: ka.ServerWALEnd, replyRequested: ka.ReplyRequested}, nil
	case pglogrepl.XLogDataByteID:
		xld, err := pglogrepl.ParseXLogData(data[1:])
		if err != nil {
			return frame{}, fmt.Errorf("replication stream: %w: XLogData: %w", ErrMalformed, err)
		}
		if len(xld.WALData) == 0 {
			return frame{}, fmt.Errorf("XLogData at %s: %w: empty", xld.WALStart, ErrMalformed)
		}
		return frame{walStart: xld.WALStart, walData: xld.WALData}, nil
	}
	return frame{}, nil
}

// enqueue waits for room in the consumer's queue, sending status updates
// meanwhile so a slow consumer does not get the connection timed out.
func (r *Reader) enqueue(ctx context.Context, conn *pgconn.PgConn, msgs chan<- Message, msg Message, done <-chan struct{}, next *time.Time, interval time.Duration) error {
	for {
		timer := time.NewTimer(time.Until(*next))
		select {
		case msgs <- msg:
			timer.Stop()
			return nil
		case <-done:
			timer.Stop()
			return errConsumerStopped
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-timer.C:
			*next = time.Now().Add(interval)
			if err := r.sendStatus(ctx, conn, false); err != nil {
				return err
			}
		}
	}
}

// deliver calls the consumer for each queued message, in order.
func (r *Reader) deliver(ctx context.Context, c Consumer, msgs <-chan Message) error {
	for {
		var msg Message
		select {
		case <-ctx.Done():
			return nil
		case msg = <-msgs:
		}
		var err error
		switch msg.Kind {
		case MsgBegin:
			err = c.Begin(ctx, msg.Tx)
		case MsgChange:
			err = c.Change(ctx, msg.Change)
		case MsgCommit:
			if err = c.Commit(ctx, msg.Tx); err == nil {
				r.acks.accept(msg.Tx.EndLSN, time.Now())
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("consumer %s (xid %d, commit %s): %w", msg.Kind, msg.Tx.XID, msg.Tx.CommitLSN, err)
		}
	}
}

// sendStatus reports the confirmed position as written, flushed and
// applied. It never sends 0: pglogrepl would substitute the write position
// for a zero flush position and acknowledge data nobody accepted.
func (r *Reader) sendStatus(ctx context.Context, conn *pgconn.PgConn, replyRequested bool) error {
	pos := r.acks.position()
	if pos == 0 {
		return nil
	}
	err := pglogrepl.SendStandbyStatusUpdate(ctx, conn, pglogrepl.StandbyStatusUpdate{
		WALWritePosition: pos,
		WALFlushPosition: pos,
		WALApplyPosition: pos,
		ReplyRequested:   replyRequested,
	})
	if err != nil {
		return fmt.Errorf("send standby status %s: %w", pos, err)
	}
	r.lastStatusNs.Store(time.Now().UnixNano())
	return nil
}
