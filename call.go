package pgxroute

import (
	"cmp"
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgxroute/pgxroute/stickiness"
)

// The one path every attempt takes.
//
// A call's first route is decided by prepare (route.go). execute then runs
// attempts until one succeeds or route.go's next says the call fails: each
// attempt, the first, a retry on another node, a re-run on the default group
// after a replica refused it (25006), one sent to a new primary, and either
// side of a hedged read (hedge.go), is started by startAttempt (counted,
// reported to the tracers) and ended by endAttempt (counted, its trace
// ended), with the health signal of a failure before the retry decision.
// Query, QueryRow, SendBatch and BeginTx return before their last attempt
// ends: their rows, row, batch or transaction end it (endCall), and a read whose
// rows fail before the first row goes on through retry.

// callKind is what a call runs on its node.
type callKind uint8

const (
	callExec callKind = iota
	callQuery
	callQueryRow
	callBatch
	callCopy
	callBegin
	callAcquire
	callSession // AcquireFor: a connection acquired, the statement sent on it
)

// endsAtOnce reports whether a call of kind k ends when its node answers
// (Exec, CopyFrom, Acquire); the others end when their rows, batch or
// transaction do.
func (k callKind) endsAtOnce() bool {
	return k == callExec || k == callCopy || k == callAcquire || k == callSession
}

// attempt is one try of a call on one node: its route, the context the node
// runs it with (the caller's, or the tracer's), the node's interruption
// count when it started, and its number within the call.
type attempt struct {
	decision
	nodeCtx context.Context
	epoch   uint64
	number  uint8
}

// call is one routed call: its current attempt, what it runs on the node,
// and what the node returned. Every method of RoutedPool that runs
// something fills one and hands it to execute.
type call struct {
	attempt
	pool   *RoutedPool
	ctx    context.Context // the caller's
	args   []any
	inputs *callInputs // the inputs and results of the rarer calls
	rows   pgx.Rows    // a query's
	row    pgx.Row     // a QueryRow's
	tag    pgconn.CommandTag
	kind   callKind
	// started counts the attempts started (hedges included): the next
	// one's number. reruns counts the retries next allowed.
	started, reruns uint8
	// txWrote: a transaction's statement wrote (set before it ends).
	txWrote bool
}

// callInputs holds what a batch, a COPY, a transaction or an Acquire runs
// and returns, apart from the call, so that the calls that return rows
// (whose call lives as long as the rows) stay small.
type callInputs struct {
	batch   *pgx.Batch
	table   pgx.Identifier
	columns []string
	src     pgx.CopyFromSource
	txOpts  pgx.TxOptions

	batchResults pgx.BatchResults
	copied       int64
	tx           pgx.Tx
	conn         *pgxpool.Conn
	send         func(*pgxpool.Conn) error // AcquireFor's
}

// execute runs c's attempts, from its current route, until one succeeds
// (Exec, CopyFrom and Acquire end then) or the call fails. The error names
// the node of the last attempt.
func (p *RoutedPool) execute(c *call) error {
	for {
		p.startAttempt(c, &c.attempt)
		var err error
		if c.m.node.removed.Load() {
			// Decided on a snapshot from before the node's removal: route
			// again (membership.go: the drain sees this attempt started).
			err = errNodeGone
		} else {
			err = p.runOnNode(c)
		}
		if err == nil {
			if c.kind.endsAtOnce() {
				p.endCall(c, c.ctx, nil)
			}
			return nil
		}
		if err = p.afterFailure(c, err); err != nil {
			return err
		}
	}
}

// retry goes on with a call whose current attempt failed with err after it
// returned (a query's rows before their first row, a row's Scan): as
// execute does after a failed attempt.
func (p *RoutedPool) retry(c *call, err error) error {
	if err = p.afterFailure(c, err); err != nil {
		return err
	}
	return p.execute(c)
}

// afterFailure ends c's attempt that failed with err: the health signal
// first, so that the retry decision sees the node ejected; then next decides
// whether the call runs again (c then holds the next attempt's route, and
// afterFailure returns nil) or fails (with the error to return, naming the
// node).
func (p *RoutedPool) afterFailure(c *call, err error) error {
	p.signal(c.ctx, &c.attempt, err)
	next, again, werr := p.next(c.ctx, &c.decision, err, int(c.reruns))
	p.endAttempt(&c.attempt, err, again)
	if !again {
		return p.wrapErr(c, cmp.Or(werr, err))
	}
	if next.reason != ReasonMisroute && err != errNodeGone {
		c.reruns++
	}
	c.m.node.retries.Add(1)
	c.decision = next
	return nil
}

