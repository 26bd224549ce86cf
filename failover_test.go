package pgxroute_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgxroute/pgxroute"
	"github.com/pgxroute/pgxroute/routingtest"
)

// load runs reads and writes through a RoutedPool until stopped, and
// records where each ran (the answering server's port) and how each failed.
type load struct {
	pool *pgxroute.RoutedPool
	stop chan struct{}
	wg   sync.WaitGroup

	mu           sync.Mutex
	reads        int
	readErrs     []error
	writes       []write
	neverSent    []error // failed writes that are not ErrOutcomeUnknown
	unknown      []error // failed writes whose outcome is unknown
	slowestWrite time.Duration
}

// write is one acknowledged write: its row id, the port of the server that
// answered and when.
type write struct {
	id   int64
	port int
	at   time.Time
}

// startLoad starts readers goroutines of `SELECT inet_server_port()` and
// writers goroutines of inserts into items, each call with a 30 s deadline.
func startLoad(pool *pgxroute.RoutedPool, readers, writers int) *load {
	l := &load{pool: pool, stop: make(chan struct{})}
	for range readers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for l.running() {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				var port int
				err := pool.QueryRow(ctx, "SELECT inet_server_port()").Scan(&port)
				cancel()
				l.mu.Lock()
				l.reads++
				if err != nil {
					l.readErrs = append(l.readErrs, err)
				}
				l.mu.Unlock()
			}
		}()
	}
	for range writers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for l.running() {
				id := nextID()
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				start := time.Now()
				var port int
				err := pool.QueryRow(ctx, "INSERT INTO items (id, note) VALUES ($1, 'failover') RETURNING port", id).Scan(&port)
				took := time.Since(start)
				cancel()
				l.mu.Lock()
				l.slowestWrite = max(l.slowestWrite, took)
				switch {
				case err == nil:
					l.writes = append(l.writes, write{id: id, port: port, at: time.Now()})
				case errors.Is(err, pgxroute.ErrOutcomeUnknown):
					l.unknown = append(l.unknown, err)
				default:
					l.neverSent = append(l.neverSent, err)
				}
				l.mu.Unlock()
			}
		}()
	}
	return l
}

func (l *load) running() bool {
	select {
	case <-l.stop:
		return false
	default:
		return true
	}
}

// end stops the load and waits for its calls.
func (l *load) end() {
	close(l.stop)
	l.wg.Wait()
}

// firstWriteOn returns the time of the first write that port answered after
// since, or the zero time.
func (l *load) firstWriteOn(port int, since time.Time) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, w := range l.writes {
		if w.port == port && w.at.After(since) {
			return w.at
		}
	}
	return time.Time{}
}

// writesOn returns the ids of the writes that port answered.
func (l *load) writesOn(port int) []int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	var ids []int64
	for _, w := range l.writes {
		if w.port == port {
			ids = append(ids, w.id)
		}
	}
	return ids
}

// check fails the test on a failed read or a failed never-sent write, and
// reports the counts.
func (l *load) check(t *testing.T) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	t.Logf("reads %d (failed %d); writes acknowledged %d, failed never-sent %d, failed outcome-unknown %d; slowest write %v",
		l.reads, len(l.readErrs), len(l.writes), len(l.neverSent), len(l.unknown), l.slowestWrite.Round(time.Millisecond))
	for i, err := range l.readErrs {
		if i < 5 {
			t.Errorf("read failed: %v", err)
		}
	}
	for i, err := range l.neverSent {
		if i < 5 {
			t.Errorf("write failed without ErrOutcomeUnknown (it was never sent, so it should have waited and run on the new primary): %v", err)
		}
	}
	for i, err := range l.unknown {
		if i < 3 {
			t.Logf("outcome unknown (allowed): %v", err)
		}
	}
}

