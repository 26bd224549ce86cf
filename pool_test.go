package pgxroute_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgxroute/pgxroute"
	"github.com/pgxroute/pgxroute/routingtest"
)

// DBTX is the interface sqlc generates for pgx/v5 (with copyfrom and batch
// queries enabled); a RoutedPool must satisfy it.
type DBTX interface {
	Exec(context.Context, string, ...interface{}) (pgconn.CommandTag, error)
	Query(context.Context, string, ...interface{}) (pgx.Rows, error)
	QueryRow(context.Context, string, ...interface{}) pgx.Row
	CopyFrom(ctx context.Context, tableName pgx.Identifier, columnNames []string, rowSrc pgx.CopyFromSource) (int64, error)
	SendBatch(context.Context, *pgx.Batch) pgx.BatchResults
}

var (
	_ DBTX = (*pgxroute.RoutedPool)(nil)
	_ DBTX = (*pgxpool.Pool)(nil)
)

const whoami = "SELECT inet_server_port()"

func TestQuickStart(t *testing.T) {
	c := sharedCluster(t)
	pool := newPool(t, c, pgxroute.Config{})
	ctx := pgxroute.WithScope(context.Background())

	if got := routingtest.ServedBy(t, ctx, c, pool, whoami); !strings.HasPrefix(got, "replica") {
		t.Errorf("read served by %s, want a replica", got)
	}
	id := nextID()
	// The row records the port of the server that inserted it.
	if got := routingtest.ServedBy(t, ctx, c, pool, "INSERT INTO items (id) VALUES ($1) RETURNING port", id); got != "primary" {
		t.Errorf("write served by %s, want primary", got)
	}
	if got := routingtest.ServedBy(t, ctx, c, pool, "SELECT inet_server_port() FROM items WHERE id = $1", id); got != "primary" {
		t.Errorf("read after write in a scope served by %s, want primary (sticky)", got)
	}
	if !pgxroute.IsSticky(ctx) {
		t.Error("scope not sticky after a write")
	}
}

// countServed runs n reads and counts which node answered each.
func countServed(t *testing.T, c *routingtest.Cluster, pool *pgxroute.RoutedPool, n int) (map[string]int, []string) {
	t.Helper()
	counts := map[string]int{}
	var order []string
	for i := 0; i < n; i++ {
		name := routingtest.ServedBy(t, context.Background(), c, pool, whoami)
		counts[name]++
		order = append(order, name)
	}
	return counts, order
}

func TestRoundRobinWeightsExact(t *testing.T) {
	c := sharedCluster(t)
	r1, r2 := c.Replicas()[0], c.Replicas()[1]
	// Exact counts: no health checks, so that a slow probe on a loaded
	// machine cannot take a node out of rotation.
	pool := newPool(t, c, pgxroute.Config{
		Health:   pgxroute.HealthConfig{Disabled: true},
		Strategy: pgxroute.RoundRobin,
		Replicas: []pgxroute.Node{
			{Name: "replica1", ConnString: r1.ConnString(), Weight: 2},
			{Name: "replica2", ConnString: r2.ConnString()},
		},
	})
	counts, order := countServed(t, c, pool, 300)
	if diff := cmp.Diff(map[string]int{"replica1": 200, "replica2": 100}, counts); diff != "" {
		t.Fatalf("shares over 300 reads (-want +got):\n%s", diff)
	}
	// Smooth: every period of 3 calls has exactly 2 and 1, interleaved.
	for i := 0; i+3 <= len(order); i += 3 {
		per := map[string]int{}
		for _, n := range order[i : i+3] {
			per[n]++
		}
		if per["replica1"] != 2 || per["replica2"] != 1 {
			t.Fatalf("period at %d is %v, want 2 replica1 and 1 replica2", i, order[i:i+3])
		}
	}
}

