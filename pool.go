// Package pgxroute routes pgx calls between a PostgreSQL primary and its read
// replicas. A RoutedPool has the methods of *pgxpool.Pool: swap the type and
// reads go to replicas, writes to the primary, and a scope that wrote reads
// its own writes.
//
// Each call picks a bind group from, in order: Config.Disabled; a group in
// the context (WithBindGroup, WithPrimary, WithReplica); the statement's kind
// (package classify: writes and locking reads go to the default group); the
// scope's stickiness after a write; and else the read group. Within a group a
// strategy (round-robin, random, least-busy) picks a healthy node by weight.
package pgxroute

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgxroute/pgxroute/balancer"
	"github.com/pgxroute/pgxroute/classify"
	"github.com/pgxroute/pgxroute/stickiness"
)

// RoutedPool is a drop-in for *pgxpool.Pool that routes every call to a node
// of a bind group. It is safe for concurrent use.
type RoutedPool struct {
	groups     map[string]*group
	groupList  []*group // default first, then read (if any), then by name
	def        *group
	read       *group // nil: no read group
	nodes      []*node
	classifier *classify.Classifier
	mode       stickiness.Mode
	disabled   bool
	noHealthy  NoHealthyReadPolicy
	onRoute    func(context.Context, Route)
	health     *healthChecker

	closed    atomic.Bool
	closeOnce sync.Once
}

// New creates a RoutedPool from cfg. Like pgxpool.New it connects lazily; a
// configuration error (no default group node, a negative weight, a duplicate
// node name, an unparsable connection string...) is returned at once, wraps
// ErrConfig, names the group and node, and never shows a password.
func New(ctx context.Context, cfg Config) (*RoutedPool, error) {
	specs, err := cfg.normalise()
	if err != nil {
		return nil, err
	}
	p := &RoutedPool{
		groups:    make(map[string]*group, len(specs)),
		mode:      cfg.Stickiness,
		disabled:  cfg.Disabled,
		noHealthy: cfg.NoHealthyRead,
		onRoute:   cfg.OnRoute,
		classifier: classify.New(classify.Options{
			WriteFunctions: cfg.WriteFunctions,
			CacheSize:      cfg.ClassifyCacheSize,
		}),
	}
	byKey := map[string]*node{}
	fail := func(err error) (*RoutedPool, error) {
		for _, n := range p.nodes {
			if n.owned {
				n.pool.Close()
			}
		}
		return nil, err
	}
	for _, spec := range specs {
		g := &group{name: spec.name}
		weights := make([]int, len(spec.nodes))
		for i, ns := range spec.nodes {
			n := byKey[ns.key]
			if n == nil {
				n = &node{name: ns.name, pool: ns.pool, be: ns.backend}
				if n.pool == nil && n.be == nil {
					if ns.cfg.ConnConfig.ConnectTimeout == 0 && cfg.ConnectTimeout >= 0 {
						ns.cfg.ConnConfig.ConnectTimeout = cmp.Or(cfg.ConnectTimeout, defaultConnectTimeout)
					}
					if cfg.ConfigurePool != nil {
						cfg.ConfigurePool(spec.name, ns.name, ns.cfg)
					}
					pool, err := pgxpool.NewWithConfig(ctx, ns.cfg)
					if err != nil {
						return fail(fmt.Errorf("pgxroute: group %q node %q: %w", spec.name, ns.name, err))
					}
					n.pool, n.owned = pool, true
				}
				if n.be == nil {
					n.be = n.pool
				}
				byKey[ns.key] = n
				p.nodes = append(p.nodes, n)
			}
			g.members = append(g.members, &member{node: n, weight: ns.weight})
			weights[i] = ns.weight
		}
		g.bal, err = balancer.New(cfg.Strategy, weights, balancer.Options{Seed: cfg.Seed})
		if err != nil {
			return fail(fmt.Errorf("%w: group %q: %w", ErrConfig, spec.name, err))
		}
		p.groups[g.name] = g
		p.groupList = append(p.groupList, g)
	}
	p.def = p.groupList[0]
	readName := cfg.ReadGroup
	if readName == "" {
		readName = ReadGroupName
	}
	p.read = p.groups[readName]
	p.health = newHealthChecker(p, cfg)
	return p, nil
}

