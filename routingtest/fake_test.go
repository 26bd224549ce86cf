package routingtest_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgxroute/pgxroute"
	"github.com/pgxroute/pgxroute/classify"
	"github.com/pgxroute/pgxroute/routingtest"
)

// where drops the parts of calls that a test does not check.
type where struct {
	Group, Node string
	Reason      pgxroute.Reason
	SQL         string
	InTx        bool
}

func wheres(calls []routingtest.Call) []where {
	out := make([]where, len(calls))
	for i, c := range calls {
		out[i] = where{c.Group, c.Node, c.Reason, c.SQL, c.InTx}
	}
	return out
}

func wantCalls(t *testing.T, f *routingtest.Fake, want []where) {
	t.Helper()
	if diff := cmp.Diff(want, wheres(f.Calls())); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
}

const (
	sel = "SELECT name FROM users WHERE id = $1"
	ins = "INSERT INTO users (name) VALUES ($1)"
)

func TestFakeReadsGoToReplicasWritesToPrimary(t *testing.T) {
	f := routingtest.NewFake(t, routingtest.FakeOptions{})
	ctx := context.Background()

	var name string
	if err := f.Pool.QueryRow(ctx, sel, 1).Scan(&name); !errors.Is(err, pgx.ErrNoRows) {
		t.Fatalf("QueryRow on a fake: %v, want pgx.ErrNoRows", err)
	}
	tag, err := f.Pool.Exec(ctx, ins, "bob")
	if err != nil || tag.String() != "INSERT 0 0" || !tag.Insert() {
		t.Fatalf("Exec = %q, %v; want INSERT 0 0", tag, err)
	}
	rows, err := f.Pool.Query(ctx, sel, 2)
	if err != nil {
		t.Fatal(err)
	}
	if rows.Next() {
		t.Error("a fake returned a row")
	}
	rows.Close()
	if err := rows.Err(); err != nil || rows.CommandTag().String() != "SELECT 0" {
		t.Errorf("rows: tag %q, err %v", rows.CommandTag(), err)
	}

	// The read after the unscoped write goes to the primary: the pool's own
	// scope remembers the write, and a fake's replicas are never known to
	// have replayed it (a fake is never probed).
	wantCalls(t, f, []where{
		{"read", "replica1", pgxroute.ReasonReadNoScope, sel, false},
		{"default", "primary", pgxroute.ReasonWriteNoScope, ins, false},
		{"default", "primary", pgxroute.ReasonUnscopedBehind, sel, false},
	})
	if k := f.Calls()[1].Kind; k != classify.Write {
		t.Errorf("Kind of the INSERT = %v, want Write", k)
	}
	if got := f.Last(); got.Node != "primary" {
		t.Errorf("Last = %v", got)
	}
	if got := len(f.CallsTo("primary")); got != 2 {
		t.Errorf("CallsTo(primary) has %d calls, want 2", got)
	}
	if got := len(f.CallsIn("read")); got != 1 {
		t.Errorf("CallsIn(read) has %d calls, want 1", got)
	}
	if got := f.Calls()[1].String(); got != "default/primary: "+pgxroute.ReasonWriteNoScope.String()+": "+ins {
		t.Errorf("Call.String() = %q", got)
	}
	f.Reset()
	if len(f.Calls()) != 0 || f.Last() != (routingtest.Call{}) {
		t.Error("Reset kept calls")
	}
}

func TestFakeStickyAfterWriteInScope(t *testing.T) {
	f := routingtest.NewFake(t, routingtest.FakeOptions{Groups: map[string][]string{
		"default": {"primary"},
		"read":    {"replica"},
	}})
	ctx := pgxroute.WithScope(context.Background())
	mustExec(t, f.Pool, ctx, sel)
	mustExec(t, f.Pool, ctx, "UPDATE users SET name = 'x'")
	if !pgxroute.IsSticky(ctx) {
		t.Error("the scope is not sticky after a write")
	}
	mustExec(t, f.Pool, ctx, sel)
	pgxroute.ResetStickiness(ctx)
	mustExec(t, f.Pool, ctx, sel)
	mustExec(t, f.Pool, context.Background(), sel) // another unit of work

	wantCalls(t, f, []where{
		{"read", "replica", pgxroute.ReasonRead, sel, false},
		{"default", "primary", pgxroute.ReasonWrite, "UPDATE users SET name = 'x'", false},
		{"default", "primary", pgxroute.ReasonSticky, sel, false},
		{"read", "replica", pgxroute.ReasonRead, sel, false},
		{"read", "replica", pgxroute.ReasonReadNoScope, sel, false},
	})
}

