package pgxroute_test

import (
	"context"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pgxroute/pgxroute"
	"github.com/pgxroute/pgxroute/discovery/patroni"
	"github.com/pgxroute/pgxroute/routingtest"
)

// The router with Config.Discovery on a real Patroni cluster (Patroni 3.0
// over etcd, on loopback; skipped without them as patroni_failover_test.go
// is): the pool is given nothing but patroni.New, and the cluster changes
// shape under it.

// discoveryPassword is the password of the discovered members' connection
// string. The harness trusts loopback, so no server asks for it: it is
// there to be looked for, and never found, in errors, Stat and the logs.
const discoveryPassword = "hunter2-not-shown"

// scopedReadLoad is the load of scoped reads the discovery tests record
// throughout: 4 goroutines, each starting a read every 10 ms, watching
// whether a replica takes reads (a read may fall back to the primary while
// none does).
var scopedReadLoad = loadOptions{Readers: 4, Every: 10 * time.Millisecond, WatchReplicas: true}

// replicaTakesReads reports whether st shows a node of the read group that
// takes reads now: up, a replica, and not NoReads.
func replicaTakesReads(st *pgxroute.Stat) bool {
	g, _ := st.Group(pgxroute.ReadGroupName)
	for _, n := range g.Nodes {
		if n.State == pgxroute.StateUp && n.Role == "replica" && !n.NoReads {
			return true
		}
	}
	return false
}

// discMembers returns the names of the cluster's members as Stat lists them.
func discMembers(pool *pgxroute.RoutedPool) []string {
	var names []string
	for _, m := range pool.Stat().Members {
		names = append(names, m.Name)
	}
	slices.Sort(names)
	return names
}

// discDraining reports whether Stat lists name among the draining nodes.
func discDraining(pool *pgxroute.RoutedPool, name string) bool {
	for _, d := range pool.Stat().Draining {
		if d.Name == name {
			return true
		}
	}
	return false
}

// discMembersUp reports whether Stat lists exactly names as the members (in any
// order), each one up.
func discMembersUp(pool *pgxroute.RoutedPool, names ...string) bool {
	st := pool.Stat()
	if len(st.Members) != len(names) {
		return false
	}
	for _, m := range st.Members {
		if !slices.Contains(names, m.Name) || m.State != pgxroute.StateUp {
			return false
		}
	}
	return true
}

// discHasEvent reports whether events holds kind for node.
func discHasEvent(events *healthEvents, node string, kind pgxroute.HealthEventKind) bool {
	return slices.Contains(events.of(node), kind)
}

// discAnyEvent reports whether events holds kind, for any node or none.
func discAnyEvent(events *healthEvents, kind pgxroute.HealthEventKind) bool {
	events.mu.Lock()
	defer events.mu.Unlock()
	for _, kinds := range events.byNode {
		if slices.Contains(kinds, kind) {
			return true
		}
	}
	return false
}

// discNoPassword fails the test when the password shows in Stat (as JSON
// would show it: every field) or in the router's log.
func discNoPassword(t *testing.T, pool *pgxroute.RoutedPool, logs *routingtest.SyncBuffer) {
	t.Helper()
	st := pool.Stat()
	if d := st.Discovery; d != nil && strings.Contains(d.LastError, discoveryPassword) {
		t.Errorf("Stat().Discovery.LastError shows the password: %s", d.LastError)
	}
	for _, g := range st.Groups {
		for _, n := range g.Nodes {
			if strings.Contains(n.LastError, discoveryPassword) {
				t.Errorf("Stat: %s's LastError shows the password: %s", n.Name, n.LastError)
			}
		}
	}
	if strings.Contains(logs.String(), discoveryPassword) {
		t.Errorf("the router's log shows the password:\n%s", logs.String())
	}
}

