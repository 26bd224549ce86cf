package pgxroute

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgxroute/pgxroute/classify"
	"github.com/pgxroute/pgxroute/stickiness"
)

// Every rule of routing is in this file: a call's route is decided once, by
// prepare and decide on one snapshot of the cluster, and changed only by
// next, the retry decision; which reads are hedged (hedged), what counts as
// a write for the scope (callWrote), which failures say something of the
// node (failureOfNode) and when a call's outcome is unknown
// (outcomeUnknown) are here too. The precedence is:
// Config.Disabled; a group in the context (WithBindGroup, WithPrimary,
// WithReplica); the kind of the operation (Acquire, a read-write
// transaction) and of the statement (writes and locking reads go to the
// default group); the scope's stickiness after a write (or, in
// ReadYourWrites mode, the scope's WAL position); else the read group.

// Route is a routing decision: the bind group and node a call goes to, and
// why.
type Route struct {
	// Group is the bind group.
	Group string
	// Node is the node's name in the configuration.
	Node string
	// Reason is the rule that decided.
	Reason Reason
	// Statement is what classify said of the SQL (for Begin, CopyFrom and
	// Acquire: a description of the operation).
	Statement classify.Result
	// SQL is the statement routed; empty for Begin, CopyFrom, SendBatch and
	// Acquire.
	SQL string
}

// String formats the route as "group/node: reason (statement)".
func (r Route) String() string {
	s := r.Group + "/" + r.Node + ": " + r.Reason.String()
	if r.Statement.Reason != "" {
		s += " (" + r.Statement.Kind.String() + ": " + r.Statement.Reason + ")"
	}
	return s
}

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

// prepare decides the route of an operation into d: with Config.Disabled,
// the default group's first node; otherwise by decide, on the current
// snapshot. A call that needs the primary while none is known waits for one
// (awaitPrimary).
func (p *RoutedPool) prepare(ctx context.Context, o op, res classify.Result, d *decision) error {
	if p.closed.Load() {
		return ErrClosed
	}
	if p.disabled {
		d.g, d.m, d.reason, d.res = p.defaultGroup, p.pub.snap.Load().mem.groups[p.defaultGroup.index].members[0], ReasonDisabled, res
		return nil
	}
	err := p.decide(ctx, p.pub.snap.Load(), o, res, d)
	if err == errAwaitPrimary {
		err = p.awaitPrimary(ctx, hasPrimary, func(v *snapshot) error { return p.decide(ctx, v, o, res, d) })
	}
	return err
}

// decide fills d, whose sql is set, with the route of one operation in
// snapshot v. For opStatement it classifies d.sql; for the others res
// describes the operation. The error wraps ErrUnknownGroup or
// ErrNoHealthyNode, or is errAwaitPrimary.
func (p *RoutedPool) decide(ctx context.Context, v *snapshot, o op, res classify.Result, d *decision) error {
	if o == opStatement {
		res = p.classifier.Classify(d.sql)
	}
	d.res = res
	rc := routingFrom(ctx)
	d.scope = rc.scope
	if rc.ov != nil {
		return p.decideOverride(v, d, rc.ov)
	}
	switch {
	case o == opAcquire:
		return p.toGroup(v, d, p.defaultGroup, ReasonAcquire)
	case o == opBegin:
		return p.toGroup(v, d, p.defaultGroup, ReasonTransaction)
	case res.Kind == classify.Write && d.scope == nil:
		return p.toGroup(v, d, p.defaultGroup, ReasonWriteNoScope)
	case res.Kind == classify.Write:
		return p.toGroup(v, d, p.defaultGroup, ReasonWrite)
	case res.Kind == classify.LockingRead:
		return p.toGroup(v, d, p.defaultGroup, ReasonLockingRead)
	}
	return p.decideRead(v, d)
}

// decideOverride routes by a group chosen through the context.
func (p *RoutedPool) decideOverride(v *snapshot, d *decision, ov *override) error {
	switch ov.kind {
	case overridePrimary:
		return p.toGroup(v, d, p.defaultGroup, ReasonPrimary)
	case overrideReplica:
		if p.readGroup == nil {
			return p.toGroup(v, d, p.defaultGroup, ReasonNoReadGroup)
		}
		return p.toGroup(v, d, p.readGroup, ReasonReplica)
	}
	g := p.group(ov.group)
	if g == nil {
		return fmt.Errorf("%w %q", ErrUnknownGroup, ov.group)
	}
	return p.toGroup(v, d, g, ReasonBindGroup)
}

