package pgxroute_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgxroute/pgxroute"
	"github.com/pgxroute/pgxroute/routingtest"
)

// fastHealth probes often, so that the tests spend little time waiting.
var fastHealth = pgxroute.HealthConfig{Interval: 100 * time.Millisecond, Timeout: time.Second}

// ownCluster starts a cluster for a test that stops, kills or delays nodes,
// with the test tables.
func ownCluster(t *testing.T, opts routingtest.ClusterOptions) *routingtest.Cluster {
	t.Helper()
	c := routingtest.NewCluster(t, opts)
	if err := setupSchema(c); err != nil {
		t.Fatal(err)
	}
	return c
}

func nodeStat(p *pgxroute.RoutedPool, group, node string) pgxroute.NodeStat {
	g, _ := p.Stat().Group(group)
	n, _ := g.Node(node)
	return n
}

// readLoad runs reads from n goroutines until stop is closed, counting what
// the servers answered.
type readLoad struct {
	attempted, failed atomic.Int64
	mu                sync.Mutex
	byNode            map[string]int
	errs              []error
}

func runReads(t *testing.T, c *routingtest.Cluster, pool *pgxroute.RoutedPool, workers int, stop chan struct{}) (*readLoad, *sync.WaitGroup) {
	names := nodeNames(c)
	l := &readLoad{byNode: map[string]int{}}
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				l.attempted.Add(1)
				var port int
				err := pool.QueryRow(context.Background(), "SELECT inet_server_port() FROM marker").Scan(&port)
				l.mu.Lock()
				if err != nil {
					l.failed.Add(1)
					if len(l.errs) < 5 {
						l.errs = append(l.errs, err)
					}
				} else {
					l.byNode[names[port]]++
				}
				l.mu.Unlock()
			}
		}()
	}
	return l, &wg
}

func TestKillReplicaDuringReads(t *testing.T) {
	c := ownCluster(t, routingtest.ClusterOptions{})
	events := &healthEvents{}
	pool := newPool(t, c, pgxroute.Config{Health: fastHealth, Tracer: events})
	victim := c.Replicas()[0]
	stop := make(chan struct{})
	load, wg := runReads(t, c, pool, 32, stop)

	time.Sleep(time.Second)
	if err := c.Kill(victim); err != nil {
		t.Fatal(err)
	}
	ejectedAfter := routingtest.WaitFor(t, "the killed replica to be ejected", func() bool {
		return nodeStat(pool, "read", victim.Name()).State == pgxroute.StateDown
	})
	time.Sleep(2 * time.Second)
	if err := c.Start(context.Background(), victim); err != nil {
		t.Fatal(err)
	}
	readmittedAfter := routingtest.WaitFor(t, "the restarted replica to be re-admitted", func() bool {
		return nodeStat(pool, "read", victim.Name()).State == pgxroute.StateUp
	})
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()

	st := nodeStat(pool, "read", victim.Name())
	var retries int64
	for _, n := range pool.Stat().Groups[1].Nodes {
		retries += n.Retries
	}
	t.Logf("reads attempted %d, failed %d, retried %d, served %v; ejected %v after the kill (%d ejections), re-admitted %v after the start",
		load.attempted.Load(), load.failed.Load(), retries, load.byNode, ejectedAfter.Round(time.Millisecond), st.Ejections, readmittedAfter.Round(time.Millisecond))
	if load.failed.Load() != 0 {
		t.Fatalf("%d reads failed, e.g. %v", load.failed.Load(), load.errs)
	}
	if st.Ejections < 1 || st.Readmissions < 1 {
		t.Fatalf("ejections %d, readmissions %d", st.Ejections, st.Readmissions)
	}
	if strings.Contains(st.LastError, "password") {
		t.Fatalf("last error shows a password: %s", st.LastError)
	}
	// The HealthTracer saw the ejection and the re-admission of the victim,
	// in that order, and nothing of the other nodes.
	got := events.of(victim.Name())
	if len(got) < 2 || got[0] != pgxroute.EventEjected || got[len(got)-1] != pgxroute.EventReadmitted {
		t.Errorf("health events of %s: %v, want ejected ... readmitted", victim.Name(), got)
	}
	for _, n := range c.Nodes() {
		if n != victim && len(events.of(n.Name())) != 0 {
			t.Errorf("health events of %s, which stayed up: %v", n.Name(), events.of(n.Name()))
		}
	}
	// Back in rotation: the restarted replica answers reads again.
	counts, _ := countServed(t, c, pool, 20)
	if counts[victim.Name()] == 0 {
		t.Fatalf("restarted replica takes no reads: %v", counts)
	}
}

