package pgxroute_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgxroute/pgxroute"
	"github.com/pgxroute/pgxroute/routingtest"
)

// The SetGroup tests (issue #24) run on the harness's real servers: every
// claim about where a call ran is the answering server's own account
// (inet_server_port(), current_setting('application_name'),
// pg_stat_activity).

// memberApp is the application_name of the connections of the tests'
// pools (unless a node's connection string sets its own), and askerApp
// that of the tests' own connections to a server.
const (
	memberApp = "pgxroute-membership"
	askerApp  = "pgxroute-membership-asker"
)

// memberHealth probes every 100 ms, so that a new node answers its first
// probe quickly and the tests stay short.
var memberHealth = pgxroute.HealthConfig{Interval: 100 * time.Millisecond, Timeout: time.Second}

// memberNode is the pgxroute.Node of a harness node, named as the harness
// names it.
func memberNode(n *routingtest.Node) pgxroute.Node {
	return pgxroute.Node{Name: n.Name(), ConnString: n.ConnString()}
}

// memberNodes is memberNode of each of ns.
func memberNodes(ns ...*routingtest.Node) []pgxroute.Node {
	out := make([]pgxroute.Node, 0, len(ns))
	for _, n := range ns {
		out = append(out, memberNode(n))
	}
	return out
}

// memberPool makes a RoutedPool whose default group is def and read group
// read (none when empty), and cfg.Groups' other groups, with cfg's other
// settings: memberHealth unless cfg sets an interval, pools of up to 40
// connections named memberApp (and cfg.ConfigurePool after that). It is
// closed at the end of the test.
func memberPool(t *testing.T, c *routingtest.Cluster, def, read []pgxroute.Node, cfg pgxroute.Config) *pgxroute.RoutedPool {
	t.Helper()
	groups := map[string][]pgxroute.Node{pgxroute.DefaultGroupName: def}
	for name, nodes := range cfg.Groups {
		groups[name] = nodes
	}
	cfg.Groups = groups
	if len(read) > 0 {
		cfg.Groups[pgxroute.ReadGroupName] = read
	}
	if cfg.Health.Interval == 0 {
		cfg.Health = memberHealth
	}
	configure := cfg.ConfigurePool
	cfg.ConfigurePool = func(group, node string, pc *pgxpool.Config) {
		pc.MaxConns = 40
		if pc.ConnConfig.RuntimeParams["application_name"] == "" {
			pc.ConnConfig.RuntimeParams["application_name"] = memberApp
		}
		if configure != nil {
			configure(group, node, pc)
		}
	}
	return newPool(t, c, cfg)
}

// scoped is a context with a scope of its own and a 30 s deadline: the
// pool's own scope (which sends unscoped reads to the primary after an
// unscoped write) plays no part, and no call can hang the test.
func scoped() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	return pgxroute.WithScope(ctx), cancel
}

// Statements of the tests' own calls: each returns the port of the server
// that ran it (the read also the connection's application_name).
const (
	loadRead  = "SELECT inet_server_port(), current_setting('application_name')"
	loadWrite = "INSERT INTO items (id, note) VALUES ($1, 'membership') RETURNING inet_server_port()"
)

// memberLoadOptions is the load of the membership tests: readers and
// writers goroutines (in bind group group unless empty), each pausing 5 ms
// after each call.
func memberLoadOptions(group string, readers, writers int) loadOptions {
	return loadOptions{Readers: readers, Writers: writers, Group: group, Pause: 5 * time.Millisecond, Note: "membership"}
}

// onKey keys, in a call's context, the channel the tracer sends the call's
// route to.
type onKey struct{}

// memberTracer records the health events with their time, and sends the
// node of every attempt whose context carries a channel (onKey) to it.
type memberTracer struct {
	mu          sync.Mutex
	events      []pgxroute.HealthEvent
	firstRouted map[string]time.Time // when each node was first routed a call
}

// TraceRouteStart implements pgxroute.RouteTracer.
func (m *memberTracer) TraceRouteStart(ctx context.Context, d pgxroute.TraceRouteStartData) context.Context {
	if ch, ok := ctx.Value(onKey{}).(chan string); ok {
		select {
		case ch <- d.Route.Node:
		default:
		}
	}
	m.mu.Lock()
	if _, ok := m.firstRouted[d.Route.Node]; !ok {
		if m.firstRouted == nil {
			m.firstRouted = map[string]time.Time{}
		}
		m.firstRouted[d.Route.Node] = time.Now()
	}
	m.mu.Unlock()
	return ctx
}

// routedAt returns when node was first routed a call, or the zero time.
func (m *memberTracer) routedAt(node string) time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.firstRouted[node]
}

// TraceRouteEnd implements pgxroute.RouteTracer.
func (m *memberTracer) TraceRouteEnd(context.Context, pgxroute.TraceRouteEndData) {}

// TraceHealth implements pgxroute.HealthTracer.
func (m *memberTracer) TraceHealth(_ context.Context, ev pgxroute.HealthEvent) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.events = append(m.events, ev)
}

// first returns the first event of kind about node, or false.
func (m *memberTracer) first(kind pgxroute.HealthEventKind, node string) (pgxroute.HealthEvent, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, ev := range m.events {
		if ev.Kind == kind && ev.Node == node {
			return ev, true
		}
	}
	return pgxroute.HealthEvent{}, false
}

// groups returns the Group of every event of kind about node, in order.
func (m *memberTracer) groups(kind pgxroute.HealthEventKind, node string) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for _, ev := range m.events {
		if ev.Kind == kind && ev.Node == node {
			out = append(out, ev.Group)
		}
	}
	return out
}

// about returns the events about node, in order.
func (m *memberTracer) about(node string) []pgxroute.HealthEvent {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []pgxroute.HealthEvent
	for _, ev := range m.events {
		if ev.Node == node {
			out = append(out, ev)
		}
	}
	return out
}

// count counts the events of kind about node.
func (m *memberTracer) count(kind pgxroute.HealthEventKind, node string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, ev := range m.events {
		if ev.Kind == kind && ev.Node == node {
			n++
		}
	}
	return n
}

// sleeper is one long read started by launchOn.
type sleeper struct {
	node       string // where the router sent it
	start, end time.Time
	port       int
	err        error
	done       chan struct{}
}

// launchOn starts reads of sql (whose last column is the answering
// server's port; the first columns are skipped) in scopes of their own,
// each on its goroutine, until n of them were routed to the node named
// target (the pool's Config.Tracer must be a *memberTracer), and returns those and every read
// it started. It fails the test after 40*n launches.
func launchOn(t *testing.T, pool *pgxroute.RoutedPool, target string, n int, sql string, skip int) (on, all []*sleeper) {
	t.Helper()
	for len(on) < n {
		if len(all) >= 40*n {
			t.Fatalf("%d reads launched, %d of them routed to %s; want %d", len(all), len(on), target, n)
		}
		s := &sleeper{done: make(chan struct{})}
		routed := make(chan string, 4)
		ctx, cancel := scoped()
		ctx = context.WithValue(ctx, onKey{}, routed)
		s.start = time.Now()
		go func() {
			defer close(s.done)
			defer cancel()
			dest := make([]any, skip+1)
			dest[skip] = &s.port
			s.err = pool.QueryRow(ctx, sql).Scan(dest...)
			s.end = time.Now()
		}()
		select {
		case s.node = <-routed:
		case <-time.After(10 * time.Second):
			t.Fatalf("a read of %q was not routed within 10s", sql)
		}
		all = append(all, s)
		if s.node == target {
			on = append(on, s)
		}
	}
	return on, all
}

