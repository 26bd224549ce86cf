package routingtest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/pgxroute/pgxroute"
	"github.com/pgxroute/pgxroute/classify"
)

// FakeSeed is the seed a Fake gives Random and LeastBusy when
// FakeOptions.Seed is zero, so that a fake's node choices are always
// repeatable.
const FakeSeed uint64 = 1

// FakeOptions configures NewFake and StartFake. The zero value is a default
// group with one node, "primary", and a read group with two, "replica1" and
// "replica2", balanced round-robin.
type FakeOptions struct {
	// Groups maps bind group names to the names of their nodes. A name listed
	// in several groups is one node. Nil: DefaultFakeGroups(). Rename the
	// default and read groups with Config.
	Groups map[string][]string
	// Strategy balances every group's calls over its nodes.
	Strategy pgxroute.Strategy
	// Seed makes Random and LeastBusy repeatable; zero means FakeSeed. Two
	// fakes with the same groups, strategy and seed pick the same nodes for
	// the same sequence of calls.
	Seed uint64
	// Stickiness is the consistency mode after a write (zero: StickyScope).
	// ReadYourWrites needs WAL positions that fakes do not have: its reads
	// stay on the default group after a write.
	Stickiness pgxroute.Stickiness
	// Mocks gives canned answers per node: node name to a pgxmock pool
	// (pgxmock.NewPool()) that runs that node's calls. Nodes without one
	// answer every call with empty results. Every name must be a node of
	// Groups. The fake neither closes the mocks nor checks their
	// expectations: call ExpectationsWereMet in the test.
	//
	// The type is pgxroute.Backend, which pgxmock's PgxPoolIface
	// implements, so that this package does not import pgxmock: pgxmock
	// v4.9.0 builds only with pgx v5.10 and older, and a program on a newer
	// pgx can still use the fakes (without pgxmock).
	Mocks map[string]pgxroute.Backend
	// Config, when set, is called last with the configuration the fake
	// built, to change anything (WriteFunctions, Disabled, OnRoute,
	// Tracer...). OnRoute keeps its own place (before each attempt starts); a
	// Tracer it sets gets every event after the fake's recorder (see
	// pgxroute.MultiTracer).
	Config func(*pgxroute.Config)
}

// DefaultFakeGroups returns the groups of a zero FakeOptions:
// "default": primary; "read": replica1, replica2.
func DefaultFakeGroups() map[string][]string {
	return map[string][]string{
		pgxroute.DefaultGroupName: {"primary"},
		pgxroute.ReadGroupName:    {"replica1", "replica2"},
	}
}

// Call is one call that a Fake's RoutedPool ran: where the router sent it and
// why. Statements run inside a transaction are not routed; a fake node
// records them with InTx set (see Fake).
type Call struct {
	// Group is the bind group the call went to.
	Group string
	// Node is the node that ran it.
	Node string
	// Reason is the rule that decided.
	Reason pgxroute.Reason
	// Kind is what package classify said of the statement (for Begin,
	// SendBatch, CopyFrom and Acquire: of the operation).
	Kind classify.Kind
	// SQL is the statement; empty for Begin, SendBatch, CopyFrom and Acquire.
	SQL string
	// InTx marks a statement run in a transaction, on the transaction's
	// node; Group and Reason are then those of the transaction's Begin.
	InTx bool
}

// String formats the call as "group/node: reason: SQL".
func (c Call) String() string {
	s := c.Group + "/" + c.Node + ": " + c.Reason.String()
	if c.InTx {
		s += " (in transaction)"
	}
	if c.SQL != "" {
		s += ": " + c.SQL
	}
	return s
}