// runOnNode runs c's current attempt on its node.
func (p *RoutedPool) runOnNode(c *call) error {
	var err error
	backend := c.m.node.backend
	switch c.kind {
	case callExec:
		c.tag, err = backend.Exec(c.nodeCtx, c.sql, c.args...)
	case callQuery:
		if p.hedged(c) {
			c.rows, err = p.queryHedged(c)
		} else {
			c.rows, err = backend.Query(c.nodeCtx, c.sql, c.args...)
		}
	case callQueryRow: // its errors show at Scan (routedRow)
		if p.hedged(c) {
			var rows pgx.Rows
			if rows, err = p.queryHedged(c); err == nil {
				c.row = rowsRow{rows}
			}
		} else {
			c.row = backend.QueryRow(c.nodeCtx, c.sql, c.args...)
		}
	case callBatch:
		c.inputs.batchResults = backend.SendBatch(c.nodeCtx, c.inputs.batch)
	case callCopy:
		c.inputs.copied, err = backend.CopyFrom(c.nodeCtx, c.inputs.table, c.inputs.columns, c.inputs.src)
	case callBegin:
		c.inputs.tx, err = backend.BeginTx(c.nodeCtx, c.inputs.txOpts)
	case callAcquire, callSession:
		if c.m.node.pool == nil {
			return ErrNoPool
		}
		c.inputs.conn, err = c.m.node.pool.Acquire(c.nodeCtx)
		if err == nil && c.kind == callSession && c.inputs.send != nil {
			if err = c.inputs.send(c.inputs.conn); err != nil {
				c.inputs.conn.Release() // a broken connection is destroyed
				c.inputs.conn = nil
			}
		}
	}
	return err
}

// startAttempt starts attempt a of c on its node: it counts it, numbers it,
// and starts its trace (OnRoute's adapter and Config.Tracer), which gives
// the context the node runs it with.
func (p *RoutedPool) startAttempt(c *call, a *attempt) {
	n := a.m.node
	n.started.Add(1)
	a.epoch = n.interrupts.Load()
	a.m.calls[a.reason].Add(1)
	a.number = c.started
	c.started++
	a.nodeCtx = c.ctx
	if p.tracer != nil {
		r := a.route()
		ctx := c.ctx
		if p.routeInContext {
			ctx = context.WithValue(ctx, routeKey{}, &r)
		}
		a.nodeCtx = p.tracer.TraceRouteStart(ctx, TraceRouteStartData{Route: r, Attempt: int(a.number)})
	}
}

// endAttempt counts attempt a as ended and ends its trace; rerun says
// that the call runs again after it.
func (p *RoutedPool) endAttempt(a *attempt, err error, rerun bool) {
	a.m.node.ended.Add(1)
	if p.tracer != nil {
		p.tracer.TraceRouteEnd(a.nodeCtx, TraceRouteEndData{Route: a.route(), Attempt: int(a.number), Err: err, Rerun: rerun})
	}
}

// signal is the passive health signal of attempt a that failed with err,
// while ctx (the context its operation ran with) is as given: a failure of
// the node (failureOfNode) ejects it at once, without waiting for a probe.
func (p *RoutedPool) signal(ctx context.Context, a *attempt, err error) {
	if failureOfNode(ctx, err) {
		p.apply(a.m.node, outcome{kind: callFailed, err: err})
	}
}

// endCall ends c's last attempt, with the error of the operation that ended
// it (nil for a success), which ran with ctx (the call's, or a transaction's
// Commit or Rollback). After a success on the default group it updates the
// scope: a write marks it, and in ReadYourWrites mode the scope then waits
// for the primary's next position (after a read too, for monotonic reads).
// A write without a scope makes the pool's own scope wait for that
// position.
func (p *RoutedPool) endCall(c *call, ctx context.Context, err error) {
	if err != nil {
		p.signal(ctx, &c.attempt, err)
	}
	p.endAttempt(&c.attempt, err, false)
	if err != nil || c.g != p.defaultGroup {
		return
	}
	p.noteSuccess(c.scope, callWrote(c.kind, c.res, c.txWrote))
}

// noteSuccess updates scope s after a call that succeeded on the default
// group; wrote says the call wrote. A nil s is the pool's own scope: a
// write makes its reads wait for the write's position.
func (p *RoutedPool) noteSuccess(s *stickiness.Scope, wrote bool) {
	if s == nil {
		if p.unscoped != nil && wrote {
			p.unscoped.NoteWrite(time.Now())
			p.awaitPosition(p.pub.snap.Load(), p.unscoped)
		}
		return
	}
	if wrote {
		s.NoteWrite(time.Now())
	}
	if p.mode == stickiness.ReadYourWrites {
		p.awaitPosition(p.pub.snap.Load(), s)
	}
}

// wrapErr names the group and node of c's attempt in err, keeping it
// testable with errors.Is and errors.As; when the node's calls were
// interrupted while the attempt ran, it wraps ErrInterrupted too, and when
// the call's outcome is unknown (outcomeUnknown), ErrOutcomeUnknown.
func (p *RoutedPool) wrapErr(c *call, err error) error {
	if err == nil {
		return nil
	}
	if c.m.node.cut.Load() {
		err = fmt.Errorf("%w: %w", ErrNodeRemoved, err)
	} else if c.m.node.interrupts.Load() != c.epoch {
		err = fmt.Errorf("%w: %w", ErrInterrupted, err)
	}
	if outcomeUnknown(c, err) {
		err = fmt.Errorf("%w: %w", ErrOutcomeUnknown, err)
	}
	return &NodeError{Group: c.g.name, Node: c.m.node.name, Err: err}
}
