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

	"github.com/pgxroute/pgxroute/classify"
	"github.com/pgxroute/pgxroute/stickiness"
)

// RoutedPool is a drop-in for *pgxpool.Pool that routes every call to a node
// of a bind group. It is safe for concurrent use.
type RoutedPool struct {
	groups        []*group // default first, then read (if any), then by name; group.index
	groupsByName  map[string]*group
	defaultGroup  *group
	readGroup     *group // nil: no read group
	readGroupName string
	// The nodes and the groups' members are in the snapshot (snapshot.mem,
	// membership.go); memMu serialises the changes of membership (SetGroup,
	// Discovery, a drained node's slot freed) and Close. It is taken before
	// the publisher's mutex, never after.
	memMu sync.Mutex
	// followsRoles: the default and read groups follow the roles the
	// probes see (topology.followsRoles).
	followsRoles bool
	nodeSetup    nodeSetup
	drainTimeout time.Duration // Config.DrainTimeout, with its default
	members      membershipCounts
	discovery    *discovery // Config.Discovery's loop (discovery.go); nil: none
	// bg runs the drains and the discovery loop; bgCtx ends at Close.
	bg         sync.WaitGroup
	bgCtx      context.Context
	bgCancel   context.CancelFunc
	classifier *classify.Classifier
	mode       stickiness.Mode
	// unscoped is the pool's own scope, that of calls whose context
	// carries none; nil when off (Config.ForgetUnscopedWrites,
	// NoStickiness, Disabled) or when there is no read group.
	unscoped      *stickiness.Scope
	disabled      bool
	straight      bool // disabled, with nothing to report: calls go straight to the node
	noHealthyRead NoHealthyReadPolicy
	// tracer gets every attempt's start and end: OnRoute's adapter and
	// Config.Tracer, combined (tracer.go); nil when neither is set.
	// routeInContext: Config.Tracer is set, so a node's context carries
	// the attempt's route (RouteFromContext).
	tracer         RouteTracer
	routeInContext bool
	// healthTracer gets every health event: the Logger's adapter and
	// Config.Tracer when it is a HealthTracer; nil when neither is.
	healthTracer HealthTracer
	healthCfg    HealthConfig // with defaults
	probing      bool         // health checks run (probers)
	probers      probers
	// fullProbeGap makes every asked-for probe wait minProbeGap, as the
	// prober did before, rather than what is left of it since the last
	// probe started (probe.go): for the figures that compare the two.
	fullProbeGap atomic.Bool
	pub          publisher     // the snapshot (cluster.go)
	hedgeAfter   time.Duration // Config.HedgeAfter (hedge.go); 0: off
	strategy     Strategy      // and seed: the role sets' balancers
	seed         uint64
	// rowsSlabs and batchSlabs hand out the results of Query and
	// SendBatch (their calls are recycled: callPool, batchPool).
	rowsSlabs  slabs[routedRows]
	batchSlabs slabs[routedBatch]
	// events keeps the last health events for StatusHandler (events.go).
	events *eventLog

	closed    atomic.Bool
	closeOnce sync.Once
}

// node is one server: one pgxpool, shared by every group that lists it.
type node struct {
	name    string
	index   int             // its slot: in membership.nodes and snapshot.nodes
	key     string          // its identity besides the name: the connection (nodeSpec.key)
	backend Backend         // where calls run: pool, or a Node.Backend
	pool    *pgxpool.Pool   // nil for a Node.Backend
	owned   bool            // the router created the pool and closes it
	conns   connSet         // the open sockets of a pool the router created
	dial    pgconn.DialFunc // the dialer under conns' tracking: the probes' own
	// removed: the node is in no group any more and drains (membership.go);
	// a call that picked it on an earlier snapshot is routed again. cut:
	// DrainTimeout ran out and its connections were closed.
	removed, cut atomic.Bool
	kick         chan struct{} // asks the prober for an early probe (probe.go)
	stopProbe    context.CancelFunc
	proberExited chan struct{} // closed when its prober returned

	host string // the server address its pool dials (Stat)
	port uint16

	// probesStarted numbers the node's probes (read-your-writes waits
	// for a probe that starts after a write).
	probesStarted atomic.Uint64
	// interrupts counts the interruptions of the node's calls (interrupt):
	// a call that sees it change while it ran was interrupted.
	interrupts atomic.Uint64

	// started and ended count the routed attempts that started and ended
	// on the node: one add each per attempt, no more. They are written by
	// every call: on a cache line of their own, so that the read-mostly
	// fields above are not invalidated with them.
	_       [64]byte
	started atomic.Uint64
	ended   atomic.Uint64
	_       [48]byte

	ejections, readmissions, retries atomic.Int64
	hedges, hedgeWins                atomic.Int64 // hedged reads sent to the node, and won (hedge.go)
}