// Fake is a RoutedPool over fake nodes that need no database: each node
// answers every call (with empty results, or through its pgxmock pool) and
// the fake records every call with its group, node, reason and SQL, exactly as
// the router decided (through the Config.Tracer hook: each attempt is
// recorded when it starts on its node). Give Pool to the code under test,
// then assert on Calls.
//
// A fake node answers Exec with a command tag naming the statement's verb and
// zero rows ("INSERT 0 0", "UPDATE 0"...), Query with no rows, QueryRow with
// pgx.ErrNoRows, CopyFrom by reading every row of the source and returning
// their count, SendBatch with those answers for each statement, Ping with
// nil, and Begin with a transaction whose statements answer the same way. A
// fake node records the statements of its transactions (InTx); a node with a
// pgxmock pool does not (pgxmock checks them itself). The statements of a
// transaction are recorded with the Group and Reason of its own Begin, which
// the node reads from the context the router runs it with, also when many
// transactions begin at once.
//
// Acquire fails with pgxroute.ErrNoPool on every node (fakes have no
// pgxpool), after recording the route. A Fake is safe for concurrent use.
type Fake struct {
	// Pool is the RoutedPool under test.
	Pool *pgxroute.RoutedPool

	nodes map[string]*fakeNode // fake (non-mock) nodes by name

	mu    sync.Mutex
	calls []Call
}

// NewFake builds a Fake for a test or benchmark and closes its pool at the
// end of it. It fails tb on a bad configuration.
func NewFake(tb testing.TB, opts FakeOptions) *Fake {
	tb.Helper()
	f, err := StartFake(context.Background(), opts)
	if err != nil {
		tb.Fatalf("routingtest: %v", err)
	}
	tb.Cleanup(f.Close)
	return f
}

// StartFake builds a Fake outside a test. Close it when done.
func StartFake(ctx context.Context, opts FakeOptions) (*Fake, error) {
	groups := opts.Groups
	if groups == nil {
		groups = DefaultFakeGroups()
	}
	f := &Fake{nodes: map[string]*fakeNode{}}
	backends := map[string]pgxroute.Backend{}
	cfg := pgxroute.Config{
		Groups:     make(map[string][]pgxroute.Node, len(groups)),
		Strategy:   opts.Strategy,
		Seed:       opts.Seed,
		Stickiness: opts.Stickiness,
		Health:     pgxroute.HealthConfig{Disabled: true},
	}
	if cfg.Seed == 0 {
		cfg.Seed = FakeSeed
	}
	// Range in a fixed order so that errors are repeatable.
	names := make([]string, 0, len(groups))
	for g := range groups {
		names = append(names, g)
	}
	slices.Sort(names)
	for _, g := range names {
		for _, n := range groups[g] {
			if n == "" {
				return nil, fmt.Errorf("fake: group %q has a node with an empty name", g)
			}
			be := backends[n]
			if be == nil {
				if m := opts.Mocks[n]; m != nil {
					be = m
				} else {
					fn := &fakeNode{name: n, f: f}
					f.nodes[n] = fn
					be = fn
				}
				backends[n] = be
			}
			cfg.Groups[g] = append(cfg.Groups[g], pgxroute.Node{Name: n, Backend: be})
		}
	}
	mockNames := make([]string, 0, len(opts.Mocks))
	for n := range opts.Mocks {
		mockNames = append(mockNames, n)
	}
	slices.Sort(mockNames)
	for _, n := range mockNames {
		if backends[n] == nil {
			return nil, fmt.Errorf("fake: Mocks[%q]: no group has that node", n)
		}
		if opts.Mocks[n] == nil {
			return nil, fmt.Errorf("fake: Mocks[%q] is nil", n)
		}
	}
	if opts.Config != nil {
		opts.Config(&cfg)
	}
	// The fake records every attempt as it starts on its node, through the
	// tracer hook; a Tracer the configuration set gets the events after it.
	cfg.Tracer = pgxroute.MultiTracer(recorder{f}, cfg.Tracer)
	p, err := pgxroute.New(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("fake: %w", err)
	}
	f.Pool = p
	return f, nil
}

// Close closes the pool. The recorded calls stay readable.
func (f *Fake) Close() { f.Pool.Close() }

// recorder is the fake's pgxroute.RouteTracer: it records each attempt of
// a routed call when it starts on its node. The node runs with the context
// TraceRouteStart returns, in which the router put the route: a fake node
// reads the route of a Begin there (pgxroute.RouteFromContext) to record
// the transaction's statements with it.
type recorder struct{ f *Fake }

// TraceRouteStart records the call.
func (rc recorder) TraceRouteStart(ctx context.Context, data pgxroute.TraceRouteStartData) context.Context {
	r := data.Route
	rc.f.add(Call{Group: r.Group, Node: r.Node, Reason: r.Reason, Kind: r.Statement.Kind, SQL: r.SQL})
	return ctx
}