// waitLoad lets the load run until it has made n more acknowledged writes
// on port (bounded).
func (l *load) waitWrites(t *testing.T, port, n int) {
	t.Helper()
	base := len(l.writesOn(port))
	routingtest.WaitFor(t, "writes on the new primary", func() bool { return len(l.writesOn(port)) >= base+n })
}

// server is a server the tests ask directly: a harness node or a Patroni
// member.
type server interface{ ConnString() string }

// ask runs sql on s itself, on a connection of its own, and scans its one
// row into dest, failing the test when s does not answer within 10 s.
func ask(t *testing.T, s server, dest any, sql string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.ConnString())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if err := conn.QueryRow(ctx, sql, args...).Scan(dest); err != nil {
		t.Fatal(err)
	}
}

// rowsOn counts the rows of ids that s holds, asking it directly.
func rowsOn(t *testing.T, s server, ids []int64) int {
	t.Helper()
	var n int
	ask(t, s, &n, "SELECT count(*) FROM items WHERE id = ANY($1)", ids)
	return n
}

// failoverPool is a RoutedPool over c's primary and replicas, named p, r1,
// r2 as the harness names them.
func failoverPool(t *testing.T, c *routingtest.Cluster, cfg pgxroute.Config) *pgxroute.RoutedPool {
	t.Helper()
	cfg.Groups = map[string][]pgxroute.Node{pgxroute.DefaultGroupName: {{Name: c.Primary().Name(), ConnString: c.Primary().ConnString()}}}
	for _, r := range c.Replicas() {
		cfg.Groups[pgxroute.ReadGroupName] = append(cfg.Groups[pgxroute.ReadGroupName], pgxroute.Node{Name: r.Name(), ConnString: r.ConnString()})
	}
	return newPool(t, c, cfg)
}

// TestFailoverUnderLoad kills the primary under 16 readers and 4 writers,
// promotes r1 and repoints r2 (rewinding it when it got ahead of r1): no read fails, no never-sent write fails
// (each waited and ran on r1), writes resume on r1, and every write r1
// acknowledged is on r1.
func TestFailoverUnderLoad(t *testing.T) {
	c := ownCluster(t, routingtest.ClusterOptions{})
	ctx := context.Background()
	old := c.Primary()
	r1, r2 := c.Replicas()[0], c.Replicas()[1]
	pool := failoverPool(t, c, pgxroute.Config{})
	l := startLoad(pool, 16, 4)
	l.waitWrites(t, old.Port(), 50)

	killed := time.Now()
	if err := c.Kill(old); err != nil {
		t.Fatal(err)
	}
	if err := c.Promote(ctx, r1); err != nil {
		t.Fatal(err)
	}
	promoted := time.Now()
	l.waitWrites(t, r1.Port(), 50)
	// Under load r2 may have received WAL of the dead primary that r1 had
	// not when it was promoted: Rejoin rewinds it (pg_rewind) when needed.
	if err := c.Rejoin(ctx, r2, r1); err != nil {
		t.Fatal(err)
	}
	l.waitWrites(t, r1.Port(), 50)
	l.end()
	l.check(t)

	first := l.firstWriteOn(r1.Port(), killed)
	t.Logf("FIGURES harness-failover: kill→promoted %v, kill→first write on r1 %v, promoted→first write %v",
		promoted.Sub(killed).Round(time.Millisecond), first.Sub(killed).Round(time.Millisecond), first.Sub(promoted).Round(time.Millisecond))
	if ids := l.writesOn(r1.Port()); rowsOn(t, r1, ids) != len(ids) {
		t.Errorf("r1 acknowledged %d writes but holds %d of them", len(ids), rowsOn(t, r1, ids))
	}
	st := pool.Stat()
	if st.Primary != r1.Name() || st.PrimaryChanges != 1 {
		t.Errorf("Stat: primary %q after %d changes, want %q after 1", st.Primary, st.PrimaryChanges, r1.Name())
	}
	// r2 streams from r1 on r1's timeline; r1 reports its new timeline.
	routingtest.WaitFor(t, "r2 seen on r1's timeline", func() bool {
		st := pool.Stat()
		tl := map[string]uint32{}
		for _, m := range st.Members {
			tl[m.Name] = m.Timeline
		}
		ok := tl[r1.Name()] >= 2 && tl[r2.Name()] == tl[r1.Name()]
		if !ok {
			t.Logf("timelines %v", tl)
		}
		return ok
	})
	// Reads go to r2 only now (r1 is the primary; it took reads only as
	// the fallback while r2 restarted): ask the servers. The writers wrote
	// without a scope, so the pool's own scope sends unscoped reads to r1
	// until r2 is known to have replayed the last write: a few probes.
	routingtest.WaitFor(t, "r2 re-admitted", func() bool {
		for _, m := range pool.Stat().Members {
			if m.Name == r2.Name() {
				return m.State == pgxroute.StateUp
			}
		}
		return false
	})
	routingtest.WaitFor(t, "an unscoped read on r2 (the pool's last write replayed there)", func() bool {
		return routingtest.ServedBy(t, ctx, c, pool, "SELECT inet_server_port()") == r2.Name()
	})
	for range 10 {
		if got := routingtest.ServedBy(t, ctx, c, pool, "SELECT inet_server_port()"); got != r2.Name() {
			t.Fatalf("read served by %s, want %s (the only replica)", got, r2.Name())
		}
	}
}

