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
	straight   bool // disabled, with nothing to report: calls go straight to the node
	noHealthy  NoHealthyReadPolicy
	onRoute    func(context.Context, Route)
	tracer     RouteTracer
	health     *healthChecker
	following  bool          // the groups follow the cluster's roles (cluster.go)
	hedgeAfter time.Duration // HealthConfig.HedgeAfter (hedge.go); 0: off
	strategy   Strategy      // and seed: the role sets' balancers
	seed       uint64
	// members are the nodes of the default and read groups, by their
	// index (node.ci); cluster is their current view (cluster.go).
	members []*node
	cluster atomic.Pointer[clusterView]
	// rowsSlabs and batchSlabs hand out the results of Query and
	// SendBatch (their calls are recycled: callPool, batchPool).
	rowsSlabs  slabs[routedRows]
	batchSlabs slabs[routedBatch]
	// events keeps the last health events for StatusHandler (events.go).
	events *eventLog

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
		groups:     make(map[string]*group, len(specs)),
		mode:       cfg.Stickiness,
		disabled:   cfg.Disabled,
		noHealthy:  cfg.NoHealthyRead,
		onRoute:    cfg.OnRoute,
		tracer:     cfg.Tracer,
		straight:   cfg.Disabled && cfg.OnRoute == nil && cfg.Tracer == nil,
		strategy:   cfg.Strategy,
		hedgeAfter: max(cfg.Health.HedgeAfter, 0),
		seed:       cfg.Seed,
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
		for _, ns := range spec.nodes {
			n := byKey[ns.key]
			if n == nil {
				n = &node{name: ns.name, pool: ns.pool, be: ns.backend}
				if n.pool == nil && n.be == nil {
					if ns.cfg.ConnConfig.ConnectTimeout == 0 && cfg.ConnectTimeout >= 0 {
						ns.cfg.ConnConfig.ConnectTimeout = cmp.Or(cfg.ConnectTimeout, defaultConnectTimeout)
					}
					cfg.TCP.setDialer(ns.cfg)
					if cfg.ConfigurePool != nil {
						cfg.ConfigurePool(spec.name, ns.name, ns.cfg)
					}
					if dial := ns.cfg.ConnConfig.DialFunc; dial != nil {
						n.dial = dial
						ns.cfg.ConnConfig.DialFunc = n.conns.track(dial, n.health.suspect.Load)
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
				if n.pool != nil {
					cc := n.pool.Config().ConnConfig
					n.host, n.port = cc.Host, cc.Port
				}
				byKey[ns.key] = n
				p.nodes = append(p.nodes, n)
			}
			g.members = append(g.members, &member{node: n, weight: ns.weight})
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
	dynamic := p.joinCluster(cfg)
	for _, g := range p.groupList {
		weights := make([]int, len(g.members))
		for i, m := range g.members {
			weights[i] = m.weight
		}
		g.bal, err = balancer.New(cfg.Strategy, weights, balancer.Options{Seed: cfg.Seed})
		if err != nil {
			return fail(fmt.Errorf("%w: group %q: %w", ErrConfig, g.name, err))
		}
	}
	if dynamic {
		p.following = true
		p.buildSets(p.cluster.Load(), nil) // before anyone reads the view
	}
	p.events = newEventLog()
	hcfg := cfg
	hcfg.Tracer = MultiTracer(cfg.Tracer, p.events) // health events only: calls trace p.tracer
	p.health = newHealthChecker(p, hcfg, dynamic)
	return p, nil
}

// joinCluster makes the nodes of the default and read groups the members
// of the cluster, publishes the first view (the configured roles), and,
// unless roles are static (Config.StaticRoles, health checks off, or a
// member given as a Backend, which is never probed), makes both groups
// follow the roles the probes see: each group then holds every member (a
// member not configured in it with weight 1), the default group's calls go
// to the one that is primary, and the read group's to those that are
// replicas. It reports whether roles follow the cluster.
func (p *RoutedPool) joinCluster(cfg Config) bool {
	for _, n := range p.nodes {
		n.ci = -1
	}
	clusterGroups := []*group{p.def}
	if p.read != nil && p.read != p.def {
		clusterGroups = append(clusterGroups, p.read)
	}
	for _, g := range clusterGroups {
		for _, m := range g.members {
			if m.node.ci < 0 {
				m.node.ci = len(p.members)
				p.members = append(p.members, m.node)
			}
		}
	}
	p.cluster.Store(initialView(len(p.members)))
	dynamic := !cfg.StaticRoles && !cfg.Disabled && !cfg.Health.Disabled && len(clusterGroups) > 1
	for _, n := range p.members {
		dynamic = dynamic && n.pool != nil
	}
	if !dynamic {
		return false
	}
	for _, g := range clusterGroups {
		in := map[*node]bool{}
		for _, m := range g.members {
			in[m.node] = true
		}
		for _, n := range p.members {
			if !in[n] {
				g.members = append(g.members, &member{node: n, weight: 1})
			}
		}
		g.cl = &p.cluster
	}
	p.def.roles, p.read.roles = primaryRole, replicaRole
	return true
}

// defaultConnectTimeout bounds connection attempts when neither the
// connection string nor Config.ConnectTimeout does.
const defaultConnectTimeout = 5 * time.Second

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
)

// call is one routed call: its route (the decision of its current attempt),
// what it runs on the node, and what the node returned. Every method of
// RoutedPool that runs something fills one and hands it to run.
type call struct {
	decision
	p    *RoutedPool
	ctx  context.Context // the caller's
	nctx context.Context // what the node runs with: ctx, or the tracer's
	args []any
	in   *callInput // the inputs and results of the rarer calls
	// epoch is the node's interruption count when the attempt started.
	epoch uint64
	rows  pgx.Rows          // a query's
	row   pgx.Row           // a QueryRow's
	tag   pgconn.CommandTag // an Exec's
	kind  callKind
	// attempt is 0 for the first attempt, 1 for the one run again (at
	// most one: next allows one).
	attempt uint8
}

// callInput holds what a batch, a COPY, a transaction or an Acquire runs
// and returns, apart from the call, so that the calls that return rows
// (whose call lives as long as the rows) stay small.
type callInput struct {
	batch   *pgx.Batch
	table   pgx.Identifier
	columns []string
	src     pgx.CopyFromSource
	txOpts  pgx.TxOptions

	br   pgx.BatchResults
	n    int64
	tx   pgx.Tx
	conn *pgxpool.Conn
}

// Route returns where sql would go in ctx, without running anything (nor
// waiting for a primary). The error wraps ErrUnknownGroup, ErrNoHealthyNode
// (and ErrNoPrimary) or ErrClosed.
func (p *RoutedPool) Route(ctx context.Context, sql string) (Route, error) {
	d := decision{sql: sql}
	var err error
	if p.disabled {
		err = p.prepare(ctx, opStatement, classify.Result{}, &d)
	} else if err = p.decide(ctx, opStatement, classify.Result{}, &d); err == errAwaitPrimary {
		err = p.noPrimary(p.cluster.Load(), nil)
	}
	return d.route(), err
}

// prepare decides the route of an operation into d, or, with
// Config.Disabled, sends it to the default group's first node. A call that
// needs the primary while none is known waits for one (awaitView).
func (p *RoutedPool) prepare(ctx context.Context, o op, res classify.Result, d *decision) error {
	if !p.disabled {
		err := p.decide(ctx, o, res, d)
		if err == errAwaitPrimary {
			err = p.awaitPrimary(ctx, hasPrimary, func() error { return p.decide(ctx, o, res, d) })
		}
		return err
	}
	if p.closed.Load() {
		return ErrClosed
	}
	d.g, d.m, d.reason, d.res = p.def, p.def.members[0], ReasonDisabled, res
	return nil
}

// run runs a routed call whose first route is decided: it starts the
// attempt (counts it, reports it, traces it), runs it on the node, and on a
// failure ends the attempt (with the failure signal) and runs it again when
// next allows, at most once. Exec, CopyFrom and Acquire end here; Query,
// SendBatch and BeginTx end when their rows, batch or transaction do. The
// error names the node of the last attempt.
func (p *RoutedPool) run(c *call) error {
	for {
		p.start(c)
		var err error
		be := c.m.node.be
		switch c.kind {
		case callExec:
			c.tag, err = be.Exec(c.nctx, c.sql, c.args...)
		case callQuery:
			if p.hedgeable(c) {
				c.rows, err = p.queryHedged(c)
			} else {
				c.rows, err = be.Query(c.nctx, c.sql, c.args...)
			}
		case callQueryRow: // its errors show at Scan (routedRow)
			if p.hedgeable(c) {
				var rows pgx.Rows
				if rows, err = p.queryHedged(c); err == nil {
					c.row = rowsRow{rows}
				}
			} else {
				c.row = be.QueryRow(c.nctx, c.sql, c.args...)
			}
		case callBatch:
			c.in.br = be.SendBatch(c.nctx, c.in.batch)
		case callCopy:
			c.in.n, err = be.CopyFrom(c.nctx, c.in.table, c.in.columns, c.in.src)
		case callBegin:
			c.in.tx, err = be.BeginTx(c.nctx, c.in.txOpts)
		case callAcquire:
			if c.m.node.pool == nil {
				err = ErrNoPool
			} else {
				c.in.conn, err = c.m.node.pool.Acquire(c.nctx)
			}
		}
		if err == nil {
			switch c.kind {
			case callExec:
				p.finish(c.ctx, c, nil, c.isWrite(), false)
			case callCopy:
				p.finish(c.ctx, c, nil, true, false)
			case callAcquire:
				p.finish(c.ctx, c, nil, false, false)
			}
			return nil
		}
		if ok, werr := p.again(c, err); !ok {
			return p.wrapErr(c, cmp.Or(werr, err))
		}
	}
}

// start counts an attempt as started on its node, reports its route to
// OnRoute and starts its trace.
func (p *RoutedPool) start(c *call) {
	c.m.node.started.Add(1)
	c.epoch = c.m.node.interrupts.Load()
	c.m.calls[c.reason].Add(1)
	c.nctx = c.ctx
	if p.onRoute != nil {
		p.onRoute(c.ctx, c.route())
	}
	if p.tracer != nil {
		r := c.route()
		c.nctx = p.tracer.TraceRouteStart(context.WithValue(c.ctx, routeKey{}, &r),
			TraceRouteStartData{Route: r, Attempt: int(c.attempt)})
	}
}

// finish ends an attempt: it counts it as finished, learns from a failure
// (a connection error marks the node down at once), ends its trace and,
// after a success on the default group, updates the scope: a write marks
// it, and in ReadYourWrites mode the scope then waits for the primary's
// next position (after a read too, for monotonic reads). rerun says that
// the call runs again; ctx is the context the ending operation ran with
// (the call's, or a transaction's Commit or Rollback).
func (p *RoutedPool) finish(ctx context.Context, c *call, err error, wrote, rerun bool) {
	if err != nil {
		p.passive(ctx, &c.decision, err)
	}
	p.end(c, err, wrote, rerun)
}

// end is finish after the failure signal.
func (p *RoutedPool) end(c *call, err error, wrote, rerun bool) {
	c.m.node.ended.Add(1)
	if p.tracer != nil {
		p.tracer.TraceRouteEnd(c.nctx, TraceRouteEndData{Route: c.route(), Attempt: int(c.attempt), Err: err, Rerun: rerun})
	}
	if err != nil || c.scope == nil || c.g != p.def {
		return
	}
	if wrote {
		c.scope.NoteWrite(time.Now())
	}
	if p.mode == stickiness.ReadYourWrites {
		p.awaitPosition(c.scope)
	}
}

// again ends a failed attempt and reports whether the call runs again; if
// so, c holds the route of the next attempt. The failure signal comes
// first, so that the retry decision sees the node ejected. A non-nil error
// replaces err as the call's (a wait for a primary that ended).
func (p *RoutedPool) again(c *call, err error) (bool, error) {
	p.passive(c.ctx, &c.decision, err)
	next, ok, werr := p.next(c.ctx, &c.decision, err, int(c.attempt))
	p.end(c, err, false, ok)
	if !ok {
		return false, werr
	}
	c.m.node.health.retries.Add(1)
	c.decision = next
	c.attempt++
	return true, nil
}

// wrapErr names the group and node of c's attempt in err, keeping it
// testable with errors.Is and errors.As; when the node's calls were
// interrupted while the attempt ran, it wraps ErrInterrupted too, and when
// a call with effects lost its connection after it may have reached the
// server, ErrOutcomeUnknown.
func (p *RoutedPool) wrapErr(c *call, err error) error {
	if err == nil {
		return nil
	}
	if c.m.node.interrupts.Load() != c.epoch {
		err = fmt.Errorf("%w: %w", ErrInterrupted, err)
	}
	if !c.auto && c.res.Kind != classify.Read && c.kind != callAcquire && c.kind != callBegin && isConnError(err) && !neverSent(err) && !errors.Is(err, ErrNoPrimary) {
		err = fmt.Errorf("%w: %w", ErrOutcomeUnknown, err)
	}
	return &NodeError{Group: c.g.name, Node: c.m.node.name, Err: err}
}

// direct returns the backend of the default group's first node when calls
// go straight to it: Config.Disabled with no OnRoute and no Tracer to tell.
// Such calls are counted in Stat (ReasonDisabled) and run on the node's
// pool as they would on a *pgxpool.Pool: their rows, batches and
// transactions are the pool's own.
func (p *RoutedPool) direct() (Backend, error) {
	if p.closed.Load() {
		return nil, ErrClosed
	}
	m := p.def.members[0]
	m.calls[ReasonDisabled].Add(1)
	return m.node.be, nil
}

// Exec runs sql on the node its route picks.
func (p *RoutedPool) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	if p.straight {
		be, err := p.direct()
		if err != nil {
			return pgconn.CommandTag{}, err
		}
		return be.Exec(ctx, sql, args...)
	}
	c := call{decision: decision{sql: sql}, p: p, ctx: ctx, kind: callExec, args: args}
	if err := p.prepare(ctx, opStatement, classify.Result{}, &c.decision); err != nil {
		return pgconn.CommandTag{}, err
	}
	err := p.run(&c)
	return c.tag, err
}