// inFlight returns the count of routed attempts running on the node. ended
// is read first: every attempt that ended had started, so the difference is
// never negative.
func (n *node) inFlight() int64 {
	e := n.ended.Load()
	return int64(n.started.Load() - e)
}

// Backend is what a node runs routed calls on. *pgxpool.Pool implements it,
// and so does pgxmock's pool; routingtest's fakes use it to test routing
// without a database. A node given as a Backend has no pgxpool: Acquire
// fails with ErrNoPool, and it is never probed (always up).
type Backend interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
	CopyFrom(ctx context.Context, tableName pgx.Identifier, columnNames []string, rowSrc pgx.CopyFromSource) (int64, error)
	BeginTx(ctx context.Context, txOptions pgx.TxOptions) (pgx.Tx, error)
	Ping(ctx context.Context) error
}

var _ Backend = (*pgxpool.Pool)(nil)

// New creates a RoutedPool from cfg. Like pgxpool.New it connects lazily; a
// configuration error (no default group node, a negative weight, a duplicate
// node name, an unparsable connection string...) is returned at once, wraps
// ErrConfig, names the group and node, and never shows a password.
func New(ctx context.Context, cfg Config) (*RoutedPool, error) {
	discovered, err := cfg.discoverStart(ctx)
	if err != nil {
		return nil, err
	}
	specs, err := cfg.normalise()
	if err != nil {
		return nil, err
	}
	p := &RoutedPool{
		groupsByName:  make(map[string]*group, len(specs)),
		mode:          cfg.Stickiness,
		disabled:      cfg.Disabled,
		noHealthyRead: cfg.NoHealthyRead,
		straight:      cfg.Disabled && cfg.OnRoute == nil && cfg.Tracer == nil,
		strategy:      cfg.Strategy,
		hedgeAfter:    max(cfg.HedgeAfter, cfg.Health.HedgeAfter, 0),
		seed:          cfg.Seed,
		healthCfg:     cfg.Health.withDefaults(),
		probing:       !cfg.Health.Disabled && !cfg.Disabled,
		drainTimeout:  cmp.Or(cfg.DrainTimeout, defaultDrainTimeout),
		nodeSetup:     nodeSetup{connectTimeout: cfg.ConnectTimeout, tcp: cfg.TCP, configurePool: cfg.ConfigurePool},
		classifier: classify.New(classify.Options{
			WriteFunctions: cfg.WriteFunctions,
			CacheSize:      cfg.ClassifyCacheSize,
		}),
	}
	p.bgCtx, p.bgCancel = context.WithCancel(context.Background())
	p.events = newEventLog()
	p.tracer, p.healthTracer = combineTracers(cfg, p.events)
	p.routeInContext = cfg.Tracer != nil
	byKey := map[string]*node{}
	var nodes []*node
	fail := func(err error) (*RoutedPool, error) {
		for _, n := range nodes {
			if n.owned {
				n.pool.Close()
			}
		}
		p.bgCancel()
		return nil, err
	}
	config := make([][]configured, len(specs))
	for _, spec := range specs {
		g := &group{name: spec.name, index: len(p.groups)}
		for _, ns := range spec.nodes {
			n := byKey[ns.key]
			if n == nil {
				if n, err = p.newNode(ctx, spec.name, ns, len(nodes)); err != nil {
					return fail(err)
				}
				byKey[ns.key] = n
				nodes = append(nodes, n)
			}
			config[g.index] = append(config[g.index], configured{node: n, weight: ns.weight, noReads: ns.noReads})
		}
		p.groupsByName[g.name] = g
		p.groups = append(p.groups, g)
	}
	p.defaultGroup = p.groups[0]
	p.readGroupName = cmp.Or(cfg.ReadGroup, ReadGroupName)
	p.readGroup = p.groupsByName[p.readGroupName]
	if p.readGroup != nil {
		p.readGroup.isRead = true
		// The pool's own scope; with no read group every read goes to the
		// default group, and there is nothing to hold back.
		if !cfg.ForgetUnscopedWrites && cfg.Stickiness != NoStickiness && !cfg.Disabled {
			p.unscoped = stickiness.NewScope()
		}
	}
	p.followsRoles = followsRoles(cfg, p.readGroup != nil, p.clusterGroups(), config)
	if p.followsRoles {
		p.defaultGroup.onlyRole, p.readGroup.onlyRole = rolePrimary, roleReplica
	}
	mem, err := p.buildMembership(nil, nodes, config, nil)
	if err != nil {
		return fail(err)
	}
	v := initialSnapshot(mem)
	p.buildGroups(v, nil)
	p.pub.snap.Store(v)
	if cfg.Discovery != nil {
		p.startDiscovery(cfg, discovered) // before the probers, which may ask it for a call
	}
	if p.probing {
		p.startProbers(nodes)
	}
	return p, nil
}