// TestSwitchoverHarness switches over to r1 (stop the primary, promote r1,
// repoint r2, rejoin the old primary as a replica) under load: no read
// fails, no never-sent write fails, and the old primary takes reads again
// once it is a replica.
func TestSwitchoverHarness(t *testing.T) {
	c := ownCluster(t, routingtest.ClusterOptions{})
	ctx := context.Background()
	old := c.Primary()
	r1 := c.Replicas()[0]
	pool := failoverPool(t, c, pgxroute.Config{})
	l := startLoad(pool, 16, 4)
	l.waitWrites(t, old.Port(), 50)
	start := time.Now()
	if err := c.Switchover(ctx, r1); err != nil {
		t.Fatal(err)
	}
	done := time.Now()
	l.waitWrites(t, r1.Port(), 50)
	l.end()
	l.check(t)
	first := l.firstWriteOn(r1.Port(), start)
	t.Logf("FIGURES harness-switchover: switchover took %v, start→first write on r1 %v", done.Sub(start).Round(time.Millisecond), first.Sub(start).Round(time.Millisecond))
	if ids := l.writesOn(old.Port()); rowsOn(t, r1, ids) != len(ids) {
		t.Errorf("the old primary acknowledged %d writes; r1 holds only %d of them after a clean switchover", len(ids), rowsOn(t, r1, ids))
	}
	routingtest.WaitFor(t, "the old primary taking reads as a replica", func() bool {
		return routingtest.ServedBy(t, ctx, c, pool, "SELECT inet_server_port()") == old.Name()
	})
}