// Query runs sql on the node its route picks. A read that a replica refuses
// as a write (25006) before returning a row runs again on the default group.
// As with pgxpool, the rows carry the error of a call that failed, so that
// pgx.CollectRows and pgx.ForEachRow report it.
func (p *RoutedPool) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if p.straight {
		be, err := p.direct()
		if err != nil {
			return errRows{err: err}, err
		}
		return be.Query(ctx, sql, args...)
	}
	c := getCall() // zeroed by putCall: set only what the call needs
	c.sql, c.p, c.ctx, c.kind, c.args = sql, p, ctx, callQuery, args
	if err := p.prepare(ctx, opStatement, classify.Result{}, &c.decision); err != nil {
		putCall(c)
		return errRows{err: err}, err
	}
	if err := p.run(c); err != nil {
		putCall(c)
		return errRows{err: err}, err
	}
	r := p.rowsSlabs.get()
	r.c, r.rows = c, c.rows
	return r, nil
}

// QueryRow runs sql on the node its route picks; errors show at Scan.
func (p *RoutedPool) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	if p.straight {
		be, err := p.direct()
		if err != nil {
			return errRow{err}
		}
		return be.QueryRow(ctx, sql, args...)
	}
	c := getCall() // zeroed by putCall: set only what the call needs
	c.sql, c.p, c.ctx, c.kind, c.args = sql, p, ctx, callQueryRow, args
	if err := p.prepare(ctx, opStatement, classify.Result{}, &c.decision); err != nil {
		putCall(c)
		return errRow{err}
	}
	if err := p.run(c); err != nil {
		putCall(c)
		return errRow{err}
	}
	return (*routedRow)(c)
}