func TestRandomWeights(t *testing.T) {
	c := sharedCluster(t)
	r1, r2 := c.Replicas()[0], c.Replicas()[1]
	pool := newPool(t, c, pgxroute.Config{
		Health:   pgxroute.HealthConfig{Disabled: true},
		Strategy: pgxroute.Random,
		Seed:     7,
		Replicas: []pgxroute.Node{
			{Name: "replica1", ConnString: r1.ConnString(), Weight: 3},
			{Name: "replica2", ConnString: r2.ConnString(), Weight: 1},
		},
	})
	counts, _ := countServed(t, c, pool, 2000)
	share := float64(counts["replica1"]) / 2000
	t.Logf("random 3:1 over 2000 reads: %v (replica1 share %.3f)", counts, share)
	if counts["primary"] != 0 || share < 0.70 || share > 0.80 {
		t.Fatalf("random shares %v, want replica1 near 0.75", counts)
	}
}

func TestLeastBusyServesFromReplicas(t *testing.T) {
	c := sharedCluster(t)
	pool := newPool(t, c, pgxroute.Config{Strategy: pgxroute.LeastBusy, Seed: 3})
	counts, _ := countServed(t, c, pool, 200)
	if counts["primary"] != 0 || counts["replica1"] == 0 || counts["replica2"] == 0 {
		t.Fatalf("least-busy served %v, want both replicas and not the primary", counts)
	}
}

func TestStickiness(t *testing.T) {
	c := sharedCluster(t)
	for _, tc := range []struct {
		mode      pgxroute.Stickiness
		wantAfter string // "primary" or "replica"
	}{
		{pgxroute.StickyScope, "primary"},
		{pgxroute.NoStickiness, "replica"},
	} {
		t.Run(tc.mode.String(), func(t *testing.T) {
			pool := newPool(t, c, pgxroute.Config{Stickiness: tc.mode})
			ctx := pgxroute.WithScope(context.Background())
			if got := routingtest.ServedBy(t, ctx, c, pool, whoami); !strings.HasPrefix(got, "replica") {
				t.Fatalf("read before write served by %s", got)
			}
			if _, err := pool.Exec(ctx, "INSERT INTO items (id) VALUES ($1)", nextID()); err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 4; i++ {
				if got := routingtest.ServedBy(t, ctx, c, pool, whoami); !strings.HasPrefix(got, tc.wantAfter) {
					t.Fatalf("read %d after write served by %s, want %s", i, got, tc.wantAfter)
				}
			}
			// Another scope is not affected.
			other := pgxroute.WithScope(context.Background())
			if got := routingtest.ServedBy(t, other, c, pool, whoami); !strings.HasPrefix(got, "replica") {
				t.Fatalf("another scope's read served by %s", got)
			}
			pgxroute.ResetStickiness(ctx)
			if pgxroute.IsSticky(ctx) {
				t.Fatal("still sticky after ResetStickiness")
			}
			if got := routingtest.ServedBy(t, ctx, c, pool, whoami); !strings.HasPrefix(got, "replica") {
				t.Fatalf("read after reset served by %s", got)
			}
		})
	}
}

// TestNoScopeRemembersNothing: with ForgetUnscopedWrites, a call without a
// scope remembers nothing: a read right after an unscoped write goes to a
// replica (the pool's own scope is in unscoped_test.go).
func TestNoScopeRemembersNothing(t *testing.T) {
	c := sharedCluster(t)
	pool := newPool(t, c, pgxroute.Config{ForgetUnscopedWrites: true})
	ctx := context.Background()
	r, err := pool.Route(ctx, "INSERT INTO items (id) VALUES (1)")
	if err != nil {
		t.Fatal(err)
	}
	if r.Reason != pgxroute.ReasonWriteNoScope || !strings.Contains(r.Reason.String(), "no scope") {
		t.Fatalf("write without scope: reason %v, want one that says no scope", r.Reason)
	}
	if _, err := pool.Exec(ctx, "INSERT INTO items (id) VALUES ($1)", nextID()); err != nil {
		t.Fatal(err)
	}
	if got := routingtest.ServedBy(t, ctx, c, pool, whoami); !strings.HasPrefix(got, "replica") {
		t.Fatalf("read after a write without scope served by %s, want a replica", got)
	}
}

