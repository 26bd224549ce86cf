package routingtest_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgxroute/pgxroute/routingtest"
)

// bouncerPort asks the server behind b's database db which port it
// listens on.
func bouncerPort(t *testing.T, b *routingtest.PgBouncer, db string) int {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), b.ConnString(db)+"&default_query_exec_mode=exec")
	if err != nil {
		t.Fatalf("connect to %s through %s: %v", db, b.Name(), err)
	}
	defer conn.Close(context.Background())
	var port int
	if err := conn.QueryRow(context.Background(), "SELECT inet_server_port()").Scan(&port); err != nil {
		t.Fatalf("%s through %s: %v", db, b.Name(), err)
	}
	return port
}

func TestPgBouncer(t *testing.T) {
	routingtest.SkipWithoutPgBouncer(t)
	c := routingtest.NewCluster(t, routingtest.ClusterOptions{Replicas: 1})
	ctx := context.Background()
	p, r := c.Primary(), c.Replicas()[0]
	// One PgBouncer for both nodes, under two database names, and one in
	// front of the replica alone.
	shared := c.NewPgBouncer(t, routingtest.PgBouncerOptions{Databases: []routingtest.PgBouncerDatabase{
		{Name: "app", Node: p}, {Name: "app_r1", Node: r},
	}})
	own := c.NewPgBouncer(t, routingtest.PgBouncerOptions{Databases: []routingtest.PgBouncerDatabase{{Name: "app", Node: r}}})
	if shared.Port() == own.Port() || shared.Port() == p.Port() || shared.Port() == r.Port() {
		t.Fatalf("ports collide: bouncers %d and %d, servers %d and %d", shared.Port(), own.Port(), p.Port(), r.Port())
	}
	for _, tc := range []struct {
		b    *routingtest.PgBouncer
		db   string
		want *routingtest.Node
	}{{shared, "app", p}, {shared, "app_r1", r}, {own, "app", r}} {
		if got := bouncerPort(t, tc.b, tc.db); got != tc.want.Port() {
			t.Errorf("%s/%s answered from port %d, want %s's %d", tc.b.Name(), tc.db, got, tc.want.Name(), tc.want.Port())
		}
	}
	v, err := shared.Version(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("PgBouncer %s", v)

	// The admin console: the pools, in transaction mode.
	admin, err := pgx.Connect(ctx, shared.AdminConnString())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	rows, err := admin.Query(ctx, "SHOW POOLS")
	if err != nil {
		t.Fatal(err)
	}
	pools := map[string]string{}
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]any{}
		for i, f := range rows.FieldDescriptions() {
			m[f.Name] = vals[i]
		}
		pools[fmt.Sprint(m["database"])] = fmt.Sprint(m["pool_mode"])
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for _, db := range []string{"app", "app_r1"} {
		if pools[db] != "transaction" {
			t.Errorf("SHOW POOLS: %s has pool mode %q, want transaction (pools: %v)", db, pools[db], pools)
		}
	}

	// Stop and Start keep the port; Close leaves nothing behind.
	pid, dir := own.PID(), own.Dir()
	if err := own.Stop(); err != nil {
		t.Fatal(err)
	}
	if routingtest.ProcessAlive(pid) || own.PID() != 0 {
		t.Fatalf("pgbouncer %d alive after Stop", pid)
	}
	if err := own.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if got := bouncerPort(t, own, "app"); got != r.Port() {
		t.Errorf("after a restart: port %d, want %d", got, r.Port())
	}
	pid = own.PID()
	if err := own.Close(); err != nil {
		t.Fatal(err)
	}
	if routingtest.ProcessAlive(pid) {
		t.Errorf("pgbouncer %d alive after Close", pid)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pgbouncer folder %s left after Close: %v", dir, err)
	}
}

