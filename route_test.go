package pgxroute

// Tests of the routing rules, the retry decision and the call path that need
// no server: the nodes are scripted Backends (the router never probes a
// Backend). That routing works against real servers is proven by the tests
// in pool_test.go and health_test.go; these cover the rules where
// PostgreSQL's binaries are missing too.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/pgxroute/pgxroute/classify"
)

// script is a Backend whose calls fail with the errors queued for it, in
// order, and succeed (with no rows) once the queue is empty. It counts the
// calls it was sent.
type script struct {
	name  string
	mu    sync.Mutex
	errs  []error
	calls int
}

func (s *script) take() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if len(s.errs) == 0 {
		return nil
	}
	err := s.errs[0]
	s.errs = s.errs[1:]
	return err
}

func (s *script) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

func (s *script) Exec(context.Context, string, ...any) (pgconn.CommandTag, error) {
	return pgconn.NewCommandTag("UPDATE 1"), s.take()
}

func (s *script) Query(context.Context, string, ...any) (pgx.Rows, error) {
	if err := s.take(); err != nil {
		return nil, err
	}
	return &scriptRows{}, nil
}

// QueryRow is Query as a row: its error shows at Scan, as pgxpool's does.
func (s *script) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	rows, err := s.Query(ctx, sql, args...)
	if err != nil {
		return errRow{err}
	}
	return rowsRow{rows}
}

func (s *script) SendBatch(context.Context, *pgx.Batch) pgx.BatchResults {
	return errBatch{s.take()}
}

func (s *script) CopyFrom(context.Context, pgx.Identifier, []string, pgx.CopyFromSource) (int64, error) {
	return 1, s.take()
}

func (s *script) BeginTx(context.Context, pgx.TxOptions) (pgx.Tx, error) {
	if err := s.take(); err != nil {
		return nil, err
	}
	return nil, errors.New("script: no transactions")
}

func (s *script) Ping(context.Context) error { return nil }

// scriptRows is one row with one int column, 7.
type scriptRows struct{ n int }

func (r *scriptRows) Close()                                       {}
func (r *scriptRows) Err() error                                   { return nil }
func (r *scriptRows) CommandTag() pgconn.CommandTag                { return pgconn.NewCommandTag("SELECT 1") }
func (r *scriptRows) FieldDescriptions() []pgconn.FieldDescription { return nil }
func (r *scriptRows) Next() bool                                   { r.n++; return r.n == 1 }
func (r *scriptRows) Scan(dest ...any) error                       { *dest[0].(*int) = 7; return nil }
func (r *scriptRows) Values() ([]any, error)                       { return []any{7}, nil }
func (r *scriptRows) RawValues() [][]byte                          { return nil }
func (r *scriptRows) Conn() *pgx.Conn                              { return nil }
func (r *scriptRows) TypeMap() *pgtype.Map                         { return pgtype.NewMap() }

// scripted builds a pool over scripted nodes: "primary" in the default
// group, "r1" and "r2" in the read group, and "a1" in group "analytics".
func scripted(t *testing.T, mod func(*Config)) (*RoutedPool, map[string]*script) {
	t.Helper()
	nodes := map[string]*script{}
	n := func(name string) Node {
		s := &script{name: name}
		nodes[name] = s
		return Node{Name: name, Backend: s}
	}
	cfg := Config{Groups: map[string][]Node{
		DefaultGroupName: {n("primary")},
		ReadGroupName:    {n("r1"), n("r2")},
		"analytics":      {n("a1")},
	}}
	if mod != nil {
		mod(&cfg)
	}
	p, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p, nodes
}

// setDown publishes a snapshot in which node name is down or up.
func (p *RoutedPool) setDown(name string, down bool) {
	i := p.nodeNamed(name).index
	p.publish(time.Now(), nil, func(nodes []nodeState, _ *membership) { nodes[i].down = down })
}

// isDown reports whether node name is down in the current snapshot.
func (p *RoutedPool) isDown(name string) bool {
	return p.pub.snap.Load().nodes[p.nodeNamed(name).index].down
}