// TestRules checks every routing rule, in precedence order, by the server
// that answered.
func TestRules(t *testing.T) {
	c := sharedCluster(t)
	groups := map[string][]pgxroute.Node{
		"default":   {{Name: "primary", ConnString: c.Primary().ConnString()}},
		"read":      {{Name: "replica1", ConnString: c.Replicas()[0].ConnString()}},
		"analytics": {{Name: "replica2", ConnString: c.Replicas()[1].ConnString()}},
		"reporting": {{Name: "replica1", ConnString: c.Replicas()[0].ConnString()}, {Name: "replica2", ConnString: c.Replicas()[1].ConnString()}},
	}
	off := pgxroute.HealthConfig{Disabled: true} // exact expectations: no probe may eject a node
	// ForgetUnscopedWrites: the table's unscoped writes (rule 3) must not
	// hold its unscoped reads (rule 6) on the primary; the pool's own scope
	// has tests of its own (unscoped_test.go).
	pool := newPool(t, c, pgxroute.Config{Groups: groups, Health: off, ForgetUnscopedWrites: true})
	disabled := newPool(t, c, pgxroute.Config{Groups: groups, Disabled: true})
	noRead := newPool(t, c, pgxroute.Config{Primary: c.Primary().ConnString(), Replicas: []pgxroute.Node{}})

	sticky := pgxroute.WithScope(context.Background())
	if _, err := pool.Exec(sticky, "INSERT INTO items (id) VALUES ($1)", nextID()); err != nil {
		t.Fatal(err)
	}
	bg := context.Background()
	tests := []struct {
		name   string
		pool   *pgxroute.RoutedPool
		ctx    context.Context
		sql    string
		want   string // node that must answer
		reason pgxroute.Reason
	}{
		{"1 disabled: read", disabled, bg, whoami, "primary", pgxroute.ReasonDisabled},
		{"1 disabled beats a bind group", disabled, pgxroute.WithBindGroup(bg, "analytics"), whoami, "primary", pgxroute.ReasonDisabled},
		{"2 bind group: read", pool, pgxroute.WithBindGroup(bg, "analytics"), whoami, "replica2", pgxroute.ReasonBindGroup},
		{"2 bind group beats stickiness", pool, pgxroute.WithBindGroup(sticky, "analytics"), whoami, "replica2", pgxroute.ReasonBindGroup},
		{"2 bind group beats a locking read", pool, pgxroute.WithBindGroup(bg, "default"), "SELECT inet_server_port() FROM marker FOR UPDATE", "primary", pgxroute.ReasonBindGroup},
		{"2 WithPrimary: read", pool, pgxroute.WithPrimary(bg), whoami, "primary", pgxroute.ReasonPrimary},
		{"2 WithReplica beats stickiness", pool, pgxroute.WithReplica(sticky), whoami, "replica1", pgxroute.ReasonReplica},
		{"2 innermost wins", pool, pgxroute.WithReplica(pgxroute.WithPrimary(bg)), whoami, "replica1", pgxroute.ReasonReplica},
		{"2 innermost wins (2)", pool, pgxroute.WithPrimary(pgxroute.WithBindGroup(bg, "analytics")), whoami, "primary", pgxroute.ReasonPrimary},
		{"3 write", pool, sticky, "INSERT INTO items (id) VALUES (" + fmt.Sprint(nextID()) + ") RETURNING port", "primary", pgxroute.ReasonWrite},
		{"3 data-modifying CTE", pool, bg, "WITH x AS (INSERT INTO items (id) VALUES (" + fmt.Sprint(nextID()) + ") RETURNING port) SELECT port FROM x", "primary", pgxroute.ReasonWriteNoScope},
		{"3 nextval", pool, bg, "SELECT inet_server_port() + 0 * nextval('seq')", "primary", pgxroute.ReasonWriteNoScope},
		{"4 FOR UPDATE", pool, bg, "SELECT inet_server_port() FROM marker FOR UPDATE", "primary", pgxroute.ReasonLockingRead},
		{"4 FOR NO KEY UPDATE", pool, bg, "SELECT inet_server_port() FROM marker FOR NO KEY UPDATE", "primary", pgxroute.ReasonLockingRead},
		{"4 FOR SHARE", pool, bg, "SELECT inet_server_port() FROM marker FOR SHARE", "primary", pgxroute.ReasonLockingRead},
		{"4 FOR KEY SHARE", pool, bg, "SELECT inet_server_port() FROM marker FOR KEY SHARE", "primary", pgxroute.ReasonLockingRead},
		{"4 NOWAIT", pool, bg, "SELECT inet_server_port() FROM marker FOR UPDATE NOWAIT", "primary", pgxroute.ReasonLockingRead},
		{"4 SKIP LOCKED", pool, bg, "SELECT inet_server_port() FROM marker FOR UPDATE SKIP LOCKED", "primary", pgxroute.ReasonLockingRead},
		{"4 locking in a subquery", pool, bg, "SELECT (SELECT inet_server_port() FROM marker FOR SHARE)", "primary", pgxroute.ReasonLockingRead},
		{"5 sticky scope", pool, sticky, whoami, "primary", pgxroute.ReasonSticky},
		{"6 read", pool, pgxroute.WithScope(bg), whoami, "replica1", pgxroute.ReasonRead},
		{"6 read without scope", pool, bg, whoami, "replica1", pgxroute.ReasonReadNoScope},
		{"6 read, empty read group", noRead, bg, whoami, "primary", pgxroute.ReasonNoReadGroup},
		{"6 keywords in strings change nothing", pool, bg, "SELECT inet_server_port() WHERE 'FOR UPDATE' <> 'delete'", "replica1", pgxroute.ReasonReadNoScope},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := tc.pool.Route(tc.ctx, tc.sql)
			if err != nil {
				t.Fatal(err)
			}
			if r.Reason != tc.reason {
				t.Errorf("Route reason %q, want %q", r.Reason, tc.reason)
			}
			if got := routingtest.ServedBy(t, tc.ctx, c, tc.pool, tc.sql); got != tc.want {
				t.Errorf("served by %s, want %s (route %v)", got, tc.want, r)
			}
		})
	}

	t.Run("2 bind group: a write is not overridden", func(t *testing.T) {
		_, err := pool.Exec(pgxroute.WithBindGroup(bg, "analytics"), "INSERT INTO items (id) VALUES ($1)", nextID())
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "25006" {
			t.Fatalf("write to a replica's bind group: %v, want the replica's 25006", err)
		}
		var ne *pgxroute.NodeError
		if !errors.As(err, &ne) || ne.Group != "analytics" || ne.Node != "replica2" {
			t.Fatalf("error %v does not name group analytics and node replica2", err)
		}
	})
	t.Run("2 unknown group", func(t *testing.T) {
		ctx := pgxroute.WithBindGroup(bg, "nope")
		_, err := pool.Exec(ctx, whoami)
		if !errors.Is(err, pgxroute.ErrUnknownGroup) || !strings.Contains(err.Error(), `"nope"`) {
			t.Fatalf("Exec: %v, want ErrUnknownGroup naming the group", err)
		}
		if err := pool.QueryRow(ctx, whoami).Scan(new(int)); !errors.Is(err, pgxroute.ErrUnknownGroup) {
			t.Fatalf("QueryRow: %v", err)
		}
		if _, err := pool.Route(ctx, whoami); !errors.Is(err, pgxroute.ErrUnknownGroup) {
			t.Fatalf("Route: %v", err)
		}
	})
	t.Run("bind group balances its own nodes", func(t *testing.T) {
		ctx := pgxroute.WithBindGroup(bg, "reporting")
		seen := map[string]int{}
		for i := 0; i < 4; i++ {
			seen[routingtest.ServedBy(t, ctx, c, pool, whoami)]++
		}
		if diff := cmp.Diff(map[string]int{"replica1": 2, "replica2": 2}, seen); diff != "" {
			t.Fatalf("reporting group (-want +got):\n%s", diff)
		}
	})
}