// waitSleepers waits for every sleeper to end (bounded).
func waitSleepers(t *testing.T, ss []*sleeper) {
	t.Helper()
	for _, s := range ss {
		select {
		case <-s.done:
		case <-time.After(routingtest.WaitLimit):
			t.Fatalf("a read launched at %s did not end within %v", s.start.Format("15:04:05.000"), routingtest.WaitLimit)
		}
	}
}

// asker is a harness node whose connection string names the connection
// askerApp, for ask (failover_test.go).
type asker struct{ n *routingtest.Node }

// ConnString implements server.
func (a asker) ConnString() string { return a.n.ConnString() + "&application_name=" + askerApp }

// askNode runs sql on s itself, on a connection of its own named askerApp,
// and scans its one row into dest.
func askNode(t *testing.T, s *routingtest.Node, dest any, sql string, args ...any) {
	t.Helper()
	ask(t, asker{s}, dest, sql, args...)
}

// beginOn begins a transaction in the read group, which must be r alone,
// and checks by the server's account that it runs on r. It is rolled back
// at the end of the test unless it ended.
func beginOn(t *testing.T, ctx context.Context, c *routingtest.Cluster, pool *pgxroute.RoutedPool, r *routingtest.Node) pgx.Tx {
	t.Helper()
	tx, err := pool.Begin(pgxroute.WithBindGroup(ctx, pgxroute.ReadGroupName))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tx.Rollback(context.Background()) })
	if got := routingtest.ServedBy(t, ctx, c, tx, whoami); got != r.Name() {
		t.Fatalf("the transaction runs on %s, want %s", got, r.Name())
	}
	return tx
}

// clientConns returns the application_name of every client connection on s
// but the tests' own (askerApp): on a cluster of the test's own, those of
// the pool and its probes.
func clientConns(t *testing.T, s *routingtest.Node) []string {
	t.Helper()
	var apps []string
	askNode(t, s, &apps, `SELECT coalesce(array_agg(coalesce(application_name, '') ORDER BY application_name), '{}')
		FROM pg_stat_activity WHERE backend_type = 'client backend' AND application_name IS DISTINCT FROM $1`, askerApp)
	return apps
}