func (p *RoutedPool) nodeNamed(name string) *node {
	for _, n := range p.listedNodes() {
		if n.name == name {
			return n
		}
	}
	panic("no node " + name)
}

func TestRoutingRules(t *testing.T) {
	const read, write, lock = "SELECT 1", "UPDATE t SET a = 1", "SELECT 1 FROM t FOR UPDATE"
	scoped := func() context.Context { return WithScope(context.Background()) }
	wrote := func() context.Context {
		ctx := scoped()
		scopeFrom(ctx).NoteWrite(time.Now())
		return ctx
	}
	type want struct {
		Group  string
		Reason Reason
	}
	tests := []struct {
		name   string
		cfg    func(*Config)
		ctx    context.Context
		sql    string
		down   []string
		want   want
		errIs  error
		closed bool
	}{
		{name: "read", ctx: scoped(), sql: read, want: want{"read", ReasonRead}},
		{name: "read without scope", ctx: context.Background(), sql: read, want: want{"read", ReasonReadNoScope}},
		{name: "write", ctx: scoped(), sql: write, want: want{"default", ReasonWrite}},
		{name: "write without scope", ctx: context.Background(), sql: write, want: want{"default", ReasonWriteNoScope}},
		{name: "unparsable is a write", ctx: scoped(), sql: "SELEC 1", want: want{"default", ReasonWrite}},
		{name: "locking read", ctx: scoped(), sql: lock, want: want{"default", ReasonLockingRead}},
		{name: "sticky after a write", ctx: wrote(), sql: read, want: want{"default", ReasonSticky}},
		{name: "no stickiness", cfg: func(c *Config) { c.Stickiness = NoStickiness }, ctx: wrote(), sql: read, want: want{"read", ReasonRead}},
		{name: "WithPrimary", ctx: WithPrimary(scoped()), sql: read, want: want{"default", ReasonPrimary}},
		{name: "WithReplica beats stickiness", ctx: WithReplica(wrote()), sql: read, want: want{"read", ReasonReplica}},
		{name: "WithReplica sends writes too", ctx: WithReplica(scoped()), sql: write, want: want{"read", ReasonReplica}},
		{name: "bind group", ctx: WithBindGroup(scoped(), "analytics"), sql: write, want: want{"analytics", ReasonBindGroup}},
		{name: "innermost override", ctx: WithPrimary(WithBindGroup(scoped(), "analytics")), sql: read, want: want{"default", ReasonPrimary}},
		{name: "without override", ctx: WithoutOverride(WithPrimary(scoped())), sql: read, want: want{"read", ReasonRead}},
		{name: "unknown group", ctx: WithBindGroup(scoped(), "nope"), sql: read, errIs: ErrUnknownGroup},
		{name: "read nodes down: fallback", ctx: scoped(), sql: read, down: []string{"r1", "r2"}, want: want{"default", ReasonFallback}},
		{name: "read nodes down: FailRead", cfg: func(c *Config) { c.NoHealthyRead = FailRead }, ctx: scoped(), sql: read, down: []string{"r1", "r2"}, errIs: ErrNoHealthyNode},
		{name: "one read node down", ctx: scoped(), sql: read, down: []string{"r1"}, want: want{"read", ReasonRead}},
		{name: "disabled", cfg: func(c *Config) { c.Disabled = true }, ctx: WithReplica(scoped()), sql: read, want: want{"default", ReasonDisabled}},
		{name: "closed", ctx: scoped(), sql: read, closed: true, errIs: ErrClosed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, _ := scripted(t, tt.cfg)
			for _, name := range tt.down {
				p.setDown(name, true)
			}
			if tt.closed {
				p.Close()
			}
			r, err := p.Route(tt.ctx, tt.sql)
			if tt.errIs != nil {
				if !errors.Is(err, tt.errIs) {
					t.Fatalf("Route: %v, want %v", err, tt.errIs)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, want{r.Group, r.Reason}); diff != "" {
				t.Errorf("route (-want +got):\n%s", diff)
			}
			for _, name := range tt.down {
				if r.Node == name {
					t.Errorf("routed to %s, which is down", name)
				}
			}
		})
	}
}