func mustExec(t *testing.T, p *pgxroute.RoutedPool, ctx context.Context, sql string, args ...any) {
	t.Helper()
	if _, err := p.Exec(ctx, sql, args...); err != nil {
		t.Fatalf("Exec(%q): %v", sql, err)
	}
}

func TestFakeBindGroupsAndOverrides(t *testing.T) {
	f := routingtest.NewFake(t, routingtest.FakeOptions{Groups: map[string][]string{
		"default":   {"primary"},
		"read":      {"replica1"},
		"analytics": {"olap", "replica1"}, // replica1 is in two groups
	}})
	ctx := context.Background()
	mustExec(t, f.Pool, pgxroute.WithBindGroup(ctx, "analytics"), sel)
	mustExec(t, f.Pool, pgxroute.WithBindGroup(ctx, "analytics"), ins)
	mustExec(t, f.Pool, pgxroute.WithPrimary(ctx), sel)
	mustExec(t, f.Pool, pgxroute.WithReplica(ctx), ins)
	_, err := f.Pool.Exec(pgxroute.WithBindGroup(ctx, "nope"), sel)
	if !errors.Is(err, pgxroute.ErrUnknownGroup) {
		t.Errorf("unknown group: %v", err)
	}

	wantCalls(t, f, []where{
		{"analytics", "olap", pgxroute.ReasonBindGroup, sel, false},
		{"analytics", "replica1", pgxroute.ReasonBindGroup, ins, false},
		{"default", "primary", pgxroute.ReasonPrimary, sel, false},
		{"read", "replica1", pgxroute.ReasonReplica, ins, false},
	})
}

func TestFakeRenamedGroups(t *testing.T) {
	f := routingtest.NewFake(t, routingtest.FakeOptions{
		Groups: map[string][]string{"rw": {"main"}, "ro": {"standby"}},
		Config: func(c *pgxroute.Config) { c.DefaultGroup, c.ReadGroup = "rw", "ro" },
	})
	ctx := context.Background()
	mustExec(t, f.Pool, ctx, sel)
	mustExec(t, f.Pool, ctx, ins)
	wantCalls(t, f, []where{
		{"ro", "standby", pgxroute.ReasonReadNoScope, sel, false},
		{"rw", "main", pgxroute.ReasonWriteNoScope, ins, false},
	})
}

// readNodes runs n reads on a fresh fake and returns the nodes they went to.
func readNodes(t *testing.T, opts routingtest.FakeOptions, n int) []string {
	t.Helper()
	opts.Groups = map[string][]string{"default": {"primary"}, "read": {"r1", "r2", "r3", "r4"}}
	f := routingtest.NewFake(t, opts)
	for range n {
		mustExec(t, f.Pool, context.Background(), sel)
	}
	return f.Nodes()
}

func TestFakeSeedRepeatable(t *testing.T) {
	for _, tc := range []struct {
		name     string
		strategy pgxroute.Strategy
		seed     uint64
	}{
		{"Random/42", pgxroute.Random, 42},
		{"LeastBusy/42", pgxroute.LeastBusy, 42},
		{"Random/default", pgxroute.Random, 0},
		{"LeastBusy/default", pgxroute.LeastBusy, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := routingtest.FakeOptions{Strategy: tc.strategy, Seed: tc.seed}
			a, b := readNodes(t, opts, 64), readNodes(t, opts, 64)
			if diff := cmp.Diff(a, b); diff != "" {
				t.Fatalf("two fakes with the same seed picked different nodes (-first +second):\n%s", diff)
			}
			used := map[string]bool{}
			for _, n := range a {
				used[n] = true
			}
			if len(used) < 3 {
				t.Errorf("64 reads over 4 replicas used only %v", used)
			}
		})
	}
	a := readNodes(t, routingtest.FakeOptions{Strategy: pgxroute.Random, Seed: 1}, 64)
	b := readNodes(t, routingtest.FakeOptions{Strategy: pgxroute.Random, Seed: 2}, 64)
	if cmp.Equal(a, b) {
		t.Error("seeds 1 and 2 picked the same 64 nodes")
	}
}