func TestTransactions(t *testing.T) {
	c := sharedCluster(t)
	pool := newPool(t, c, pgxroute.Config{})
	bg := context.Background()

	t.Run("read-only goes to a replica", func(t *testing.T) {
		ctx := pgxroute.WithScope(bg)
		tx, err := pool.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx)
		first := routingtest.ServedBy(t, ctx, c, tx, whoami)
		if !strings.HasPrefix(first, "replica") {
			t.Fatalf("read-only transaction on %s", first)
		}
		for i := 0; i < 3; i++ {
			if got := routingtest.ServedBy(t, ctx, c, tx, whoami); got != first {
				t.Fatalf("statement %d of the transaction on %s, first on %s", i, got, first)
			}
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		if pgxroute.IsSticky(ctx) {
			t.Fatal("a read-only transaction made the scope sticky")
		}
	})
	t.Run("read-write that wrote makes the scope sticky at commit", func(t *testing.T) {
		ctx := pgxroute.WithScope(bg)
		tx, err := pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got := routingtest.ServedBy(t, ctx, c, tx, whoami); got != "primary" {
			t.Fatalf("read-write transaction on %s", got)
		}
		if r, ok := pgxroute.TxRoute(tx); !ok || r.Reason != pgxroute.ReasonTransaction {
			t.Fatalf("TxRoute = %v, %v", r, ok)
		}
		sp, err := tx.Begin(ctx) // a savepoint: its writes count
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sp.Exec(ctx, "INSERT INTO items (id) VALUES ($1)", nextID()); err != nil {
			t.Fatal(err)
		}
		if err := sp.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		if pgxroute.IsSticky(ctx) {
			t.Fatal("sticky before the commit")
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		if !pgxroute.IsSticky(ctx) {
			t.Fatal("not sticky after committing a write")
		}
		// Commit does not clear stickiness: reads after it must see it.
		if got := routingtest.ServedBy(t, ctx, c, pool, whoami); got != "primary" {
			t.Fatalf("read after commit on %s", got)
		}
		_ = tx.Rollback(ctx) // the usual deferred Rollback after Commit is harmless
	})
	t.Run("rolled back or read only: not sticky", func(t *testing.T) {
		ctx := pgxroute.WithScope(bg)
		tx, err := pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, "INSERT INTO items (id) VALUES ($1)", nextID()); err != nil {
			t.Fatal(err)
		}
		if err := tx.Rollback(ctx); err != nil {
			t.Fatal(err)
		}
		tx, err = pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := tx.QueryRow(ctx, whoami).Scan(new(int)); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		if pgxroute.IsSticky(ctx) {
			t.Fatal("sticky after a rollback and a read-only commit")
		}
	})
	t.Run("serializable read-only goes to the primary", func(t *testing.T) {
		tx, err := pool.BeginTx(bg, pgx.TxOptions{AccessMode: pgx.ReadOnly, IsoLevel: pgx.Serializable})
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(bg)
		if got := routingtest.ServedBy(t, bg, c, tx, whoami); got != "primary" {
			t.Fatalf("serializable read-only transaction on %s", got)
		}
	})
}