// defaultConnectTimeout bounds connection attempts when neither the
// connection string nor Config.ConnectTimeout does.
const defaultConnectTimeout = 5 * time.Second

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
	reason Reason
	res    classify.Result
	scope  *stickiness.Scope
	auto   bool // the statement's kind chose a replica: the safety nets may reroute it
	sql    string
}

func (d *decision) route() Route {
	if d.g == nil {
		return Route{Reason: d.reason, Statement: d.res, SQL: d.sql}
	}
	return Route{Group: d.g.name, Node: d.m.node.name, Reason: d.reason, Statement: d.res, SQL: d.sql}
}

var (
	resBegin    = classify.Result{Kind: classify.Write, Reason: "BEGIN"}
	resCopy     = classify.Result{Kind: classify.Write, Reason: "COPY FROM"}
	resReadTx   = classify.Result{Kind: classify.Read, Reason: "read-only transaction"}
	resAcquire  = classify.Result{Kind: classify.Write, Reason: "acquire"}
	resSerialRO = classify.Result{Kind: classify.LockingRead, Reason: "serializable read-only transaction (a standby refuses it)"}
)

// Route returns where sql would go in ctx, without running anything. The
// error wraps ErrUnknownGroup, ErrNoHealthyNode or ErrClosed.
func (p *RoutedPool) Route(ctx context.Context, sql string) (Route, error) {
	d := decision{sql: sql}
	err := p.decideInto(ctx, opStatement, classify.Result{}, &d)
	return d.route(), err
}

// decide routes one operation. For opStatement it classifies sql; for the
// others res describes the operation.
func (p *RoutedPool) decide(ctx context.Context, o op, sql string, res classify.Result) (decision, error) {
	d := decision{sql: sql}
	err := p.decideInto(ctx, o, res, &d)
	return d, err
}

// decideInto fills d, whose sql is set, with the route of one operation.
func (p *RoutedPool) decideInto(ctx context.Context, o op, res classify.Result, d *decision) error {
	if p.closed.Load() {
		return ErrClosed
	}
	if o == opStatement {
		res = p.classifier.Classify(d.sql)
	}
	d.res = res
	if p.disabled {
		d.g, d.m, d.reason = p.def, p.def.members[0], ReasonDisabled
		return nil
	}
	rc := routingFrom(ctx)
	d.scope = rc.scope
	if rc.ov != nil {
		return p.decideOverride(d, rc.ov)
	}
	switch {
	case o == opAcquire:
		return p.toDefault(d, ReasonAcquire)
	case o == opBegin:
		return p.toDefault(d, ReasonTransaction)
	case res.Kind == classify.Write:
		if d.scope == nil {
			return p.toDefault(d, ReasonWriteNoScope)
		}
		return p.toDefault(d, ReasonWrite)
	case res.Kind == classify.LockingRead:
		return p.toDefault(d, ReasonLockingRead)
	}
	return p.decideRead(d)
}