func TestFakeEmptyAnswers(t *testing.T) {
	f := routingtest.NewFake(t, routingtest.FakeOptions{Groups: map[string][]string{
		"default": {"primary"},
		"read":    {"replica"},
	}})
	ctx := pgxroute.WithScope(context.Background())

	for sql, want := range map[string]string{
		"UPDATE t SET a = 1":               "UPDATE 0",
		"  -- note\n/* c */ delete from t": "DELETE 0",
		"CREATE TABLE t (a int)":           "CREATE",
		"WITH x AS (SELECT 1) SELECT *":    "SELECT 0",
	} {
		tag, err := f.Pool.Exec(ctx, sql)
		if err != nil || tag.String() != want {
			t.Errorf("Exec(%q) = %q, %v; want %q", sql, tag, err, want)
		}
	}

	n, err := f.Pool.CopyFrom(ctx, pgx.Identifier{"t"}, []string{"a"}, pgx.CopyFromRows([][]any{{1}, {2}, {3}}))
	if err != nil || n != 3 {
		t.Errorf("CopyFrom = %d, %v; want 3", n, err)
	}

	b := &pgx.Batch{}
	var gotTag pgconn.CommandTag
	var gotRowErr error
	b.Queue("INSERT INTO t VALUES (1)").Exec(func(ct pgconn.CommandTag) error { gotTag = ct; return nil })
	b.Queue("SELECT a FROM t").QueryRow(func(r pgx.Row) error {
		var a int
		gotRowErr = r.Scan(&a)
		return nil
	})
	if err := f.Pool.SendBatch(ctx, b).Close(); err != nil {
		t.Fatal(err)
	}
	if gotTag.String() != "INSERT 0 0" || !errors.Is(gotRowErr, pgx.ErrNoRows) {
		t.Errorf("batch callbacks: tag %q, row error %v", gotTag, gotRowErr)
	}
	br := f.Pool.SendBatch(ctx, &pgx.Batch{QueuedQueries: []*pgx.QueuedQuery{{SQL: "SELECT 1"}}})
	if rows, err := br.Query(); err != nil || rows.Next() {
		t.Errorf("batch Query: %v", err)
	}
	if _, err := br.Exec(); err == nil {
		t.Error("batch Exec past its end did not fail")
	}
	br.Close()

	if err := f.Pool.Ping(ctx); err != nil {
		t.Errorf("Ping: %v", err)
	}
	if _, err := f.Pool.Acquire(ctx); !errors.Is(err, pgxroute.ErrNoPool) {
		t.Errorf("Acquire: %v, want ErrNoPool", err)
	}

	calls := f.Calls()
	if len(calls) != 4+1+2+1 {
		t.Fatalf("%d calls:\n%v", len(calls), calls)
	}
	// CopyFrom, the write batch, the read batch (sticky: the scope wrote),
	// Acquire.
	if diff := cmp.Diff([]where{
		{"default", "primary", pgxroute.ReasonWrite, "", false},
		{"default", "primary", pgxroute.ReasonWrite, "", false},
		{"default", "primary", pgxroute.ReasonSticky, "", false},
		{"default", "primary", pgxroute.ReasonAcquire, "", false},
	}, wheres(calls[4:])); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
}