// TraceRouteEnd does nothing: the fake records calls, not their outcomes.
func (recorder) TraceRouteEnd(context.Context, pgxroute.TraceRouteEndData) {}

func (f *Fake) add(c Call) {
	f.mu.Lock()
	f.calls = append(f.calls, c)
	f.mu.Unlock()
}

// Calls returns a copy of every call recorded since the fake was made or
// last Reset, in the order they were routed.
func (f *Fake) Calls() []Call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// Last returns the last call recorded, or the zero Call when there is none.
func (f *Fake) Last() Call {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.calls) == 0 {
		return Call{}
	}
	return f.calls[len(f.calls)-1]
}

// CallsTo returns the calls recorded for the node named node.
func (f *Fake) CallsTo(node string) []Call {
	return f.filter(func(c Call) bool { return c.Node == node })
}

// CallsIn returns the calls recorded for the bind group named group.
func (f *Fake) CallsIn(group string) []Call {
	return f.filter(func(c Call) bool { return c.Group == group })
}

// Nodes returns the node of each recorded call, in order: handy to compare
// the node sequences of two runs.
func (f *Fake) Nodes() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]string, len(f.calls))
	for i, c := range f.calls {
		out[i] = c.Node
	}
	return out
}

func (f *Fake) filter(keep func(Call) bool) []Call {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Call
	for _, c := range f.calls {
		if keep(c) {
			out = append(out, c)
		}
	}
	return out
}

// Reset forgets the recorded calls. It does not reset the balancers nor any
// scope's stickiness (see pgxroute.ResetStickiness).
func (f *Fake) Reset() {
	f.mu.Lock()
	f.calls = nil
	f.mu.Unlock()
}

// fakeNode is the Backend of a node without a mock: it answers every call
// with empty results.
type fakeNode struct {
	name string
	f    *Fake
}

var _ pgxroute.Backend = (*fakeNode)(nil)

// Exec answers with an empty command tag of the statement's verb.
func (n *fakeNode) Exec(ctx context.Context, sql string, _ ...any) (pgconn.CommandTag, error) {
	if err := ctx.Err(); err != nil {
		return pgconn.CommandTag{}, err
	}
	return emptyTag(sql), nil
}

// Query answers with no rows.
func (n *fakeNode) Query(ctx context.Context, sql string, _ ...any) (pgx.Rows, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return &emptyRows{tag: emptyTag(sql)}, nil
}

// QueryRow answers with no row.
func (n *fakeNode) QueryRow(ctx context.Context, _ string, _ ...any) pgx.Row {
	if err := ctx.Err(); err != nil {
		return errRow{err}
	}
	return errRow{pgx.ErrNoRows}
}

// SendBatch answers each queued statement with empty results.
func (n *fakeNode) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	return &emptyBatch{b: b, err: ctx.Err()}
}

// CopyFrom reads every row of rowSrc and returns their count.
func (n *fakeNode) CopyFrom(ctx context.Context, _ pgx.Identifier, _ []string, rowSrc pgx.CopyFromSource) (int64, error) {
	return drain(ctx, rowSrc)
}

// BeginTx starts a fake transaction recorded under the route of its Begin.
func (n *fakeNode) BeginTx(ctx context.Context, _ pgx.TxOptions) (pgx.Tx, error) {
	r, ok := pgxroute.RouteFromContext(ctx)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if !ok {
		r = pgxroute.Route{Node: n.name}
	}
	return &fakeTx{n: n, route: r, state: &fakeTxState{}}, nil
}

// Ping answers nil.
func (n *fakeNode) Ping(ctx context.Context) error { return ctx.Err() }

// drain reads every row of src, as a server would.
func drain(ctx context.Context, src pgx.CopyFromSource) (int64, error) {
	var count int64
	for src.Next() {
		if err := ctx.Err(); err != nil {
			return count, err
		}
		if _, err := src.Values(); err != nil {
			return count, err
		}
		count++
	}
	return count, src.Err()
}