// waitNoConns waits (bounded by routingtest.WaitLimit) until s shows no
// client connection but the tests' own; a closed connection's server
// process ends a moment after its client closed it.
func waitNoConns(t *testing.T, s *routingtest.Node) {
	t.Helper()
	start := time.Now()
	for {
		apps := clientConns(t, s)
		if len(apps) == 0 {
			t.Logf("waited %v for no connection of the pool on %s", time.Since(start).Round(time.Millisecond), s.Name())
			return
		}
		if time.Since(start) > routingtest.WaitLimit {
			t.Fatalf("%s still shows connections of the pool after %v (application_name): %v", s.Name(), routingtest.WaitLimit, apps)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// groupNames returns each group's node names, in Stat's order.
func groupNames(st *pgxroute.Stat) map[string][]string {
	m := map[string][]string{}
	for _, g := range st.Groups {
		names := []string{}
		for _, n := range g.Nodes {
			names = append(names, n.Name)
		}
		m[g.Name] = names
	}
	return m
}

// memberNames returns the names of the cluster's members, sorted.
func memberNames(st *pgxroute.Stat) []string {
	var names []string
	for _, m := range st.Members {
		names = append(names, m.Name)
	}
	slices.Sort(names)
	return names
}

// draining returns the DrainingStat of node, or false.
func draining(st *pgxroute.Stat, node string) (pgxroute.DrainingStat, bool) {
	for _, d := range st.Draining {
		if d.Name == node {
			return d, true
		}
	}
	return pgxroute.DrainingStat{}, false
}

// readNodes runs n reads in scopes of their own and returns the set of
// nodes (harness names) that answered.
func readNodes(t *testing.T, c *routingtest.Cluster, pool *pgxroute.RoutedPool, n int) []string {
	t.Helper()
	seen := map[string]bool{}
	for range n {
		ctx, cancel := scoped()
		seen[routingtest.ServedBy(t, ctx, c, pool, whoami)] = true
		cancel()
	}
	var out []string
	for name := range seen {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

// waitReaders waits (bounded) until the nodes that answer a run of reads
// are exactly want.
func waitReaders(t *testing.T, c *routingtest.Cluster, pool *pgxroute.RoutedPool, want ...string) {
	t.Helper()
	slices.Sort(want)
	var got []string
	routingtest.WaitFor(t, fmt.Sprintf("reads served by exactly %v", want), func() bool {
		got = readNodes(t, c, pool, 4*len(want)+2)
		return slices.Equal(got, want)
	})
}

// writeNode runs a write in a scope of its own and returns the node that
// answered.
func writeNode(t *testing.T, c *routingtest.Cluster, pool *pgxroute.RoutedPool) string {
	t.Helper()
	ctx, cancel := scoped()
	defer cancel()
	return routingtest.ServedBy(t, ctx, c, pool, loadWrite, nextID())
}

// TestSetGroupAddUnderLoad adds a replica to the read group under 16
// readers and 4 writers: the new replica serves reads, by the server's own
// account, once it answered a probe; its pool was made through
// ConfigurePool; the replicas listed again are kept (state, counters, pool:
// no new ConfigurePool call, no removal); Stat and the health events show
// the addition; no call fails. It logs the times from SetGroup's return to
// the new replica's first answered probe, first routed call and first read.
func TestSetGroupAddUnderLoad(t *testing.T) {
	c := ownCluster(t, routingtest.ClusterOptions{Replicas: 3})
	ctx := context.Background()
	p, r1, r2, r3 := c.Primary(), c.Replicas()[0], c.Replicas()[1], c.Replicas()[2]
	tr := &memberTracer{}
	var mu sync.Mutex
	var configured []string
	pool := memberPool(t, c, memberNodes(p), memberNodes(r1, r2), pgxroute.Config{
		Tracer: tr,
		ConfigurePool: func(group, node string, _ *pgxpool.Config) {
			mu.Lock()
			defer mu.Unlock()
			configured = append(configured, group+"/"+node)
		},
	})
	l := startCallLoad(t, pool, memberLoadOptions("", 16, 4))
	l.waitServed(t, r1.Name(), r1.Port(), 20)
	l.waitServed(t, r2.Name(), r2.Port(), 20)
	if n := l.served(r3.Port()); n != 0 {
		t.Fatalf("%s answered %d reads before it was added", r3.Name(), n)
	}
	kept := []*routingtest.Node{r1, r2}
	before := map[string]pgxroute.NodeStat{}
	for _, r := range kept {
		before[r.Name()] = nodeStat(pool, pgxroute.ReadGroupName, r.Name())
	}

	if err := pool.SetGroup(ctx, pgxroute.ReadGroupName, memberNodes(r1, r2, r3)); err != nil {
		t.Fatal(err)
	}
	returned := time.Now()
	// The nodes listed again, same name and connection string, are kept
	// as they were: pool, health and counters.
	for _, r := range kept {
		b, a := before[r.Name()], nodeStat(pool, pgxroute.ReadGroupName, r.Name())
		if a.State != pgxroute.StateUp || a.Total < b.Total || a.Probes < b.Probes || a.Pool == nil || a.Pool.NewConnsCount() < b.Pool.NewConnsCount() {
			t.Errorf("%s kept by SetGroup: state %v, %d calls, %d probes, %d connections made; before: %v, %d, %d, %d",
				r.Name(), a.State, a.Total, a.Probes, a.Pool.NewConnsCount(), b.State, b.Total, b.Probes, b.Pool.NewConnsCount())
		}
	}
	if g, _ := pool.Stat().Group(pgxroute.ReadGroupName); !slices.ContainsFunc(g.Nodes, func(n pgxroute.NodeStat) bool { return n.Name == r3.Name() }) {
		t.Fatalf("after SetGroup the read group is %v, without %s", groupNames(pool.Stat())[pgxroute.ReadGroupName], r3.Name())
	}
	upAfter := routingtest.WaitFor(t, r3.Name()+" to answer its first probe", func() bool {
		return nodeStat(pool, pgxroute.ReadGroupName, r3.Name()).State == pgxroute.StateUp
	})
	l.waitServed(t, r3.Name(), r3.Port(), 50)
	// ServedBy, outside the load: the new replica is in the rotation.
	routingtest.WaitFor(t, r3.Name()+" to answer a read", func() bool {
		return slices.Contains(readNodes(t, c, pool, 6), r3.Name())
	})
	l.waitServed(t, r1.Name(), r1.Port(), 20)
	l.waitServed(t, r2.Name(), r2.Port(), 20)
	l.end()
	l.check(t, byNode(c))

	first := l.firstEnd(time.Time{}, readOn(r3.Port()))
	r3Pool := nodeStat(pool, pgxroute.ReadGroupName, r3.Name()).Pool
	t.Logf("FIGURES setgroup-add: SetGroup returned -> the new replica up (first answered probe, polled every 10ms) %v, -> first call routed to it %v, -> its first read answered %v (probe interval %v; its pool: %d connections made, mean acquire %v)",
		upAfter.Round(time.Millisecond), tr.routedAt(r3.Name()).Sub(returned).Round(time.Millisecond), first.Sub(returned).Round(time.Millisecond), memberHealth.Interval,
		r3Pool.NewConnsCount(), (r3Pool.AcquireDuration() / time.Duration(max(r3Pool.AcquireCount(), 1))).Round(time.Millisecond))

	for _, ev := range tr.about(r3.Name()) {
		t.Logf("event of %s %+v after SetGroup returned: %s %s (%s)", r3.Name(), ev.At.Sub(returned).Round(time.Millisecond), ev.Kind, ev.Group, ev.Detail)
	}
	// It answered a probe before it served: it was probed, and is up.
	if n := nodeStat(pool, pgxroute.ReadGroupName, r3.Name()); n.Probes < 1 || n.State != pgxroute.StateUp {
		t.Errorf("%s: %d probes, state %v; want at least 1 probe, up", r3.Name(), n.Probes, n.State)
	}
	mu.Lock()
	if !slices.Contains(configured, pgxroute.ReadGroupName+"/"+r3.Name()) {
		t.Errorf("ConfigurePool was called for %v, not for the added read/%s", configured, r3.Name())
	}
	for _, r := range kept {
		if n := len(slices.DeleteFunc(slices.Clone(configured), func(s string) bool { return !strings.HasSuffix(s, "/"+r.Name()) })); n != 1 {
			t.Errorf("ConfigurePool was called %d times for %s, which SetGroup kept: %v", n, r.Name(), configured)
		}
		if gs := tr.groups(pgxroute.EventNodeRemoved, r.Name()); len(gs) != 0 {
			t.Errorf("%s, kept, was removed from %q", r.Name(), gs)
		}
	}
	mu.Unlock()
	// One event per group: a member is in the default group too while
	// roles follow the probes.
	if gs := tr.groups(pgxroute.EventNodeAdded, r3.Name()); !slices.Contains(gs, pgxroute.ReadGroupName) {
		t.Errorf("EventNodeAdded of %s in groups %q, want one in %q", r3.Name(), gs, pgxroute.ReadGroupName)
	}
	st := pool.Stat()
	if st.Membership.Added < 1 || st.Membership.LastChange.IsZero() {
		t.Errorf("Stat().Membership = %+v, want the addition counted", st.Membership)
	}
	if diff := cmp.Diff([]string{p.Name(), r1.Name(), r2.Name(), r3.Name()}, memberNames(st)); diff != "" {
		t.Errorf("members (-want +got):\n%s", diff)
	}
	if len(st.Draining) != 0 {
		t.Errorf("Stat().Draining = %+v after an addition", st.Draining)
	}
}

// TestSetGroupAddWaitsForProbe adds a replica whose server is stopped, to
// the read group (roles follow the probes) and to a bind group of its own
// (static roles, where only joining keeps calls away): it stays joining and
// takes no call while its probes fail (FailuresToEject is too high for them
// to eject it: nothing but joining keeps it out), the calls keep running
// elsewhere, none fails; once its server starts, it answers a probe and
// serves.
func TestSetGroupAddWaitsForProbe(t *testing.T) {
	c := ownCluster(t, routingtest.ClusterOptions{})
	ctx := context.Background()
	p, r1, r2 := c.Primary(), c.Replicas()[0], c.Replicas()[1]
	const analytics = "analytics"
	health := memberHealth
	health.FailuresToEject = 1000
	for _, tc := range []struct {
		name    string
		group   string
		writers int
	}{
		{name: "read group", group: pgxroute.ReadGroupName, writers: 2},
		{name: "bind group", group: analytics},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pool := memberPool(t, c, memberNodes(p), memberNodes(r1), pgxroute.Config{
				Health: health,
				Groups: map[string][]pgxroute.Node{analytics: memberNodes(r1)},
			})
			if err := c.Stop(r2); err != nil {
				t.Fatal(err)
			}
			in := tc.group
			if in == pgxroute.ReadGroupName {
				in = "" // routed by kind
			}
			l := startCallLoad(t, pool, memberLoadOptions(in, 8, tc.writers))
			l.waitServed(t, r1.Name(), r1.Port(), 20)
			if err := pool.SetGroup(ctx, tc.group, memberNodes(r1, r2)); err != nil {
				t.Fatal(err)
			}
			routingtest.WaitFor(t, "5 probes of the stopped "+r2.Name(), func() bool {
				return nodeStat(pool, tc.group, r2.Name()).Probes >= 5
			})
			l.waitServed(t, r1.Name(), r1.Port(), 200)
			n := nodeStat(pool, tc.group, r2.Name())
			if n.State != pgxroute.StateJoining || n.Total != 0 || n.Retries != 0 || n.Ejections != 0 {
				t.Errorf("%s before any answered probe: state %v, %d calls %v, %d retries, %d ejections; want joining and no call",
					r2.Name(), n.State, n.Total, n.Calls, n.Retries, n.Ejections)
			}

			if err := c.Start(ctx, r2); err != nil {
				t.Fatal(err)
			}
			l.waitServed(t, r2.Name(), r2.Port(), 20)
			l.end()
			l.check(t, byNode(c))
			if n := nodeStat(pool, tc.group, r2.Name()); n.State != pgxroute.StateUp {
				t.Errorf("%s serves but is %v", r2.Name(), n.State)
			}
		})
	}
}

// TestSetGroupRemoveDrains removes a replica while 8 two-second reads run
// on it, under 16 readers and 4 writers: the 8 complete on it; Stat lists
// it as draining while they run; no call started after SetGroup returned
// runs on it; once drained, the server shows no connection of the pool
// (nor of its probes); no call fails. It logs the drain time.
func TestSetGroupRemoveDrains(t *testing.T) {
	c := ownCluster(t, routingtest.ClusterOptions{Replicas: 3})
	ctx := context.Background()
	p, r1, r2, r3 := c.Primary(), c.Replicas()[0], c.Replicas()[1], c.Replicas()[2]
	tr := &memberTracer{}
	pool := memberPool(t, c, memberNodes(p), memberNodes(r1, r2, r3), pgxroute.Config{Tracer: tr})
	l := startCallLoad(t, pool, memberLoadOptions("", 16, 4))
	for _, r := range []*routingtest.Node{r1, r2, r3} {
		l.waitServed(t, r.Name(), r.Port(), 20)
	}
	if apps := clientConns(t, r3); !slices.Contains(apps, memberApp) {
		t.Fatalf("connections on %s before the removal: %v, none of the pool's", r3.Name(), apps)
	}

	const sleep = "SELECT pg_sleep(2), inet_server_port()"
	on, all := launchOn(t, pool, r3.Name(), 8, sleep, 1)
	if err := pool.SetGroup(ctx, pgxroute.ReadGroupName, memberNodes(r1, r2)); err != nil {
		t.Fatal(err)
	}
	returned := time.Now()
	st := pool.Stat()
	statAt := time.Now()
	d, ok := draining(st, r3.Name())
	if !ok || d.InFlight < 1 {
		t.Errorf("Stat().Draining right after SetGroup, with 2 s reads running on %s: %+v", r3.Name(), st.Draining)
	}
	if ok && d.Since.After(returned) {
		t.Errorf("draining since %v, after SetGroup returned (%v)", d.Since, returned)
	}
	drainedAfter := routingtest.WaitFor(t, r3.Name()+" to drain", func() bool {
		_, ok := draining(pool.Stat(), r3.Name())
		return !ok
	})
	waitSleepers(t, all)
	for _, s := range on {
		if s.err != nil || s.port != r3.Port() {
			t.Errorf("a 2 s read on %s: port %d, error %v; want it to complete on %s", r3.Name(), s.port, s.err, r3.Name())
		}
		if !s.end.After(statAt) {
			t.Fatalf("a 2 s read ended at %v, before SetGroup returned and Stat was read (%v): the machine is too slow for this test", s.end, statAt)
		}
	}
	for _, s := range all {
		if s.err != nil {
			t.Errorf("a 2 s read routed to %s failed: %v", s.node, s.err)
		}
	}
	l.waitServed(t, r1.Name(), r1.Port(), 20)
	l.waitServed(t, r2.Name(), r2.Port(), 20)
	l.end()
	l.check(t, byNode(c))
	if late := l.startedAfter(returned, func(c loadCall) bool { return c.port == r3.Port() }); len(late) != 0 {
		t.Errorf("%d calls that started after SetGroup returned ran on the removed %s, e.g. started %v (returned %v)",
			len(late), r3.Name(), late[0].start, returned)
	}
	waitNoConns(t, r3)

	drained, ok := tr.first(pgxroute.EventNodeDrained, r3.Name())
	if !ok {
		t.Errorf("no EventNodeDrained for %s", r3.Name())
	}
	var lastEnd time.Time
	for _, s := range on {
		if s.end.After(lastEnd) {
			lastEnd = s.end
		}
	}
	t.Logf("FIGURES setgroup-remove: 8 reads of 2 s running on the removed replica: the last ended %v after SetGroup returned; drained %v after (event), Stat shows it %v after",
		lastEnd.Sub(returned).Round(time.Millisecond), drained.At.Sub(returned).Round(time.Millisecond), drainedAfter.Round(time.Millisecond))
	if gs := tr.groups(pgxroute.EventNodeRemoved, r3.Name()); !slices.Contains(gs, pgxroute.ReadGroupName) {
		t.Errorf("EventNodeRemoved of %s in groups %q, want one in %q", r3.Name(), gs, pgxroute.ReadGroupName)
	}
	st = pool.Stat()
	if m := st.Membership; m.Removed != 1 || m.Added != 0 || m.Drained != 1 || m.DrainTimeouts != 0 {
		t.Errorf("Stat().Membership = %+v; want 1 removal, 1 drained, no drain timeout", m)
	}
	if diff := cmp.Diff([]string{p.Name(), r1.Name(), r2.Name()}, memberNames(st)); diff != "" {
		t.Errorf("members (-want +got):\n%s", diff)
	}
	for g, names := range groupNames(st) {
		if slices.Contains(names, r3.Name()) {
			t.Errorf("group %s still lists the removed %s: %v", g, r3.Name(), names)
		}
	}
}

// TestSetGroupDrainTimeout: past DrainTimeout a read still running on the
// removed node fails with ErrNodeRemoved (counted in
// Membership.DrainTimeouts); and an open transaction on a removed node
// keeps it draining until it commits, which succeeds, with a DrainTimeout
// longer than the test.
func TestSetGroupDrainTimeout(t *testing.T) {
	c := sharedCluster(t)
	ctx := context.Background()
	p, r1, r2 := c.Primary(), c.Replicas()[0], c.Replicas()[1]
	var cutDetail, doneDetail string // EventNodeDrained's

	t.Run("cut", func(t *testing.T) {
		tr := &memberTracer{}
		pool := memberPool(t, c, memberNodes(p), memberNodes(r2), pgxroute.Config{Tracer: tr, DrainTimeout: 300 * time.Millisecond})
		waitReaders(t, c, pool, r2.Name())
		const sleep = "SELECT pg_sleep(5), inet_server_port()"
		on, all := launchOn(t, pool, r2.Name(), 1, sleep, 1)
		var running int
		routingtest.WaitFor(t, "the 5 s read to run on "+r2.Name(), func() bool {
			askNode(t, r2, &running, "SELECT count(*) FROM pg_stat_activity WHERE query = $1 AND state = 'active'", sleep)
			return running >= 1
		})
		if err := pool.SetGroup(ctx, pgxroute.ReadGroupName, memberNodes(r1)); err != nil {
			t.Fatal(err)
		}
		returned := time.Now()
		waitSleepers(t, all)
		s := on[0]
		if !errors.Is(s.err, pgxroute.ErrNodeRemoved) {
			t.Fatalf("the 5 s read on the removed %s: port %d, error %v; want ErrNodeRemoved", r2.Name(), s.port, s.err)
		}
		if !strings.Contains(s.err.Error(), r2.Name()) {
			t.Errorf("the error does not name the node %s: %v", r2.Name(), s.err)
		}
		t.Logf("FIGURES setgroup-drain-timeout: DrainTimeout 300ms; the 5 s read failed %v after SetGroup returned: %v",
			s.end.Sub(returned).Round(time.Millisecond), s.err)
		// The pool closes once the cut connections are destroyed, a
		// moment after their calls failed.
		routingtest.WaitFor(t, r2.Name()+" to drain after the cut", func() bool {
			st := pool.Stat()
			_, ok := draining(st, r2.Name())
			return !ok && st.Membership.Drained >= 1
		})
		st := pool.Stat()
		if m := st.Membership; m.DrainTimeouts != 1 || m.Drained != 1 {
			t.Errorf("Stat().Membership = %+v; want 1 drained, 1 drain timeout", m)
		}
		if len(st.Draining) != 0 {
			t.Errorf("Stat().Draining = %+v after the drain timed out", st.Draining)
		}
		ev, ok := tr.first(pgxroute.EventNodeDrained, r2.Name())
		if !ok {
			t.Errorf("no EventNodeDrained of %s", r2.Name())
		}
		cutDetail = ev.Detail
		// The pool still routes: reads to r1, writes to the primary.
		waitReaders(t, c, pool, r1.Name())
		if got := writeNode(t, c, pool); got != p.Name() {
			t.Errorf("a write after the drain ran on %s, want %s", got, p.Name())
		}
	})

	t.Run("transaction", func(t *testing.T) {
		tr := &memberTracer{}
		pool := memberPool(t, c, memberNodes(p), memberNodes(r2), pgxroute.Config{Tracer: tr, DrainTimeout: 10 * time.Minute})
		waitReaders(t, c, pool, r2.Name())
		tctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		tx := beginOn(t, tctx, c, pool, r2)
		// extra is a second node on r1's server.
		extra := pgxroute.Node{Name: "extra", ConnString: r1.ConnString() + "&application_name=extra"}
		if err := pool.SetGroup(ctx, pgxroute.ReadGroupName, append(memberNodes(r1), extra)); err != nil {
			t.Fatal(err)
		}
		// Reads move to r1 while the transaction stays open on r2.
		waitReaders(t, c, pool, r1.Name())
		// The control: a node removed with nothing running on it drains,
		// while r2 with its open transaction does not.
		if err := pool.SetGroup(ctx, pgxroute.ReadGroupName, memberNodes(r1)); err != nil {
			t.Fatal(err)
		}
		routingtest.WaitFor(t, "extra, with nothing running, to drain", func() bool {
			_, ok := draining(pool.Stat(), extra.Name)
			return !ok && tr.count(pgxroute.EventNodeDrained, extra.Name) == 1
		})
		if d, ok := draining(pool.Stat(), r2.Name()); !ok || d.InFlight+int64(d.Acquired) < 1 {
			t.Fatalf("Stat().Draining with a transaction open on the removed %s: %+v", r2.Name(), pool.Stat().Draining)
		}
		if got := routingtest.ServedBy(t, tctx, c, tx, whoami); got != r2.Name() {
			t.Errorf("the open transaction's statement ran on %s, want %s", got, r2.Name())
		}
		if err := tx.Commit(tctx); err != nil {
			t.Fatalf("commit on the draining %s: %v", r2.Name(), err)
		}
		routingtest.WaitFor(t, r2.Name()+" to drain after the commit", func() bool {
			_, ok := draining(pool.Stat(), r2.Name())
			return !ok
		})
		if m := pool.Stat().Membership; m.Drained != 2 || m.DrainTimeouts != 0 {
			t.Errorf("Stat().Membership = %+v; want 2 drained, no drain timeout", m)
		}
		ev, ok := tr.first(pgxroute.EventNodeDrained, r2.Name())
		if !ok {
			t.Errorf("no EventNodeDrained of %s", r2.Name())
		}
		doneDetail = ev.Detail
	})

	// EventNodeDrained's Detail says whether the timeout cut the drain.
	t.Logf("EventNodeDrained's Detail: cut %q, complete %q", cutDetail, doneDetail)
	if cutDetail == "" || cutDetail == doneDetail {
		t.Errorf("EventNodeDrained's Detail does not tell a drain the timeout cut (%q) from a complete one (%q)", cutDetail, doneDetail)
	}
}

// TestSetGroupConnStringChange changes the connection string of a node
// under the same name, to another server and to the same server with
// another application_name: the old pool drains, and the reads that started
// after SetGroup returned are answered by the new connection (by port, by
// application_name), none fails.
func TestSetGroupConnStringChange(t *testing.T) {
	c := sharedCluster(t)
	ctx := context.Background()
	p, r1, r2 := c.Primary(), c.Replicas()[0], c.Replicas()[1]
	const name = "rx"
	for _, tc := range []struct {
		name string
		conn string // the new connection string
		port int    // the server it reaches
		app  string // the application_name it gives
	}{
		{name: "other server", conn: r2.ConnString(), port: r2.Port(), app: memberApp},
		{name: "other parameters", conn: r1.ConnString() + "&application_name=x", port: r1.Port(), app: "x"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := &memberTracer{}
			pool := memberPool(t, c, memberNodes(p), []pgxroute.Node{{Name: name, ConnString: r1.ConnString()}}, pgxroute.Config{Tracer: tr})
			l := startCallLoad(t, pool, memberLoadOptions("", 8, 2))
			l.waitServed(t, r1.Name(), r1.Port(), 20)
			if err := pool.SetGroup(ctx, pgxroute.ReadGroupName, []pgxroute.Node{{Name: name, ConnString: tc.conn}}); err != nil {
				t.Fatal(err)
			}
			returned := time.Now()
			routingtest.WaitFor(t, "the old "+name+" to drain", func() bool {
				st := pool.Stat()
				_, ok := draining(st, name)
				return !ok && st.Membership.Drained == 1
			})
			routingtest.WaitFor(t, "the new "+name+" to serve reads", func() bool {
				return len(l.startedAfter(returned, func(c loadCall) bool { return !c.write && c.port == tc.port && c.app == tc.app })) >= 20
			})
			l.end()
			l.check(t, byNode(c))
			// Every read that started after SetGroup returned and ran on
			// a replica ran on the new connection.
			old := l.startedAfter(returned, func(c loadCall) bool {
				return !c.write && c.port != p.Port() && (c.port != tc.port || c.app != tc.app)
			})
			if len(old) != 0 {
				t.Errorf("%d reads started after SetGroup returned ran on the old connection, e.g. port %d application_name %q",
					len(old), old[0].port, old[0].app)
			}
			g, _ := pool.Stat().Group(pgxroute.ReadGroupName)
			if n, ok := g.Node(name); !ok || int(n.Port) != tc.port || n.State != pgxroute.StateUp {
				t.Errorf("Stat's read group node %s: %+v (found %v), want it up on port %d", name, n, ok, tc.port)
			}
			// One removal and one addition per group (the default group
			// holds every member while roles follow the probes), one drain.
			removed, added := tr.groups(pgxroute.EventNodeRemoved, name), tr.groups(pgxroute.EventNodeAdded, name)
			if slices.Compare(removed, added) != 0 || !slices.Contains(added, pgxroute.ReadGroupName) || tr.count(pgxroute.EventNodeDrained, name) != 1 {
				t.Errorf("events of %s: removed from %q, added to %q, drained %d times; want the same groups, the read group among them, and 1 drain",
					name, removed, added, tr.count(pgxroute.EventNodeDrained, name))
			}
		})
	}
}

// TestSetGroupBadLists gives SetGroup lists it must refuse: each error
// wraps the right sentinel, names the group and the node at fault, shows
// no password; and afterwards the groups are as they were and calls still
// run where they did.
func TestSetGroupBadLists(t *testing.T) {
	c := sharedCluster(t)
	ctx := context.Background()
	p, r1, r2 := c.Primary(), c.Replicas()[0], c.Replicas()[1]
	const secret = "s3cret-pw"
	// The servers trust local connections: the password is never sent.
	withPassword := func(n *routingtest.Node) string {
		return strings.Replace(n.ConnString(), "postgres@", "postgres:"+secret+"@", 1)
	}
	pool := memberPool(t, c, memberNodes(p), memberNodes(r1, r2), pgxroute.Config{})
	waitReaders(t, c, pool, r1.Name(), r2.Name())
	before := pool.Stat()

	for _, tc := range []struct {
		name  string
		group string
		nodes []pgxroute.Node
		want  error
		node  string // the node the error names ("" when none is at fault)
	}{
		{name: "duplicate names", group: "read", want: pgxroute.ErrConfig, node: "dup", nodes: []pgxroute.Node{
			{Name: "dup", ConnString: withPassword(r1)}, {Name: "dup", ConnString: withPassword(r2)}}},
		{name: "malformed connection string", group: "read", want: pgxroute.ErrConfig, node: "bad", nodes: []pgxroute.Node{
			memberNode(r1), {Name: "bad", ConnString: "postgres://postgres:" + secret + "@127.0.0.1:notaport/postgres"}}},
		{name: "unknown group", group: "nosuch", want: pgxroute.ErrUnknownGroup, nodes: []pgxroute.Node{
			{Name: "r", ConnString: withPassword(r1)}}},
		{name: "empty default group", group: "default", want: pgxroute.ErrConfig, nodes: nil},
		{name: "same connection string twice", group: "read", want: pgxroute.ErrConfig, node: "b", nodes: []pgxroute.Node{
			{Name: "a", ConnString: withPassword(r1)}, {Name: "b", ConnString: withPassword(r1)}}},
		{name: "name of another group's node", group: "read", want: pgxroute.ErrConfig, node: p.Name(), nodes: []pgxroute.Node{
			{Name: p.Name(), ConnString: withPassword(r1)}}},
		{name: "negative weight", group: "read", want: pgxroute.ErrConfig, node: r2.Name(), nodes: []pgxroute.Node{
			memberNode(r1), {Name: r2.Name(), ConnString: withPassword(r2), Weight: -1}}},
		{name: "no connection", group: "read", want: pgxroute.ErrConfig, node: "empty", nodes: []pgxroute.Node{
			memberNode(r1), {Name: "empty"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := pool.SetGroup(ctx, tc.group, tc.nodes)
			if !errors.Is(err, tc.want) {
				t.Fatalf("SetGroup(%q, ...) = %v, want an error wrapping %v", tc.group, err, tc.want)
			}
			msg := err.Error()
			if !strings.Contains(msg, `"`+tc.group+`"`) && !strings.Contains(msg, " "+tc.group) {
				t.Errorf("the error does not name the group %q: %s", tc.group, msg)
			}
			if tc.node != "" && !strings.Contains(msg, tc.node) {
				t.Errorf("the error does not name the node %q: %s", tc.node, msg)
			}
			if strings.Contains(msg, secret) {
				t.Errorf("the error shows the password: %s", msg)
			}
			after := pool.Stat()
			if diff := cmp.Diff(groupNames(before), groupNames(after)); diff != "" {
				t.Errorf("the groups changed (-before +after):\n%s", diff)
			}
			if diff := cmp.Diff(memberNames(before), memberNames(after)); diff != "" {
				t.Errorf("the members changed (-before +after):\n%s", diff)
			}
			if after.Membership != before.Membership || len(after.Draining) != 0 {
				t.Errorf("Membership %+v, Draining %+v after a refused list; want %+v and none", after.Membership, after.Draining, before.Membership)
			}
			if got := readNodes(t, c, pool, 10); !slices.Equal(got, []string{r1.Name(), r2.Name()}) {
				t.Errorf("reads served by %v after a refused list, want %v", got, []string{r1.Name(), r2.Name()})
			}
			if got := writeNode(t, c, pool); got != p.Name() {
				t.Errorf("a write ran on %s after a refused list, want %s", got, p.Name())
			}
		})
	}
}

// TestSetGroupConcurrent runs 100 SetGroup calls at once, alternating
// between two lists, beside 8 goroutines of calls (run it with -race): all
// succeed; after a final SetGroup every node not in it drains, the calls
// that started after it run on its nodes only, the removed replica's
// server shows no connection of the pool, and no call fails.
func TestSetGroupConcurrent(t *testing.T) {
	c := ownCluster(t, routingtest.ClusterOptions{})
	ctx := context.Background()
	p, r1, r2 := c.Primary(), c.Replicas()[0], c.Replicas()[1]
	tr := &memberTracer{}
	pool := memberPool(t, c, memberNodes(p), memberNodes(r1), pgxroute.Config{Tracer: tr})
	l := startCallLoad(t, pool, memberLoadOptions("", 6, 2))
	l.waitServed(t, r1.Name(), r1.Port(), 20)

	// r1 is in both lists, with another weight: it is kept throughout.
	lists := [][]pgxroute.Node{
		memberNodes(r1),
		{memberNode(r2), {Name: r1.Name(), ConnString: r1.ConnString(), Weight: 2}},
	}
	start := make(chan struct{})
	errs := make(chan error, 100)
	var wg sync.WaitGroup
	for i := range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs <- pool.SetGroup(ctx, pgxroute.ReadGroupName, lists[i%2])
		}()
	}
	// Readers of the pool's state beside them: Stat, Route and the status
	// page's JSON. They stop with the load, or with the test.
	observed := make(chan struct{})
	quit := make(chan struct{})
	t.Cleanup(func() { close(quit) })
	var problems []string // written by the observer until observed is closed
	go func() {
		defer close(observed)
		<-start
		status := pgxroute.StatusHandler(pool)
		for i := 0; ; i++ {
			select {
			case <-l.stop:
				return
			case <-quit:
				return
			default:
			}
			for _, d := range pool.Stat().Draining {
				if d.Name == "" {
					problems = append(problems, fmt.Sprintf("Stat().Draining lists a node without a name: %+v", d))
				}
			}
			if _, err := pool.Route(ctx, whoami); err != nil {
				problems = append(problems, fmt.Sprintf("Route: %v", err))
			}
			if i%10 == 0 {
				rec := httptest.NewRecorder()
				status.ServeHTTP(rec, httptest.NewRequest("GET", "/?format=json", nil))
				if rec.Code != 200 {
					problems = append(problems, fmt.Sprintf("the status page: %d %s", rec.Code, rec.Body))
				}
			}
			time.Sleep(time.Millisecond)
		}
	}()
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("a concurrent SetGroup: %v", err)
		}
	}
	// Calls keep running between the changes and after them.
	l.waitServed(t, r1.Name(), r1.Port(), 20)

	if err := pool.SetGroup(ctx, pgxroute.ReadGroupName, lists[0]); err != nil {
		t.Fatal(err)
	}
	returned := time.Now()
	routingtest.WaitFor(t, "every removed node to drain", func() bool { return len(pool.Stat().Draining) == 0 })
	l.waitServed(t, r1.Name(), r1.Port(), 50)
	l.end()
	<-observed
	for i, msg := range problems {
		if i < 5 {
			t.Errorf("reading the pool's state during the SetGroup calls: %s", msg)
		}
	}
	l.check(t, byNode(c))
	if late := l.startedAfter(returned, func(c loadCall) bool { return c.port != r1.Port() && c.port != p.Port() }); len(late) != 0 {
		t.Errorf("%d calls started after the final SetGroup ran off its list, e.g. on port %d", len(late), late[0].port)
	}
	if late := l.startedAfter(returned, func(c loadCall) bool { return !c.write && c.port == p.Port() }); len(late) != 0 {
		t.Logf("%d reads started after the final SetGroup fell back to the primary", len(late))
	}
	st := pool.Stat()
	if diff := cmp.Diff([]string{p.Name(), r1.Name()}, memberNames(st)); diff != "" {
		t.Errorf("members after the final SetGroup (-want +got):\n%s", diff)
	}
	t.Logf("Stat().Membership after 101 SetGroup calls: %+v", st.Membership)
	if gs := tr.groups(pgxroute.EventNodeRemoved, r1.Name()); len(gs) != 0 || tr.count(pgxroute.EventNodeDrained, r1.Name()) != 0 {
		t.Errorf("%s, in every list (its weight changing), was removed from %q", r1.Name(), gs)
	}
	// The first list-1 call after the start added r2, and r2 is gone now:
	// every node added was removed, and every node removed drained, within
	// DrainTimeout.
	if m := st.Membership; m.Added < 1 || m.Removed != m.Added || m.Drained != m.Removed || m.DrainTimeouts != 0 {
		t.Errorf("Stat().Membership = %+v; want as many removals and drains as additions, at least 1, no drain timeout", m)
	}
	waitNoConns(t, r2)
}

