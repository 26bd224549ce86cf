package pgxroute_test

import (
	"context"
	"testing"
	"time"

	"github.com/pgxroute/pgxroute"
	"github.com/pgxroute/pgxroute/routingtest"
)

// bouncerMode is the pgx query exec mode that works through PgBouncer's
// transaction pooling before 1.21 (see docs/guide.md): no named prepared
// statements.
const bouncerMode = "&default_query_exec_mode=exec"

// TestPgBouncer runs the router through PgBouncer (Debian's pgbouncer, in
// transaction pooling mode) in front of each node, as users deploy it, and
// through one PgBouncer serving every node under its own database name.
// Through PgBouncer, inet_server_port() is the port of the server behind
// it: it proves where each statement ran.
func TestPgBouncer(t *testing.T) {
	routingtest.SkipWithoutPgBouncer(t)
	c := ownCluster(t, routingtest.ClusterOptions{})
	ctx := context.Background()
	names := nodeNames(c)
	// One PgBouncer per node; server_login_retry short so that a restarted
	// server is used again soon.
	var conns []string
	for _, n := range c.Nodes() {
		b := c.NewPgBouncer(t, routingtest.PgBouncerOptions{
			Databases: []routingtest.PgBouncerDatabase{{Name: "app", Node: n}},
			ExtraConf: []string{"server_login_retry = 1"},
		})
		conns = append(conns, b.ConnString("app")+bouncerMode)
	}
	cfg := func(mod func(*pgxroute.Config)) pgxroute.Config {
		cfg := pgxroute.Config{Primary: conns[0], Health: fastHealth, Replicas: []pgxroute.Node{
			{Name: "replica1", ConnString: conns[1]}, {Name: "replica2", ConnString: conns[2]}}}
		if mod != nil {
			mod(&cfg)
		}
		return cfg
	}

	t.Run("routing", func(t *testing.T) {
		pool := newPool(t, c, cfg(nil))
		scope := pgxroute.WithScope(ctx)
		got := map[string]int{}
		for range 10 {
			got[routingtest.ServedBy(t, scope, c, pool, "SELECT inet_server_port()")]++
		}
		if got["replica1"] != 5 || got["replica2"] != 5 {
			t.Errorf("reads through PgBouncer served by %v, want 5 and 5 on the replicas", got)
		}
		if n := routingtest.ServedBy(t, scope, c, pool, "INSERT INTO items (id) VALUES ("+itoa(nextID())+") RETURNING port"); n != "primary" {
			t.Errorf("write through PgBouncer ran on %s", n)
		}
		if n := routingtest.ServedBy(t, scope, c, pool, "SELECT inet_server_port()"); n != "primary" {
			t.Errorf("read after a write ran on %s, want the primary (sticky)", n)
		}
		// The probes (simple protocol) work through it: roles and positions
		// (waiting for every node's first probe, on a loaded machine).
		routingtest.WaitFor(t, "every node probed through PgBouncer", func() bool {
			for _, g := range pool.Stat().Groups {
				for _, n := range g.Nodes {
					if n.Role == "unknown" || n.Position == "" {
						return false
					}
				}
			}
			return true
		})
		for _, g := range pool.Stat().Groups {
			for _, n := range g.Nodes {
				if n.State != pgxroute.StateUp || n.Role == "unknown" || n.Position == "" {
					t.Errorf("%s/%s through PgBouncer: state %s role %s position %q", g.Name, n.Name, n.State, n.Role, n.Position)
				}
			}
		}
	})

	t.Run("one PgBouncer, several databases", func(t *testing.T) {
		b := c.NewPgBouncer(t, routingtest.PgBouncerOptions{Databases: []routingtest.PgBouncerDatabase{
			{Name: "app", Node: c.Primary()}, {Name: "app_r1", Node: c.Replicas()[0]}, {Name: "app_r2", Node: c.Replicas()[1]}}})
		pool := newPool(t, c, pgxroute.Config{Primary: b.ConnString("app") + bouncerMode, Health: fastHealth, Replicas: []pgxroute.Node{
			{ConnString: b.ConnString("app_r1") + bouncerMode}, {ConnString: b.ConnString("app_r2") + bouncerMode}}})
		got := map[string]int{}
		for range 10 {
			got[routingtest.ServedBy(t, pgxroute.WithScope(ctx), c, pool, "SELECT inet_server_port()")]++
		}
		if got["replica1"] != 5 || got["replica2"] != 5 {
			t.Errorf("reads served by %v, want 5 and 5", got)
		}
		// Three members (the read group lists every member of the cluster
		// it follows), each under a name of its own.
		st := pool.Stat()
		names := map[string]bool{}
		for _, m := range st.Members {
			names[m.Name] = true
		}
		if len(st.Members) != 3 || len(names) != 3 {
			t.Errorf("members %+v: want three distinct derived names", st.Members)
		}
	})

	t.Run("read-your-writes", func(t *testing.T) {
		pool := newPool(t, c, cfg(func(c *pgxroute.Config) { c.Stickiness = pgxroute.ReadYourWrites }))
		stale, onReplica := 0, 0
		for range 100 {
			scope := pgxroute.WithScope(ctx)
			id := nextID()
			if _, err := pool.Exec(scope, "INSERT INTO items (id, note) VALUES ($1, 'ryw')", id); err != nil {
				t.Fatal(err)
			}
			var port int
			err := pool.QueryRow(scope, "SELECT inet_server_port() FROM items WHERE id = $1", id).Scan(&port)
			if err != nil {
				stale++
				continue
			}
			if names[port] != "primary" {
				onReplica++
			}
		}
		t.Logf("through PgBouncer, read-your-writes: %d of 100 reads stale, %d served by a replica", stale, onReplica)
		if stale != 0 {
			t.Errorf("%d stale reads of the scope's own writes", stale)
		}
	})

	t.Run("replica killed behind its PgBouncer", func(t *testing.T) {
		pool := newPool(t, c, cfg(nil))
		victim := c.Replicas()[0]
		stop := make(chan struct{})
		load := startTimedReads(c, pool, 16, stop)
		time.Sleep(time.Second)
		if err := c.Kill(victim); err != nil {
			t.Fatal(err)
		}
		routingtest.WaitFor(t, "the replica behind PgBouncer to be avoided", func() bool {
			return nodeStat(pool, "read", "replica1").State != pgxroute.StateUp
		})
		time.Sleep(2 * time.Second)
		if err := c.Start(ctx, victim); err != nil {
			t.Fatal(err)
		}
		routingtest.WaitFor(t, "the replica to take calls again", func() bool {
			return nodeStat(pool, "read", "replica1").State == pgxroute.StateUp
		})
		time.Sleep(500 * time.Millisecond)
		close(stop)
		load.finished.Wait()
		st := nodeStat(pool, "read", "replica1")
		var retries int64
		g, _ := pool.Stat().Group("read")
		for _, n := range g.Nodes {
			retries += n.Retries
		}
		t.Logf("behind PgBouncer: reads done %d, failed %d, retried %d, served %v; slowest %v; ejections %d; last error %s",
			load.done.Load(), load.failed.Load(), retries, load.byNode, time.Duration(load.slowest.Load()).Round(time.Millisecond), st.Ejections, st.LastError)
		if n := load.failed.Load(); n != 0 {
			t.Fatalf("%d reads failed, e.g. %v", n, load.errs)
		}
		if counts, _ := countServed(t, c, pool, 20); counts["replica1"] == 0 {
			t.Errorf("the restarted replica takes no reads: %v", counts)
		}
	})
}