// defaultDrainTimeout is Config.DrainTimeout's default.
const defaultDrainTimeout = 30 * time.Second

// followsRoles reports whether the default and read groups follow the
// roles the probes see: unless roles are static (Config.StaticRoles,
// health checks off, no read group, or a member given as a Backend, which
// is never probed). Each group then holds every member (a member not
// configured in it with weight 1), the default group's calls go to the one
// that is primary, and the read group's to those that are replicas.
func followsRoles(cfg Config, hasRead bool, clusterGroups []int, config [][]configured) bool {
	if cfg.StaticRoles || cfg.Disabled || cfg.Health.Disabled || !hasRead {
		return false
	}
	for _, gi := range clusterGroups {
		for _, c := range config[gi] {
			if c.node.pool == nil {
				return false
			}
		}
	}
	return true
}

// suspect reports whether node n stopped answering: its dialer refuses to
// dial while it does.
func (p *RoutedPool) suspect(n *node) bool {
	v := p.pub.snap.Load()
	return v != nil && v.mem.node(n.index) == n && v.nodes[n.index].suspect
}

// defaultConnectTimeout bounds connection attempts when neither the
// connection string nor Config.ConnectTimeout does.
const defaultConnectTimeout = 5 * time.Second

// Route returns where sql would go in ctx, without running anything (nor
// waiting for a primary). The error wraps ErrUnknownGroup, ErrNoHealthyNode
// (and ErrNoPrimary) or ErrClosed.
func (p *RoutedPool) Route(ctx context.Context, sql string) (Route, error) {
	d := decision{sql: sql}
	var err error
	if p.disabled || p.closed.Load() {
		err = p.prepare(ctx, opStatement, classify.Result{}, &d)
	} else {
		v := p.pub.snap.Load()
		if err = p.decide(ctx, v, opStatement, classify.Result{}, &d); err == errAwaitPrimary {
			err = p.noPrimary(v, nil)
		}
	}
	return d.route(), err
}

// direct returns the default group's first node when calls go straight to
// it: Config.Disabled with no OnRoute and no Tracer to tell. Such calls are
// counted in Stat (ReasonDisabled) and run on the node's pool as they would
// on a *pgxpool.Pool: their rows, batches and transactions are the pool's
// own. Every method that runs something takes this path first.
func (p *RoutedPool) direct() (*node, error) {
	if p.closed.Load() {
		return nil, ErrClosed
	}
	m := p.pub.snap.Load().mem.groups[p.defaultGroup.index].members[0]
	m.calls[ReasonDisabled].Add(1)
	return m.node, nil
}

// Exec runs sql on the node its route picks.
func (p *RoutedPool) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	if p.straight {
		n, err := p.direct()
		if err != nil {
			return pgconn.CommandTag{}, err
		}
		return n.backend.Exec(ctx, sql, args...)
	}
	c := call{pool: p, ctx: ctx, kind: callExec, args: args}
	c.sql = sql
	if err := p.prepare(ctx, opStatement, classify.Result{}, &c.decision); err != nil {
		return pgconn.CommandTag{}, err
	}
	err := p.execute(&c)
	return c.tag, err
}

// Query runs sql on the node its route picks. A read that a replica refuses
// as a write (25006) before returning a row runs again on the default group.
// As with pgxpool, the rows carry the error of a call that failed, so that
// pgx.CollectRows and pgx.ForEachRow report it.
func (p *RoutedPool) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if p.straight {
		n, err := p.direct()
		if err != nil {
			return errRows{err: err}, err
		}
		return n.backend.Query(ctx, sql, args...)
	}
	c := getCall() // zeroed by putCall: set only what the call needs
	c.sql, c.pool, c.ctx, c.kind, c.args = sql, p, ctx, callQuery, args
	if err := p.prepare(ctx, opStatement, classify.Result{}, &c.decision); err != nil {
		putCall(c)
		return errRows{err: err}, err
	}
	if err := p.execute(c); err != nil {
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
		n, err := p.direct()
		if err != nil {
			return errRow{err}
		}
		return n.backend.QueryRow(ctx, sql, args...)
	}
	c := getCall() // zeroed by putCall: set only what the call needs
	c.sql, c.pool, c.ctx, c.kind, c.args = sql, p, ctx, callQueryRow, args
	if err := p.prepare(ctx, opStatement, classify.Result{}, &c.decision); err != nil {
		putCall(c)
		return errRow{err}
	}
	if err := p.execute(c); err != nil {
		putCall(c)
		return errRow{err}
	}
	return (*routedRow)(c)
}