func TestSendBatch(t *testing.T) {
	c := sharedCluster(t)
	pool := newPool(t, c, pgxroute.Config{})
	names := nodeNames(c)
	run := func(ctx context.Context, b *pgx.Batch) []string {
		t.Helper()
		br := pool.SendBatch(ctx, b)
		var got []string
		for range b.QueuedQueries {
			var port int
			if err := br.QueryRow().Scan(&port); err != nil {
				t.Fatal(err)
			}
			got = append(got, names[port])
		}
		if err := br.Close(); err != nil {
			t.Fatal(err)
		}
		return got
	}
	ctx := pgxroute.WithScope(context.Background())
	reads := &pgx.Batch{}
	reads.Queue(whoami)
	reads.Queue(whoami)
	got := run(ctx, reads)
	if !strings.HasPrefix(got[0], "replica") || got[0] != got[1] {
		t.Fatalf("batch of reads served by %v", got)
	}
	mixed := &pgx.Batch{}
	mixed.Queue(whoami)
	mixed.Queue("INSERT INTO items (id) VALUES ($1) RETURNING port", nextID())
	if got := run(ctx, mixed); got[0] != "primary" || got[1] != "primary" {
		t.Fatalf("batch with a write served by %v", got)
	}
	if !pgxroute.IsSticky(ctx) {
		t.Fatal("a batch that wrote did not make the scope sticky")
	}
}

