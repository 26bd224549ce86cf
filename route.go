package pgxroute

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgxroute/pgxroute/classify"
	"github.com/pgxroute/pgxroute/stickiness"
)

// Every rule of routing is in this file: a call's route is decided once, by
// decide, and changed only by next, the retry decision. The precedence is:
// Config.Disabled; a group in the context (WithBindGroup, WithPrimary,
// WithReplica); the kind of the operation (Acquire, a read-write
// transaction) and of the statement (writes and locking reads go to the
// default group); the scope's stickiness after a write (or, in
// ReadYourWrites mode, the scope's WAL position); else the read group.

// op is the kind of operation being routed.
type op uint8

const (
	opStatement op = iota // SQL text: classify decides
	opKnown               // a batch, a COPY, a read-only transaction: res says what it is
	opBegin               // a read-write transaction
	opAcquire             // a connection for the caller to use
)

// decision is a route and what executing it needs.
type decision struct {
	g      *group
	m      *member
	scope  *stickiness.Scope
	sql    string
	res    classify.Result
	reason Reason
	auto   bool // the statement's kind chose a replica: the safety nets may reroute it
}

// route returns the decision as the exported Route.
func (d *decision) route() Route {
	if d.g == nil {
		return Route{Reason: d.reason, Statement: d.res, SQL: d.sql}
	}
	return Route{Group: d.g.name, Node: d.m.node.name, Reason: d.reason, Statement: d.res, SQL: d.sql}
}

// isWrite reports whether a decision's statement is a write.
func (d *decision) isWrite() bool { return d.res.Kind == classify.Write }

// What the operations that carry no SQL text are, for routing.
var (
	resBegin    = classify.Result{Kind: classify.Write, Reason: "BEGIN"}
	resCopy     = classify.Result{Kind: classify.Write, Reason: "COPY FROM"}
	resReadTx   = classify.Result{Kind: classify.Read, Reason: "read-only transaction"}
	resAcquire  = classify.Result{Kind: classify.Write, Reason: "acquire"}
	resSerialRO = classify.Result{Kind: classify.LockingRead, Reason: "serializable read-only transaction (a standby refuses it)"}
	resBatch    = classify.Result{Kind: classify.Read, Reason: "batch of reads"}
	resRefused  = classify.Result{Kind: classify.Write, Reason: "refused by a replica (25006)"}
)

// batchKind is what a batch is for routing: a write if any of its
// statements is, a locking read if any is, else a read. A statement with
// the text of the one before it (a batch of one statement with other
// arguments, the usual batch; the comparison is by address first) is not
// classified again.
func batchKind(c *classify.Classifier, b *pgx.Batch) classify.Result {
	res := resBatch
	var prev string
	for i, q := range b.QueuedQueries {
		if i > 0 && q.SQL == prev {
			continue // classified as a read or a locking read just before
		}
		prev = q.SQL
		r := c.Classify(q.SQL)
		if r.Kind == classify.Write {
			return r
		}
		if r.Kind == classify.LockingRead {
			res = r
		}
	}
	return res
}

// txKind is how a transaction with these access and isolation modes is
// routed: a read-only one as a read, except a serializable read-only one (a
// standby refuses it); a read-write one as a transaction.
func txKind(readOnly, serializable bool) (op, classify.Result) {
	switch {
	case !readOnly:
		return opBegin, resBegin
	case serializable:
		return opKnown, resSerialRO
	}
	return opKnown, resReadTx
}

// decide fills d, whose sql is set, with the route of one operation. For
// opStatement it classifies d.sql; for the others res describes the
// operation. The error wraps ErrClosed, ErrUnknownGroup or
// ErrNoHealthyNode.
func (p *RoutedPool) decide(ctx context.Context, o op, res classify.Result, d *decision) error {
	if p.closed.Load() {
		return ErrClosed
	}
	if o == opStatement {
		res = p.classifier.Classify(d.sql)
	}
	d.res = res
	rc := routingFrom(ctx)
	d.scope = rc.scope
	if rc.ov != nil {
		return p.decideOverride(d, rc.ov)
	}
	switch {
	case o == opAcquire:
		return p.toGroup(d, p.def, ReasonAcquire)
	case o == opBegin:
		return p.toGroup(d, p.def, ReasonTransaction)
	case res.Kind == classify.Write && d.scope == nil:
		return p.toGroup(d, p.def, ReasonWriteNoScope)
	case res.Kind == classify.Write:
		return p.toGroup(d, p.def, ReasonWrite)
	case res.Kind == classify.LockingRead:
		return p.toGroup(d, p.def, ReasonLockingRead)
	}
	return p.decideRead(d)
}

// decideOverride routes by a group chosen through the context.
func (p *RoutedPool) decideOverride(d *decision, ov *override) error {
	switch ov.kind {
	case overridePrimary:
		return p.toGroup(d, p.def, ReasonPrimary)
	case overrideReplica:
		if p.read == nil {
			return p.toGroup(d, p.def, ReasonNoReadGroup)
		}
		return p.toGroup(d, p.read, ReasonReplica)
	}
	g := p.group(ov.group)
	if g == nil {
		return fmt.Errorf("%w %q", ErrUnknownGroup, ov.group)
	}
	return p.toGroup(d, g, ReasonBindGroup)
}