// TestSetGroupRolesFollowProbes: the default and read groups are the
// replication cluster's members, whose roles come from the probes, not
// from the group SetGroup puts them in: a replica added to the default
// group (even first) takes reads and no write, and the primary added to
// either group takes the writes.
func TestSetGroupRolesFollowProbes(t *testing.T) {
	c := sharedCluster(t)
	ctx := context.Background()
	p, r1, r2 := c.Primary(), c.Replicas()[0], c.Replicas()[1]
	for _, tc := range []struct {
		name      string
		def, read []*routingtest.Node // the pool's groups at New
		group     string
		nodes     []*routingtest.Node // SetGroup's list
		readers   []string            // the nodes that serve reads afterwards
	}{
		{name: "replica appended to default", def: []*routingtest.Node{p}, read: []*routingtest.Node{r1},
			group: "default", nodes: []*routingtest.Node{p, r2}, readers: []string{r1.Name(), r2.Name()}},
		{name: "replica first in default", def: []*routingtest.Node{p}, read: []*routingtest.Node{r1},
			group: "default", nodes: []*routingtest.Node{r2, p}, readers: []string{r1.Name(), r2.Name()}},
		{name: "primary joins through read", def: []*routingtest.Node{r1}, read: []*routingtest.Node{r2},
			group: "read", nodes: []*routingtest.Node{r2, p}, readers: []string{r1.Name(), r2.Name()}},
		{name: "primary replaces a replica in default", def: []*routingtest.Node{r1}, read: []*routingtest.Node{r2},
			group: "default", nodes: []*routingtest.Node{p}, readers: []string{r2.Name()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pool := memberPool(t, c, memberNodes(tc.def...), memberNodes(tc.read...), pgxroute.Config{})
			if err := pool.SetGroup(ctx, tc.group, memberNodes(tc.nodes...)); err != nil {
				t.Fatal(err)
			}
			routingtest.WaitFor(t, "the primary to be known", func() bool { return pool.Stat().Primary == p.Name() })
			if got := writeNode(t, c, pool); got != p.Name() {
				t.Errorf("a write ran on %s, want the primary %s", got, p.Name())
			}
			waitReaders(t, c, pool, tc.readers...)
			st := pool.Stat()
			roles := map[string]string{}
			for _, m := range st.Members {
				roles[m.Name] = m.Role
			}
			want := map[string]string{p.Name(): "primary"}
			for _, r := range tc.readers {
				want[r] = "replica"
			}
			if diff := cmp.Diff(want, roles); diff != "" {
				t.Errorf("members' roles (-want +got):\n%s", diff)
			}
			routingtest.WaitFor(t, "no node draining", func() bool { return len(pool.Stat().Draining) == 0 })
		})
	}
}

