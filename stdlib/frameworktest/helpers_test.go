package frameworktest_test

import (
	"context"
	"database/sql"
	_ "embed"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgxroute/pgxroute"
	"github.com/pgxroute/pgxroute/routingtest"
	"github.com/pgxroute/pgxroute/stdlib"
)

//go:embed authors/schema.sql
var schema string

// shared is one cluster (a primary and two replicas) for every test of the
// package. TestMain closes it.
var shared struct {
	once sync.Once
	c    *routingtest.Cluster
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.c != nil {
		shared.c.Close()
	}
	os.Exit(code)
}

// cluster returns the shared cluster, starting it and creating the schema
// on first use.
func cluster(t testing.TB) *routingtest.Cluster {
	t.Helper()
	routingtest.SkipWithoutPostgres(t, "")
	shared.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if shared.c, shared.err = routingtest.StartCluster(ctx, routingtest.ClusterOptions{}); shared.err != nil {
			return
		}
		var conn *pgx.Conn
		if conn, shared.err = pgx.Connect(ctx, shared.c.Primary().ConnString()); shared.err != nil {
			return
		}
		defer conn.Close(ctx)
		if _, shared.err = conn.Exec(ctx, schema); shared.err == nil {
			shared.err = shared.c.WaitReplay(ctx)
		}
	})
	if shared.err != nil {
		t.Fatalf("shared cluster: %v", shared.err)
	}
	return shared.c
}

// openDB returns a RoutedPool over the cluster (nodes named p, r1, r2 as
// the harness names them) and a routed *sql.DB over it, both closed at the
// end of the test.
func openDB(t testing.TB, c *routingtest.Cluster) (*pgxroute.RoutedPool, *sql.DB) {
	t.Helper()
	// ForgetUnscopedWrites: the tests write without a scope, wait for the
	// replicas to replay (replayed), then check that the frameworks' reads
	// reach a replica; the pool's own scope would send the first of them to
	// the primary until a probe shows the replay (tested in package stdlib).
	cfg := pgxroute.Config{ForgetUnscopedWrites: true, Groups: map[string][]pgxroute.Node{
		pgxroute.DefaultGroupName: {{Name: c.Primary().Name(), ConnString: c.Primary().ConnString()}},
	}}
	for _, r := range c.Replicas() {
		cfg.Groups[pgxroute.ReadGroupName] = append(cfg.Groups[pgxroute.ReadGroupName], pgxroute.Node{Name: r.Name(), ConnString: r.ConnString()})
	}
	pool, err := pgxroute.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	db := stdlib.OpenDB(pool)
	t.Cleanup(func() { db.Close() })
	return pool, db
}

// role says what the server on port is: "primary", "replica" or
// "unknown".
func role(c *routingtest.Cluster, port int) string {
	if port == c.Primary().Port() {
		return "primary"
	}
	for _, r := range c.Replicas() {
		if r.Port() == port {
			return "replica"
		}
	}
	return "unknown"
}

// replayed waits until the replicas have replayed the primary's writes, so
// that a read there finds them.
func replayed(t testing.TB, c *routingtest.Cluster) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.WaitReplay(ctx); err != nil {
		t.Fatal(err)
	}
}