func TestRetryDecision(t *testing.T) {
	connErr := &pgconn.PgError{Code: "57P01", Message: "terminating connection due to administrator command"}
	refused := &pgconn.PgError{Code: "25006", Message: "cannot execute UPDATE in a read-only transaction"}
	stmtErr := &pgconn.PgError{Code: "42P01", Message: "relation does not exist"}
	bouncer := &pgconn.PgError{Code: "08P01", Message: "server conn crashed?"}
	tests := []struct {
		name    string
		ctx     context.Context
		sql     string
		err     error
		attempt int
		cfg     func(*Config)
		down    []string
		want    bool
		group   string
		reason  Reason
	}{
		{name: "read, connection failed", sql: "SELECT 1", err: connErr, want: true, group: "read", reason: ReasonRetry},
		{name: "read, EOF", sql: "SELECT 1", err: io.ErrUnexpectedEOF, want: true, group: "read", reason: ReasonRetry},
		{name: "read, PgBouncer lost its server", sql: "SELECT 1", err: bouncer, want: true, group: "read", reason: ReasonRetry},
		{name: "read, statement error", sql: "SELECT 1", err: stmtErr, want: false},
		{name: "read, second failure", sql: "SELECT 1", err: connErr, attempt: 1, want: false},
		{name: "read refused by a replica", sql: "SELECT write_it()", err: refused, want: true, group: "default", reason: ReasonMisroute},
		{name: "read refused by a replica after a retry or beside a hedge", sql: "SELECT write_it2()", err: refused, attempt: 1, want: true, group: "default", reason: ReasonMisroute},
		{name: "write, connection failed", sql: "UPDATE t SET a = 1", err: connErr, want: false},
		{name: "locking read, connection failed", sql: "SELECT 1 FROM t FOR UPDATE", err: connErr, want: false},
		{name: "read, other replica down: primary", sql: "SELECT 1", err: connErr, down: []string{"r1", "r2"}, want: true, group: "default", reason: ReasonRetry},
		{name: "read, other replica down, FailRead", sql: "SELECT 1", err: connErr, down: []string{"r1", "r2"}, cfg: func(c *Config) { c.NoHealthyRead = FailRead }, want: false},
		{name: "context done", ctx: canceled(), sql: "SELECT 1", err: connErr, want: false},
		{name: "bind group read, one node", ctx: WithBindGroup(context.Background(), "analytics"), sql: "SELECT 1", err: connErr, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, _ := scripted(t, tt.cfg)
			ctx := tt.ctx
			if ctx == nil {
				ctx = WithScope(context.Background())
			}
			d := decision{sql: tt.sql}
			if err := p.decide(ctx, p.pub.snap.Load(), opStatement, classify.Result{}, &d); err != nil {
				t.Fatal(err)
			}
			first := d.m
			for _, name := range tt.down {
				p.setDown(name, true)
			}
			next, ok, _ := p.next(ctx, &d, tt.err, tt.attempt)
			if ok != tt.want {
				t.Fatalf("next = %v, want %v", ok, tt.want)
			}
			if !ok {
				return
			}
			if next.g.name != tt.group || next.reason != tt.reason {
				t.Errorf("next route %s/%s, want %s/%s", next.g.name, next.reason, tt.group, tt.reason)
			}
			if next.m == first {
				t.Errorf("retried on the node that failed (%s)", first.node.name)
			}
			if tt.reason == ReasonMisroute && p.classifier.Classify(tt.sql).Kind != classify.Write {
				t.Errorf("a refused statement is not remembered as a write")
			}
		})
	}
}

func canceled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

// recorder is a RouteTracer that records every start and end.
type recorder struct {
	mu     sync.Mutex
	events []string
}

type recKey struct{}

func (r *recorder) TraceRouteStart(ctx context.Context, d TraceRouteStartData) context.Context {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, fmt.Sprintf("start %s %s #%d", d.Route.Node, d.Route.Reason, d.Attempt))
	return context.WithValue(ctx, recKey{}, d.Attempt)
}

