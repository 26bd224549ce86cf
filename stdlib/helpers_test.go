package stdlib_test

import (
	"context"
	"database/sql"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgxroute/pgxroute"
	"github.com/pgxroute/pgxroute/routingtest"
	"github.com/pgxroute/pgxroute/stdlib"
)

// shared is one cluster (a primary and two replicas) for the tests that do
// not stop, kill or promote nodes. TestMain closes it.
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

// sharedCluster returns the shared cluster, starting it on first use.
func sharedCluster(t testing.TB) *routingtest.Cluster {
	t.Helper()
	routingtest.SkipWithoutPostgres(t, "")
	shared.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		shared.c, shared.err = routingtest.StartCluster(ctx, routingtest.ClusterOptions{})
		if shared.err == nil {
			shared.err = setupSchema(shared.c)
		}
	})
	if shared.err != nil {
		t.Fatalf("shared cluster: %v", shared.err)
	}
	return shared.c
}

// ownCluster starts a cluster for a test that kills or promotes nodes.
func ownCluster(t *testing.T) *routingtest.Cluster {
	t.Helper()
	c := routingtest.NewCluster(t, routingtest.ClusterOptions{})
	if err := setupSchema(c); err != nil {
		t.Fatal(err)
	}
	return c
}

// setupSchema creates the tables and functions the tests use and waits
// until every replica has them.
func setupSchema(c *routingtest.Cluster) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.Primary().ConnString())
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, `
CREATE TABLE items (id bigint PRIMARY KEY, note text, port int DEFAULT inet_server_port());
CREATE TABLE counter (n int NOT NULL);
INSERT INTO counter VALUES (0);
CREATE FUNCTION bump_counter() RETURNS int LANGUAGE sql AS 'UPDATE counter SET n = n + 1 RETURNING n';`)
	if err != nil {
		return err
	}
	return c.WaitReplay(ctx)
}

// ids hands out unique row ids across tests.
var ids atomic.Int64

func nextID() int64 { return ids.Add(1) }

// newPool makes a RoutedPool over the cluster, nodes named as the harness
// names them (p, r1, r2), closed at the end of the test.
func newPool(t testing.TB, c *routingtest.Cluster, cfg pgxroute.Config) *pgxroute.RoutedPool {
	t.Helper()
	cfg.Groups = map[string][]pgxroute.Node{pgxroute.DefaultGroupName: {{Name: c.Primary().Name(), ConnString: c.Primary().ConnString()}}}
	for _, r := range c.Replicas() {
		cfg.Groups[pgxroute.ReadGroupName] = append(cfg.Groups[pgxroute.ReadGroupName], pgxroute.Node{Name: r.Name(), ConnString: r.ConnString()})
	}
	p, err := pgxroute.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// openDB opens a routed *sql.DB over pool, closed at the end of the test
// (before the pool: cleanups run last first).
func openDB(t testing.TB, pool *pgxroute.RoutedPool) *sql.DB {
	t.Helper()
	db := stdlib.OpenDB(pool)
	t.Cleanup(func() { db.Close() })
	return db
}

// rowQuerier is what runs a one-row query: a *sql.DB, *sql.Tx, *sql.Conn
// or *sql.Stmt's wrapper.
type rowQuerier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// nodeOf returns the name of the node whose server answers port.
func nodeOf(t testing.TB, c *routingtest.Cluster, port int) string {
	t.Helper()
	for _, n := range c.Nodes() {
		if n.Port() == port {
			return n.Name()
		}
	}
	t.Fatalf("port %d is no node of the cluster", port)
	return ""
}

// servedBy runs query (which returns one int: a server's port) on q and
// returns the name of the node that answered it.
func servedBy(t testing.TB, c *routingtest.Cluster, q rowQuerier, ctx context.Context, query string, args ...any) string {
	t.Helper()
	var port int
	if err := q.QueryRowContext(ctx, query, args...).Scan(&port); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return nodeOf(t, c, port)
}

// isReplica reports whether name is one of the cluster's replicas.
func isReplica(c *routingtest.Cluster, name string) bool {
	for _, r := range c.Replicas() {
		if r.Name() == name {
			return true
		}
	}
	return false
}

// waitFor polls cond until it holds or a generous deadline passes (a
// liveness bound for a broken build, not a speed assertion).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > 60*time.Second {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("waited %v for %s", time.Since(start).Round(time.Millisecond), what)
}