func TestStoppedReplicaBeforeDialCostsNoRead(t *testing.T) {
	c := ownCluster(t, routingtest.ClusterOptions{})
	if err := c.Stop(c.Replicas()[0]); err != nil {
		t.Fatal(err)
	}
	// One probe at start, then none: the passive signal and the retry protect the reads.
	pool := newPool(t, c, pgxroute.Config{Health: pgxroute.HealthConfig{Interval: time.Hour}})
	counts, _ := countServed(t, c, pool, 20)
	if counts["replica2"] != 20 {
		t.Fatalf("reads served by %v, want all 20 by replica2", counts)
	}
	st := nodeStat(pool, "read", "replica1")
	if st.State != pgxroute.StateDown || st.Retries == 0 || st.LastError == "" {
		t.Fatalf("stopped replica: state %v, retries %d, last error %q", st.State, st.Retries, st.LastError)
	}
	t.Logf("refused replica: %d retries, last error %q", st.Retries, st.LastError)
}

func TestPrimaryDown(t *testing.T) {
	c := ownCluster(t, routingtest.ClusterOptions{})
	// FailoverTimeout < 0: a write does not wait for a new primary.
	noWait := fastHealth
	noWait.FailoverTimeout = -1
	pool := newPool(t, c, pgxroute.Config{Health: noWait})
	ctx := context.Background()
	if err := c.Stop(c.Primary()); err != nil {
		t.Fatal(err)
	}
	// Reads keep succeeding on the replicas.
	counts, _ := countServed(t, c, pool, 10)
	if counts["primary"] != 0 || counts["replica1"]+counts["replica2"] != 10 {
		t.Fatalf("reads with the primary down: %v", counts)
	}
	// Writes fail fast, with an error naming the node.
	start := time.Now()
	_, err := pool.Exec(ctx, "INSERT INTO items (id) VALUES ($1)", nextID())
	took := time.Since(start)
	var ne *pgxroute.NodeError
	// A NodeError when the write tried the primary; ErrNoPrimary (naming
	// every member) when the prober had ejected it first.
	named := errors.As(err, &ne) && ne.Group == "default" && ne.Node == primaryName(c)
	if !(named || errors.Is(err, pgxroute.ErrNoPrimary)) || !strings.Contains(err.Error(), primaryName(c)) {
		t.Fatalf("write with the primary down: %v, want an error naming the primary", err)
	}
	t.Logf("write failed in %v: %v", took.Round(time.Microsecond), err)
	// Ping reaches every node and names the one that failed.
	if err := pool.Ping(ctx); err == nil || !strings.Contains(err.Error(), primaryName(c)) || strings.Contains(err.Error(), "replica1") {
		t.Fatalf("Ping with the primary down: %v, want an error naming the primary alone", err)
	}
	if err := c.Start(ctx, c.Primary()); err != nil {
		t.Fatal(err)
	}
	routingtest.WaitFor(t, "writes to succeed again", func() bool {
		_, err := pool.Exec(ctx, "INSERT INTO items (id) VALUES ($1)", nextID())
		return err == nil
	})
}

// steadyWrites inserts a row on c's primary every 50 ms until the test ends.
func steadyWrites(t *testing.T, c *routingtest.Cluster) {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), c.Primary().ConnString())
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
				conn.Exec(context.Background(), "INSERT INTO items (id) VALUES ($1)", nextID())
			}
		}
	}()
	t.Cleanup(func() {
		close(stop)
		<-done
		conn.Close(context.Background())
	})
}