func TestFakeTransactions(t *testing.T) {
	f := routingtest.NewFake(t, routingtest.FakeOptions{Groups: map[string][]string{
		"default": {"primary"},
		"read":    {"replica"},
	}})
	ctx := pgxroute.WithScope(context.Background())

	ro, err := f.Pool.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
	if err != nil {
		t.Fatal(err)
	}
	if err := ro.QueryRow(ctx, sel, 1).Scan(new(string)); !errors.Is(err, pgx.ErrNoRows) {
		t.Errorf("QueryRow in a transaction: %v", err)
	}
	if err := ro.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := ro.Rollback(ctx); !errors.Is(err, pgx.ErrTxClosed) {
		t.Errorf("Rollback after Commit: %v, want ErrTxClosed", err)
	}
	if _, err := ro.Exec(ctx, sel); !errors.Is(err, pgx.ErrTxClosed) {
		t.Errorf("Exec after Commit: %v, want ErrTxClosed", err)
	}

	err = pgx.BeginFunc(ctx, f.Pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, ins, "a"); err != nil {
			return err
		}
		return pgx.BeginFunc(ctx, tx, func(sp pgx.Tx) error {
			rows, err := sp.Query(ctx, sel, 1)
			if err != nil {
				return err
			}
			rows.Close()
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	if !pgxroute.IsSticky(ctx) {
		t.Error("a committed transaction that wrote did not make the scope sticky")
	}

	wantCalls(t, f, []where{
		{"read", "replica", pgxroute.ReasonRead, "", false},
		{"read", "replica", pgxroute.ReasonRead, sel, true},
		{"default", "primary", pgxroute.ReasonTransaction, "", false},
		{"default", "primary", pgxroute.ReasonTransaction, ins, true},
		{"default", "primary", pgxroute.ReasonTransaction, sel, true},
	})
	if k := f.Calls()[3].Kind; k != classify.Write {
		t.Errorf("Kind of the INSERT in the transaction = %v", k)
	}
}

func TestFakeConfigAndOnRoute(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	f := routingtest.NewFake(t, routingtest.FakeOptions{Config: func(c *pgxroute.Config) {
		c.WriteFunctions = []string{"bump_counter"}
		c.OnRoute = func(_ context.Context, r pgxroute.Route) {
			mu.Lock()
			seen = append(seen, r.Node)
			mu.Unlock()
		}
	}})
	mustExec(t, f.Pool, context.Background(), "SELECT bump_counter()")
	if got := f.Last(); got.Node != "primary" || got.Kind != classify.Write {
		t.Errorf("a WriteFunctions call went to %v", got)
	}
	if diff := cmp.Diff([]string{"primary"}, seen); diff != "" {
		t.Errorf("the user's OnRoute saw (-want +got):\n%s", diff)
	}
}

func TestFakeDisabled(t *testing.T) {
	f := routingtest.NewFake(t, routingtest.FakeOptions{Config: func(c *pgxroute.Config) { c.Disabled = true }})
	mustExec(t, f.Pool, context.Background(), sel)
	if got := f.Last(); got.Node != "primary" || got.Reason != pgxroute.ReasonDisabled {
		t.Errorf("disabled routing: %v", got)
	}
}

func TestFakeBadOptions(t *testing.T) {
	// A pool that never connects (pgxpool connects lazily): a Backend that
	// names no node of the fake. The pgxmock cases are in the nested module
	// routingtest/mocktest, so that pgxmock does not pin the library's pgx.
	mock, err := pgxpool.New(context.Background(), "postgres://127.0.0.1:1/none")
	if err != nil {
		t.Fatal(err)
	}
	defer mock.Close()
	for name, opts := range map[string]routingtest.FakeOptions{
		"mock of no node": {Mocks: map[string]pgxroute.Backend{"ghost": mock}},
		"nil mock":        {Mocks: map[string]pgxroute.Backend{"primary": nil}},
		"empty node name": {Groups: map[string][]string{"default": {""}}},
		"no default":      {Groups: map[string][]string{"read": {"r"}}},
	} {
		if f, err := routingtest.StartFake(context.Background(), opts); err == nil {
			f.Close()
			t.Errorf("%s: no error", name)
		}
	}
}

func TestFakeClosed(t *testing.T) {
	f, err := routingtest.StartFake(context.Background(), routingtest.FakeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, err := f.Pool.Exec(context.Background(), sel); !errors.Is(err, pgxroute.ErrClosed) {
		t.Errorf("Exec after Close: %v", err)
	}
	if len(f.Calls()) != 0 {
		t.Errorf("a call after Close was recorded: %v", f.Calls())
	}
}

func TestFakeCanceledContext(t *testing.T) {
	f := routingtest.NewFake(t, routingtest.FakeOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := f.Pool.Exec(ctx, ins); !errors.Is(err, context.Canceled) {
		t.Errorf("Exec with a canceled context: %v", err)
	}
}

func TestFakeConcurrent(t *testing.T) {
	f := routingtest.NewFake(t, routingtest.FakeOptions{Strategy: pgxroute.LeastBusy, Seed: 7})
	const workers, each = 8, 50
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := pgxroute.WithScope(context.Background())
			for i := range each {
				var err error
				switch i % 5 {
				case 0, 1:
					_, err = f.Pool.Exec(ctx, sel, w)
				case 2:
					_, err = f.Pool.Exec(ctx, fmt.Sprintf("UPDATE t SET a = %d", w))
					pgxroute.ResetStickiness(ctx)
				case 3:
					err = pgx.BeginFunc(ctx, f.Pool, func(tx pgx.Tx) error {
						_, err := tx.Exec(ctx, ins, w)
						return err
					})
					pgxroute.ResetStickiness(ctx)
				case 4:
					err = f.Pool.QueryRow(ctx, sel, w).Scan(new(string))
					if errors.Is(err, pgx.ErrNoRows) {
						err = nil
					}
				}
				if err != nil {
					t.Error(err)
					return
				}
				if i%10 == 0 {
					_ = f.Calls()
					_ = f.CallsTo("replica1")
				}
			}
		}()
	}
	wg.Wait()
	calls := f.Calls()
	if want := workers * each / 5 * 6; len(calls) != want {
		t.Fatalf("%d calls recorded, want %d", len(calls), want)
	}
	for _, c := range calls {
		wantGroup := "read"
		if c.Kind == classify.Write || c.InTx {
			wantGroup = "default"
		}
		if c.Group != wantGroup {
			t.Fatalf("%v: want group %q", c, wantGroup)
		}
	}
}

// userTracer counts the events a Config.Tracer set through
// FakeOptions.Config receives, and checks that the route is in the context.
type userTracer struct {
	mu            sync.Mutex
	starts, ends  int
	routeInCtx    bool
	lastEndRoute  pgxroute.Route
	lastEndHadErr bool
}

func (u *userTracer) TraceRouteStart(ctx context.Context, d pgxroute.TraceRouteStartData) context.Context {
	r, ok := pgxroute.RouteFromContext(ctx)
	u.mu.Lock()
	u.starts++
	u.routeInCtx = ok && r.Node == d.Route.Node
	u.mu.Unlock()
	return ctx
}

func (u *userTracer) TraceRouteEnd(_ context.Context, d pgxroute.TraceRouteEndData) {
	u.mu.Lock()
	u.ends++
	u.lastEndRoute, u.lastEndHadErr = d.Route, d.Err != nil
	u.mu.Unlock()
}

func TestFakeKeepsTheUsersTracer(t *testing.T) {
	ut := &userTracer{}
	f := routingtest.NewFake(t, routingtest.FakeOptions{Config: func(c *pgxroute.Config) { c.Tracer = ut }})
	mustExec(t, f.Pool, context.Background(), sel)
	mustExec(t, f.Pool, context.Background(), "UPDATE t SET a = 1")
	if got := len(f.Calls()); got != 2 {
		t.Fatalf("the fake recorded %d calls, want 2", got)
	}
	ut.mu.Lock()
	defer ut.mu.Unlock()
	if ut.starts != 2 || ut.ends != 2 || !ut.routeInCtx || ut.lastEndRoute.Node != "primary" || ut.lastEndHadErr {
		t.Errorf("the user's tracer saw %d starts, %d ends, route in ctx %v, last end %v (err %v)",
			ut.starts, ut.ends, ut.routeInCtx, ut.lastEndRoute, ut.lastEndHadErr)
	}
}

// TestFakeConcurrentTransactionsKeepTheirRoute begins transactions on one
// node from two groups at once: each statement is recorded with the group
// and reason of its own Begin (the node reads them from the context the
// router runs the Begin with).
func TestFakeConcurrentTransactionsKeepTheirRoute(t *testing.T) {
	f := routingtest.NewFake(t, routingtest.FakeOptions{Groups: map[string][]string{
		pgxroute.DefaultGroupName: {"primary"},
		"reports":                 {"primary"},
	}})
	const n = 32
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			ctx := context.Background()
			if i%2 == 1 {
				ctx = pgxroute.WithBindGroup(ctx, "reports")
			}
			tx, err := f.Pool.Begin(ctx)
			if err != nil {
				errs <- err
				return
			}
			if _, err := tx.Exec(ctx, fmt.Sprintf("UPDATE t SET a = %d", i)); err != nil {
				errs <- err
			}
			errs <- tx.Commit(ctx)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	inTx := 0
	for _, c := range f.Calls() {
		if !c.InTx {
			continue
		}
		inTx++
		var i int
		if _, err := fmt.Sscanf(c.SQL, "UPDATE t SET a = %d", &i); err != nil {
			t.Fatal(err)
		}
		wantGroup, wantReason := pgxroute.DefaultGroupName, pgxroute.ReasonTransaction
		if i%2 == 1 {
			wantGroup, wantReason = "reports", pgxroute.ReasonBindGroup
		}
		if c.Group != wantGroup || c.Reason != wantReason || c.Node != "primary" {
			t.Errorf("%s recorded as %s/%s: %s, want %s: %s", c.SQL, c.Group, c.Node, c.Reason, wantGroup, wantReason)
		}
	}
	if inTx != n {
		t.Errorf("%d statements in transactions recorded, want %d", inTx, n)
	}
}