// SendBatch sends a batch to one node: a write if any of its statements is,
// a locking read if any is, else a read.
func (p *RoutedPool) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	if p.straight {
		be, err := p.direct()
		if err != nil {
			return errBatch{err}
		}
		return be.SendBatch(ctx, b)
	}
	res := batchKind(p.classifier, b)
	bc := getBatchCall() // zeroed by putBatchCall: set only what the call needs
	bc.c.p, bc.c.ctx, bc.c.kind, bc.in.batch = p, ctx, callBatch, b
	if err := p.prepare(ctx, opKnown, res, &bc.c.decision); err != nil {
		putBatchCall(bc)
		return errBatch{err}
	}
	p.run(&bc.c) // SendBatch reports no error: the results do
	rb := p.batchSlabs.get()
	rb.BatchResults, rb.bc = bc.in.br, bc
	return rb
}

// CopyFrom copies rows into a table of the default group (or of the context's
// group).
func (p *RoutedPool) CopyFrom(ctx context.Context, tableName pgx.Identifier, columnNames []string, rowSrc pgx.CopyFromSource) (int64, error) {
	in := callInput{table: tableName, columns: columnNames, src: rowSrc}
	c := call{p: p, ctx: ctx, kind: callCopy, in: &in}
	if err := p.prepare(ctx, opKnown, resCopy, &c.decision); err != nil {
		return 0, err
	}
	err := p.run(&c)
	return c.in.n, err
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
// since a standby refuses it. A transaction is never moved to another node:
// a failure to begin it is retried only as a read would be.
func (p *RoutedPool) BeginTx(ctx context.Context, txOptions pgx.TxOptions) (pgx.Tx, error) {
	o, res := txKind(txOptions.AccessMode == pgx.ReadOnly, txOptions.IsoLevel == pgx.Serializable)
	c := &call{p: p, ctx: ctx, kind: callBegin, in: &callInput{txOpts: txOptions}}
	if err := p.prepare(ctx, o, res, &c.decision); err != nil {
		return nil, err
	}
	if err := p.run(c); err != nil {
		return nil, err
	}
	return &routedTx{Tx: c.in.tx, c: c, state: &txState{}}, nil
}

// Acquire returns a connection of the context's group, else of the default
// group. The caller releases it; statements on it are not routed.
func (p *RoutedPool) Acquire(ctx context.Context) (*pgxpool.Conn, error) {
	c := call{p: p, ctx: ctx, kind: callAcquire, in: &callInput{}}
	if err := p.prepare(ctx, opAcquire, resAcquire, &c.decision); err != nil {
		return nil, err
	}
	if err := p.run(&c); err != nil {
		return nil, err
	}
	return c.in.conn, nil
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

// Config returns a copy of the pool configuration of the primary (the
// member that is primary now, or was last, when following the cluster; the
// default group's first node with static roles), as *pgxpool.Pool.Config
// does for a single pool; nil when that node is a Backend without a pool.
func (p *RoutedPool) Config() *pgxpool.Config {
	if n := p.primary(); n.pool != nil {
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