// group returns the named group, or nil. A few groups are scanned (two
// string comparisons cost less than hashing the name); many are looked up.
func (p *RoutedPool) group(name string) *group {
	if len(p.groups) <= 8 {
		for _, g := range p.groups {
			if g.name == name {
				return g
			}
		}
		return nil
	}
	return p.groupsByName[name]
}

// decideRead routes a read by the scope's stickiness and the read group's
// health.
func (p *RoutedPool) decideRead(v *snapshot, d *decision) error {
	s := d.scope
	if s == nil && p.unscoped != nil {
		return p.decideUnscoped(v, d)
	}
	if s != nil && p.mode != stickiness.Off {
		if p.mode == stickiness.ReadYourWrites {
			return p.decideReadYourWrites(v, d)
		}
		var now time.Time
		if p.mode > 0 {
			now = time.Now()
		}
		if s.Sticky(p.mode, now) {
			return p.toGroup(v, d, p.defaultGroup, ReasonSticky)
		}
	}
	return p.toReplica(v, d)
}

// toReplica sends a read to a healthy node of the read group. When every up
// read node lags, the read goes to the default group (FallbackToPrimary) or,
// rather than fail, to a lagging node: no node is ejected for lag alone.
// When no read node is up, the read falls back or fails.
func (p *RoutedPool) toReplica(v *snapshot, d *decision) error {
	g := p.readGroup
	if g == nil {
		return p.toGroup(v, d, p.defaultGroup, ReasonNoReadGroup)
	}
	m := g.pick(v)
	reason := ReasonRead
	if d.scope == nil {
		reason = ReasonReadNoScope
	}
	if m == nil {
		lagging := g.allLagging(v)
		if p.noHealthyRead == FallbackToPrimary {
			if lagging {
				return p.toGroup(v, d, p.defaultGroup, ReasonReadLagging)
			}
			return p.toGroup(v, d, p.defaultGroup, ReasonFallback)
		}
		if lagging {
			m = g.pickLagging(v)
		}
		if m == nil {
			return fmt.Errorf("%w in group %q for a read", ErrNoHealthyNode, g.name)
		}
		reason = ReasonReadLagging
	}
	d.g, d.m, d.reason, d.auto = g, m, reason, true
	return nil
}

// decideReadYourWrites routes a read of a scope in ReadYourWrites mode: to a
// replica known to have replayed the scope's position, else to the default
// group.
func (p *RoutedPool) decideReadYourWrites(v *snapshot, d *decision) error {
	s := d.scope
	if t := s.TakeToken(); t != nil {
		p.checkToken(v, s, t)
	}
	if p.readGroup == nil {
		return p.toGroup(v, d, p.defaultGroup, ReasonNoReadGroup)
	}
	return p.decideByPosition(v, d, s, ReasonCaughtUp, ReasonReplicasBehind, true)
}

// decideUnscoped routes a read whose context carries no scope by the pool's
// own scope (decideByPosition). Unlike a scope in ReadYourWrites mode it
// keeps no monotonic position from its reads: the pool's scope is every
// unscoped caller's at once, and only writes raise it. New makes the
// pool's scope only with a read group.
func (p *RoutedPool) decideUnscoped(v *snapshot, d *decision) error {
	return p.decideByPosition(v, d, p.unscoped, ReasonReadNoScope, ReasonUnscopedBehind, false)
}

// decideByPosition routes a read of scope s, the read group being there, by
// WAL position: to a replica known to have replayed s's position (reason
// caught), else to the default group (reason behind). With monotonic (a
// scope in ReadYourWrites mode), the read raises s's position to that of
// the replica it goes to, so that no later read of s goes back in time.
func (p *RoutedPool) decideByPosition(v *snapshot, d *decision, s *stickiness.Scope, caught, behind Reason, monotonic bool) error {
	g := p.readGroup
	if !p.resolvePending(v, s) {
		return p.toGroup(v, d, p.defaultGroup, behind)
	}
	if !p.sameHistory(v, s) {
		// The scope's positions belong to another primary's history (a
		// failover since): a position there says nothing of a replica of
		// the new one. Wait for the new primary's position.
		p.awaitPosition(v, s)
		return p.toGroup(v, d, p.defaultGroup, behind)
	}
	need := s.Need()
	if need == 0 {
		err := p.toReplica(v, d)
		if monotonic && err == nil && d.g == g {
			p.require(v, s, v.nodes[d.m.node.index].position())
		}
		return err
	}
	m := p.caughtUp(v, need)
	if m == nil {
		return p.toGroup(v, d, p.defaultGroup, behind)
	}
	if monotonic {
		p.require(v, s, v.nodes[m.node.index].position())
	}
	d.g, d.m, d.reason, d.auto = g, m, caught, true
	return nil
}