// TestSetGroupReaddWhileDraining removes a replica while a transaction is
// open on it and adds it back (same name, same connection string) before
// the transaction ends: the new node serves reads beside the old one
// draining, the transaction commits on the old one, and the old one's
// drain leaves the new one in place.
func TestSetGroupReaddWhileDraining(t *testing.T) {
	c := sharedCluster(t)
	ctx := context.Background()
	p, r1, r2 := c.Primary(), c.Replicas()[0], c.Replicas()[1]
	pool := memberPool(t, c, memberNodes(p), memberNodes(r2), pgxroute.Config{DrainTimeout: 10 * time.Minute})
	waitReaders(t, c, pool, r2.Name())
	tctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	tx := beginOn(t, tctx, c, pool, r2)
	var pid int
	if err := tx.QueryRow(tctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}

	if err := pool.SetGroup(ctx, pgxroute.ReadGroupName, memberNodes(r1)); err != nil {
		t.Fatal(err)
	}
	waitReaders(t, c, pool, r1.Name())
	if err := pool.SetGroup(ctx, pgxroute.ReadGroupName, memberNodes(r1, r2)); err != nil {
		t.Fatal(err)
	}
	waitReaders(t, c, pool, r1.Name(), r2.Name())
	if _, ok := draining(pool.Stat(), r2.Name()); !ok {
		t.Fatalf("the old %s, with its transaction open, is not draining: %+v", r2.Name(), pool.Stat().Draining)
	}
	// The transaction still runs on its own connection of the old pool.
	var txPid int
	if err := tx.QueryRow(tctx, "SELECT pg_backend_pid()").Scan(&txPid); err != nil || txPid != pid {
		t.Fatalf("the open transaction: backend %d, error %v; want backend %d", txPid, err, pid)
	}
	if err := tx.Commit(tctx); err != nil {
		t.Fatalf("commit on the old %s: %v", r2.Name(), err)
	}
	routingtest.WaitFor(t, "the old "+r2.Name()+" to drain", func() bool {
		_, ok := draining(pool.Stat(), r2.Name())
		return !ok
	})
	st := pool.Stat()
	if m := st.Membership; m.Drained != 1 {
		t.Errorf("Stat().Membership = %+v; want 1 drained", m)
	}
	if diff := cmp.Diff([]string{p.Name(), r1.Name(), r2.Name()}, memberNames(st)); diff != "" {
		t.Errorf("members after the old node drained (-want +got):\n%s", diff)
	}
	if n := nodeStat(pool, pgxroute.ReadGroupName, r2.Name()); n.State != pgxroute.StateUp || n.Pool == nil {
		t.Errorf("the new %s after the old one drained: %+v", r2.Name(), n)
	}
	waitReaders(t, c, pool, r1.Name(), r2.Name())
	// The old pool's connection is gone from the server: the transaction's
	// backend no longer exists.
	routingtest.WaitFor(t, "the old transaction's backend to end", func() bool {
		var n int
		askNode(t, r2, &n, "SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid)
		return n == 0
	})
}

// TestSetGroupOtherGroups: a node in two groups stays (pool and calls) while
// it is in one; a bind group other than the default and read groups takes
// its new nodes as listed (static roles); a node given as Node.Pool, the
// caller's, drains but is not closed.
func TestSetGroupOtherGroups(t *testing.T) {
	c := sharedCluster(t)
	ctx := context.Background()
	p, r1, r2 := c.Primary(), c.Replicas()[0], c.Replicas()[1]
	own, err := pgxpool.New(ctx, r1.ConnString()+"&application_name=caller")
	if err != nil {
		t.Fatal(err)
	}
	defer own.Close()
	const analytics = "analytics"
	pool := newPool(t, c, pgxroute.Config{Health: memberHealth, Groups: map[string][]pgxroute.Node{
		pgxroute.DefaultGroupName: memberNodes(p),
		pgxroute.ReadGroupName:    memberNodes(r1, r2),
		analytics:                 {{Name: "mine", Pool: own}, memberNode(r2)},
	}})
	waitReaders(t, c, pool, r1.Name(), r2.Name())
	inAnalytics := pgxroute.WithBindGroup(ctx, analytics)
	analyticsNodes := func() []string {
		var apps []string
		for range 10 {
			var port int
			var app string
			if err := pool.QueryRow(inAnalytics, loadRead).Scan(&port, &app); err != nil {
				t.Fatal(err)
			}
			apps = append(apps, fmt.Sprintf("%s/%s", nodeNames(c)[port], app))
		}
		slices.Sort(apps)
		return slices.Compact(apps)
	}
	if diff := cmp.Diff([]string{r1.Name() + "/caller", r2.Name() + "/"}, analyticsNodes()); diff != "" {
		t.Fatalf("analytics calls before (-want +got):\n%s", diff)
	}

	// r2 leaves the read group but stays in analytics: kept, not draining.
	if err := pool.SetGroup(ctx, pgxroute.ReadGroupName, memberNodes(r1)); err != nil {
		t.Fatal(err)
	}
	waitReaders(t, c, pool, r1.Name())
	if st := pool.Stat(); len(st.Draining) != 0 || st.Membership.Drained != 0 {
		t.Errorf("a node still in a group drains: %+v, %+v", st.Draining, st.Membership)
	}
	if diff := cmp.Diff([]string{r1.Name() + "/caller", r2.Name() + "/"}, analyticsNodes()); diff != "" {
		t.Errorf("analytics calls after r2 left the read group (-want +got):\n%s", diff)
	}

	// analytics gets the primary alone: a write there runs on it (its
	// roles are static); r2 and the caller's pool leave every group and
	// drain; the caller's pool stays open.
	if err := pool.SetGroup(ctx, analytics, memberNodes(p)); err != nil {
		t.Fatal(err)
	}
	if got := routingtest.ServedBy(t, inAnalytics, c, pool, loadWrite, nextID()); got != p.Name() {
		t.Errorf("a write in analytics ran on %s, want %s", got, p.Name())
	}
	routingtest.WaitFor(t, "r2 and the caller's pool to drain", func() bool {
		st := pool.Stat()
		return len(st.Draining) == 0 && st.Membership.Drained == 2
	})
	if diff := cmp.Diff([]string{p.Name() + "/"}, analyticsNodes()); diff != "" {
		t.Errorf("analytics calls after SetGroup (-want +got):\n%s", diff)
	}
	var port int
	if err := own.QueryRow(ctx, whoami).Scan(&port); err != nil || port != r1.Port() {
		t.Errorf("the caller's pool after its node drained: port %d, error %v; want it open, on %s", port, err, r1.Name())
	}
	if diff := cmp.Diff(map[string][]string{
		pgxroute.DefaultGroupName: {p.Name(), r1.Name()},
		pgxroute.ReadGroupName:    {r1.Name(), p.Name()},
		analytics:                 {p.Name()},
	}, groupNames(pool.Stat())); diff != "" {
		t.Errorf("groups (-want +got):\n%s", diff)
	}
}

// TestSetGroupNoReads lists a replica with NoReads (Patroni's
// noloadbalance) and then without: it takes no reads while set, and the
// change keeps the node (no removal, no drain, its pool kept).
func TestSetGroupNoReads(t *testing.T) {
	c := sharedCluster(t)
	ctx := context.Background()
	p, r1, r2 := c.Primary(), c.Replicas()[0], c.Replicas()[1]
	tr := &memberTracer{}
	pool := memberPool(t, c, memberNodes(p), memberNodes(r1, r2), pgxroute.Config{Tracer: tr})
	waitReaders(t, c, pool, r1.Name(), r2.Name())
	noReads := memberNode(r2)
	noReads.NoReads = true
	if err := pool.SetGroup(ctx, pgxroute.ReadGroupName, []pgxroute.Node{memberNode(r1), noReads}); err != nil {
		t.Fatal(err)
	}
	if got := readNodes(t, c, pool, 20); !slices.Equal(got, []string{r1.Name()}) {
		t.Errorf("reads with %s NoReads: served by %v, want %s alone", r2.Name(), got, r1.Name())
	}
	if diff := cmp.Diff([]string{p.Name(), r1.Name(), r2.Name()}, memberNames(pool.Stat())); diff != "" {
		t.Errorf("members with %s NoReads (-want +got):\n%s", r2.Name(), diff)
	}
	if err := pool.SetGroup(ctx, pgxroute.ReadGroupName, memberNodes(r1, r2)); err != nil {
		t.Fatal(err)
	}
	waitReaders(t, c, pool, r1.Name(), r2.Name())
	st := pool.Stat()
	if len(tr.about(r2.Name())) != 0 || st.Membership.Removed != 0 || st.Membership.Added != 0 {
		t.Errorf("NoReads set and cleared: events of %s %+v, Membership %+v; want the node kept", r2.Name(), tr.about(r2.Name()), st.Membership)
	}
}

// TestSetGroupAddedReplicaReadsYourWrites adds a replica that applies WAL
// 2 s late in place of an up-to-date one: the pool's own scope (unscoped
// calls) still reads its writes, each read right after its write (the
// late replica serves only what it has replayed), and the late replica
// does serve reads.
func TestSetGroupAddedReplicaReadsYourWrites(t *testing.T) {
	c := ownCluster(t, routingtest.ClusterOptions{ApplyDelay: []time.Duration{0, 2 * time.Second}})
	ctx := context.Background()
	p, r1, late := c.Primary(), c.Replicas()[0], c.Replicas()[1]
	pool := memberPool(t, c, memberNodes(p), memberNodes(r1), pgxroute.Config{})
	waitReaders(t, c, pool, r1.Name())
	if err := pool.SetGroup(ctx, pgxroute.ReadGroupName, memberNodes(late)); err != nil {
		t.Fatal(err)
	}
	waitReaders(t, c, pool, late.Name())
	names := nodeNames(c)
	served := map[string]int{}
	for range 20 {
		id := nextID()
		if _, err := pool.Exec(ctx, "INSERT INTO items (id, note) VALUES ($1, 'ryw')", id); err != nil {
			t.Fatal(err)
		}
		var n, port int
		if err := pool.QueryRow(ctx, "SELECT count(*), inet_server_port() FROM items WHERE id = $1", id).Scan(&n, &port); err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Errorf("an unscoped read right after its write did not see it, on %s", names[port])
		}
		served[names[port]]++
	}
	t.Logf("reads right after their write served by %v", served)
	// Without a write waiting, reads go to the late replica again.
	routingtest.WaitFor(t, "the late replica to serve an unscoped read", func() bool {
		var port int
		if err := pool.QueryRow(ctx, whoami).Scan(&port); err != nil {
			t.Fatal(err)
		}
		return port == late.Port()
	})
}

