package cdc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"golang.org/x/sys/unix"
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

// GroupCommitter is a Consumer whose Commit costs a round trip (an append
// to a remote store) and which can make several transactions durable in one.
// When committed transactions are already decoded behind the one at hand,
// the reader calls CommitDeferred for each instead of Commit and then Flush
// once; it accepts (may confirm to PostgreSQL) all of them only after Flush
// returned nil, in order. Nothing waits for more transactions to arrive: a
// lone transaction is CommitDeferred then Flush at once. Deferred
// transactions that are never flushed (an error, or the session ended) are
// delivered again, so the consumer drops what it deferred when
// CommitDeferred or Flush fails and when Reset is called.
type GroupCommitter interface {
	Consumer
	CommitDeferred(ctx context.Context, tx TxInfo) error
	Flush(ctx context.Context) error
	// Reset drops deferred, unflushed transactions: the reader calls it
	// when a replication session ends with some.
	Reset()
}

// maxGroup bounds the transactions made durable by one Flush, so one
// remote call stays a bounded size.
const maxGroup = 256

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
	if from := State(r.state.Swap(int32(s))); from != s {
		r.stateSince.Store(time.Now().UnixNano())
		r.cfg.Observer.StateChanged(from, s)
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
		if err != nil && !slotHeld(err) {
			r.cfg.Observer.SessionFailed(err)
		}
		// Only a session that streamed for a while resets the backoff, so
		// a connection that fails right after starting is not hammered.
		if streamed && time.Since(began) > 5*time.Second {
			backoff = minBackoff
		}
		wait := backoff
		switch {
		case err == nil:
			// The server ended the stream without an error; reconnect.
			r.setState(StateReconnecting)
		case isFatal(err):
			log.Error("replication stopped", "err", err)
			return err
		case slotHeld(err):
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
		return fmt.Errorf("%w: %s: PostgreSQL removed WAL that slot %q still needed (max_slot_wal_keep_size), so changes were lost; the slot must be dropped and made again",
			ErrSlotInvalidated, pgErr.Message, r.cfg.Slot)
	case pgErr.Code == "42704" && strings.Contains(pgErr.Message, "publication"):
		return fmt.Errorf("%w: %s: publication %q was dropped while streaming", ErrPublicationMissing, pgErr.Message, r.cfg.Publication)
	case pgErr.Code == "42704" && strings.Contains(pgErr.Message, "slot"):
		return fmt.Errorf("%w: %s: slot %q was dropped while streaming, so changes may have been lost", ErrSlotMissing, pgErr.Message, r.cfg.Slot)
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
	// Messages travel in batches (one hand-off and at most one wake-up per
	// batch, not per message) drawn from a fixed set, which bounds what is
	// decoded ahead of the consumer to batchCount*batchLen messages.
	h := newHandoff()
	done := make(chan struct{})
	dctx, dcancel := context.WithCancel(ctx)
	var deliverErr error
	go func() {
		// The receiver may be blocked reading: interrupt it once done is
		// closed so it sees the consumer stopped.
		defer interruptRead(conn)
		defer close(done)
		if resync {
			if deliverErr = r.deliverResync(dctx, c, start); deliverErr != nil {
				return
			}
		}
		deliverErr = r.deliver(dctx, c, h)
	}()
	err = r.receive(ctx, conn, h, done, interval)
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
		return info, fmt.Errorf("%w: slot %q (Setup makes it, and refuses when changes were lost)", ErrSlotMissing, r.cfg.Slot)
	}
	row := res[0].Rows[0]
	info.walStatus = string(row[1])
	if info.walStatus == "lost" {
		return info, fmt.Errorf("%w: slot %q has wal_status lost: PostgreSQL removed WAL it still needed (max_slot_wal_keep_size), so changes were lost; the slot must be dropped and made again",
			ErrSlotInvalidated, r.cfg.Slot)
	}
	if string(row[2]) != "true" {
		return info, fmt.Errorf("%w: publication %q (Setup makes it)", ErrPublicationMissing, r.cfg.Publication)
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

// The hand-off between the receiving and the delivering goroutine. A
// profile of a 100,000-row transaction showed a channel send per message
// costing more CPU than decoding it (a timer, a wake-up of the consumer's
// goroutine); batches amortize that. batchLen*batchCount messages (512,
// twice the per-message queue of before) bound what is decoded ahead of a
// slow consumer, whatever the transaction's size.
const (
	batchLen   = 128
	batchCount = 4

	// A walsender sends each pgoutput message on its own as soon as the
	// socket takes it, so a reader that decodes faster than the walsender
	// produces wakes up (read, EAGAIN, epoll, futex, scheduler spinning)
	// for nearly every row: that cost more CPU than decoding. Inside a bulk
	// transaction (at least batchLen messages so far) a read that had to
	// wait is followed by a pause that lets messages accumulate, so one
	// read takes many. The pause adapts between minPause and maxPause so
	// that about batchLen messages arrive per pause: it only grows when
	// fewer than batchLen arrived in the previous one, i.e. when the
	// transaction already streams slower than batchLen messages per pause.
	// Small transactions are never delayed; a bulk one's commit reaches the
	// consumer at most maxPause later. A read taking over waitedThreshold
	// has waited (one served from the buffer or an immediately ready socket
	// takes a few microseconds).
	// The pause is skipped when the kernel holds pauseBelow bytes or more
	// (see pacer.wait).
	pauseBelow      = 8 << 10
	minPause        = 250 * time.Microsecond
	maxPause        = 4 * time.Millisecond
	waitedThreshold = 20 * time.Microsecond
)

// handoff carries batches of decoded messages to the consumer and the
// emptied batches back. Exactly batchCount batches exist, so sends on
// either channel never block, and a receiver without a free batch waits.
type handoff struct {
	full chan []Message
	free chan []Message
}

func newHandoff() *handoff {
	h := &handoff{full: make(chan []Message, batchCount), free: make(chan []Message, batchCount)}
	for range batchCount {
		h.free <- make([]Message, 0, batchLen)
	}
	return h
}

// receiver is one session's reading side. It owns the connection: all
// status updates are sent from here.
type receiver struct {
	r        *Reader
	ctx      context.Context
	conn     *pgconn.PgConn
	h        *handoff
	done     <-chan struct{} // closed when the delivering goroutine returned
	interval time.Duration
	next     time.Time // the next standby status is due
	batch    []Message // being filled; nil when none is held
}

// errStopping ends receive when ctx was cancelled; receive returns nil.
var errStopping = errors.New("stopping")

// receive reads the replication stream until an error, decoding messages
// and handing them to the consumer in batches.
//
// It reads with context.Background() and the connection's read deadline
// instead of a deadline context per message: pgconn watches every non-
// background context with a timer and an AfterFunc. The deadline is the
// next status time; cancellation and the consumer's exit move it into the
// past to interrupt a blocked read.
func (r *Reader) receive(ctx context.Context, conn *pgconn.PgConn, h *handoff, done <-chan struct{}, interval time.Duration) error {
	rc := &receiver{r: r, ctx: ctx, conn: conn, h: h, done: done, interval: interval}
	stopCtx := context.AfterFunc(ctx, rc.interrupt)
	defer stopCtx()
	err := rc.run()
	if ctx.Err() != nil || errors.Is(err, errStopping) {
		return nil
	}
	return err
}

func (rc *receiver) interrupt() { interruptRead(rc.conn) }

// interruptRead makes a blocked or the next read on conn return a timeout,
// so the receiver looks at its context and the consumer. Safe from any
// goroutine.
func interruptRead(conn *pgconn.PgConn) { _ = conn.Conn().SetReadDeadline(time.Unix(1, 0)) }

// stopping reports why run must end, if it must.
func (rc *receiver) stopping() error {
	if rc.ctx.Err() != nil {
		return errStopping
	}
	select {
	case <-rc.done:
		return errConsumerStopped
	default:
		return nil
	}
}

// arm sets the read deadline to the next status time. An interrupt that
// raced with it is caught by the check after setting it.
func (rc *receiver) arm() error {
	if err := rc.conn.Conn().SetReadDeadline(rc.next); err != nil {
		return fmt.Errorf("set read deadline: %w", err)
	}
	return rc.stopping()
}

// status sends a standby status update and schedules the next one.
func (rc *receiver) status() error {
	if err := rc.r.sendStatus(rc.ctx, rc.conn, false); err != nil {
		return err
	}
	rc.next = time.Now().Add(rc.interval)
	return rc.arm()
}

func (rc *receiver) run() error {
	dec := NewDecoder()
	rc.next = time.Now().Add(rc.interval)
	if err := rc.arm(); err != nil {
		return err
	}
	var (
		txMsgs int  // messages of the open transaction so far
		waited bool // the last read had to wait for data
		readAt time.Time
		pace   = pacer{pause: minPause, socket: newSocketProbe(rc.conn.Conn())}
	)
	for {
		if waited && txMsgs >= batchLen {
			pace.wait()
		}
		readAt = time.Now()
		if !readAt.Before(rc.next) {
			if err := rc.status(); err != nil {
				return err
			}
			readAt = time.Now()
		}
		raw, err := rc.conn.ReceiveMessage(context.Background())
		waited = time.Since(readAt) > waitedThreshold
		if err != nil {
			if !pgconn.Timeout(err) {
				return fmt.Errorf("receive: %w", err)
			}
			if err := rc.stopping(); err != nil {
				return err
			}
			// Nothing arrived until the status time: the consumer gets
			// what there is rather than wait for a full batch.
			if err := rc.handOver(); err != nil {
				return err
			}
			if time.Now().Before(rc.next) {
				// A stray interrupt; restore the deadline.
				if err := rc.arm(); err != nil {
					return err
				}
			}
			continue
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
				rc.r.acks.keepalive(f.walEnd)
				if f.replyRequested {
					if err := rc.status(); err != nil {
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
			pace.decoded++
			switch msg.Kind {
			case MsgOther:
				continue
			case MsgBegin:
				rc.r.acks.begin()
				txMsgs = 1
			case MsgChange:
				txMsgs++
			case MsgCommit:
				rc.r.acks.dispatchCommit()
				txMsgs = 0
			}
			if err := rc.add(msg); err != nil {
				return err
			}
		}
	}
}

// pacer pauses the reading of a bulk transaction that arrives slower
// than it is decoded, so the walsender's messages pile up instead of
// waking the reader per message (see minPause).
type pacer struct {
	pause   time.Duration
	decoded int // messages decoded since the last pause
	socket  socketProbe
}

// wait pauses unless the kernel already holds a read's worth of data: a
// read that took long on a loaded machine (preempted, not waiting) must not
// slow a reader that is behind the walsender.
func (p *pacer) wait() {
	if n := p.socket.unread(); n < 0 || n >= pauseBelow {
		return
	}
	if p.decoded < batchLen {
		p.pause = min(2*p.pause, maxPause)
	} else {
		p.pause = max(p.pause/2, minPause)
	}
	time.Sleep(p.pause)
	p.decoded = 0
}

// socketProbe asks the kernel how much of a connection is unread.
type socketProbe struct{ raw syscall.RawConn }

func newSocketProbe(c net.Conn) socketProbe {
	if u, ok := c.(interface{ NetConn() net.Conn }); ok { // TLS
		c = u.NetConn()
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return socketProbe{}
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return socketProbe{}
	}
	return socketProbe{raw: raw}
}

// unread is the number of received bytes not yet read, -1 if unknown.
func (p socketProbe) unread() int {
	if p.raw == nil {
		return -1
	}
	n := -1
	_ = p.raw.Control(func(fd uintptr) {
		if v, err := unix.IoctlGetInt(int(fd), unix.TIOCINQ); err == nil {
			n = v
		}
	})
	return n
}

// add appends msg to the current batch, handing the batch over when it is
// full or ends a transaction (so a quiet stream's last commit is not held
// back waiting for more).
func (rc *receiver) add(msg Message) error {
	if rc.batch == nil {
		b, err := rc.take()
		if err != nil {
			return err
		}
		rc.batch = b
	}
	rc.batch = append(rc.batch, msg)
	if len(rc.batch) == batchLen || msg.Kind == MsgCommit {
		return rc.handOver()
	}
	return nil
}

// handOver gives the current batch, if any, to the consumer.
func (rc *receiver) handOver() error {
	if len(rc.batch) == 0 {
		return nil
	}
	// Never blocks: only batchCount batches exist.
	rc.h.full <- rc.batch
	rc.batch = nil
	return rc.stopping()
}

// take returns an empty batch, waiting while the consumer holds them all
// and sending status updates meanwhile so a slow consumer does not get the
// connection timed out. The timer exists only when it has to wait.
func (rc *receiver) take() ([]Message, error) {
	select {
	case b := <-rc.h.free:
		return b, nil
	default:
	}
	timer := time.NewTimer(time.Until(rc.next))
	defer timer.Stop()
	for {
		select {
		case b := <-rc.h.free:
			return b, nil
		case <-rc.done:
			return nil, errConsumerStopped
		case <-rc.ctx.Done():
			return nil, errStopping
		case <-timer.C:
			if err := rc.status(); err != nil {
				return nil, err
			}
			timer.Reset(time.Until(rc.next))
		}
	}
}

// deliver calls the consumer for each message of each batch, in order,
// and returns the emptied batches. A GroupCommitter gets the transactions
// committed in a row, as long as their messages are already here, made
// durable by one Flush.
func (r *Reader) deliver(ctx context.Context, c Consumer, h *handoff) (err error) {
	gc, _ := c.(GroupCommitter)
	var deferred []TxInfo // committed with CommitDeferred, not yet flushed
	if gc != nil {
		defer func() {
			if len(deferred) > 0 {
				gc.Reset()
			}
		}()
	}
	flush := func() error {
		if err := gc.Flush(ctx); err != nil {
			first, last := deferred[0], deferred[len(deferred)-1]
			return consumerError{fmt.Errorf("consumer flush of %d transactions (commit %s to %s): %w", len(deferred), first.CommitLSN, last.CommitLSN, err)}
		}
		now := time.Now()
		for _, tx := range deferred {
			r.acks.accept(tx.EndLSN, now)
		}
		deferred = deferred[:0]
		return nil
	}
	var next []Message // a batch taken early, to see whether it ends a transaction
	for {
		batch := next
		next = nil
		if batch == nil {
			select {
			case <-ctx.Done():
				return nil
			case batch = <-h.full:
			}
		}
		lastCommit := -1
		if gc != nil {
			lastCommit = lastCommitIn(batch)
		}
		for i := range batch {
			msg := &batch[i]
			var err error
			switch msg.Kind {
			case MsgBegin:
				err = c.Begin(ctx, msg.Tx)
			case MsgChange:
				err = c.Change(ctx, msg.Change)
			case MsgCommit:
				if gc == nil {
					if err = c.Commit(ctx, msg.Tx); err == nil {
						r.acks.accept(msg.Tx.EndLSN, time.Now())
					}
					break
				}
				if err = gc.CommitDeferred(ctx, msg.Tx); err != nil {
					break
				}
				deferred = append(deferred, msg.Tx)
				due := len(deferred) >= maxGroup
				if !due && i == lastCommit {
					// The group goes on into the next batch only if that
					// one is already here and commits something: a batch of
					// a bulk transaction's rows must not hold it back.
					select {
					case next = <-h.full:
					default:
					}
					due = lastCommitIn(next) < 0
				}
				if due {
					if err := flush(); err != nil {
						if ctx.Err() != nil {
							return nil
						}
						return err
					}
				}
			}
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return consumerError{fmt.Errorf("consumer %s (xid %d, commit %s): %w", msg.Kind, msg.Tx.XID, msg.Tx.CommitLSN, err)}
			}
		}
		// Drop the references so delivered changes can be collected.
		clear(batch)
		h.free <- batch[:0]
	}
}

// lastCommitIn is the index of batch's last commit, -1 when there is none.
func lastCommitIn(batch []Message) int {
	for i := len(batch) - 1; i >= 0; i-- {
		if batch[i].Kind == MsgCommit {
			return i
		}
	}
	return -1
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