// group returns the named group, or nil. A few groups are scanned (two
// string comparisons cost less than hashing the name); many are looked up.
func (p *RoutedPool) group(name string) *group {
	if len(p.groupList) <= 8 {
		for _, g := range p.groupList {
			if g.name == name {
				return g
			}
		}
		return nil
	}
	return p.groups[name]
}

// decideRead routes a read by the scope's stickiness and the read group's
// health.
func (p *RoutedPool) decideRead(d *decision) error {
	s := d.scope
	if s != nil && p.mode != stickiness.Off {
		if p.mode == stickiness.ReadYourWrites {
			return p.decideReadYourWrites(d)
		}
		var now time.Time
		if p.mode > 0 {
			now = time.Now()
		}
		if s.Sticky(p.mode, now) {
			return p.toGroup(d, p.def, ReasonSticky)
		}
	}
	return p.toReplica(d)
}

// toReplica sends a read to a healthy node of the read group. When every up
// read node lags, the read goes to the default group (FallbackToPrimary) or,
// rather than fail, to a lagging node: no node is ejected for lag alone.
// When no read node is up, the read falls back or fails.
func (p *RoutedPool) toReplica(d *decision) error {
	if p.read == nil {
		return p.toGroup(d, p.def, ReasonNoReadGroup)
	}
	m := p.read.pick()
	reason := ReasonRead
	if d.scope == nil {
		reason = ReasonReadNoScope
	}
	if m == nil {
		lagging := p.read.allLagging()
		if p.noHealthy == FallbackToPrimary {
			if lagging {
				return p.toGroup(d, p.def, ReasonReadLagging)
			}
			return p.toGroup(d, p.def, ReasonFallback)
		}
		if lagging {
			m = p.read.pickLagging()
		}
		if m == nil {
			return fmt.Errorf("%w in group %q for a read", ErrNoHealthyNode, p.read.name)
		}
		reason = ReasonReadLagging
	}
	d.g, d.m, d.reason, d.auto = p.read, m, reason, true
	return nil
}

// decideReadYourWrites routes a read of a scope in ReadYourWrites mode: to a
// replica known to have replayed the scope's position, else to the default
// group.
func (p *RoutedPool) decideReadYourWrites(d *decision) error {
	s := d.scope
	if t := s.TakeToken(); t != nil {
		p.checkToken(s, t)
	}
	if p.read == nil {
		return p.toGroup(d, p.def, ReasonNoReadGroup)
	}
	if !p.resolvePending(s) {
		return p.toGroup(d, p.def, ReasonReplicasBehind)
	}
	if !p.sameHistory(s) {
		// The scope's positions belong to another primary's history (a
		// failover since): a position there says nothing of a replica of
		// the new one. Wait for the new primary's position.
		p.awaitPosition(s)
		return p.toGroup(d, p.def, ReasonReplicasBehind)
	}
	need := s.Need()
	if need == 0 {
		err := p.toReplica(d)
		if err == nil && d.g == p.read {
			p.require(s, d.m.node.health.replayed())
		}
		return err
	}
	// The balancer's pick first, so that caught-up replicas share the load by
	// their weights; else any usable replica that caught up.
	m := p.read.pick()
	if m == nil || !p.hasReplayed(m.node, need) {
		m = nil
		for i, c := range p.read.members {
			if p.read.usable(i) && p.hasReplayed(c.node, need) {
				m = c
				break
			}
		}
	}
	if m == nil {
		for _, c := range p.read.members {
			c.node.health.requestProbe()
		}
		return p.toGroup(d, p.def, ReasonReplicasBehind)
	}
	p.require(s, m.node.health.replayed())
	d.g, d.m, d.reason, d.auto = p.read, m, ReasonCaughtUp, true
	return nil
}

// toGroup sends a call to a healthy node of g. When none is healthy it still
// tries one that answers (a down node that refuses connections), so that the
// caller gets the server's own error, which names the node; but never one
// that stopped answering (suspect): the call would only wait. With none
// left, the error wraps ErrNoHealthyNode and names every member.
//
// Following the cluster, the default group's only usable member is the
// primary: when none is known, the error is errAwaitPrimary, and the call
// waits for one (see prepare).
func (p *RoutedPool) toGroup(d *decision, g *group, r Reason) error {
	m := g.pick()
	if m == nil && g.roles == primaryRole {
		return errAwaitPrimary
	}
	if m == nil {
		m = g.pickAnswering()
	}
	if m == nil {
		return g.noneAnswering()
	}
	d.g, d.m, d.reason, d.auto = g, m, r, false
	return nil
}

// errAwaitPrimary is decide's error when the call needs the primary and none
// is known: prepare waits for one.
var errAwaitPrimary = errors.New("pgxroute: no primary known")