func TestCopyFrom(t *testing.T) {
	c := sharedCluster(t)
	pool := newPool(t, c, pgxroute.Config{})
	ctx := pgxroute.WithScope(context.Background())
	a, b := nextID(), nextID()
	n, err := pool.CopyFrom(ctx, pgx.Identifier{"items"}, []string{"id", "note"}, pgx.CopyFromRows([][]any{{a, "copy"}, {b, "copy"}}))
	if err != nil || n != 2 {
		t.Fatalf("CopyFrom = %d, %v", n, err)
	}
	// The DEFAULT port column records where COPY ran.
	if got := routingtest.ServedBy(t, pgxroute.WithPrimary(ctx), c, pool, "SELECT port FROM items WHERE id = $1", a); got != "primary" {
		t.Fatalf("COPY ran on %s", got)
	}
	if !pgxroute.IsSticky(ctx) {
		t.Fatal("COPY did not make the scope sticky")
	}
}

func TestAcquire(t *testing.T) {
	c := sharedCluster(t)
	pool := newPool(t, c, pgxroute.Config{})
	ctx := context.Background()
	for _, tc := range []struct {
		ctx  context.Context
		want string
	}{{ctx, "primary"}, {pgxroute.WithReplica(ctx), "replica"}} {
		err := pool.AcquireFunc(tc.ctx, func(conn *pgxpool.Conn) error {
			if got := routingtest.ServedBy(t, ctx, c, conn, whoami); !strings.HasPrefix(got, tc.want) {
				t.Errorf("acquired a connection of %s, want %s", got, tc.want)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := pool.Ping(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestConfigErrors(t *testing.T) {
	ctx := context.Background()
	ok := "postgres://app@127.0.0.1:1/db"
	tests := []struct {
		name string
		cfg  pgxroute.Config
		want []string // substrings of the error
	}{
		{"no default node", pgxroute.Config{Replicas: []pgxroute.Node{{ConnString: ok}}}, []string{`"default"`, "no node"}},
		{"negative weight", pgxroute.Config{Primary: ok, Replicas: []pgxroute.Node{{Name: "r1", ConnString: ok, Weight: -1}}}, []string{`"read"`, `"r1"`, "negative"}},
		{"duplicate name", pgxroute.Config{Primary: ok, Replicas: []pgxroute.Node{
			{Name: "r", ConnString: "postgres://app@127.0.0.1:2/db"},
			{Name: "r", ConnString: "postgres://app@127.0.0.1:3/db"}}}, []string{`"r"`, "used by another node"}},
		{"unparsable", pgxroute.Config{Primary: ok, Groups: map[string][]pgxroute.Node{
			"analytics": {{Name: "a1", ConnString: "postgres://app:s3cret-pw@127.0.0.1:notaport/db"}}}}, []string{`"analytics"`, `"a1"`, "unparsable"}},
		{"unparsable key=value", pgxroute.Config{Primary: "host=127.0.0.1 password=s3cret-pw port=notaport"}, []string{`"default"`, "unparsable"}},
		{"no connection", pgxroute.Config{Primary: ok, Replicas: []pgxroute.Node{{Name: "empty"}}}, []string{`"empty"`, "exactly one"}},
		{"same group names", pgxroute.Config{Primary: ok, DefaultGroup: "x", ReadGroup: "x"}, []string{`"x"`}},
		{"bad StickyFor", pgxroute.Config{Primary: ok, Stickiness: pgxroute.StickyFor(0)}, []string{"StickyFor"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := pgxroute.New(ctx, tc.cfg)
			if err == nil {
				p.Close()
				t.Fatal("New accepted a bad config")
			}
			if !errors.Is(err, pgxroute.ErrConfig) {
				t.Errorf("error %v does not wrap ErrConfig", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "s3cret-pw") {
				t.Errorf("error shows the password: %v", err)
			}
		})
	}
}

func TestSharedPoolsAndExistingPool(t *testing.T) {
	c := sharedCluster(t)
	ctx := context.Background()
	existing, err := pgxpool.New(ctx, c.Replicas()[1].ConnString())
	if err != nil {
		t.Fatal(err)
	}
	defer existing.Close()
	pool, err := pgxroute.New(ctx, pgxroute.Config{Groups: map[string][]pgxroute.Node{
		"default":   {{Name: "primary", ConnString: c.Primary().ConnString()}},
		"read":      {{Name: "replica1", ConnString: c.Replicas()[0].ConnString()}, {Name: "replica2", Pool: existing}},
		"reporting": {{Name: "replica1", ConnString: c.Replicas()[0].ConnString()}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	st := pool.Stat()
	read, _ := st.Group("read")
	rep, _ := st.Group("reporting")
	r1, _ := read.Node("replica1")
	r1b, _ := rep.Node("replica1")
	if r1.Pool == nil || r1b.Pool == nil {
		t.Fatal("no pool stats")
	}
	// One pgxpool for replica1: acquiring through one group shows in the other.
	conn, err := pool.Acquire(pgxroute.WithBindGroup(ctx, "reporting"))
	if err != nil {
		t.Fatal(err)
	}
	st = pool.Stat()
	read, _ = st.Group("read")
	r1, _ = read.Node("replica1")
	if r1.Pool.AcquiredConns() != 1 {
		t.Fatalf("read group's replica1 pool has %d acquired conns, want 1 (shared with reporting)", r1.Pool.AcquiredConns())
	}
	conn.Release()
	pool.Close()
	// The existing pool is not closed by the router.
	if err := existing.Ping(ctx); err != nil {
		t.Fatalf("existing pool closed by the router: %v", err)
	}
	if _, err := pool.Exec(ctx, whoami); !errors.Is(err, pgxroute.ErrClosed) {
		t.Fatalf("Exec after Close: %v", err)
	}
}

// TestConcurrentScopes: 64 goroutines, each in its own scope, write and
// then read their own rows; every read sees its scope's write.
func TestConcurrentScopes(t *testing.T) {
	c := sharedCluster(t)
	pool := newPool(t, c, pgxroute.Config{ConfigurePool: func(_, _ string, cfg *pgxpool.Config) { cfg.MaxConns = 16 }})
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := 0; g < 64; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := pgxroute.WithScope(context.Background())
			for i := 0; i < 10; i++ {
				// A read before the scope's first write may go anywhere.
				if i == 0 {
					if err := pool.QueryRow(ctx, whoami).Scan(new(int)); err != nil {
						errs <- err
						return
					}
				}
				id := nextID()
				if _, err := pool.Exec(ctx, "INSERT INTO items (id, note) VALUES ($1, 'race')", id); err != nil {
					errs <- err
					return
				}
				var n int
				if err := pool.QueryRow(ctx, "SELECT count(*) FROM items WHERE id = $1", id).Scan(&n); err != nil {
					errs <- err
					return
				}
				if n != 1 {
					errs <- fmt.Errorf("scope read did not see its own write %d", id)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestRouteDoesNotAllocate(t *testing.T) {
	c := sharedCluster(t)
	pool := newPool(t, c, pgxroute.Config{})
	ctx := pgxroute.WithScope(context.Background())
	// The pool follows the cluster (the default): reads pick among the
	// replicas of the current view, writes its primary.
	for _, sql := range []string{"SELECT id, note FROM items WHERE id = $1", "UPDATE items SET note = $2 WHERE id = $1"} {
		if _, err := pool.Route(ctx, sql); err != nil {
			t.Fatal(err)
		}
		allocs := testing.AllocsPerRun(1000, func() {
			if _, err := pool.Route(ctx, sql); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Fatalf("Route of a cached statement %q allocates %v times", sql, allocs)
		}
	}
}