// decideOverride routes by a group chosen through the context.
func (p *RoutedPool) decideOverride(d *decision, ov *override) error {
	switch ov.kind {
	case overridePrimary:
		return p.toDefault(d, ReasonPrimary)
	case overrideReplica:
		if p.read == nil {
			return p.toDefault(d, ReasonNoReadGroup)
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
			return p.toDefault(d, ReasonSticky)
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
		return p.toDefault(d, ReasonNoReadGroup)
	}
	m := p.read.pick()
	reason := ReasonRead
	if d.scope == nil {
		reason = ReasonReadNoScope
	}
	if m == nil {
		lagging := p.read.allLagging.Load()
		if p.noHealthy == FallbackToPrimary {
			if lagging {
				return p.toDefault(d, ReasonReadLagging)
			}
			return p.toDefault(d, ReasonFallback)
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

// toDefault sends a call to the default group.
func (p *RoutedPool) toDefault(d *decision, r Reason) error {
	return p.toGroup(d, p.def, r)
}

// toGroup sends a call to a healthy node of g; when none is healthy it still
// tries one, so that the caller gets the server's own error (which names the
// node) rather than a guess.
func (p *RoutedPool) toGroup(d *decision, g *group, r Reason) error {
	m := g.pick()
	if m == nil {
		m = g.pickAny()
	}
	d.g, d.m, d.reason = g, m, r
	return nil
}

// begin counts a call as started on its node and reports the route.
func (p *RoutedPool) begin(ctx context.Context, d *decision) {
	d.m.node.inflight.Add(1)
	p.report(ctx, d)
}

// report counts a decision in Stat and passes it to OnRoute.
func (p *RoutedPool) report(ctx context.Context, d *decision) {
	d.m.calls[d.reason].Add(1)
	if p.onRoute != nil {
		p.onRoute(ctx, d.route())
	}
}

// end counts a call as finished. After a successful call on the default
// group it updates the scope: a write marks it, and in ReadYourWrites mode
// the scope then waits for the primary's next position (after a read too,
// for monotonic reads).
func (p *RoutedPool) end(d *decision, err error, wrote bool) {
	d.m.node.inflight.Add(-1)
	if err != nil || d.scope == nil || d.g != p.def {
		return
	}
	if wrote {
		d.scope.NoteWrite(time.Now())
	}
	if p.mode == stickiness.ReadYourWrites {
		p.awaitPosition(d.scope)
	}
}

// isWrite reports whether a decision's statement is a write.
func (d *decision) isWrite() bool { return d.res.Kind == classify.Write }

// Exec runs sql on the node its route picks.
func (p *RoutedPool) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	d, err := p.decide(ctx, opStatement, sql, classify.Result{})
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	for attempt := 0; ; attempt++ {
		p.begin(ctx, &d)
		tag, err := d.m.node.be.Exec(ctx, sql, args...)
		p.end(&d, err, d.isWrite())
		if err == nil {
			return tag, nil
		}
		next, retry := p.recover(ctx, &d, sql, err, attempt)
		if !retry {
			return tag, p.wrapErr(&d, err)
		}
		d = next
	}
}

// Query runs sql on the node its route picks. A read that a replica refuses
// as a write (25006) before returning a row runs again on the default group.
func (p *RoutedPool) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	d, err := p.decide(ctx, opStatement, sql, classify.Result{})
	if err != nil {
		return nil, err
	}
	r := &routedRows{}
	if err := p.query(ctx, d, sql, args, 0, r); err != nil {
		return nil, err
	}
	return r, nil
}

// query runs a routed query into r, retrying as recover allows.
func (p *RoutedPool) query(ctx context.Context, d decision, sql string, args []any, attempt int, r *routedRows) error {
	for ; ; attempt++ {
		p.begin(ctx, &d)
		rows, err := d.m.node.be.Query(ctx, sql, args...)
		if err == nil {
			*r = routedRows{Rows: rows, p: p, d: d, ctx: ctx, sql: sql, args: args, attempt: attempt}
			return nil
		}
		p.end(&d, err, false)
		next, retry := p.recover(ctx, &d, sql, err, attempt)
		if !retry {
			return p.wrapErr(&d, err)
		}
		d = next
	}
}

// QueryRow runs sql on the node its route picks; errors show at Scan.
func (p *RoutedPool) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	d, err := p.decide(ctx, opStatement, sql, classify.Result{})
	if err != nil {
		return errRow{err}
	}
	row := &routedRow{}
	if err := p.query(ctx, d, sql, args, 0, &row.rows); err != nil {
		return errRow{err}
	}
	return row
}

// SendBatch sends a batch to one node: a write if any of its statements is,
// a locking read if any is, else a read.
func (p *RoutedPool) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	res := classify.Result{Kind: classify.Read, Reason: "batch of reads"}
	for _, q := range b.QueuedQueries {
		r := p.classifier.Classify(q.SQL)
		if r.Kind == classify.Write {
			res = r
			break
		}
		if r.Kind == classify.LockingRead {
			res = r
		}
	}
	d, err := p.decide(ctx, opKnown, "", res)
	if err != nil {
		return errBatch{err}
	}
	p.begin(ctx, &d)
	return &routedBatch{BatchResults: d.m.node.be.SendBatch(ctx, b), p: p, d: d}
}