// SendBatch sends a batch to one node: a write if any of its statements is,
// a locking read if any is, else a read.
func (p *RoutedPool) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	if p.straight {
		n, err := p.direct()
		if err != nil {
			return errBatch{err}
		}
		return n.backend.SendBatch(ctx, b)
	}
	res := batchKind(p.classifier, b)
	bc := getBatchCall() // zeroed by putBatchCall: set only what the call needs
	bc.c.pool, bc.c.ctx, bc.c.kind, bc.inputs.batch = p, ctx, callBatch, b
	if err := p.prepare(ctx, opKnown, res, &bc.c.decision); err != nil {
		putBatchCall(bc)
		return errBatch{err}
	}
	p.execute(&bc.c) // SendBatch reports no error: the results do
	rb := p.batchSlabs.get()
	rb.BatchResults, rb.bc = bc.inputs.batchResults, bc
	return rb
}

// CopyFrom copies rows into a table of the default group (or of the context's
// group).
func (p *RoutedPool) CopyFrom(ctx context.Context, tableName pgx.Identifier, columnNames []string, rowSrc pgx.CopyFromSource) (int64, error) {
	if p.straight {
		n, err := p.direct()
		if err != nil {
			return 0, err
		}
		return n.backend.CopyFrom(ctx, tableName, columnNames, rowSrc)
	}
	c := call{pool: p, ctx: ctx, kind: callCopy, inputs: &callInputs{table: tableName, columns: columnNames, src: rowSrc}}
	if err := p.prepare(ctx, opKnown, resCopy, &c.decision); err != nil {
		return 0, err
	}
	err := p.execute(&c)
	return c.inputs.copied, err
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
	if p.straight {
		n, err := p.direct()
		if err != nil {
			return nil, err
		}
		return n.backend.BeginTx(ctx, txOptions)
	}
	o, res := txKind(txOptions.AccessMode == pgx.ReadOnly, txOptions.IsoLevel == pgx.Serializable)
	c := &call{pool: p, ctx: ctx, kind: callBegin, inputs: &callInputs{txOpts: txOptions}}
	if err := p.prepare(ctx, o, res, &c.decision); err != nil {
		return nil, err
	}
	if err := p.execute(c); err != nil {
		return nil, err
	}
	return &routedTx{Tx: c.inputs.tx, c: c, state: &txState{}}, nil
}

// Acquire returns a connection of the context's group, else of the default
// group. The caller releases it; statements on it are not routed.
func (p *RoutedPool) Acquire(ctx context.Context) (*pgxpool.Conn, error) {
	if p.straight {
		n, err := p.direct()
		if err != nil {
			return nil, err
		}
		if n.pool == nil {
			return nil, ErrNoPool
		}
		return n.pool.Acquire(ctx)
	}
	c := call{pool: p, ctx: ctx, kind: callAcquire, inputs: &callInputs{}}
	if err := p.prepare(ctx, opAcquire, resAcquire, &c.decision); err != nil {
		return nil, err
	}
	if err := p.execute(&c); err != nil {
		return nil, err
	}
	return c.inputs.conn, nil
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
	for _, n := range p.pub.snap.Load().mem.nodes {
		if n != nil && !n.removed.Load() && n.pool != nil {
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
	for _, n := range p.listedNodes() {
		if err := n.backend.Ping(ctx); err != nil {
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
	for _, n := range p.pub.snap.Load().mem.nodes {
		if n != nil && n.pool != nil {
			n.pool.Reset()
		}
	}
}

// Config returns a copy of the pool configuration of the primary (the
// member that is primary now, or was last, when following the cluster; the
// default group's first node with static roles), as *pgxpool.Pool.Config
// does for a single pool; nil when that node is a Backend without a pool.
func (p *RoutedPool) Config() *pgxpool.Config {
	v := p.pub.snap.Load()
	if n := v.mem.nodes[v.mem.topo.positionsFrom(v)]; n.pool != nil {
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
		p.memMu.Lock() // no membership change runs, and none starts after
		p.closed.Store(true)
		p.memMu.Unlock()
		p.bgCancel()
		p.stopProbers()
		p.bg.Wait()
		for _, n := range p.pub.snap.Load().mem.nodes {
			if n != nil && n.owned {
				n.pool.Close()
			}
		}
	})
}

// listedNodes returns the nodes some group lists now (not those draining).
func (p *RoutedPool) listedNodes() []*node {
	var out []*node
	for _, n := range p.pub.snap.Load().mem.nodes {
		if n != nil && !n.removed.Load() {
			out = append(out, n)
		}
	}
	return out
}