// TestPgBouncerQueryExecModes runs the same concurrent load through a
// transaction-pooling PgBouncer in each of pgx's query exec modes and counts
// the failures by SQLSTATE. Before PgBouncer 1.21 (no prepared statement
// support), pgx's default cache_statement fails: its named prepared
// statements live on one server connection, and the next transaction of the
// same client may run on another (26000) or another client may prepare the
// same name on that one (42P05). describe_exec is worse: its unnamed
// statement, prepared in one round trip and executed in the next, may be
// another client's on the server connection of the second, which then
// answers silently with that statement's result (counted as wrong-answer).
// The modes that parse and execute in one round trip work. docs/testing.md
// records the figures.
func TestPgBouncerQueryExecModes(t *testing.T) {
	routingtest.SkipWithoutPgBouncer(t)
	c := routingtest.NewCluster(t, routingtest.ClusterOptions{Replicas: routingtest.NoReplicas})
	b := c.NewPgBouncer(t, routingtest.PgBouncerOptions{PoolSize: 2,
		Databases: []routingtest.PgBouncerDatabase{{Name: "app", Node: c.Primary()}}})
	ctx := context.Background()
	version, err := b.Version(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const clients, queries = 8, 50
	queriesSQL := []string{"SELECT $1::int + 1", "SELECT $1::int + 2", "SELECT $1::int * 3"}
	want := []func(int) int{func(j int) int { return j + 1 }, func(j int) int { return j + 2 }, func(j int) int { return j * 3 }}
	for _, mode := range []string{"cache_statement", "cache_describe", "describe_exec", "exec", "simple_protocol"} {
		t.Run(mode, func(t *testing.T) {
			var mu sync.Mutex
			failed := map[string]int{}
			var wg sync.WaitGroup
			for i := 0; i < clients; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					conn, err := pgx.Connect(ctx, b.ConnString("app")+"&default_query_exec_mode="+mode)
					if err != nil {
						t.Errorf("connect: %v", err)
						return
					}
					defer conn.Close(ctx)
					for j := 0; j < queries; j++ {
						var n int
						q := (i + j) % len(queriesSQL)
						err := conn.QueryRow(ctx, queriesSQL[q], j).Scan(&n)
						code := "other"
						if err == nil {
							if n == want[q](j) {
								continue
							}
							// Another client's statement answered.
							code = "wrong-answer"
						}
						var pgErr *pgconn.PgError
						if errors.As(err, &pgErr) {
							code = pgErr.Code
						}
						mu.Lock()
						failed[code]++
						mu.Unlock()
						if conn.IsClosed() {
							return
						}
					}
				}()
			}
			wg.Wait()
			total := 0
			var codes []string
			for code, n := range failed {
				total += n
				codes = append(codes, code+":"+strconv.Itoa(n))
			}
			sort.Strings(codes)
			t.Logf("PgBouncer %s, pool_mode=transaction, default_pool_size=2, %d clients x %d queries, %s: %d failed %v",
				version, clients, queries, mode, total, codes)
			switch mode {
			case "cache_describe", "exec", "simple_protocol":
				if total != 0 {
					t.Errorf("%s: %d of %d queries failed through PgBouncer %s: %v", mode, total, clients*queries, version, codes)
				}
			case "cache_statement", "describe_exec":
				// Both prepare in one round trip and execute in the next,
				// which may run on another server connection: an error, or
				// (describe_exec's unnamed statement) another client's
				// statement answering.
				if before121(version) && total == 0 {
					t.Errorf("%s: no failure through PgBouncer %s, which has no prepared statement support; has the test lost its concurrency?", mode, version)
				}
			}
		})
	}
}

// before121 reports whether PgBouncer version v ("1.18.0") is older than 1.21.
func before121(v string) bool {
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return false
	}
	major, err1 := strconv.Atoi(parts[0])
	minor, err2 := strconv.Atoi(parts[1])
	return err1 == nil && err2 == nil && (major < 1 || major == 1 && minor < 21)
}