// CopyFrom copies rows into a table of the default group (or of the context's
// group).
func (p *RoutedPool) CopyFrom(ctx context.Context, tableName pgx.Identifier, columnNames []string, rowSrc pgx.CopyFromSource) (int64, error) {
	d, err := p.decide(ctx, opKnown, "", resCopy)
	if err != nil {
		return 0, err
	}
	p.begin(ctx, &d)
	n, err := d.m.node.be.CopyFrom(ctx, tableName, columnNames, rowSrc)
	p.end(&d, err, true)
	if err != nil {
		p.passive(&d, err)
		return n, p.wrapErr(&d, err)
	}
	return n, nil
}

// Begin starts a read-write transaction on the default group (or the
// context's group). Every statement of it runs on its connection; when it
// commits after a write, the scope turns sticky.
func (p *RoutedPool) Begin(ctx context.Context) (pgx.Tx, error) {
	return p.BeginTx(ctx, pgx.TxOptions{})
}

// BeginTx starts a transaction. With AccessMode pgx.ReadOnly it is routed as
// a read (to a replica unless the scope is sticky or the context says
// otherwise); a serializable read-only transaction goes to the default group,
// since a standby refuses it.
func (p *RoutedPool) BeginTx(ctx context.Context, txOptions pgx.TxOptions) (pgx.Tx, error) {
	o, res := opBegin, resBegin
	if txOptions.AccessMode == pgx.ReadOnly {
		o, res = opKnown, resReadTx
		if txOptions.IsoLevel == pgx.Serializable {
			res = resSerialRO
		}
	}
	d, err := p.decide(ctx, o, "", res)
	if err != nil {
		return nil, err
	}
	p.begin(ctx, &d)
	tx, err := d.m.node.be.BeginTx(ctx, txOptions)
	if err != nil {
		p.end(&d, err, false)
		return nil, p.wrapErr(&d, err)
	}
	return &routedTx{Tx: tx, p: p, d: d, state: &txState{}}, nil
}

// Acquire returns a connection of the context's group, else of the default
// group. The caller releases it; statements on it are not routed.
func (p *RoutedPool) Acquire(ctx context.Context) (*pgxpool.Conn, error) {
	d, err := p.decide(ctx, opAcquire, "", resAcquire)
	if err != nil {
		return nil, err
	}
	p.report(ctx, &d)
	if d.m.node.pool == nil {
		return nil, p.wrapErr(&d, ErrNoPool)
	}
	c, err := d.m.node.pool.Acquire(ctx)
	if err != nil {
		p.passive(&d, err)
		return nil, p.wrapErr(&d, err)
	}
	return c, nil
}

// AcquireFunc acquires a connection like Acquire, calls f with it and
// releases it.
func (p *RoutedPool) AcquireFunc(ctx context.Context, f func(*pgxpool.Conn) error) error {
	c, err := p.Acquire(ctx)
	if err != nil {
		return err
	}
	defer c.Release()
	return f(c)
}

// AcquireAllIdle acquires every idle connection of every node.
func (p *RoutedPool) AcquireAllIdle(ctx context.Context) []*pgxpool.Conn {
	var out []*pgxpool.Conn
	for _, n := range p.nodes {
		if n.pool != nil {
			out = append(out, n.pool.AcquireAllIdle(ctx)...)
		}
	}
	return out
}