// emptyTag returns the command tag of sql affecting no row: "INSERT 0 0",
// "UPDATE 0", "SELECT 0", or the statement's first keyword.
func emptyTag(sql string) pgconn.CommandTag {
	verb := strings.ToUpper(firstWord(sql))
	switch verb {
	case "INSERT":
		return pgconn.NewCommandTag("INSERT 0 0")
	case "UPDATE", "DELETE", "SELECT", "MERGE", "FETCH", "MOVE", "COPY":
		return pgconn.NewCommandTag(verb + " 0")
	case "TABLE", "VALUES", "WITH":
		return pgconn.NewCommandTag("SELECT 0")
	}
	return pgconn.NewCommandTag(verb)
}

// firstWord returns the first word of sql, past spaces, parentheses and
// comments.
func firstWord(sql string) string {
	for {
		sql = strings.TrimLeft(sql, " \t\r\n(")
		switch {
		case strings.HasPrefix(sql, "--"):
			i := strings.IndexByte(sql, '\n')
			if i < 0 {
				return ""
			}
			sql = sql[i+1:]
			continue
		case strings.HasPrefix(sql, "/*"):
			i := strings.Index(sql, "*/")
			if i < 0 {
				return ""
			}
			sql = sql[i+2:]
			continue
		}
		end := strings.IndexFunc(sql, func(r rune) bool {
			return !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z')
		})
		if end < 0 {
			return sql
		}
		return sql[:end]
	}
}

// emptyRows is a result with no row.
type emptyRows struct{ tag pgconn.CommandTag }

func (r *emptyRows) Close()                                       {}
func (r *emptyRows) Err() error                                   { return nil }
func (r *emptyRows) CommandTag() pgconn.CommandTag                { return r.tag }
func (r *emptyRows) FieldDescriptions() []pgconn.FieldDescription { return nil }
func (r *emptyRows) Next() bool                                   { return false }
func (r *emptyRows) Values() ([]any, error)                       { return nil, errNoRow }
func (r *emptyRows) RawValues() [][]byte                          { return nil }
func (r *emptyRows) Conn() *pgx.Conn                              { return nil }
func (r *emptyRows) Scan(...any) error                            { return errNoRow }

// TypeMap returns a default type map (pgx v5.11 added it to pgx.Rows;
// having it keeps the fakes building on every pgx).
func (r *emptyRows) TypeMap() *pgtype.Map { return pgtype.NewMap() }

var errNoRow = errors.New("routingtest: fake rows: no row (Next returned false)")

// errRow is a row that fails Scan with err.
type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

// emptyBatch answers each statement of a batch with empty results, and runs
// the callbacks of the statements not read when it is closed, like pgx.
type emptyBatch struct {
	b      *pgx.Batch
	i      int
	err    error
	closed bool
}

// next moves to the next queued statement.
func (e *emptyBatch) next() (string, error) {
	if e.err != nil {
		return "", e.err
	}
	if e.closed {
		return "", errors.New("routingtest: fake batch: batch already closed")
	}
	if e.b == nil || e.i >= len(e.b.QueuedQueries) {
		return "", errors.New("routingtest: fake batch: no more results in batch")
	}
	sql := e.b.QueuedQueries[e.i].SQL
	e.i++
	return sql, nil
}

func (e *emptyBatch) Exec() (pgconn.CommandTag, error) {
	sql, err := e.next()
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	return emptyTag(sql), nil
}

func (e *emptyBatch) Query() (pgx.Rows, error) {
	sql, err := e.next()
	if err != nil {
		return nil, err
	}
	return &emptyRows{tag: emptyTag(sql)}, nil
}

func (e *emptyBatch) QueryRow() pgx.Row {
	if _, err := e.next(); err != nil {
		return errRow{err}
	}
	return errRow{pgx.ErrNoRows}
}

// Tx returns nil: a fake batch begins no transaction (pgx v5.12 added Tx
// to pgx.BatchResults).
func (e *emptyBatch) Tx() pgx.Tx { return nil }

func (e *emptyBatch) Close() error {
	if e.err != nil || e.closed {
		return e.err
	}
	for e.err == nil && e.b != nil && e.i < len(e.b.QueuedQueries) {
		if fn := e.b.QueuedQueries[e.i].Fn; fn != nil {
			if err := fn(e); err != nil {
				e.err = err
			}
		} else {
			e.Exec()
		}
	}
	e.closed = true
	return e.err
}

