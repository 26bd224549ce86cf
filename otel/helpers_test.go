package otel_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pgxroute/pgxroute"
	"github.com/pgxroute/pgxroute/routingtest"
)

// newRouted starts a primary and two replicas and a RoutedPool over them
// whose nodes are named primary, replica1 and replica2, balanced round-robin,
// probed every 100 ms. edit, when not nil, edits the configuration first.
func newRouted(t *testing.T, edit func(*pgxroute.Config)) (*routingtest.Cluster, *pgxroute.RoutedPool) {
	t.Helper()
	c := routingtest.NewCluster(t, routingtest.ClusterOptions{Replicas: 2})
	cfg := pgxroute.Config{
		Groups: map[string][]pgxroute.Node{
			pgxroute.DefaultGroupName: {{Name: "primary", ConnString: c.Primary().ConnString()}},
		},
		Health: pgxroute.HealthConfig{Interval: 100 * time.Millisecond, Timeout: time.Second},
	}
	for i, r := range c.Replicas() {
		cfg.Replicas = append(cfg.Replicas, pgxroute.Node{Name: fmt.Sprintf("replica%d", i+1), ConnString: r.ConnString()})
	}
	if edit != nil {
		edit(&cfg)
	}
	pool, err := pgxroute.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return c, pool
}

// nodePorts maps the pool's node names to the servers' ports.
func nodePorts(c *routingtest.Cluster) map[string]int {
	m := map[string]int{"primary": c.Primary().Port()}
	for i, r := range c.Replicas() {
		m[fmt.Sprintf("replica%d", i+1)] = r.Port()
	}
	return m
}

// served runs sql (which must return inet_server_port()) through pool and
// returns the name of the node that answered, by the server's own account.
func served(t *testing.T, ctx context.Context, c *routingtest.Cluster, pool *pgxroute.RoutedPool, sql string) string {
	t.Helper()
	var port int
	if err := pool.QueryRow(ctx, sql).Scan(&port); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	for name, p := range nodePorts(c) {
		if p == port {
			return name
		}
	}
	return fmt.Sprintf("port %d", port)
}

// waitState waits (at most 15 s) until Stat shows the node in state s.
func waitState(t *testing.T, pool *pgxroute.RoutedPool, node string, s pgxroute.NodeState) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		for _, g := range pool.Stat().Groups {
			if n, ok := g.Node(node); ok && n.State == s {
				return
			}
		}
	}
	t.Fatalf("node %s never became %s", node, s)
}

// readSQL asks the server which port answered.
const readSQL = "SELECT inet_server_port()"

// runSequence runs the known sequence of calls of the tests: four reads
// without a scope (two on each replica), two writes without a scope, a
// scope's write and its sticky read; then, when kill is set, replica1 is
// killed and, once it is down, two more reads run (both on replica2). It
// checks where each ran.
func runSequence(t *testing.T, c *routingtest.Cluster, pool *pgxroute.RoutedPool, kill bool) {
	t.Helper()
	ctx := context.Background()
	got := map[string]int{}
	for range 4 {
		got[served(t, ctx, c, pool, readSQL)]++
	}
	if got["replica1"] != 2 || got["replica2"] != 2 {
		t.Fatalf("reads served by %v, want two on each replica", got)
	}
	for _, sql := range []string{"CREATE TABLE IF NOT EXISTS obs_t (id int)", "INSERT INTO obs_t VALUES (1)"} {
		if _, err := pool.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	sctx := pgxroute.WithScope(ctx)
	if _, err := pool.Exec(sctx, "INSERT INTO obs_t VALUES (2)"); err != nil {
		t.Fatal(err)
	}
	if n := served(t, sctx, c, pool, readSQL); n != "primary" {
		t.Fatalf("sticky read served by %s, want primary", n)
	}
	if !kill {
		return
	}
	if err := c.Kill(c.Replicas()[0]); err != nil {
		t.Fatal(err)
	}
	waitState(t, pool, "replica1", pgxroute.StateDown)
	for range 2 {
		if n := served(t, ctx, c, pool, readSQL); n != "replica2" {
			t.Fatalf("read after the kill served by %s, want replica2", n)
		}
	}
}

// sortedLines sorts lines for stable comparison.
func sortedLines(lines []string) string {
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}
