package pgxroute

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// Hedged reads (HealthConfig.HedgeAfter).
//
// A read the router sent to a replica by its kind (classified Read, outside
// a transaction, no explicit bind group) that has not produced its first row
// (or its end) after HedgeAfter is sent as well to another usable replica;
// the first attempt to answer without an error wins, the other is cancelled
// (pgx cancels its query and closes its connection) and its rows are closed.
// A replica can apply nothing, so no statement of a hedged read can have an
// effect twice; writes, locking reads, sticky reads, transactions, explicit
// bind groups and Acquire are never hedged. Stat counts, per node, the
// hedges sent to it and the hedges it won. Each hedged read costs a
// goroutine and a timer (when HedgeAfter is set) and, when it fires, one
// more read on another replica.

// hedgeable reports whether c may be hedged.
func (p *RoutedPool) hedgeable(c *call) bool {
	return p.hedgeAfter > 0 && (c.kind == callQuery || c.kind == callQueryRow) && c.auto && c.g == p.read
}

// attemptResult is one attempt of a hedged read: its rows, positioned on
// their first row when more is true.
type attemptResult struct {
	m      *member
	rows   pgx.Rows
	more   bool
	err    error
	ctx    context.Context // the attempt's own
	cancel context.CancelFunc
}

// queryHedged runs c's query on its node and, when the first row is late,
// on another replica too, and returns the winner's rows (c.m and c.epoch
// then name the winner). The loser ends in the background.
func (p *RoutedPool) queryHedged(c *call) (pgx.Rows, error) {
	ch := make(chan attemptResult, 2)
	sql, args, nctx := c.sql, c.args, c.nctx // a loser's goroutine outlives c
	launch := func(m *member) context.CancelFunc {
		ctx, cancel := context.WithCancel(nctx)
		go func() {
			rows, err := m.node.be.Query(ctx, sql, args...)
			more := false
			if err == nil {
				if more = rows.Next(); !more {
					err = rows.Err()
				}
			}
			ch <- attemptResult{m: m, rows: rows, more: more, err: err, ctx: ctx, cancel: cancel}
		}()
		return cancel
	}
	cancelFirst := launch(c.m)
	// alone ends the call with the original attempt, no hedge sent.
	alone := func(r attemptResult) (pgx.Rows, error) { return p.hedgeWinner(c, r, nil), r.err }
	timer := time.NewTimer(p.hedgeAfter)
	defer timer.Stop()
	select {
	case r := <-ch:
		return alone(r)
	case <-timer.C:
	case <-c.ctx.Done():
		return alone(<-ch) // the attempt ends with the context
	}
	m2 := c.g.pickOther(c.m)
	if m2 == nil {
		return alone(<-ch)
	}
	m2.node.started.Add(1)
	m2.calls[ReasonHedge].Add(1)
	m2.node.hedges.Add(1)
	cancelHedge := launch(m2)
	a := <-ch
	if a.err == nil {
		// The loser is cancelled at once: it may be waiting on its node
		// (for a connection, or for its answer) for a long time.
		if a.m == c.m {
			cancelHedge()
		} else {
			cancelFirst()
		}
		return p.hedgeWinner(c, a, ch), nil
	}
	// The first to answer failed: the other may still succeed.
	b := <-ch
	if b.err == nil {
		p.endLoser(&c.decision, a)
		return p.hedgeWinner(c, b, nil), nil
	}
	// Both failed: the call goes on with the original attempt's error (the
	// retry decision sees it), the hedge ends here.
	orig, other := a, b
	if orig.m != c.m {
		orig, other = b, a
	}
	p.endLoser(&c.decision, other)
	return p.hedgeWinner(c, orig, nil), orig.err
}

// hedgeWinner makes r the call's attempt and returns its rows; when loser
// is not nil, the other attempt's result comes on it and is ended in the
// background.
func (p *RoutedPool) hedgeWinner(c *call, r attemptResult, loser chan attemptResult) pgx.Rows {
	if r.m != c.m {
		// The hedge won: the original attempt is the loser, and the call's
		// attempt moves to the hedge's node (counted when it was launched).
		r.m.node.hedgeWins.Add(1)
		c.m, c.reason, c.epoch = r.m, ReasonHedge, r.m.node.interrupts.Load()
	}
	if loser != nil {
		d := c.decision // the goroutine must not read c, which the call goes on changing
		go func() { p.endLoser(&d, <-loser) }()
	}
	if r.err != nil {
		r.cancel()
		return r.rows
	}
	return &peekedRows{Rows: r.rows, pending: r.more, ended: !r.more, cancel: r.cancel}
}

// endLoser closes the rows of an attempt that lost (the call's route is
// now d) and ends it on its node, with its failure signal.
func (p *RoutedPool) endLoser(d *decision, r attemptResult) {
	if r.err != nil && r.m != d.m {
		// Before the cancel: a loser that failed after it was cancelled
		// failed of the cancel, not of its node.
		ld := *d
		ld.m = r.m
		p.passive(r.ctx, &ld, r.err)
	}
	r.cancel()
	if r.rows != nil {
		r.rows.Close()
	}
	r.m.node.ended.Add(1)
}

// peekedRows are rows whose first Next already ran (in the attempt's
// goroutine): the first Next returns its answer.
type peekedRows struct {
	pgx.Rows
	pending bool // the first row is read and not yet returned
	ended   bool // the first Next returned false
	cancel  context.CancelFunc
}

// Next advances to the next row.
func (r *peekedRows) Next() bool {
	if r.pending {
		r.pending = false
		return true
	}
	if r.ended || !r.Rows.Next() {
		r.ended = true
		r.cancel()
		return false
	}
	return true
}

// Close closes the rows and releases the attempt's context.
func (r *peekedRows) Close() {
	r.Rows.Close()
	r.cancel()
}