// fakeTxState is shared by a fake transaction and its savepoints.
type fakeTxState struct {
	mu   sync.Mutex
	done bool
}

// fakeTx is a transaction on a fake node: its statements answer empty
// results and are recorded with the route of its Begin.
type fakeTx struct {
	n      *fakeNode
	route  pgxroute.Route
	state  *fakeTxState
	nested bool // a savepoint

	mu   sync.Mutex
	done bool // this transaction or savepoint ended
}

var _ pgx.Tx = (*fakeTx)(nil)

// check returns pgx.ErrTxClosed once the transaction ended.
func (t *fakeTx) check(ctx context.Context) error {
	t.state.mu.Lock()
	outer := t.state.done
	t.state.mu.Unlock()
	t.mu.Lock()
	self := t.done
	t.mu.Unlock()
	if outer || self {
		return pgx.ErrTxClosed
	}
	return ctx.Err()
}

func (t *fakeTx) record(sql string) {
	kind := t.n.f.Pool.Classifier().Classify(sql).Kind
	t.n.f.add(Call{Group: t.route.Group, Node: t.n.name, Reason: t.route.Reason, Kind: kind, SQL: sql, InTx: true})
}

// Begin starts a savepoint.
func (t *fakeTx) Begin(ctx context.Context) (pgx.Tx, error) {
	if err := t.check(ctx); err != nil {
		return nil, err
	}
	return &fakeTx{n: t.n, route: t.route, state: t.state, nested: true}, nil
}

func (t *fakeTx) end(ctx context.Context) error {
	if err := t.check(ctx); err != nil {
		return err
	}
	if t.nested {
		t.mu.Lock()
		t.done = true
		t.mu.Unlock()
		return nil
	}
	t.state.mu.Lock()
	t.state.done = true
	t.state.mu.Unlock()
	return nil
}

// Commit commits the transaction (or releases the savepoint).
func (t *fakeTx) Commit(ctx context.Context) error { return t.end(ctx) }

// Rollback rolls the transaction (or savepoint) back; after the end it
// returns pgx.ErrTxClosed, as pgx does.
func (t *fakeTx) Rollback(ctx context.Context) error { return t.end(ctx) }

func (t *fakeTx) CopyFrom(ctx context.Context, _ pgx.Identifier, _ []string, rowSrc pgx.CopyFromSource) (int64, error) {
	if err := t.check(ctx); err != nil {
		return 0, err
	}
	return drain(ctx, rowSrc)
}

func (t *fakeTx) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	err := t.check(ctx)
	if err == nil {
		for _, q := range b.QueuedQueries {
			t.record(q.SQL)
		}
	}
	return &emptyBatch{b: b, err: err}
}

// LargeObjects returns the zero pgx.LargeObjects: fakes have none.
func (t *fakeTx) LargeObjects() pgx.LargeObjects { return pgx.LargeObjects{} }

func (t *fakeTx) Prepare(ctx context.Context, name, sql string) (*pgconn.StatementDescription, error) {
	if err := t.check(ctx); err != nil {
		return nil, err
	}
	return &pgconn.StatementDescription{Name: name, SQL: sql}, nil
}

func (t *fakeTx) Exec(ctx context.Context, sql string, _ ...any) (pgconn.CommandTag, error) {
	if err := t.check(ctx); err != nil {
		return pgconn.CommandTag{}, err
	}
	t.record(sql)
	return emptyTag(sql), nil
}

func (t *fakeTx) Query(ctx context.Context, sql string, _ ...any) (pgx.Rows, error) {
	if err := t.check(ctx); err != nil {
		return nil, err
	}
	t.record(sql)
	return &emptyRows{tag: emptyTag(sql)}, nil
}

func (t *fakeTx) QueryRow(ctx context.Context, sql string, _ ...any) pgx.Row {
	if err := t.check(ctx); err != nil {
		return errRow{err}
	}
	t.record(sql)
	return errRow{pgx.ErrNoRows}
}

// Conn returns nil: a fake transaction has no connection.
func (t *fakeTx) Conn() *pgx.Conn { return nil }