func (r *recorder) TraceRouteEnd(ctx context.Context, d TraceRouteEndData) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rt, _ := RouteFromContext(ctx)
	a, _ := ctx.Value(recKey{}).(int)
	r.events = append(r.events, fmt.Sprintf("end %s #%d ctx#%d route=%s err=%v rerun=%v", d.Route.Node, d.Attempt, a, rt.Node, d.Err != nil, d.Rerun))
}

func TestCallPath(t *testing.T) {
	connErr := &pgconn.PgError{Code: "57P01", Message: "terminating connection"}
	t.Run("read retried once, then fails naming the node", func(t *testing.T) {
		rec := &recorder{}
		p, nodes := scripted(t, func(c *Config) { c.Tracer = rec })
		nodes["r1"].errs = []error{connErr}
		nodes["r2"].errs = []error{connErr}
		_, err := p.Exec(WithScope(context.Background()), "SELECT 1")
		var ne *NodeError
		if !errors.As(err, &ne) || ne.Node != "r2" || !errors.Is(err, connErr) {
			t.Fatalf("err = %v, want a NodeError of r2 wrapping the server's", err)
		}
		if got := nodes["r1"].count() + nodes["r2"].count(); got != 2 {
			t.Errorf("%d attempts, want 2", got)
		}
		want := []string{
			"start r1 read #0", "end r1 #0 ctx#0 route=r1 err=true rerun=true",
			"start r2 retried after a connection failure #1", "end r2 #1 ctx#1 route=r2 err=true rerun=false",
		}
		if diff := cmp.Diff(want, rec.events); diff != "" {
			t.Errorf("trace (-want +got):\n%s", diff)
		}
		for _, n := range []string{"r1", "r2"} {
			if !p.isDown(n) {
				t.Errorf("%s not ejected by the passive signal", n)
			}
		}
	})
	t.Run("write never sent twice", func(t *testing.T) {
		p, nodes := scripted(t, nil)
		nodes["primary"].errs = []error{connErr}
		if _, err := p.Exec(WithScope(context.Background()), "INSERT INTO t VALUES (1)"); !errors.Is(err, connErr) {
			t.Fatalf("err = %v", err)
		}
		if got := nodes["primary"].count(); got != 1 {
			t.Errorf("write sent %d times", got)
		}
	})
	t.Run("Begin failure marks the node", func(t *testing.T) {
		p, nodes := scripted(t, nil)
		nodes["primary"].errs = []error{connErr}
		if _, err := p.Begin(context.Background()); !errors.Is(err, connErr) {
			t.Fatalf("err = %v", err)
		}
		if !p.isDown("primary") {
			t.Error("a node that refused Begin's connection was not ejected")
		}
	})
	t.Run("in flight returns to zero", func(t *testing.T) {
		p, nodes := scripted(t, nil)
		nodes["r1"].errs = []error{connErr}
		ctx := WithScope(context.Background())
		var v int
		if err := p.QueryRow(ctx, "SELECT 1").Scan(&v); err != nil || v != 7 {
			t.Fatalf("QueryRow: %v, %d", err, v)
		}
		rows, _ := p.Query(ctx, "SELECT 1")
		got, err := pgx.CollectRows(rows, pgx.RowTo[int])
		if err != nil || len(got) != 1 {
			t.Fatalf("CollectRows: %v %v", got, err)
		}
		p.Exec(ctx, "UPDATE t SET a = 1")
		for _, n := range p.listedNodes() {
			if f := n.inFlight(); f != 0 {
				t.Errorf("%s: %d calls in flight after every call ended", n.name, f)
			}
		}
	})
}

// TestErrorCarryingRows runs pgx's documented idioms on calls that fail
// before they run: the rows carry the error, as pgxpool's do.
func TestErrorCarryingRows(t *testing.T) {
	p, _ := scripted(t, nil)
	ctx := WithBindGroup(context.Background(), "nope")
	rows, _ := p.Query(ctx, "SELECT 1")
	if _, err := pgx.CollectRows(rows, pgx.RowTo[int]); !errors.Is(err, ErrUnknownGroup) {
		t.Errorf("CollectRows: %v, want ErrUnknownGroup", err)
	}
	rows, _ = p.Query(ctx, "SELECT 1")
	var v int
	if _, err := pgx.ForEachRow(rows, []any{&v}, func() error { return nil }); !errors.Is(err, ErrUnknownGroup) {
		t.Errorf("ForEachRow: %v, want ErrUnknownGroup", err)
	}
	br := p.SendBatch(ctx, &pgx.Batch{})
	rows, _ = br.Query()
	if _, err := pgx.CollectRows(rows, pgx.RowTo[int]); !errors.Is(err, ErrUnknownGroup) {
		t.Errorf("batch CollectRows: %v, want ErrUnknownGroup", err)
	}
	br.Close()
	if err := p.QueryRow(ctx, "SELECT 1").Scan(&v); !errors.Is(err, ErrUnknownGroup) {
		t.Errorf("QueryRow: %v", err)
	}
}