// TestSplitBrain starts the old primary again as a primary after r1 was
// promoted: it is on the lower timeline, so no write and no read reaches
// it, and Stat names it.
func TestSplitBrain(t *testing.T) {
	c := ownCluster(t, routingtest.ClusterOptions{})
	ctx := context.Background()
	old := c.Primary()
	r1, r2 := c.Replicas()[0], c.Replicas()[1]
	pool := failoverPool(t, c, pgxroute.Config{Health: pgxroute.HealthConfig{Interval: 100 * time.Millisecond}})
	if err := c.Kill(old); err != nil {
		t.Fatal(err)
	}
	if err := c.Promote(ctx, r1); err != nil {
		t.Fatal(err)
	}
	if err := c.Repoint(ctx, r2, r1); err != nil {
		t.Fatal(err)
	}
	routingtest.WaitFor(t, "r1 as the primary", func() bool { return pool.Stat().Primary == r1.Name() })
	if err := c.Start(ctx, old); err != nil { // a second primary, on timeline 1
		t.Fatal(err)
	}
	routingtest.WaitFor(t, "the old primary seen as stale", func() bool {
		return slices.Equal(pool.Stat().StalePrimaries, []string{old.Name()})
	})
	l := startLoad(pool, 8, 4)
	l.waitWrites(t, r1.Port(), 100)
	l.end()
	l.check(t)
	if n := len(l.writesOn(old.Port())); n != 0 {
		t.Errorf("%d writes ran on the stale primary", n)
	}
	// Ask the stale primary itself: none of the load's rows is there.
	var ids []int64
	for _, w := range l.writes {
		ids = append(ids, w.id)
	}
	if n := rowsOn(t, old, ids); n != 0 {
		t.Errorf("the stale primary holds %d of the load's rows", n)
	}
	for range 20 {
		if got := routingtest.ServedBy(t, ctx, c, pool, "SELECT inet_server_port()"); got == old.Name() {
			t.Fatalf("a read ran on the stale primary")
		}
	}
	if st := pool.Stat(); st.Primary != r1.Name() {
		t.Errorf("Stat.Primary = %q, want %q", st.Primary, r1.Name())
	}
}

// TestWaitForPrimary: a write while no primary exists waits and succeeds on
// the member promoted within FailoverTimeout; with none, it fails after
// FailoverTimeout with ErrNoPrimary; with a shorter context deadline, at
// the deadline.
func TestWaitForPrimary(t *testing.T) {
	c := ownCluster(t, routingtest.ClusterOptions{})
	ctx := context.Background()
	old := c.Primary()
	r1 := c.Replicas()[0]
	pool := failoverPool(t, c, pgxroute.Config{Health: pgxroute.HealthConfig{FailoverTimeout: time.Minute}})
	if err := c.Kill(old); err != nil {
		t.Fatal(err)
	}
	routingtest.WaitFor(t, "the primary lost", func() bool {
		_, err := pool.Route(ctx, "INSERT INTO items (id) VALUES (1)")
		return errors.Is(err, pgxroute.ErrNoPrimary)
	})
	done := make(chan error, 1)
	var port int
	go func() {
		done <- pool.QueryRow(ctx, "INSERT INTO items (id, note) VALUES ($1, 'waited') RETURNING port", nextID()).Scan(&port)
	}()
	select {
	case err := <-done:
		t.Fatalf("the write ended before any primary existed: %v", err)
	case <-time.After(300 * time.Millisecond): // not an assertion of speed: the write must still be waiting
	}
	if err := c.Promote(ctx, r1); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("the waiting write failed: %v", err)
	}
	if port != r1.Port() {
		t.Errorf("the waiting write ran on port %d, want r1 (%d)", port, r1.Port())
	}

	// No primary at all now: the write fails with ErrNoPrimary.
	short := failoverPool(t, c, pgxroute.Config{Health: pgxroute.HealthConfig{FailoverTimeout: 500 * time.Millisecond}})
	if err := c.Kill(r1); err != nil {
		t.Fatal(err)
	}
	_, err := short.Exec(ctx, "INSERT INTO items (id) VALUES ($1)", nextID())
	if !errors.Is(err, pgxroute.ErrNoPrimary) || !errors.Is(err, pgxroute.ErrNoHealthyNode) {
		t.Errorf("write with no primary: %v, want ErrNoPrimary and ErrNoHealthyNode", err)
	}
	if errors.Is(err, pgxroute.ErrOutcomeUnknown) {
		t.Errorf("write with no primary says its outcome is unknown: %v", err)
	}
	// A context deadline shorter than FailoverTimeout ends the wait (once
	// the pool knows r1 is gone: a write on a connection whose server died
	// unseen has an unknown outcome instead).
	routingtest.WaitFor(t, "r1 lost", func() bool { return pool.Stat().Primary == "" })
	dctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	_, err = pool.Exec(dctx, "INSERT INTO items (id) VALUES ($1)", nextID())
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, pgxroute.ErrNoPrimary) {
		t.Errorf("write with a short deadline: %v, want context.DeadlineExceeded and ErrNoPrimary", err)
	}
	// Negative FailoverTimeout: no wait at all.
	now := failoverPool(t, c, pgxroute.Config{Health: pgxroute.HealthConfig{FailoverTimeout: -1}})
	routingtest.WaitFor(t, "no primary seen", func() bool { return now.Stat().Primary == "" })
	if _, err := now.Exec(ctx, "INSERT INTO items (id) VALUES ($1)", nextID()); !errors.Is(err, pgxroute.ErrNoPrimary) {
		t.Errorf("write with FailoverTimeout < 0: %v, want ErrNoPrimary", err)
	}
}