// TestSetGroupHealthOff: with health checks off nothing probes a new node,
// so it takes calls as soon as SetGroup returns (and a removed one still
// drains).
func TestSetGroupHealthOff(t *testing.T) {
	c := sharedCluster(t)
	ctx := context.Background()
	p, r1, r2 := c.Primary(), c.Replicas()[0], c.Replicas()[1]
	pool := memberPool(t, c, memberNodes(p), memberNodes(r1), pgxroute.Config{Health: pgxroute.HealthConfig{Disabled: true, Interval: time.Second}})
	if err := pool.SetGroup(ctx, pgxroute.ReadGroupName, memberNodes(r2)); err != nil {
		t.Fatal(err)
	}
	if n := nodeStat(pool, pgxroute.ReadGroupName, r2.Name()); n.State != pgxroute.StateUp {
		t.Errorf("%s added with health checks off: %v, want up", r2.Name(), n.State)
	}
	// The very next reads, without waiting: r2 alone.
	if got := readNodes(t, c, pool, 6); !slices.Equal(got, []string{r2.Name()}) {
		t.Errorf("reads right after SetGroup served by %v, want %s", got, r2.Name())
	}
	routingtest.WaitFor(t, r1.Name()+" to drain", func() bool {
		st := pool.Stat()
		return len(st.Draining) == 0 && st.Membership.Drained == 1
	})
}