func TestDerivedNodeNames(t *testing.T) {
	const bouncer = "postgres://u@127.0.0.1:6432/"
	tests := []struct {
		name   string
		cfg    Config
		want   map[string][]string
		errSub string
	}{
		{
			name: "one PgBouncer, several databases",
			cfg: Config{Primary: bouncer + "app", Replicas: []Node{
				{ConnString: bouncer + "app_r1"}, {ConnString: bouncer + "app_r2"}}},
			want: map[string][]string{
				"default": {"127.0.0.1:6432/app"},
				"read":    {"127.0.0.1:6432/app_r1", "127.0.0.1:6432/app_r2"},
			},
		},
		{
			name: "same server and database, other parameters",
			cfg: Config{Primary: bouncer + "app", Replicas: []Node{
				{ConnString: bouncer + "app?application_name=x"}, {ConnString: bouncer + "app?application_name=y"}}},
			want: map[string][]string{
				"default": {"127.0.0.1:6432/app"},
				"read":    {"127.0.0.1:6432/app#2", "127.0.0.1:6432/app#3"},
			},
		},
		{
			name: "distinct hosts keep host:port",
			cfg:  Config{Primary: "postgres://u@127.0.0.1:5432/app", Replicas: []Node{{ConnString: "postgres://u@127.0.0.1:5433/app"}}},
			want: map[string][]string{"default": {"127.0.0.1:5432"}, "read": {"127.0.0.1:5433"}},
		},
		{
			name: "a derived name avoids a given one",
			cfg: Config{Primary: "postgres://u@127.0.0.1:5432/app", Replicas: []Node{
				{Name: "127.0.0.1:5432", ConnString: "postgres://u@127.0.0.1:5433/app"}}},
			want: map[string][]string{"default": {"127.0.0.1:5432/app"}, "read": {"127.0.0.1:5432"}},
		},
		{
			name: "a given name twice is an error",
			cfg: Config{Primary: "postgres://u@127.0.0.1:5432/app", Replicas: []Node{
				{Name: "r", ConnString: bouncer + "a"}, {Name: "r", ConnString: bouncer + "b"}}},
			errSub: `node "r": the name is used by another node`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Health.Disabled = true
			p, err := New(context.Background(), tt.cfg)
			if tt.errSub != "" {
				if err == nil || !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tt.errSub) {
					t.Fatalf("New: %v, want an ErrConfig with %q", err, tt.errSub)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			got := map[string][]string{}
			for _, g := range p.Stat().Groups {
				for _, n := range g.Nodes {
					got[g.Name] = append(got[g.Name], n.Name)
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("names (-want +got):\n%s", diff)
			}
		})
	}
}

func TestReasonNamesAreDistinct(t *testing.T) {
	seen := map[string]Reason{}
	for _, r := range Reasons() {
		n := r.Name()
		if n == "" || n == "unknown" || strings.ContainsAny(n, " -") {
			t.Errorf("reason %d: name %q is not a snake-case label", r, n)
		}
		if o, dup := seen[n]; dup {
			t.Errorf("reasons %d and %d share the name %q", o, r, n)
		}
		seen[n] = r
	}
	if n := Reason(200).Name(); n != "unknown" {
		t.Errorf("Reason(200).Name() = %q", n)
	}
}

// TestBatchKind: a batch is a write if any statement is, a locking read if
// any is, else a read, however its statements repeat (a repeated
// statement is classified once).
func TestBatchKind(t *testing.T) {
	const (
		read  = "SELECT $1::int"
		write = "UPDATE t SET a = $1"
		lock  = "SELECT a FROM t WHERE id = $1 FOR UPDATE"
	)
	c := classify.New(classify.Options{})
	for _, tc := range []struct {
		name  string
		stmts []string
		want  classify.Kind
	}{
		{"empty", nil, classify.Read},
		{"reads", []string{read, read, read}, classify.Read},
		{"write after repeated reads", []string{read, read, read, write}, classify.Write},
		{"write first", []string{write, read, read}, classify.Write},
		{"locking among reads", []string{read, read, lock, lock, read}, classify.LockingRead},
		{"write after locking", []string{lock, lock, write, write}, classify.Write},
		{"same text, other strings", []string{read, strings.Clone(read), strings.Clone(write)}, classify.Write},
	} {
		b := &pgx.Batch{}
		for i, s := range tc.stmts {
			b.Queue(s, i)
		}
		if got := batchKind(c, b).Kind; got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestPickOther: a hedge's or a retry's other node is the usable one with
// the fewest calls in flight for its weight, the first after the failed one
// on a tie, and taking it leaves the balancer's round-robin turns alone.
func TestPickOther(t *testing.T) {
	p, _ := scripted(t, func(cfg *Config) {
		cfg.Groups[ReadGroupName] = []Node{
			{Name: "r1", Backend: &script{name: "r1"}},
			{Name: "r2", Backend: &script{name: "r2"}},
			{Name: "r3", Backend: &script{name: "r3"}, Weight: 2},
		}
	})
	g := p.readGroup
	memberOf := func(name string) *member {
		for _, m := range p.pub.snap.Load().mem.groups[g.index].members {
			if m.node.name == name {
				return m
			}
		}
		t.Fatalf("no member %s", name)
		return nil
	}
	nameOf := func(m *member) string {
		if m == nil {
			return "none"
		}
		return m.node.name
	}
	tests := []struct {
		name     string
		from     string
		inFlight map[string]uint64
		down     []string
		want     string
	}{
		{name: "idle: the next after the failed one", from: "r1", want: "r2"},
		{name: "idle, from the last: wraps around", from: "r3", want: "r1"},
		{name: "idle, from the middle", from: "r2", want: "r3"},
		{name: "fewest in flight", from: "r1", inFlight: map[string]uint64{"r2": 1}, want: "r3"},
		{name: "for its weight: 3 on weight 2 beats 2 on weight 1", from: "r1", inFlight: map[string]uint64{"r2": 2, "r3": 3}, want: "r3"},
		{name: "for its weight: 2 on weight 1 beats 5 on weight 2", from: "r1", inFlight: map[string]uint64{"r2": 2, "r3": 5}, want: "r2"},
		{name: "the busy failed node does not count", from: "r2", inFlight: map[string]uint64{"r2": 9, "r3": 1}, want: "r1"},
		{name: "down skipped", from: "r1", down: []string{"r2"}, want: "r3"},
		{name: "no other usable", from: "r1", down: []string{"r2", "r3"}, want: "none"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for name, n := range tt.inFlight {
				p.nodeNamed(name).started.Add(n)
				defer p.nodeNamed(name).ended.Add(n)
			}
			for _, name := range tt.down {
				p.setDown(name, true)
				defer p.setDown(name, false)
			}
			if got := nameOf(g.pickOther(p.pub.snap.Load(), memberOf(tt.from))); got != tt.want {
				t.Errorf("pickOther(%s) = %s, want %s", tt.from, got, tt.want)
			}
		})
	}
	// The round-robin sequence goes on where it was, as if no other node
	// had been taken in between.
	var want, got []string
	for range 8 {
		want = append(want, nameOf(g.pick(p.pub.snap.Load())))
	}
	for range 8 {
		got = append(got, nameOf(g.pick(p.pub.snap.Load())))
		g.pickOther(p.pub.snap.Load(), memberOf("r1"))
		g.pickOther(p.pub.snap.Load(), memberOf("r3"))
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("round-robin picks with pickOther between them (-without +with):\n%s", diff)
	}
}