func TestLaggingReplicas(t *testing.T) {
	c := ownCluster(t, routingtest.ClusterOptions{ApplyDelay: []time.Duration{0, 3 * time.Second}})
	health := fastHealth
	health.MaxReplicaLag = 500 * time.Millisecond
	pool := newPool(t, c, pgxroute.Config{Health: health})
	// Steady writes keep WAL flowing, so the delayed replica always has
	// received WAL it has not applied yet.
	steadyWrites(t, c)

	routingtest.WaitFor(t, "replica2 to lag", func() bool { return nodeStat(pool, "read", "replica2").State == pgxroute.StateLagging })
	st := nodeStat(pool, "read", "replica2")
	t.Logf("replica2: state %v, lag %v, %d bytes", st.State, st.Lag, st.LagBytes)
	counts, _ := countServed(t, c, pool, 20)
	if counts["replica1"] != 20 {
		t.Fatalf("reads with replica2 lagging: %v, want all on replica1", counts)
	}

	t.Run("every replica lags", func(t *testing.T) {
		c := ownCluster(t, routingtest.ClusterOptions{ApplyDelay: []time.Duration{3 * time.Second, 3 * time.Second}})
		pool := newPool(t, c, pgxroute.Config{Health: health})
		failRead := newPool(t, c, pgxroute.Config{Health: health, NoHealthyRead: pgxroute.FailRead})
		steadyWrites(t, c)
		routingtest.WaitFor(t, "both replicas to lag", func() bool {
			g, _ := pool.Stat().Group("read")
			g2, _ := failRead.Stat().Group("read")
			return g.AllLagging && g2.AllLagging
		})
		r, err := pool.Route(context.Background(), whoami)
		if err != nil || r.Reason != pgxroute.ReasonReadLagging || r.Group != "default" {
			t.Fatalf("route with every replica lagging: %v, %v", r, err)
		}
		if got := routingtest.ServedBy(t, context.Background(), c, pool, whoami); got != "primary" {
			t.Fatalf("read with every replica lagging served by %s, want primary", got)
		}
		// With fallback off, the lagging replicas still serve rather than fail.
		if got := routingtest.ServedBy(t, context.Background(), c, failRead, whoami); !strings.HasPrefix(got, "replica") {
			t.Fatalf("FailRead with every replica lagging: served by %s", got)
		}
	})
}

func TestReadOnlyViolationSafetyNet(t *testing.T) {
	c := sharedCluster(t)
	pool := newPool(t, c, pgxroute.Config{})
	ctx := context.Background()
	const sql = "SELECT bump_counter()"
	r, err := pool.Route(ctx, sql)
	if err != nil || r.Group != "read" {
		t.Fatalf("bump_counter() not classified a read first: %v %v", r, err)
	}
	var before, after int
	if err := pool.QueryRow(pgxroute.WithPrimary(ctx), "SELECT n FROM counter").Scan(&before); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := pool.QueryRow(ctx, sql).Scan(&n); err != nil {
		t.Fatalf("the misrouted write reached the caller: %v", err)
	}
	if err := pool.QueryRow(pgxroute.WithPrimary(ctx), "SELECT n FROM counter").Scan(&after); err != nil {
		t.Fatal(err)
	}
	if after != before+1 || n != after {
		t.Fatalf("counter %d -> %d, function returned %d: want exactly one run on the primary", before, after, n)
	}
	r, err = pool.Route(ctx, sql)
	if err != nil || r.Group != "default" || r.Reason != pgxroute.ReasonWriteNoScope || !strings.Contains(r.Statement.Reason, "25006") {
		t.Fatalf("next route of the same SQL: %v %v, want the default group, remembered as a write", r, err)
	}
	// Exec takes the same net.
	if _, err := pool.Exec(ctx, "SELECT bump_counter(), 1"); err != nil {
		t.Fatalf("Exec: %v", err)
	}
	// An explicit bind group is never overridden.
	_, err = pool.Exec(pgxroute.WithReplica(ctx), "SELECT bump_counter(), 2")
	if err == nil || !strings.Contains(err.Error(), "25006") {
		t.Fatalf("WithReplica: %v, want the replica's 25006", err)
	}
}