// discoveryPool makes a RoutedPool configured only with discoverer d (no
// node), probing every 200 ms, asking d every interval, tracing with tracer
// (nil: none) and logging every event at info level into logs; the test's
// cleanup closes it.
func discoveryPool(t *testing.T, d pgxroute.Discoverer, interval time.Duration, tracer pgxroute.RouteTracer, logs *routingtest.SyncBuffer) *pgxroute.RoutedPool {
	t.Helper()
	pool, err := pgxroute.New(context.Background(), pgxroute.Config{
		Discovery:         d,
		DiscoveryInterval: interval,
		Health:            pgxroute.HealthConfig{Interval: 200 * time.Millisecond},
		Tracer:            tracer,
		Logger:            slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
	})
	if err != nil {
		t.Fatalf("New with only a discoverer (%T): %v", d, err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// patroniDiscoveryCluster starts a four-member Patroni cluster: member3
// tagged noloadbalance, member4 left stopped (it joins later). It makes the
// items table on the leader, member1, and waits until the running replicas
// have it.
func patroniDiscoveryCluster(t *testing.T) (*routingtest.Patroni, *routingtest.PatroniMember) {
	t.Helper()
	return newPatroniCluster(t, routingtest.PatroniOptions{
		Members: 4,
		Stopped: []string{"member4"},
		Tags:    map[string]map[string]any{"member3": {"noloadbalance": true}},
	})
}

// discJoinWatch polls Patroni's GET /cluster every 20 ms from a goroutine and
// records when it first lists a member as running or streaming.
type discJoinWatch struct {
	done chan struct{}
	stop chan struct{}
	at   time.Time // set before done is closed; zero if never seen
}

func discWatchJoin(p *routingtest.Patroni, name string) *discJoinWatch {
	w := &discJoinWatch{done: make(chan struct{}), stop: make(chan struct{})}
	go func() {
		defer close(w.done)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			states, err := p.ClusterState(ctx)
			if err == nil {
				for _, s := range states {
					if s.Name == name && (s.State == "running" || s.State == "streaming") {
						w.at = time.Now()
						return
					}
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-w.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return w
}

// wait stops the watch if it is still running and returns what it saw.
func (w *discJoinWatch) wait() time.Time {
	select {
	case <-w.done:
	default:
		close(w.stop)
		<-w.done
	}
	return w.at
}

// TestPatroniDiscovery runs a pool configured only with patroni.New (every
// member's REST URL, member4's dead at first) on a four-member Patroni
// cluster, member3 tagged noloadbalance and member4 not started yet, with
// 16 readers and 4 writers from the second step on:
//
//   - routing: writes run on the leader (the server says it is not in
//     recovery), reads on the replicas (in recovery), none on member3;
//   - join: member4 is started, Patroni clones it from the leader: it takes
//     reads, the pool unchanged; the time from Patroni listing it to the
//     first read it serves is logged;
//   - leave: member2 is stopped cleanly: no read fails, Stat shows it removed
//     and drained;
//   - noloadbalance: member3, a live replica, takes none of the reads;
//   - failover: the leader's host is killed: writes resume on the new leader,
//     no read fails, no never-sent write fails, and the failed writes (their
//     outcome unknown) are reported.
//
// The password of the members' connection string shows nowhere.
func TestPatroniDiscovery(t *testing.T) {
	p, leader := patroniDiscoveryCluster(t)
	m2, m3, m4 := p.Member("member2"), p.Member("member3"), p.Member("member4")
	var urls []string
	for _, m := range p.Members() {
		urls = append(urls, m.RESTURL())
	}
	var logs routingtest.SyncBuffer
	logRouter(t, &logs)
	events := &healthEvents{}
	const connString = "postgres://postgres:" + discoveryPassword + "@placeholder/postgres?sslmode=disable&connect_timeout=2"
	disc := &switchDiscoverer{}
	disc.set(patroni.New(patroni.Config{URLs: urls, ConnString: connString}))
	created := time.Now()
	pool := discoveryPool(t, disc, 500*time.Millisecond, events, &logs)
	start := time.Now()
	// Every read the tests send in a scope, from here to the end: none may
	// run on member3.
	reads := startCallLoad(t, pool, scopedReadLoad)

	if !t.Run("routing", func(t *testing.T) {
		routingtest.WaitFor(t, "member1, member2 and member3 up", func() bool { return discMembersUp(pool, "member1", "member2", "member3") })
		up := time.Now()
		st := pool.Stat()
		if st.Primary != leader.Name() {
			t.Errorf("Stat: primary %q, want the Patroni leader %s", st.Primary, leader.Name())
		}
		if st.Discovery == nil {
			t.Fatal("Stat().Discovery is nil with Config.Discovery set")
		}
		// New's own call counts.
		if st.Discovery.Calls == 0 || st.Discovery.LastSuccessAt.Before(created) {
			t.Errorf("Stat().Discovery after New, which asked Patroni: %+v", *st.Discovery)
		}
		if diff := cmp.Diff([]string{"member1", "member2", "member3"}, st.Discovery.Members); diff != "" {
			t.Errorf("Stat().Discovery.Members (-want +got):\n%s", diff)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for range 10 {
			var port int
			var inRecovery bool
			if err := pool.QueryRow(ctx, "INSERT INTO items (id, note) VALUES ($1, 'discovery') RETURNING inet_server_port(), pg_is_in_recovery()", nextID()).Scan(&port, &inRecovery); err != nil {
				t.Fatalf("routed write: %v", err)
			}
			if port != leader.Port() || inRecovery {
				t.Errorf("a routed write ran on port %d (in recovery: %v), want the leader %s", port, inRecovery, leader)
			}
		}
		from := time.Now()
		for range 50 {
			rd := reads.readOnce()
			if rd.err != nil {
				t.Fatalf("routed read: %v", rd.err)
			}
			// member2 is the one replica that takes reads.
			if rd.port != m2.Port() || !rd.inRecovery {
				t.Errorf("a routed read ran on port %d (in recovery: %v), want %s", rd.port, rd.inRecovery, m2)
			}
		}
		on, all := reads.count(from, readOn(m2.Port())), reads.started(from)
		t.Logf("FIGURES patroni-discovery: New took %s, New→member1, member2, member3 up %s; scoped reads since the writes on member2: %d of %d",
			start.Sub(created).Round(time.Millisecond), up.Sub(created).Round(time.Millisecond), on, all)
	}) {
		return
	}

	l, end := patroniLoad(t, pool)
	l.waitWrites(t, leader.Port(), 20)

	if !t.Run("join", func(t *testing.T) {
		before := pool.Stat().Membership.Added
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		w := discWatchJoin(p, m4.Name())
		started := time.Now()
		if err := p.StartMember(ctx, m4); err != nil {
			t.Fatal(err)
		}
		streaming := time.Now() // Patroni lists it and the leader streams to it
		routingtest.WaitFor(t, "a routed read on member4", func() bool { return !reads.firstEnd(started, readOn(m4.Port())).IsZero() })
		first := reads.firstEnd(started, readOn(m4.Port()))
		listed := w.wait()
		t.Logf("FIGURES patroni-join: start→Patroni lists member4 %s, start→StartMember returned (streaming, Patroni agreeing) %s, start→first routed read on member4 %s; listed→first read %s, streaming→first read %s",
			since(started, listed), since(started, streaming), since(started, first), discSince(listed, first), discSince(streaming, first))
		st := pool.Stat()
		if !slices.Contains(discMembers(pool), m4.Name()) {
			t.Errorf("Stat().Members %v lacks member4", discMembers(pool))
		}
		if st.Membership.Added <= before {
			t.Errorf("Stat().Membership.Added is %d, was %d before member4 joined", st.Membership.Added, before)
		}
		if !discHasEvent(events, m4.Name(), pgxroute.EventNodeAdded) {
			t.Errorf("no %s event for member4: %v", pgxroute.EventNodeAdded, events.of(m4.Name()))
		}
		if !memberInRecovery(t, m4) {
			t.Errorf("member4 is out of recovery")
		}
	}) {
		return
	}

	if !t.Run("leave", func(t *testing.T) {
		before := pool.Stat().Membership
		failedBefore, _, _, _ := l.counts()
		stopped := time.Now()
		if err := p.StopMember(m2); err != nil {
			t.Fatal(err)
		}
		down := time.Now()
		routingtest.WaitFor(t, "member2 gone from Stat's members and drained", func() bool {
			return !slices.Contains(discMembers(pool), m2.Name()) && !discDraining(pool, m2.Name())
		})
		gone := time.Now()
		st := pool.Stat()
		if st.Membership.Removed <= before.Removed || st.Membership.Drained <= before.Drained {
			t.Errorf("Stat().Membership %+v, was %+v before member2 left: want one more removed and drained", st.Membership, before)
		}
		for _, k := range []pgxroute.HealthEventKind{pgxroute.EventNodeRemoved, pgxroute.EventNodeDrained} {
			if !discHasEvent(events, m2.Name(), k) {
				t.Errorf("no %s event for member2: %v", k, events.of(m2.Name()))
			}
		}
		if slices.Contains(st.Discovery.Members, m2.Name()) {
			t.Errorf("Stat().Discovery.Members %v still lists member2", st.Discovery.Members)
		}
		for _, g := range st.Groups {
			if _, ok := g.Node(m2.Name()); ok {
				t.Errorf("Stat: group %s still holds member2", g.Name)
			}
		}
		failed, _, _, _ := l.counts()
		if failed != failedBefore {
			t.Errorf("%d reads of the load failed while member2 left", failed-failedBefore)
		}
		on, all := reads.count(gone, readOn(m2.Port())), reads.started(gone)
		if on != 0 {
			t.Errorf("%d of %d scoped reads started after member2 left the members ran on it", on, all)
		}
		t.Logf("FIGURES patroni-leave: StopMember took %s, stopped→gone from Stat's members and drained %s; reads of the load failed %d",
			down.Sub(stopped).Round(time.Millisecond), gone.Sub(down).Round(time.Millisecond), failed-failedBefore)
	}) {
		return
	}

	if !t.Run("noloadbalance", func(t *testing.T) {
		// member3 is a live replica: it would take reads but for its tag.
		if !memberInRecovery(t, m3) {
			t.Fatalf("member3 is out of recovery")
		}
		routingtest.WaitState(t, pool, m3.Name(), pgxroute.StateUp)
		from := time.Now()
		for range 200 {
			if rd := reads.readOnce(); rd.err != nil || rd.port != m4.Port() {
				t.Fatalf("a routed read ran on port %d (%v), want member4 (member2 stopped, member3 noloadbalance)", rd.port, rd.err)
			}
		}
		on, all := reads.count(start, readOn(m3.Port())), reads.started(start)
		if on != 0 {
			t.Errorf("%d of the %d scoped reads ran on member3 (noloadbalance)", on, all)
		}
		// The load's unscoped reads neither: the read group sent it none.
		if n := nodeStat(pool, pgxroute.ReadGroupName, m3.Name()); n.Name != m3.Name() || n.Total != 0 {
			t.Errorf("Stat: member3 in the read group is %q with %d calls, want member3 with 0", n.Name, n.Total)
		}
		t.Logf("FIGURES patroni-noloadbalance: scoped reads on member3 %d of %d; on member4 since the check %d", on, all, reads.count(from, readOn(m4.Port())))
	}) {
		return
	}

	t.Run("failover", func(t *testing.T) {
		reads.end() // a scoped read may fall back to the new leader while no replica is up
		failedBefore, neverSentBefore, unknownBefore, _ := l.counts()
		w := watchLeader(p, leader.Name())
		killed := time.Now()
		if err := p.KillMember(leader); err != nil {
			t.Fatal(err)
		}
		w.wait(t)
		nl := w.leader
		l.waitWrites(t, nl.Port(), 50)
		first := l.firstWriteOn(nl.Port(), killed)
		routingtest.WaitFor(t, "the killed leader gone from Stat's members", func() bool {
			return !slices.Contains(discMembers(pool), leader.Name())
		})
		gone := time.Now()
		end()
		failed, neverSent, unknown, slowest := l.counts()
		t.Logf("FIGURES patroni-discovery-failover: kill→new leader %s (%s), kill→it accepts writes %s, kill→first routed write on it %s, accepts writes→first write %s, kill→old leader gone from the members %s; failed reads %d; failed writes never-sent %d, outcome-unknown %d; slowest write %v",
			since(killed, w.keyAt), nl.Name(), since(killed, w.writesAt), since(killed, first), discSince(w.writesAt, first), since(killed, gone),
			failed-failedBefore, neverSent-neverSentBefore, unknown-unknownBefore, slowest.Round(time.Millisecond))
		if st := pool.Stat(); st.Primary != nl.Name() {
			t.Errorf("Stat: primary %q, want the new leader %s", st.Primary, nl.Name())
		}
		var inRecovery bool
		ask(t, nl, &inRecovery, "SELECT pg_is_in_recovery()")
		if inRecovery {
			t.Errorf("the new leader %s is in recovery", nl)
		}
	})

	t.Run("REST API gone", func(t *testing.T) {
		// The discoverer now asks a port nobody listens on, through a URL
		// with credentials (a proxy's): every call fails.
		dead := routingtest.ClosedPort(t)
		members := discMembers(pool)
		failures := pool.Stat().Discovery.Failures
		switched := time.Now()
		disc.set(patroni.New(patroni.Config{URLs: []string{"http://app:" + discoveryPassword + "@127.0.0.1:" + strconv.Itoa(dead)}, ConnString: connString}))
		routingtest.WaitFor(t, "three failed Discover calls", func() bool { return pool.Stat().Discovery.Failures >= failures+3 })
		st := pool.Stat()
		if st.Discovery.LastError == "" || st.Discovery.LastErrorAt.Before(switched) {
			t.Errorf("Stat().Discovery: LastError %q at %v, want one after the switch (%v)", st.Discovery.LastError, st.Discovery.LastErrorAt, switched)
		}
		if !strings.Contains(st.Discovery.LastError, "127.0.0.1:"+strconv.Itoa(dead)) {
			t.Errorf("Stat().Discovery.LastError %q does not name the URL", st.Discovery.LastError)
		}
		if diff := cmp.Diff(members, discMembers(pool)); diff != "" {
			t.Errorf("the members changed while discovery failed (-before +after):\n%s", diff)
		}
		if !discAnyEvent(events, pgxroute.EventDiscoveryFailed) {
			t.Errorf("no %s event", pgxroute.EventDiscoveryFailed)
		}
		// Calls still succeed: a write on the leader, reads.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		var port int
		if err := pool.QueryRow(ctx, "INSERT INTO items (id, note) VALUES ($1, 'discovery down') RETURNING inet_server_port()", nextID()).Scan(&port); err != nil {
			t.Errorf("a routed write while discovery fails: %v", err)
		} else if l, err := p.Leader(ctx); err != nil || l == nil || port != l.Port() {
			t.Errorf("a routed write ran on port %d, want the Patroni leader (%v, %v)", port, l, err)
		}
		n := 0
		for range 20 {
			var inRecovery bool
			if err := pool.QueryRow(pgxroute.WithScope(ctx), "SELECT pg_is_in_recovery()").Scan(&inRecovery); err != nil {
				t.Fatalf("a routed read while discovery fails: %v", err)
			}
			n++
		}
		t.Logf("FIGURES patroni-discovery-down: %d reads and a write succeeded; Discovery %+v", n, *st.Discovery)

		// A pool made now, with nothing but the dead discoverer, has no
		// member to start from: New fails, with the discoverer's error.
		_, err := pgxroute.New(ctx, pgxroute.Config{Discovery: patroni.New(patroni.Config{URLs: []string{"http://app:" + discoveryPassword + "@127.0.0.1:" + strconv.Itoa(dead)}, ConnString: connString})})
		switch {
		case err == nil:
			t.Errorf("New with a discoverer that fails succeeded")
		case !strings.Contains(err.Error(), "127.0.0.1:"+strconv.Itoa(dead)) || strings.Contains(err.Error(), discoveryPassword):
			t.Errorf("New's error %q: want the URL named, without the password", err)
		}
	})
	l.check(t)
	reads.check(t, byPort)
	reads.checkReads(t)
	discNoPassword(t, pool, &logs)
}

// switchDiscoverer is a Discoverer that passes each call to the one it holds:
// a test points it elsewhere while the pool runs.
type switchDiscoverer struct {
	mu sync.Mutex
	d  pgxroute.Discoverer
}

func (s *switchDiscoverer) set(d pgxroute.Discoverer) {
	s.mu.Lock()
	s.d = d
	s.mu.Unlock()
}

// Discover implements pgxroute.Discoverer.
func (s *switchDiscoverer) Discover(ctx context.Context) ([]pgxroute.Node, error) {
	s.mu.Lock()
	d := s.d
	s.mu.Unlock()
	return d.Discover(ctx)
}

// discSince formats the time from a to b (negative when b came first),
// rounded to the millisecond, or "none" when either is zero.
func discSince(a, b time.Time) string {
	if a.IsZero() || b.IsZero() {
		return "none"
	}
	return b.Sub(a).Round(time.Millisecond).String()
}