// caughtUp returns a usable replica known in v to have replayed need: the
// balancer's pick first, so that caught-up replicas share the load by their
// weights, else the first usable one that has. With none, it asks every
// replica for its position at once (catch-up: one probe in flight per node
// at most, coalesced) and returns nil: the read goes to the default group
// without waiting, and the reads after it find the replica that caught up.
func (p *RoutedPool) caughtUp(v *snapshot, need uint64) *member {
	g := p.readGroup
	if m := g.pick(v); m != nil && p.hasReplayed(v, m.node, need) {
		return m
	}
	gs := &v.groups[g.index]
	for i, c := range gs.members {
		if gs.usable[i] && p.hasReplayed(v, c.node, need) {
			return c
		}
	}
	for _, c := range gs.members {
		c.node.requestProbe()
	}
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
func (p *RoutedPool) toGroup(v *snapshot, d *decision, g *group, r Reason) error {
	m := g.pick(v)
	if m == nil && g.onlyRole == rolePrimary {
		return errAwaitPrimary
	}
	if m == nil {
		m = g.pickAnswering(v)
	}
	if m == nil {
		return g.noneAnswering(v)
	}
	d.g, d.m, d.reason, d.auto = g, m, r, false
	return nil
}

// errAwaitPrimary is decide's error when the call needs the primary and none
// is known: prepare waits for one.
var errAwaitPrimary = errors.New("pgxroute: no primary known")

// awaitPrimary waits for a snapshot for which ok holds, then routes the
// call again on it (route: decide, or toGroup to the default group); when
// route still finds no primary (the snapshot's primary not usable), it
// waits for another. It waits one HealthConfig.FailoverTimeout in all,
// within ctx; the error is awaitSnapshot's or route's.
func (p *RoutedPool) awaitPrimary(ctx context.Context, ok func(*snapshot) bool, route func(*snapshot) error) error {
	until := time.Now().Add(max(p.healthCfg.FailoverTimeout, 0))
	var tried *snapshot // a snapshot whose primary the call could not take
	fresh := func(v *snapshot) bool { return ok(v) && v != tried }
	for {
		v, err := p.awaitSnapshot(ctx, fresh, until)
		if err != nil {
			return err
		}
		tried = v
		if err = route(v); err != errAwaitPrimary {
			return err
		}
	}
}

// maxReruns bounds the attempts a call makes after its first for a
// connection failure or a failover: one. A re-run after a replica refused a
// read as a write (25006) is not counted: it happens at most once, since it
// goes to the default group.
const maxReruns = 1

// next is the retry decision after an attempt of a call failed with err: it
// returns the route of the next attempt and true, or false when the call
// fails with err. reruns is the number of retries the call made.
//
//   - A read that a replica refused as a write (25006) runs again on the
//     default group: the replica applied nothing, and the classifier
//     remembers the statement as a write (MarkWrite). That holds for either
//     attempt of a hedged read.
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
func (p *RoutedPool) next(ctx context.Context, d *decision, err error, reruns int) (decision, bool, error) {
	if ctx.Err() != nil {
		return decision{}, false, nil
	}
	if err == errNodeGone {
		// The node was removed after the call's route was decided, before
		// its attempt started: nothing was sent; decide again.
		next := decision{sql: d.sql}
		v := p.pub.snap.Load()
		werr := p.decide(ctx, v, opKnown, d.res, &next)
		if werr == errAwaitPrimary {
			werr = p.awaitPrimary(ctx, hasPrimary, func(v *snapshot) error { return p.decide(ctx, v, opKnown, d.res, &next) })
		}
		if werr != nil {
			return decision{}, false, werr
		}
		return next, true, nil
	}
	if d.m.node.cut.Load() {
		return decision{}, false, nil // DrainTimeout cut it: the call fails
	}
	if d.auto && isReadOnlyViolation(err) {
		p.classifier.MarkWrite(d.sql, resRefused.Reason)
		next := *d
		if p.toGroup(p.pub.snap.Load(), &next, p.defaultGroup, ReasonMisroute) != nil {
			return decision{}, false, nil
		}
		next.res = resRefused
		return next, true, nil
	}
	if reruns >= maxReruns {
		return decision{}, false, nil
	}
	if d.g.onlyRole == rolePrimary && !d.auto {
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
			if pr := p.pub.snap.Load().nodes[n.index].probe; pr != nil {
				seen = pr.seq
			}
			n.requestProbe()
			// Another member primary now, or this one probed again.
			ok = func(v *snapshot) bool {
				pr := v.nodes[n.index].probe
				return v.primary >= 0 && (v.primary != n.index || (pr != nil && pr.seq > seen))
			}
		}
		// The default group follows the cluster: toGroup fails only for
		// want of a primary, and awaitPrimary waits for one.
		next := *d
		if werr := p.awaitPrimary(ctx, ok, func(v *snapshot) error { return p.toGroup(v, &next, p.defaultGroup, ReasonFailover) }); werr != nil {
			return decision{}, false, fmt.Errorf("%w (its attempt on %q failed: %w)", werr, d.m.node.name, err)
		}
		return next, true, nil
	}
	readOnly := d.auto || d.res.Kind == classify.Read
	if !readOnly || !(pgconn.SafeToRetry(err) || isConnError(err)) {
		return decision{}, false, nil
	}
	v := p.pub.snap.Load()
	if m := d.g.pickOther(v, d.m); m != nil {
		next := *d
		next.m, next.reason = m, ReasonRetry
		return next, true, nil
	}
	if d.g != p.defaultGroup && d.auto && p.noHealthyRead == FallbackToPrimary {
		next := *d
		route := func(v *snapshot) error { return p.toGroup(v, &next, p.defaultGroup, ReasonRetry) }
		err := route(v)
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

// hedged reports whether a call is a hedged read (Config.HedgeAfter): a
// Query or QueryRow that its statement's kind sent to the read group.
// Writes, locking and sticky reads, transactions, batches, explicit bind
// groups and Acquire are never hedged.
func (p *RoutedPool) hedged(c *call) bool {
	return p.hedgeAfter > 0 && (c.kind == callQuery || c.kind == callQueryRow) && c.auto && c.g == p.readGroup
}

// callWrote reports whether a call that succeeded wrote, for the scope: a
// statement or batch classified as a write, a COPY, or a transaction that
// committed after a write (txWrote). Acquire hands the connection to the
// caller: what runs on it is not routed.
func callWrote(kind callKind, res classify.Result, txWrote bool) bool {
	switch kind {
	case callCopy:
		return true
	case callAcquire:
		return false
	case callBegin:
		return txWrote
	}
	return res.Kind == classify.Write
}

// failureOfNode reports whether a call's failure says something of its
// node (the passive health signal): a connection error while the context
// the failed operation ran with was still live. Once that context ended (the
// caller's deadline or cancellation, a hedge's loser cancelled) the error
// says nothing of the node: pgx breaks off a write or read in progress with
// an i/o timeout of its own making. Nor does an i/o deadline passed while
// the context is live: no call sets one but pgx, when a context ends, and a
// connection a cancelled call left with its deadline set fails its next
// user that way (seen as "failed to deallocate cached statement(s):
// timeout" on healthy replicas under hedged reads). A node that hangs is
// the prober's to find (Health.Timeout, the stall watch); the read itself
// still runs again elsewhere (next).
func failureOfNode(ctx context.Context, err error) bool {
	return err != nil && ctx.Err() == nil && isConnError(err) && !errors.Is(err, os.ErrDeadlineExceeded)
}

// outcomeUnknown reports whether a call that failed with err may have taken
// effect: a call with effects (not a proven read, not sent to a replica by
// its kind, not Acquire or Begin, which have none) whose connection failed
// after it may have reached the server.
func outcomeUnknown(c *call, err error) bool {
	return !c.auto && c.res.Kind != classify.Read && c.kind != callAcquire && c.kind != callBegin &&
		isConnError(err) && !neverSent(err) && !errors.Is(err, ErrNoPrimary)
}
