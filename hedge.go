package pgxroute

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Hedged reads (Config.HedgeAfter).
//
// A read the router sent to a replica by its kind (route.go's hedged) that
// has not produced its first row (or its end) after HedgeAfter is sent as
// well to another usable replica; the first attempt to answer without an
// error wins, the other is cancelled (pgx cancels its query and closes its
// connection) and its rows are closed. A replica can apply nothing, so no
// statement of a hedged read can have an effect twice.
//
// The hedge is an attempt like any other (call.go): the tracer sees its
// start (ReasonHedge) and its end, and the loser's end carries its
// cancellation (errHedgeLost) or its own error. A replica's refusal (25006)
// on either side ends the race at once: the statement is a write, and the
// call runs again on the default group as any read a replica refuses. Stat
// counts, per node, the hedges sent to it (one per hedge start) and the
// hedges it won. Each hedged read costs a goroutine and a timer and, when it
// fires, one more read on another replica.

// errHedgeLost is the end of a hedged read's attempt that was cancelled
// because the other attempt answered first.
var errHedgeLost = fmt.Errorf("pgxroute: the other attempt of the hedged read answered first: %w", context.Canceled)

// hedgeResult is one attempt of a hedged read as its goroutine returns it:
// its rows, positioned on their first row when more is true.
type hedgeResult struct {
	a      *attempt
	rows   pgx.Rows
	more   bool
	err    error
	ctx    context.Context // the attempt's own
	cancel context.CancelFunc
}

// queryHedged runs c's query on its node and, when the first row is late,
// on another replica too, and returns the winner's rows: c's attempt is
// then the winner's. The loser ends in the background.
func (p *RoutedPool) queryHedged(c *call) (pgx.Rows, error) {
	ch := make(chan hedgeResult, 2)
	sql, args := c.sql, c.args // a loser's goroutine outlives c
	launch := func(a *attempt) context.CancelFunc {
		ctx, cancel := context.WithCancel(a.nodeCtx)
		go func() {
			rows, err := a.m.node.backend.Query(ctx, sql, args...)
			more := false
			if err == nil {
				if more = rows.Next(); !more {
					err = rows.Err()
				}
			}
			ch <- hedgeResult{a: a, rows: rows, more: more, err: err, ctx: ctx, cancel: cancel}
		}()
		return cancel
	}
	first := new(attempt)
	*first = c.attempt // started by execute
	cancelFirst := launch(first)
	timer := time.NewTimer(p.hedgeAfter)
	defer timer.Stop()
	select {
	case r := <-ch:
		return p.hedgeWinner(c, r, nil, nil)
	case <-timer.C:
	case <-c.ctx.Done():
		return p.hedgeWinner(c, <-ch, nil, nil) // the attempt ends with the context
	}
	second := p.startHedge(c)
	if second == nil {
		return p.hedgeWinner(c, <-ch, nil, nil)
	}
	cancelSecond := launch(second)
	cancelOther := func(r hedgeResult) {
		if r.a == first {
			cancelSecond()
		} else {
			cancelFirst()
		}
	}

	a := <-ch
	if a.err == nil || isReadOnlyViolation(a.err) {
		// A winner, or a refusal that decides for both (the statement is a
		// write): the other is cancelled at once, since it may be waiting
		// on its node (for a connection, or for its answer) for long.
		cancelOther(a)
		return p.hedgeWinner(c, a, ch, nil)
	}
	// The first to answer failed: the other may still succeed.
	b := <-ch
	if b.err == nil {
		return p.hedgeWinner(c, b, nil, &a)
	}
	// Both failed: the call goes on with a refusal if either is one (so
	// that it runs again on the default group), else with the first
	// attempt's error (the retry decision sees it); the other ends here.
	keep, other := a, b
	if isReadOnlyViolation(b.err) || (!isReadOnlyViolation(a.err) && b.a == first) {
		keep, other = b, a
	}
	return p.hedgeWinner(c, keep, nil, &other)
}

// startHedge starts the second attempt of c's hedged read, on another
// usable replica of its group, and returns it; nil when there is none. A
// replica picked on a snapshot from before its removal is not used: as in
// execute, the attempt is counted first and then the mark read (so that
// either the drain waits for it or it sees the mark), and ends at once
// (errNodeGone); the pick is made again on the newer snapshot, which no
// longer lists the node.
func (p *RoutedPool) startHedge(c *call) *attempt {
	for range maxHedgePicks {
		m := c.g.pickOther(p.pub.snap.Load(), c.m)
		if m == nil {
			return nil
		}
		a := new(attempt)
		*a = c.attempt
		a.m, a.reason = m, ReasonHedge
		p.startAttempt(c, a)
		if m.node.removed.Load() {
			p.endAttempt(a, errNodeGone, true)
			continue
		}
		m.node.hedges.Add(1)
		return a
	}
	return nil
}

// maxHedgePicks bounds the picks of a hedge's replica: each one after the
// first follows a removal, whose snapshot no longer lists the node.
const maxHedgePicks = 3

// hedgeWinner makes r's attempt the call's and returns its rows. The other
// attempt ends: ended is its result when it is in, else its result comes on
// pending and it ends in the background; with neither, there was no other.
func (p *RoutedPool) hedgeWinner(c *call, r hedgeResult, pending chan hedgeResult, ended *hedgeResult) (pgx.Rows, error) {
	if r.err == nil && r.a.reason == ReasonHedge {
		r.a.m.node.hedgeWins.Add(1) // the hedge won: the call's attempt moves to its node
	}
	c.attempt = *r.a
	if ended != nil {
		p.endLoser(*ended)
	}
	if pending != nil {
		go func() { p.endLoser(<-pending) }()
	}
	if r.err != nil {
		r.cancel()
		return r.rows, r.err
	}
	return &peekedRows{Rows: r.rows, pending: r.more, ended: !r.more, cancel: r.cancel}, nil
}

// endLoser ends the attempt of a hedged read that lost: its health signal
// while its context was live (a loser that failed before it was cancelled
// failed of its node; after, of the cancel), its rows closed, its trace
// ended with its error or errHedgeLost.
func (p *RoutedPool) endLoser(r hedgeResult) {
	p.signal(r.ctx, r.a, r.err)
	r.cancel()
	if r.rows != nil {
		r.rows.Close()
	}
	err := r.err
	if err == nil || errors.Is(err, context.Canceled) {
		err = errHedgeLost
	}
	p.endAttempt(r.a, err, false)
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