// TestStaticRoles keeps today's routing: after the primary dies and r1 is
// promoted, writes still go to the configured primary (and fail), reads
// still go to the read group, and Stat reports the mismatch.
func TestStaticRoles(t *testing.T) {
	c := ownCluster(t, routingtest.ClusterOptions{})
	ctx := context.Background()
	old := c.Primary()
	r1 := c.Replicas()[0]
	pool := failoverPool(t, c, pgxroute.Config{StaticRoles: true})
	if err := c.Kill(old); err != nil {
		t.Fatal(err)
	}
	if err := c.Promote(ctx, r1); err != nil {
		t.Fatal(err)
	}
	routingtest.WaitFor(t, "r1's role mismatch reported", func() bool {
		st := pool.Stat()
		g, _ := st.Group(pgxroute.ReadGroupName)
		n, _ := g.Node(r1.Name())
		return n.RoleMismatch
	})
	_, err := pool.Exec(ctx, "INSERT INTO items (id) VALUES ($1)", nextID())
	var ne *pgxroute.NodeError
	if !errors.As(err, &ne) || ne.Node != old.Name() {
		t.Errorf("write with static roles: %v, want the configured primary's error", err)
	}
	if errors.Is(err, pgxroute.ErrNoPrimary) {
		t.Errorf("static roles waited for a primary: %v", err)
	}
	seen := map[string]bool{}
	for range 10 {
		seen[routingtest.ServedBy(t, ctx, c, pool, "SELECT inet_server_port()")] = true
	}
	if seen[old.Name()] || len(seen) == 0 {
		t.Errorf("reads served by %v", seen)
	}
	if g, _ := pool.Stat().Group(pgxroute.DefaultGroupName); len(g.Nodes) != 1 {
		t.Errorf("static default group lists %d nodes, want the configured 1", len(g.Nodes))
	}
}

