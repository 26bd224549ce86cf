package stdlib_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/pgxroute/pgxroute"
	"github.com/pgxroute/pgxroute/routingtest"
	"github.com/pgxroute/pgxroute/stdlib"
)

// TestRouting runs each database/sql method and asks the server that
// answered (inet_server_port(), or the port an insert stored) which node
// it is: reads on replicas, writes and read-write transactions on the
// primary, read-only transactions on a replica.
func TestRouting(t *testing.T) {
	c := sharedCluster(t)
	// ForgetUnscopedWrites: the table's unscoped writes must not hold its
	// unscoped reads on the primary (TestUnscopedReadsSeeTheirWrites covers
	// the pool's own scope through database/sql).
	pool := newPool(t, c, pgxroute.Config{ForgetUnscopedWrites: true})
	db := openDB(t, pool)
	ctx := context.Background()
	// insertedOn is the node whose server inserted row id (the port
	// column's default), asked on the primary.
	insertedOn := func(t *testing.T, id int64) string {
		return servedBy(t, c, db, pgxroute.WithPrimary(ctx), "SELECT port FROM items WHERE id = $1", id)
	}
	const primary, replica = "primary", "replica"
	tests := []struct {
		name string
		want string
		run  func(t *testing.T) string // the node that ran the statement
	}{
		{"QueryRowContext read", replica, func(t *testing.T) string {
			return servedBy(t, c, db, ctx, "SELECT inet_server_port()")
		}},
		{"QueryContext read", replica, func(t *testing.T) string {
			rows, err := db.QueryContext(ctx, "SELECT inet_server_port() FROM generate_series(1, 3)")
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			var node string
			for rows.Next() {
				var port int
				if err := rows.Scan(&port); err != nil {
					t.Fatal(err)
				}
				node = nodeOf(t, c, port)
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			return node
		}},
		{"ExecContext write", primary, func(t *testing.T) string {
			id := nextID()
			res, err := db.ExecContext(ctx, "INSERT INTO items (id, note) VALUES ($1, 'exec')", id)
			if err != nil {
				t.Fatal(err)
			}
			if n, err := res.RowsAffected(); err != nil || n != 1 {
				t.Fatalf("RowsAffected: %d, %v", n, err)
			}
			return insertedOn(t, id)
		}},
		{"QueryRowContext write", primary, func(t *testing.T) string {
			return servedBy(t, c, db, ctx, "INSERT INTO items (id) VALUES ($1) RETURNING port", nextID())
		}},
		{"WithPrimary read", primary, func(t *testing.T) string {
			return servedBy(t, c, db, pgxroute.WithPrimary(ctx), "SELECT inet_server_port()")
		}},
		{"prepared read", replica, func(t *testing.T) string {
			st, err := db.PrepareContext(ctx, "SELECT inet_server_port() + $1::int")
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			var node string
			for range 4 { // on several connections and nodes: prepared where it first runs
				var port int
				if err := st.QueryRowContext(ctx, 0).Scan(&port); err != nil {
					t.Fatal(err)
				}
				if n := nodeOf(t, c, port); node == "" || !isReplica(c, n) {
					node = n
				}
			}
			return node
		}},
		{"prepared write", primary, func(t *testing.T) string {
			st, err := db.PrepareContext(ctx, "INSERT INTO items (id, note) VALUES ($1, 'prepared')")
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			node := ""
			for range 3 {
				id := nextID()
				if _, err := st.ExecContext(ctx, id); err != nil {
					t.Fatal(err)
				}
				if n := insertedOn(t, id); node == "" || n != c.Primary().Name() {
					node = n
				}
			}
			return node
		}},
		{"read-only transaction", replica, func(t *testing.T) string {
			return inTx(t, c, db, &sql.TxOptions{ReadOnly: true})
		}},
		{"read-write transaction", primary, func(t *testing.T) string {
			return inTx(t, c, db, nil)
		}},
		{"serializable read-only transaction", primary, func(t *testing.T) string {
			return inTx(t, c, db, &sql.TxOptions{ReadOnly: true, Isolation: sql.LevelSerializable})
		}},
		{"scope reads its own write", primary, func(t *testing.T) string {
			sctx := pgxroute.WithScope(ctx)
			id := nextID()
			if _, err := db.ExecContext(sctx, "INSERT INTO items (id) VALUES ($1)", id); err != nil {
				t.Fatal(err)
			}
			// No row (sql.ErrNoRows) if the read went to a replica that had
			// not replayed the insert yet.
			return servedBy(t, c, db, sctx, "SELECT inet_server_port() FROM items WHERE id = $1", id)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.run(t)
			kind := primary
			if isReplica(c, got) {
				kind = replica
			}
			if kind != tt.want {
				t.Errorf("ran on %s (a %s), want a %s", got, kind, tt.want)
			}
		})
	}
}

// inTx runs a transaction with opts (nil: the default) that reads the
// server's port twice and writes nothing, and returns the node that
// answered, failing when the two answers differ.
func inTx(t *testing.T, c *routingtest.Cluster, db *sql.DB, opts *sql.TxOptions) string {
	t.Helper()
	ctx := context.Background()
	tx, err := db.BeginTx(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	first := servedBy(t, c, tx, ctx, "SELECT inet_server_port()")
	if again := servedBy(t, c, tx, ctx, "SELECT inet_server_port()"); again != first {
		t.Fatalf("the transaction moved from %s to %s", first, again)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	return first
}

// TestSession checks that a *sql.Conn keeps the node and the server
// connection of its first statement: session state (SET, a temporary
// table, an advisory lock) lives across its statements; a session begun
// with WithPrimary runs on the primary; once closed its server connection
// goes back to the node's pool.
func TestSession(t *testing.T) {
	c := sharedCluster(t)
	pool := newPool(t, c, pgxroute.Config{})
	db := openDB(t, pool)
	ctx := context.Background()

	t.Run("replica", func(t *testing.T) {
		conn, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		node := servedBy(t, c, conn, ctx, "SELECT inet_server_port()")
		if !isReplica(c, node) {
			t.Fatalf("a session begun with a read runs on %s, want a replica", node)
		}
		if _, err := conn.ExecContext(ctx, "SET application_name = 'stdlib-session'"); err != nil {
			t.Fatal(err)
		}
		var pid0 int
		if err := conn.QueryRowContext(ctx, "SELECT pg_backend_pid()").Scan(&pid0); err != nil {
			t.Fatal(err)
		}
		for i := range 10 {
			var name string
			var pid, port int
			if err := conn.QueryRowContext(ctx, "SELECT current_setting('application_name'), pg_backend_pid(), inet_server_port()").Scan(&name, &pid, &port); err != nil {
				t.Fatal(err)
			}
			if name != "stdlib-session" || pid != pid0 || nodeOf(t, c, port) != node {
				t.Fatalf("statement %d: application_name %q, backend %d on %s; want stdlib-session, %d on %s", i, name, pid, nodeOf(t, c, port), pid0, node)
			}
		}
	})
	t.Run("primary", func(t *testing.T) {
		pctx := pgxroute.WithPrimary(ctx)
		conn, err := db.Conn(pctx)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if node := servedBy(t, c, conn, pctx, "SELECT inet_server_port()"); node != c.Primary().Name() {
			t.Fatalf("a WithPrimary session runs on %s, want %s", node, c.Primary().Name())
		}
		// Later statements are not routed: plain reads stay on the session.
		stmts := []string{
			"CREATE TEMP TABLE session_tmp (x int)",
			"INSERT INTO session_tmp VALUES (7)",
			"SELECT pg_advisory_lock(42)",
		}
		for _, s := range stmts {
			if _, err := conn.ExecContext(ctx, s); err != nil {
				t.Fatalf("%s: %v", s, err)
			}
		}
		var x, locks int
		if err := conn.QueryRowContext(ctx, "SELECT (SELECT x FROM session_tmp), (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid())").Scan(&x, &locks); err != nil {
			t.Fatal(err)
		}
		if x != 7 || locks != 1 {
			t.Errorf("temporary table holds %d, session holds %d advisory locks; want 7 and 1", x, locks)
		}
		if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_unlock(42)"); err != nil {
			t.Fatal(err)
		}
		// DISCARD ALL drops the session's prepared statements: the
		// statement prepared by the first query is prepared again (pgx's
		// cache was reset), not reported missing (26000).
		if _, err := conn.ExecContext(ctx, "DISCARD ALL"); err != nil {
			t.Fatal(err)
		}
		if node := servedBy(t, c, conn, ctx, "SELECT inet_server_port()"); node != c.Primary().Name() {
			t.Errorf("after DISCARD ALL the session runs on %s, want %s", node, c.Primary().Name())
		}
	})
	t.Run("a later write marks the scope", func(t *testing.T) {
		sctx := pgxroute.WithScope(ctx)
		pctx := pgxroute.WithPrimary(sctx)
		conn, err := db.Conn(pctx)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if node := servedBy(t, c, conn, pctx, "SELECT inet_server_port()"); node != c.Primary().Name() || pgxroute.IsSticky(sctx) {
			t.Fatalf("a WithPrimary read: on %s, sticky %v; want %s, not sticky", node, pgxroute.IsSticky(sctx), c.Primary().Name())
		}
		if _, err := conn.ExecContext(sctx, "INSERT INTO items (id) VALUES ($1)", nextID()); err != nil {
			t.Fatal(err)
		}
		if !pgxroute.IsSticky(sctx) {
			t.Error("a session's write on the primary left the scope not sticky")
		}
	})
	t.Run("released", func(t *testing.T) {
		conn, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		servedBy(t, c, conn, ctx, "SELECT inet_server_port()")
		if n := acquired(pool); n != 1 {
			t.Errorf("an open session holds %d server connections, want 1", n)
		}
		conn.Close()
		if n := acquired(pool); n != 0 {
			t.Errorf("after the session: %d server connections held, want 0", n)
		}
	})
}

// acquired returns the number of server connections held from the nodes'
// pools.
func acquired(pool *pgxroute.RoutedPool) int32 {
	var n int32
	seen := map[string]bool{}
	for _, g := range pool.Stat().Groups {
		for _, nd := range g.Nodes {
			if !seen[nd.Name] && nd.Pool != nil {
				seen[nd.Name] = true
				n += nd.Pool.AcquiredConns()
			}
		}
	}
	return n
}

// TestIdleConnsHoldNoServerConnection opens 8 connections of database/sql's
// pool at once, then lets them go idle: the idle ones hold no server
// connection.
func TestIdleConnsHoldNoServerConnection(t *testing.T) {
	c := sharedCluster(t)
	pool := newPool(t, c, pgxroute.Config{})
	db := openDB(t, pool)
	db.SetMaxIdleConns(8)
	ctx := context.Background()
	conns := make([]*sql.Conn, 8)
	for i := range conns {
		conn, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		servedBy(t, c, conn, ctx, "SELECT inet_server_port()")
		conns[i] = conn
	}
	if n := acquired(pool); n != 8 {
		t.Errorf("8 sessions hold %d server connections, want 8", n)
	}
	for _, conn := range conns {
		conn.Close()
	}
	if st := db.Stats(); st.Idle != 8 {
		t.Errorf("database/sql keeps %d idle connections, want 8", st.Idle)
	}
	if n := acquired(pool); n != 0 {
		t.Errorf("8 idle connections hold %d server connections, want 0", n)
	}
}

// TestReadOnlyViolationNet calls a function that writes as a read: the
// replica refuses it (25006), it runs again on the primary, once.
func TestReadOnlyViolationNet(t *testing.T) {
	c := sharedCluster(t)
	pool := newPool(t, c, pgxroute.Config{})
	db := openDB(t, pool)
	ctx := context.Background()
	count := func() int {
		var n int
		if err := db.QueryRowContext(pgxroute.WithPrimary(ctx), "SELECT n FROM counter").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := count()
	var got int
	if err := db.QueryRowContext(ctx, "SELECT bump_counter()").Scan(&got); err != nil {
		t.Fatal(err)
	}
	if after := count(); got != before+1 || after != before+1 {
		t.Errorf("bump_counter() returned %d and the counter went %d → %d; want it run once", got, before, after)
	}
	var misroutes int64
	for _, g := range pool.Stat().Groups {
		for _, n := range g.Nodes {
			misroutes += n.Calls[pgxroute.ReasonMisroute]
		}
	}
	if misroutes != 1 {
		t.Errorf("%d calls ran again after a 25006, want 1", misroutes)
	}
	// Now known as a write: it goes to the primary at once.
	if r, err := pool.Route(ctx, "SELECT bump_counter()"); err != nil || r.Node != c.Primary().Name() {
		t.Errorf("Route after the 25006: %v, %v; want %s", r, err, c.Primary().Name())
	}
}

// TestTypes round-trips pgx's types through database/sql: pgtype values,
// arrays, sql.Null*, json, time and bytea.
func TestTypes(t *testing.T) {
	c := sharedCluster(t)
	pool := newPool(t, c, pgxroute.Config{})
	db := openDB(t, pool)
	ctx := context.Background()
	when := time.Date(2026, 12, 6, 15, 4, 5, 0, time.UTC)
	type doc struct {
		A int      `json:"a"`
		B []string `json:"b"`
	}
	var (
		i4    int32
		arr   []int64
		null  sql.NullString
		valid sql.NullInt64
		js    []byte
		ts    time.Time
		bin   []byte
		num   string
		flag  bool
		f8    float64
		txt   pgtype.Text
	)
	m := pgtype.NewMap()
	err := db.QueryRowContext(ctx, "SELECT $1::int4, $2::int8[], $3::text, $4::int8, $5::jsonb, $6::timestamptz, $7::bytea, 12.50::numeric(6,2), $8::bool, $9::float8, $10::text",
		pgtype.Int4{Int32: 5, Valid: true}, []int64{1, 2, 3}, sql.NullString{}, sql.NullInt64{Int64: 9, Valid: true},
		doc{A: 1, B: []string{"x"}}, when, []byte{0, 1, 2}, true, 2.5, pgtype.Text{String: "t", Valid: true},
	).Scan(&i4, m.SQLScanner(&arr), &null, &valid, &js, &ts, &bin, &num, &flag, &f8, &txt)
	if err != nil {
		t.Fatal(err)
	}
	var d doc
	if err := json.Unmarshal(js, &d); err != nil {
		t.Fatal(err)
	}
	type result struct {
		I4    int32
		Arr   []int64
		Null  sql.NullString
		Valid sql.NullInt64
		Doc   doc
		TS    time.Time
		Bin   []byte
		Num   string
		Flag  bool
		F8    float64
		Txt   pgtype.Text
	}
	got := result{i4, arr, null, valid, d, ts.UTC(), bin, num, flag, f8, txt}
	want := result{5, []int64{1, 2, 3}, sql.NullString{}, sql.NullInt64{Int64: 9, Valid: true}, doc{A: 1, B: []string{"x"}}, when, []byte{0, 1, 2}, "12.50", true, 2.5, pgtype.Text{String: "t", Valid: true}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	rows, err := db.QueryContext(ctx, "SELECT 1::int8 AS a, 'x'::varchar(5) AS b, 1.5::numeric(4,1) AS c")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cts, err := rows.ColumnTypes()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, ct := range cts {
		names = append(names, ct.Name()+":"+ct.DatabaseTypeName())
	}
	if diff := cmp.Diff([]string{"a:INT8", "b:VARCHAR", "c:NUMERIC"}, names); diff != "" {
		t.Errorf("column types (-want +got):\n%s", diff)
	}
	if n, ok := cts[1].Length(); !ok || n != 5 {
		t.Errorf("varchar(5) length %d, %v", n, ok)
	}
	if p, s, ok := cts[2].DecimalSize(); !ok || p != 4 || s != 1 {
		t.Errorf("numeric(4,1) size %d, %d, %v", p, s, ok)
	}
}

// TestErrors checks that the server's error is a *pgconn.PgError for
// errors.As, named by group and node.
func TestErrors(t *testing.T) {
	c := sharedCluster(t)
	pool := newPool(t, c, pgxroute.Config{})
	db := openDB(t, pool)
	ctx := context.Background()
	id := nextID()
	if _, err := db.ExecContext(ctx, "INSERT INTO items (id) VALUES ($1)", id); err != nil {
		t.Fatal(err)
	}
	_, err := db.ExecContext(ctx, "INSERT INTO items (id) VALUES ($1)", id)
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "23505" {
		t.Fatalf("duplicate insert: %v, want a PgError 23505", err)
	}
	var ne *pgxroute.NodeError
	if !errors.As(err, &ne) || ne.Node != c.Primary().Name() || ne.Group != pgxroute.DefaultGroupName {
		t.Errorf("duplicate insert: %v, want a NodeError naming %s/%s", err, pgxroute.DefaultGroupName, c.Primary().Name())
	}
	if _, err := db.ExecContext(ctx, "SELECT $1", sql.Named("x", 1)); err == nil {
		t.Error("a named argument was accepted")
	}
}

// TestCloseLeavesPoolOpen closes the *sql.DB: the RoutedPool still works.
func TestCloseLeavesPoolOpen(t *testing.T) {
	c := sharedCluster(t)
	pool := newPool(t, c, pgxroute.Config{})
	db := stdlib.OpenDB(pool)
	ctx := context.Background()
	servedBy(t, c, db, ctx, "SELECT inet_server_port()")
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	var one int
	if err := pool.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil || one != 1 {
		t.Fatalf("the pool after db.Close: %d, %v", one, err)
	}
	if err := db.PingContext(ctx); err == nil {
		t.Error("the closed *sql.DB still pings")
	}
}

// TestSessionLostConnection ends a session's server connection from
// another one: the statement that finds it broken fails with the server's
// error (it was sent: no driver.ErrBadConn, so database/sql does not run it
// again), the next one provably was not sent and is driver.ErrBadConn
// (database/sql then drops the session), and the *sql.DB goes on.
func TestSessionLostConnection(t *testing.T) {
	c := sharedCluster(t)
	pool := newPool(t, c, pgxroute.Config{})
	db := openDB(t, pool)
	ctx := pgxroute.WithPrimary(context.Background())
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var pid int
	if err := conn.QueryRowContext(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	var ended bool
	if err := db.QueryRowContext(ctx, "SELECT pg_terminate_backend($1)", pid).Scan(&ended); err != nil || !ended {
		t.Fatalf("pg_terminate_backend(%d): %v, %v", pid, ended, err)
	}
	_, err = conn.ExecContext(ctx, "SELECT 1")
	if err == nil || errors.Is(err, driver.ErrBadConn) {
		t.Fatalf("the statement on the ended connection: %v, want the server's error, not ErrBadConn", err)
	}
	if _, err = conn.ExecContext(ctx, "SELECT 1"); !errors.Is(err, driver.ErrBadConn) {
		t.Fatalf("the next statement: %v, want driver.ErrBadConn", err)
	}
	if node := servedBy(t, c, db, ctx, "SELECT inet_server_port()"); node != c.Primary().Name() {
		t.Errorf("after the lost session: served by %s, want %s", node, c.Primary().Name())
	}
}

// TestPreparedOnEachNode executes a prepared statement of a session three
// times: pgx's statement cache prepares it on the session's server when it
// first runs there, once.
func TestPreparedOnEachNode(t *testing.T) {
	c := sharedCluster(t)
	pool := newPool(t, c, pgxroute.Config{})
	db := openDB(t, pool)
	ctx := context.Background()
	const query = "SELECT inet_server_port() + $1::int"
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cst, err := conn.PrepareContext(ctx, query)
	if err != nil {
		t.Fatal(err)
	}
	defer cst.Close()
	var port int
	for range 3 {
		if err := cst.QueryRowContext(ctx, 0).Scan(&port); err != nil {
			t.Fatal(err)
		}
	}
	var prepared int
	if err := conn.QueryRowContext(ctx, "SELECT count(*) FROM pg_prepared_statements WHERE statement = $1", query).Scan(&prepared); err != nil {
		t.Fatal(err)
	}
	if node := nodeOf(t, c, port); !isReplica(c, node) || prepared != 1 {
		t.Errorf("ran on %s, prepared there %d times; want a replica, once", node, prepared)
	}
}

// TestContextOverrides checks that the context's bind group reaches the
// router through database/sql, and that in ReadYourWrites mode a scope's
// read after its write sees the write (on the primary or on a replica that
// replayed it).
func TestContextOverrides(t *testing.T) {
	c := sharedCluster(t)
	ctx := context.Background()
	r2 := c.Replicas()[1]
	t.Run("WithBindGroup", func(t *testing.T) {
		pool := newPool(t, c, pgxroute.Config{})
		db := openDB(t, pool)
		// The primary, and a group "analytics" of r2 alone.
		cfg := pgxroute.Config{Groups: map[string][]pgxroute.Node{
			pgxroute.DefaultGroupName: {{Name: c.Primary().Name(), ConnString: c.Primary().ConnString()}},
			"analytics":               {{Name: r2.Name(), ConnString: r2.ConnString()}},
		}}
		apool, err := pgxroute.New(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer apool.Close()
		adb := stdlib.OpenDB(apool)
		defer adb.Close()
		gctx := pgxroute.WithBindGroup(ctx, "analytics")
		for range 4 {
			if node := servedBy(t, c, adb, gctx, "SELECT inet_server_port()"); node != r2.Name() {
				t.Fatalf("WithBindGroup(analytics): served by %s, want %s", node, r2.Name())
			}
		}
		_, err = db.ExecContext(pgxroute.WithBindGroup(ctx, "nowhere"), "SELECT 1")
		if !errors.Is(err, pgxroute.ErrUnknownGroup) {
			t.Errorf("an unknown group: %v, want ErrUnknownGroup", err)
		}
	})
	t.Run("ReadYourWrites", func(t *testing.T) {
		pool := newPool(t, c, pgxroute.Config{Stickiness: pgxroute.ReadYourWrites})
		db := openDB(t, pool)
		for range 5 {
			sctx := pgxroute.WithScope(ctx)
			id := nextID()
			if _, err := db.ExecContext(sctx, "INSERT INTO items (id, note) VALUES ($1, 'ryw')", id); err != nil {
				t.Fatal(err)
			}
			var note string
			if err := db.QueryRowContext(sctx, "SELECT note FROM items WHERE id = $1", id).Scan(&note); err != nil || note != "ryw" {
				t.Fatalf("read after the scope's write: %q, %v", note, err)
			}
		}
	})
}

// TestUnscopedReadsSeeTheirWrites: database/sql code that has no scope reads
// its own writes through the pool's own scope: with both replicas applying
// WAL a second late, a row inserted without a scope is found by the read
// right after it, also without a scope.
func TestUnscopedReadsSeeTheirWrites(t *testing.T) {
	c := routingtest.NewCluster(t, routingtest.ClusterOptions{ApplyDelay: []time.Duration{time.Second, time.Second}})
	if err := setupSchema(c); err != nil {
		t.Fatal(err)
	}
	db := openDB(t, newPool(t, c, pgxroute.Config{}))
	ctx := context.Background()
	for range 20 {
		id := nextID()
		if _, err := db.ExecContext(ctx, "INSERT INTO items (id) VALUES ($1)", id); err != nil {
			t.Fatal(err)
		}
		var port int
		if err := db.QueryRowContext(ctx, "SELECT inet_server_port() FROM items WHERE id = $1", id).Scan(&port); err != nil {
			t.Fatalf("the read right after an unscoped write: %v", err)
		}
	}
}