// Ping pings every node; the error names each node that failed.
func (p *RoutedPool) Ping(ctx context.Context) error {
	if p.closed.Load() {
		return ErrClosed
	}
	var errs []error
	for _, n := range p.nodes {
		if err := n.be.Ping(ctx); err != nil {
			errs = append(errs, fmt.Errorf("node %q: %w", n.name, err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("pgxroute: ping: %w", errors.Join(errs...))
	}
	return nil
}

// Reset closes every connection of every node's pool, those given as
// Node.Pool included (as pgxpool's Reset, it does not close the pool); new
// connections are made as needed.
func (p *RoutedPool) Reset() {
	for _, n := range p.nodes {
		if n.pool != nil {
			n.pool.Reset()
		}
	}
}

// Config returns a copy of the pool configuration of the default group's
// first node (the primary), as *pgxpool.Pool.Config does for a single pool;
// nil when that node is a Backend without a pool.
func (p *RoutedPool) Config() *pgxpool.Config {
	if n := p.def.members[0].node; n.pool != nil {
		return n.pool.Config()
	}
	return nil
}

// Classifier returns the statement classifier the pool routes by.
func (p *RoutedPool) Classifier() *classify.Classifier { return p.classifier }

// Close stops the health checks and closes every pool the router created
// (not those given as Node.Pool). Calls after Close fail with ErrClosed.
func (p *RoutedPool) Close() {
	p.closeOnce.Do(func() {
		p.closed.Store(true)
		p.health.stop()
		for _, n := range p.nodes {
			if n.owned {
				n.pool.Close()
			}
		}
	})
}

// recover decides what follows a failed call: a read whose connection failed
// (before it was sent, or while it ran: a statement classify proved
// read-only has no effect to repeat) is retried once on another healthy
// node; a read a replica refused as a write (25006) runs again on the
// default group. Writes are never retried.
func (p *RoutedPool) recover(ctx context.Context, d *decision, sql string, err error, attempt int) (decision, bool) {
	p.passive(d, err)
	next, retry := p.retryRoute(ctx, d, sql, err, attempt)
	if retry {
		d.m.node.health.retries.Add(1)
	}
	return next, retry
}

func (p *RoutedPool) retryRoute(ctx context.Context, d *decision, sql string, err error, attempt int) (decision, bool) {
	if attempt > 0 || ctx.Err() != nil {
		return decision{}, false
	}
	if d.auto && isReadOnlyViolation(err) {
		p.classifier.MarkWrite(sql, "refused by a replica (25006)")
		next := *d
		p.toDefault(&next, ReasonMisroute)
		next.auto = false
		next.res = classify.Result{Kind: classify.Write, Reason: "refused by a replica (25006)"}
		return next, true
	}
	// A read is retried when its connection failed before it was sent, and
	// also when it failed while running: a statement classify proved
	// read-only has no effect to repeat.
	readOnly := d.auto || d.res.Kind == classify.Read
	if !pgconn.SafeToRetry(err) && !(readOnly && isConnError(err)) {
		return decision{}, false
	}
	if d.isWrite() || !readOnly {
		return decision{}, false
	}
	if m := d.g.pickOther(d.m); m != nil {
		next := *d
		next.m, next.reason = m, ReasonRetry
		return next, true
	}
	if d.g != p.def && d.auto && p.noHealthy == FallbackToPrimary {
		next := *d
		p.toDefault(&next, ReasonRetry)
		next.auto = false
		return next, true
	}
	return decision{}, false
}

// isReadOnlyViolation reports whether err is SQLSTATE 25006
// (read_only_sql_transaction): a standby refused a write.
func isReadOnlyViolation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "25006"
}

// wrapErr names the group and node in err, keeping it testable with
// errors.Is and errors.As.
func (p *RoutedPool) wrapErr(d *decision, err error) error {
	if err == nil {
		return nil
	}
	return &NodeError{Group: d.g.name, Node: d.m.node.name, Err: err}
}

// NodeError is the error of a call that failed on a node: it names the group
// and node and wraps the node's error (a *pgconn.PgError carries the
// server's detail).
type NodeError struct {
	Group string
	Node  string
	Err   error
}

// Error implements error.
func (e *NodeError) Error() string {
	msg := e.Err.Error()
	if strings.Contains(msg, e.Node) {
		return fmt.Sprintf("pgxroute: group %q: %s", e.Group, msg)
	}
	return fmt.Sprintf("pgxroute: group %q node %q: %s", e.Group, e.Node, msg)
}

// Unwrap returns the node's error.
func (e *NodeError) Unwrap() error { return e.Err }