// TestReadYourWritesAcrossFailover: a scope that wrote on the old primary
// and on the new one never reads from a replica that has not replayed its
// writes, on either timeline.
func TestReadYourWritesAcrossFailover(t *testing.T) {
	c := ownCluster(t, routingtest.ClusterOptions{})
	ctx := context.Background()
	old := c.Primary()
	r1, r2 := c.Replicas()[0], c.Replicas()[1]
	pool := failoverPool(t, c, pgxroute.Config{Stickiness: pgxroute.ReadYourWrites})
	var stale, reads int
	check := func(sctx context.Context, id int64) {
		var n int
		if err := pool.QueryRow(sctx, "SELECT count(*) FROM items WHERE id = $1", id).Scan(&n); err != nil {
			t.Fatalf("read of the scope's write: %v", err)
		}
		reads++
		if n != 1 {
			stale++
		}
	}
	scope := pgxroute.WithScope(ctx)
	// insert writes a row of the scope, again under a new id when the
	// outcome of the first attempt is unknown (its connection died with
	// the primary).
	insert := func() int64 {
		for range 3 {
			id := nextID()
			_, err := pool.Exec(scope, "INSERT INTO items (id) VALUES ($1)", id)
			if err == nil {
				return id
			}
			if !errors.Is(err, pgxroute.ErrOutcomeUnknown) {
				t.Fatal(err)
			}
			t.Logf("outcome unknown (allowed): %v", err)
		}
		t.Fatal("three writes in a row with an unknown outcome")
		return 0
	}
	var before []int64
	for range 20 {
		id := insert()
		before = append(before, id)
		check(scope, id)
	}
	if err := c.WaitReplay(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Kill(old); err != nil {
		t.Fatal(err)
	}
	if err := c.Promote(ctx, r1); err != nil {
		t.Fatal(err)
	}
	// r2 still follows the dead primary's timeline for a while; the scope
	// writes on r1 and reads at once, then again after r2 follows r1.
	for range 20 {
		check(scope, insert())
	}
	if err := c.Repoint(ctx, r2, r1); err != nil {
		t.Fatal(err)
	}
	for range 20 {
		check(scope, insert())
	}
	for _, id := range before {
		check(scope, id)
	}
	t.Logf("%d reads of the scope's own writes, %d stale", reads, stale)
	if stale != 0 {
		t.Errorf("%d of %d reads of the scope's own writes were stale", stale, reads)
	}
}

// BenchmarkRouteFollowing is the routing decision of a cached statement on a
// pool that follows the cluster's roles (the default) against the same pool
// with static roles, over the shared cluster.
func BenchmarkRouteFollowing(b *testing.B) {
	c := sharedCluster(b)
	scope := pgxroute.WithScope(context.Background())
	for _, static := range []bool{false, true} {
		name := "following"
		if static {
			name = "static"
		}
		p := newPool(b, c, pgxroute.Config{StaticRoles: static})
		for _, sql := range []string{"SELECT id, note FROM items WHERE id = $1", "UPDATE items SET note = $2 WHERE id = $1"} {
			b.Run(name+"/"+sql[:6], func(b *testing.B) {
				if _, err := p.Route(scope, sql); err != nil {
					b.Fatal(err)
				}
				b.ReportAllocs()
				for b.Loop() {
					p.Route(scope, sql)
				}
			})
		}
	}
}

// TestRowThenFatal: a replica that sends a QueryRow's row and then ends the
// statement with FATAL (as a server shutting down does: 57P01) has not given
// the caller anything yet: the read runs again on the other replica, and
// Scan returns that attempt's row.
func TestRowThenFatal(t *testing.T) {
	c := ownCluster(t, routingtest.ClusterOptions{})
	ctx := context.Background()
	r1 := c.Replicas()[0]
	conn, err := pgx.Connect(ctx, c.Primary().ConnString())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	// die_on ends its own backend on the server listening on port p.
	if _, err := conn.Exec(ctx, `CREATE FUNCTION die_on(p int) RETURNS int LANGUAGE plpgsql AS
		'BEGIN IF inet_server_port() = p THEN PERFORM pg_terminate_backend(pg_backend_pid()); PERFORM pg_sleep(1); END IF; RETURN 2; END'`); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitReplay(ctx); err != nil {
		t.Fatal(err)
	}
	pool := failoverPool(t, c, pgxroute.Config{})
	for range 10 {
		var v int
		if err := pool.QueryRow(ctx, "SELECT 1 AS v UNION ALL SELECT die_on($1)", r1.Port()).Scan(&v); err != nil {
			t.Fatalf("QueryRow whose first attempt sent its row, then FATAL: %v", err)
		}
		if v != 1 {
			t.Fatalf("scanned %d, want the first row (1)", v)
		}
	}
	g, _ := pool.Stat().Group(pgxroute.ReadGroupName)
	if n, _ := g.Node(r1.Name()); n.Retries == 0 {
		t.Errorf("no read was retried away from %s: the test did not exercise the case", r1.Name())
	}
}