// TestPgBouncerDeadServer kills a replica's PostgreSQL behind a live
// PgBouncer, with the default health settings and pgx's cache_describe
// mode, under 16 goroutines that read with no deadline: with a PgBouncer
// per node, and with one PgBouncer serving every node. PgBouncer keeps a
// client's query while it tries to reach the server again, so the client
// sees silence, not a connection error: the router's probe, which goes
// through the same PgBouncer, goes unanswered, the node turns suspect, its
// calls are interrupted and the reads run again on the other replica. No
// read may fail; the slowest read is reported (docs/health.md).
func TestPgBouncerDeadServer(t *testing.T) {
	routingtest.SkipWithoutPgBouncer(t)
	const mode = "&default_query_exec_mode=cache_describe"
	for _, shared := range []bool{false, true} {
		name := "a PgBouncer per node"
		if shared {
			name = "one PgBouncer for every node"
		}
		t.Run(name, func(t *testing.T) {
			c := ownCluster(t, routingtest.ClusterOptions{})
			var conns []string
			if shared {
				b := c.NewPgBouncer(t, routingtest.PgBouncerOptions{Databases: []routingtest.PgBouncerDatabase{
					{Name: "app", Node: c.Primary()}, {Name: "app_r1", Node: c.Replicas()[0]}, {Name: "app_r2", Node: c.Replicas()[1]}}})
				conns = []string{b.ConnString("app") + mode, b.ConnString("app_r1") + mode, b.ConnString("app_r2") + mode}
			} else {
				for _, n := range c.Nodes() {
					b := c.NewPgBouncer(t, routingtest.PgBouncerOptions{Databases: []routingtest.PgBouncerDatabase{{Name: "app", Node: n}}})
					conns = append(conns, b.ConnString("app")+mode)
				}
			}
			pool := newPool(t, c, pgxroute.Config{Primary: conns[0], Replicas: []pgxroute.Node{
				{Name: "replica1", ConnString: conns[1]}, {Name: "replica2", ConnString: conns[2]}}})
			stop := make(chan struct{})
			load := startTimedReads(c, pool, 16, stop)
			time.Sleep(2 * time.Second)
			killed := time.Now()
			if err := c.Kill(c.Replicas()[0]); err != nil {
				t.Fatal(err)
			}
			avoided := routingtest.WaitFor(t, "the dead replica to be avoided", func() bool {
				return nodeStat(pool, "read", "replica1").State != pgxroute.StateUp
			})
			time.Sleep(5*time.Second - time.Since(killed))
			close(stop)
			load.finished.Wait()
			st := nodeStat(pool, "read", "replica1")
			t.Logf("FIGURES %s: reads done %d, failed %d, slowest %v, longest time with no read ending %v, avoided %v after the kill (%s, last error %q)",
				name, load.done.Load(), load.failed.Load(), time.Duration(load.slowest.Load()).Round(time.Millisecond),
				load.longestGap(), avoided.Round(time.Millisecond), st.State, st.LastError)
			if n := load.failed.Load(); n != 0 {
				t.Fatalf("%d reads failed, e.g. %v", n, load.errs)
			}
		})
	}
}
