package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// writer commits donation INSERT transactions over one or more connections
// at a paced rate. One connection cannot offer more than 1/(its commit round
// trip) transactions per second, so the ladder's higher rungs need several;
// batch > 1 puts that many rows in each transaction instead (one event per
// row, one Redis append per transaction).
type writer struct {
	conns []*pgx.Conn
	batch int
}

// written is what one call of write committed.
type written struct {
	txs     int64       // transactions committed, numbered 0..txs-1
	commits []time.Time // per transaction: when its COMMIT returned to the writer
	start   time.Time   // when the first transaction was due
	last    time.Time   // when the last COMMIT returned
}

// rows is the number of events the transactions make.
func (w written) rows(batch int) int64 { return w.txs * int64(batch) }

// notesFor is the notes column of transaction seq of run tag: the lag probe
// reads it back from the event to find the transaction's commit time.
func notesFor(tag string, seq int64) string { return fmt.Sprintf("%s:%d", tag, seq) }

func dialWriter(ctx context.Context, dsn string, conns, batch int) (*writer, error) {
	w := &writer{batch: batch}
	for i := range conns {
		c, err := pgx.Connect(ctx, dsn)
		if err != nil {
			w.close()
			return nil, fmt.Errorf("writer connection %d: %w", i, err)
		}
		w.conns = append(w.conns, c)
	}
	return w, nil
}

func (w *writer) close() {
	for _, c := range w.conns {
		_ = c.Close(context.Background())
	}
}

// write offers rate transactions per second for d, spread over the
// connections; transaction i is due at start + i/rate. When every
// connection is busy, the schedule slips; once it has slipped past d the
// remaining transactions are not offered, so txs/d is the rate achieved.
func (w *writer) write(ctx context.Context, tag string, rate float64, d time.Duration) (written, error) {
	const single = `INSERT INTO donations (member_id, amount, fund, notes) VALUES ('m-1', 10, 'bench', $1)`
	const multi = `INSERT INTO donations (member_id, amount, fund, notes) SELECT 'm-1', 10, 'bench', $1 FROM generate_series(1, $2::int)`
	total := int64(rate * d.Seconds())
	res := written{commits: make([]time.Time, total), start: time.Now()}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	jobs := make(chan int64)
	go func() {
		defer close(jobs)
		t := time.NewTimer(0)
		defer t.Stop()
		for i := range total {
			due := res.start.Add(time.Duration(float64(i) / rate * float64(time.Second)))
			if wait := time.Until(due); wait > 0 {
				t.Reset(wait)
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
			}
			if time.Since(res.start) > d {
				return // behind schedule past the window: the rest is not offered
			}
			select {
			case <-ctx.Done():
				return
			case jobs <- i:
			}
		}
	}()

	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		done     = make([]int64, len(w.conns))
	)
	for k, c := range w.conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				var err error
				if w.batch <= 1 {
					_, err = c.Exec(ctx, single, notesFor(tag, i))
				} else {
					_, err = c.Exec(ctx, multi, notesFor(tag, i), w.batch)
				}
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("writer connection %d, transaction %d: %w", k, i, err)
					}
					mu.Unlock()
					cancel()
					// Drain the jobs so the pacer can finish.
					for range jobs {
					}
					return
				}
				res.commits[i] = time.Now()
				done[k]++
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return res, firstErr
	}
	for _, n := range done {
		res.txs += n
	}
	res.commits = res.commits[:res.txs]
	for _, t := range res.commits {
		if t.After(res.last) {
			res.last = t
		}
	}
	return res, nil
}