// awaitPrimary waits for a cluster view for which ok holds, then routes
// the call again (route: decide, or toGroup to the default group); when
// route still finds no primary (the view's primary not usable), it waits
// for another view. It waits one HealthConfig.FailoverTimeout in all,
// within ctx; the error is awaitView's or route's.
func (p *RoutedPool) awaitPrimary(ctx context.Context, ok func(*clusterView) bool, route func() error) error {
	until := time.Now().Add(max(p.health.cfg.FailoverTimeout, 0))
	var tried *clusterView // a view whose primary the call could not take
	fresh := func(v *clusterView) bool { return ok(v) && v != tried }
	for {
		v, err := p.awaitView(ctx, fresh, until)
		if err != nil {
			return err
		}
		tried = v
		if err = route(); err != errAwaitPrimary {
			return err
		}
	}
}

// primary returns the node whose WAL positions read-your-writes follows:
// following the cluster, the member that is primary now, or else the last
// one that was; with static roles, the default group's first node.
func (p *RoutedPool) primary() *node {
	if p.following {
		v := p.cluster.Load()
		if v.primary >= 0 {
			return p.members[v.primary]
		}
		if v.last >= 0 {
			return p.members[v.last]
		}
	}
	return p.def.members[0].node
}

// maxAttempts bounds the attempts of one call: the first, and at most one
// retry or re-run.
const maxAttempts = 2

// next is the retry decision after an attempt failed with err: it returns
// the route of the next attempt and true, or false when the call fails with
// err.
//
//   - A read that a replica refused as a write (25006) runs again on the
//     default group: the replica applied nothing, and the classifier
//     remembers the statement as a write (MarkWrite).
//   - A read whose connection failed, before it was sent or while it ran (a
//     statement classify proved read-only has no effect to repeat), runs
//     again on another healthy node of its group, or, when it was sent to a
//     replica by its kind and FallbackToPrimary allows, on the default
//     group.
//   - Following the cluster, a call for the primary whose connection
//     failed before anything was sent (neverSent), or that the primary
//     refused because it had just turned replica (25006: nothing was
//     applied), waits for a primary (a fresh probe of the refusing member
//     first) and is sent to it, within FailoverTimeout and the caller's
//     context. The error then replaces err: it wraps ErrNoPrimary.
//   - Writes, locking reads and operations with effects are otherwise
//     never sent twice; nor is anything once the caller's context is done.
//
// attempt is the number of the attempt that failed (0 for the first).
func (p *RoutedPool) next(ctx context.Context, d *decision, err error, attempt int) (decision, bool, error) {
	if attempt+1 >= maxAttempts || ctx.Err() != nil {
		return decision{}, false, nil
	}
	if d.g.roles == primaryRole && !d.auto {
		refused := isReadOnlyViolation(err)
		readAgain := d.res.Kind == classify.Read && isConnError(err) // no effect to repeat
		if !refused && !readAgain && !neverSent(err) {
			return decision{}, false, nil
		}
		ok := hasPrimary
		if refused {
			// The member may have turned replica: wait for its next probe.
			n := d.m.node
			seen := uint64(0)
			if r := n.health.last.Load(); r != nil {
				seen = r.seq
			}
			n.health.requestProbe()
			// Another member primary now, or this one probed again.
			ok = func(v *clusterView) bool {
				return v.primary >= 0 && (v.primary != n.ci || v.obs[n.ci].probes > seen)
			}
		}
		// The default group follows the cluster: toGroup fails only for
		// want of a primary, and awaitPrimary waits for one.
		next := *d
		if werr := p.awaitPrimary(ctx, ok, func() error { return p.toGroup(&next, p.def, ReasonFailover) }); werr != nil {
			return decision{}, false, fmt.Errorf("%w (its attempt on %q failed: %w)", werr, d.m.node.name, err)
		}
		return next, true, nil
	}
	if d.auto && isReadOnlyViolation(err) {
		p.classifier.MarkWrite(d.sql, resRefused.Reason)
		next := *d
		if p.toGroup(&next, p.def, ReasonMisroute) != nil {
			return decision{}, false, nil
		}
		next.res = resRefused
		return next, true, nil
	}
	readOnly := d.auto || d.res.Kind == classify.Read
	if !readOnly || !(pgconn.SafeToRetry(err) || isConnError(err)) {
		return decision{}, false, nil
	}
	if m := d.g.pickOther(d.m); m != nil {
		next := *d
		next.m, next.reason = m, ReasonRetry
		return next, true, nil
	}
	if d.g != p.def && d.auto && p.noHealthy == FallbackToPrimary {
		next := *d
		route := func() error { return p.toGroup(&next, p.def, ReasonRetry) }
		err := route()
		if err == errAwaitPrimary {
			// A failover is under way: the read waits for the new primary
			// rather than fail.
			err = p.awaitPrimary(ctx, hasPrimary, route)
		}
		if err != nil {
			return decision{}, false, nil
		}
		return next, true, nil
	}
	return decision{}, false, nil
}
