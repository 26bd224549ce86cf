// Package obstest holds the fixtures that the tests of the observability
// adapters (modules otel and prometheus) share: RoutedPools over a
// routingtest cluster whose nodes carry the cluster's names, the known
// sequence of calls whose metrics those tests compare, and discoverers for
// their membership tests and the status page's (discovery.go). The helpers any test
// may use (WaitFor, WaitState, ServedBy, SyncBuffer) are in routingtest.
package obstest

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgxroute/pgxroute"
	"github.com/pgxroute/pgxroute/routingtest"
)

// ReadSQL asks the server which port answered.
const ReadSQL = "SELECT inet_server_port()"

// NewRouted starts a primary and two replicas and a RoutedPool over them
// whose nodes are named as the cluster names them (primary, replica1 and
// replica2), balanced round-robin, probed every 100 ms, closed at the end of
// the test. edit, when not nil, edits the configuration first.
func NewRouted(tb testing.TB, edit func(*pgxroute.Config)) (*routingtest.Cluster, *pgxroute.RoutedPool) {
	tb.Helper()
	c := routingtest.NewCluster(tb, routingtest.ClusterOptions{Replicas: 2})
	cfg := pgxroute.Config{
		Groups: map[string][]pgxroute.Node{
			pgxroute.DefaultGroupName: {{Name: c.Primary().Name(), ConnString: c.Primary().ConnString()}},
		},
		Health: pgxroute.HealthConfig{Interval: 100 * time.Millisecond, Timeout: time.Second},
	}
	for _, r := range c.Replicas() {
		cfg.Replicas = append(cfg.Replicas, pgxroute.Node{Name: r.Name(), ConnString: r.ConnString()})
	}
	if edit != nil {
		edit(&cfg)
	}
	pool, err := pgxroute.New(context.Background(), cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(pool.Close)
	return c, pool
}

// NewFailoverPool starts a primary and one replica and a RoutedPool over them
// (nodes primary and replica1) that follows the cluster, probing each member
// once at the start and then only every 10 minutes: within a test, only a
// routed call's failure tells the router that the primary is gone, so that
// the call that finds it dead is the one sent again to the new primary
// (reason failover). The table obs_failover (id int) exists on both. edit,
// when not nil, edits the configuration first (a Tracer, say). It returns
// once both members were probed (timeline 1 each).
func NewFailoverPool(tb testing.TB, edit func(*pgxroute.Config)) (*routingtest.Cluster, *pgxroute.RoutedPool) {
	tb.Helper()
	c := routingtest.NewCluster(tb, routingtest.ClusterOptions{Replicas: 1})
	ctx := context.Background()
	// The table of the write, created behind the router's back so that the
	// primary's pool has no connection to find dead at the kill.
	conn, err := pgx.Connect(ctx, c.Primary().ConnString())
	if err != nil {
		tb.Fatal(err)
	}
	_, err = conn.Exec(ctx, "CREATE TABLE obs_failover (id int)")
	conn.Close(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	if err := c.WaitReplay(ctx); err != nil {
		tb.Fatal(err)
	}
	cfg := pgxroute.Config{
		Groups:   map[string][]pgxroute.Node{pgxroute.DefaultGroupName: {{Name: "primary", ConnString: c.Primary().ConnString()}}},
		Replicas: []pgxroute.Node{{Name: "replica1", ConnString: c.Replicas()[0].ConnString()}},
		Health:   pgxroute.HealthConfig{Interval: 10 * time.Minute, Timeout: time.Second, FailoverTimeout: time.Minute},
	}
	if edit != nil {
		edit(&cfg)
	}
	pool, err := pgxroute.New(ctx, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(pool.Close)
	routingtest.WaitFor(tb, "both members probed on timeline 1", func() bool {
		tl := map[string]uint32{}
		for _, m := range pool.Stat().Members {
			tl[m.Name] = m.Timeline
		}
		return tl["primary"] == 1 && tl["replica1"] == 1
	})
	return c, pool
}

// Failover fails over a pool from NewFailoverPool: it kills the primary,
// runs a write (which finds it dead, waits for a primary and is sent again),
// promotes replica1, and checks by the server's own account that the write
// ran on replica1.
func Failover(tb testing.TB, c *routingtest.Cluster, pool *pgxroute.RoutedPool) {
	tb.Helper()
	ctx := context.Background()
	r1 := c.Replicas()[0]
	if err := c.Kill(c.Primary()); err != nil {
		tb.Fatal(err)
	}
	done := make(chan error, 1)
	var port int
	go func() {
		done <- pool.QueryRow(ctx, "INSERT INTO obs_failover VALUES (1) RETURNING inet_server_port()").Scan(&port)
	}()
	if err := c.Promote(ctx, r1); err != nil {
		tb.Fatal(err)
	}
	if err := <-done; err != nil {
		tb.Fatalf("the write across the failover: %v", err)
	}
	if port != r1.Port() {
		tb.Fatalf("the write ran on port %d, want replica1's (%d)", port, r1.Port())
	}
}

// RunSequence runs the known sequence of calls of the adapters' tests on a
// pool from NewRouted: four reads without a scope (two on each replica), two
// writes without a scope, a scope's write and its sticky read; then, when
// kill is set, replica1 is killed and, once it is down, two more reads run
// (both on replica2). It checks, by the servers' own account, where each
// ran.
func RunSequence(tb testing.TB, c *routingtest.Cluster, pool *pgxroute.RoutedPool, kill bool) {
	tb.Helper()
	ctx := context.Background()
	got := map[string]int{}
	for range 4 {
		got[routingtest.ServedBy(tb, ctx, c, pool, ReadSQL)]++
	}
	if got["replica1"] != 2 || got["replica2"] != 2 {
		tb.Fatalf("reads served by %v, want two on each replica", got)
	}
	for _, sql := range []string{"CREATE TABLE IF NOT EXISTS obs_t (id int)", "INSERT INTO obs_t VALUES (1)"} {
		if _, err := pool.Exec(ctx, sql); err != nil {
			tb.Fatal(err)
		}
	}
	sctx := pgxroute.WithScope(ctx)
	if _, err := pool.Exec(sctx, "INSERT INTO obs_t VALUES (2)"); err != nil {
		tb.Fatal(err)
	}
	if n := routingtest.ServedBy(tb, sctx, c, pool, ReadSQL); n != "primary" {
		tb.Fatalf("sticky read served by %s, want primary", n)
	}
	if !kill {
		return
	}
	if err := c.Kill(c.Replicas()[0]); err != nil {
		tb.Fatal(err)
	}
	routingtest.WaitState(tb, pool, "replica1", pgxroute.StateDown)
	for range 2 {
		if n := routingtest.ServedBy(tb, ctx, c, pool, ReadSQL); n != "replica2" {
			tb.Fatalf("read after the kill served by %s, want replica2", n)
		}
	}
}