func TestRoleChangeAndOnRoute(t *testing.T) {
	c := ownCluster(t, routingtest.ClusterOptions{})
	var logs bytes.Buffer
	var mu sync.Mutex
	logger := slog.New(slog.NewTextHandler(&lockedWriter{w: &logs, mu: &mu}, nil))
	var routes atomic.Int64
	pool := newPool(t, c, pgxroute.Config{Health: fastHealth, Logger: logger, StaticRoles: true,
		OnRoute: func(ctx context.Context, r pgxroute.Route) { routes.Add(1) }})
	if err := c.Promote(context.Background(), c.Replicas()[1]); err != nil {
		t.Fatal(err)
	}
	routingtest.WaitFor(t, "the promoted replica to show as a role mismatch", func() bool {
		return nodeStat(pool, "read", "replica2").RoleMismatch
	})
	if st := nodeStat(pool, "read", "replica2"); st.Role != "primary" {
		t.Fatalf("promoted replica's role %q", st.Role)
	}
	mu.Lock()
	out := logs.String()
	mu.Unlock()
	if !strings.Contains(out, "not in recovery") || !strings.Contains(out, "replica2") {
		t.Fatalf("no log line for the role change:\n%s", out)
	}
	countServed(t, c, pool, 3)
	if routes.Load() != 3 {
		t.Fatalf("OnRoute called %d times for 3 calls", routes.Load())
	}
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestProbeWithoutWALFunctions: a role that may not call the WAL functions
// (as on some managed services) still gets health checks from the role
// alone; nodes stay up, and read-your-writes, without positions, keeps a
// scope that wrote on the primary instead of risking a stale read.
func TestProbeWithoutWALFunctions(t *testing.T) {
	c := ownCluster(t, routingtest.ClusterOptions{})
	primary, err := pgx.Connect(context.Background(), c.Primary().ConnString())
	if err != nil {
		t.Fatal(err)
	}
	defer primary.Close(context.Background())
	if _, err := primary.Exec(context.Background(), `
CREATE ROLE app LOGIN;
GRANT SELECT, INSERT ON items TO app;
REVOKE EXECUTE ON FUNCTION pg_walfile_name(pg_lsn) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION pg_last_wal_replay_lsn() FROM PUBLIC;`); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitReplay(context.Background()); err != nil {
		t.Fatal(err)
	}
	asApp := func(n *routingtest.Node) string { return strings.Replace(n.ConnString(), "postgres@", "app@", 1) }
	cfg := pgxroute.Config{Primary: asApp(c.Primary()), Stickiness: pgxroute.ReadYourWrites, Health: fastHealth}
	for _, r := range c.Replicas() {
		cfg.Replicas = append(cfg.Replicas, pgxroute.Node{Name: r.Name(), ConnString: asApp(r)})
	}
	pool := newPool(t, c, cfg)
	routingtest.WaitFor(t, "probes to see the roles", func() bool {
		return nodeStat(pool, "read", "replica1").Role == "replica" && nodeStat(pool, "default", primaryName(c)).Role == "primary"
	})
	for _, n := range []pgxroute.NodeStat{nodeStat(pool, "read", "replica1"), nodeStat(pool, "read", "replica2")} {
		if n.State != pgxroute.StateUp {
			t.Fatalf("%s is %v (last error %q): a refused WAL function must not eject a node", n.Name, n.State, n.LastError)
		}
	}
	ctx := pgxroute.WithScope(context.Background())
	if got := routingtest.ServedBy(t, ctx, c, pool, whoami); !strings.HasPrefix(got, "replica") {
		t.Fatalf("read before a write served by %s", got)
	}
	if _, err := pool.Exec(ctx, "INSERT INTO items (id) VALUES ($1)", nextID()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // several probes: none can give a position
	for i := 0; i < 5; i++ {
		if got := routingtest.ServedBy(t, ctx, c, pool, whoami); got != "primary" {
			t.Fatalf("read %d after a write, without known positions, served by %s", i, got)
		}
	}
}

// healthEvents is a Tracer that records the health events by node.
type healthEvents struct {
	mu     sync.Mutex
	byNode map[string][]pgxroute.HealthEventKind
}

func (h *healthEvents) TraceRouteStart(ctx context.Context, _ pgxroute.TraceRouteStartData) context.Context {
	return ctx
}

func (h *healthEvents) TraceRouteEnd(context.Context, pgxroute.TraceRouteEndData) {}

func (h *healthEvents) TraceHealth(_ context.Context, ev pgxroute.HealthEvent) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.byNode == nil {
		h.byNode = map[string][]pgxroute.HealthEventKind{}
	}
	h.byNode[ev.Node] = append(h.byNode[ev.Node], ev.Kind)
}

func (h *healthEvents) of(node string) []pgxroute.HealthEventKind {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]pgxroute.HealthEventKind(nil), h.byNode[node]...)
}
