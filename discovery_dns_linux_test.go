package pgxroute_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pgxroute/pgxroute"
	"github.com/pgxroute/pgxroute/discovery/dns"
	"github.com/pgxroute/pgxroute/routingtest"
)

// The router with Config.Discovery on DNS: a real dnsmasq on loopback
// (routingtest.StartDnsmasq) serves SRV records for a harness cluster's
// nodes, each target an A record of 127.0.0.1 (the harness's servers differ
// by port).

// dnsTemplate is the members' connection string: user, database and
// password (never asked for: the harness trusts loopback; looked for in
// errors, Stat and logs), the host a placeholder; pools of 16 connections,
// so that the two-second reads on a node do not hold up the others.
const dnsTemplate = "postgres://postgres:" + discoveryPassword + "@placeholder/postgres?sslmode=disable&connect_timeout=2&pool_max_conns=16"

// dnsSRVName is the SRV name the tests look up.
const dnsSRVName = "_pg._tcp.pg.test."

// discSRVRecords returns dnsmasq's --srv-host values for nodes, each target
// named after the node ("replica1.pg.test").
func discSRVRecords(nodes ...*routingtest.Node) []string {
	var out []string
	for _, n := range nodes {
		out = append(out, strings.TrimSuffix(dnsSRVName, ".")+","+n.Name()+".pg.test,"+strconv.Itoa(n.Port()))
	}
	return out
}

// discSRVHosts returns the hosts file lines of every node's target.
func discSRVHosts(c *routingtest.Cluster) []string {
	var out []string
	for _, n := range c.Nodes() {
		out = append(out, "127.0.0.1 "+n.Name()+".pg.test")
	}
	return out
}

// discSRVMember is the name the router gives n's SRV member.
func discSRVMember(n *routingtest.Node) string {
	return n.Name() + ".pg.test:" + strconv.Itoa(n.Port())
}

// TestDNSDiscovery runs a pool configured only with dns.New (an SRV name,
// DiscoveryInterval 300 ms) over a harness cluster of a primary and three
// replicas, dnsmasq serving the primary, replica1 and replica2 first, under
// 16 readers and 4 writers and scoped reads every 10 ms that ask the
// server which it is:
//
//   - the SRV records change to the primary, replica1 and replica3: the
//     members follow (the time is logged), reads reach replica3, no read
//     started after the router dropped replica2 reaches it, and replica2's
//     server shows no connection once drained;
//   - dnsmasq stops: every Discover fails, the members stay, calls still
//     succeed, and Stat shows the failures and the last error, without the
//     password;
//   - no call fails throughout.
func TestDNSDiscovery(t *testing.T) {
	routingtest.SkipWithoutDnsmasq(t)
	c := ownCluster(t, routingtest.ClusterOptions{Replicas: 3})
	primary, reps := c.Primary(), c.Replicas()
	r1, r2, r3 := reps[0], reps[1], reps[2]
	d := routingtest.StartDnsmasq(t, discSRVRecords(primary, r1, r2), discSRVHosts(c))

	var logs routingtest.SyncBuffer
	logRouter(t, &logs)
	events := &healthEvents{}
	gate := &discGate{d: dns.New(dns.Config{Name: dnsSRVName, ConnString: dnsTemplate, Resolver: d.Resolver()})}
	pool := discoveryPool(t, gate, 300*time.Millisecond, events, &logs)
	routingtest.WaitFor(t, "the primary, replica1 and replica2 up", func() bool {
		return discMembersUp(pool, discSRVMember(primary), discSRVMember(r1), discSRVMember(r2))
	})
	if st := pool.Stat(); st.Primary != discSRVMember(primary) {
		t.Errorf("Stat: primary %q, want %q", st.Primary, discSRVMember(primary))
	}
	reads := startCallLoad(t, pool, scopedReadLoad)
	l := startLoad(pool, 16, 4)
	end := sync.OnceFunc(l.end)
	t.Cleanup(end)
	l.waitWrites(t, primary.Port(), 20)
	routingtest.WaitFor(t, "scoped reads on replica1 and replica2", func() bool {
		return reads.count(time.Time{}, readOn(r1.Port())) > 0 && reads.count(time.Time{}, readOn(r2.Port())) > 0
	})

	t.Run("records change", func(t *testing.T) {
		before := pool.Stat().Membership
		// Two-second reads, some of them on replica2 when it is removed:
		// they finish there, and it drains meanwhile.
		sleeps := make(chan discSleep, 8)
		for range cap(sleeps) {
			go func() {
				ctx, cancel := context.WithTimeout(pgxroute.WithScope(context.Background()), 30*time.Second)
				defer cancel()
				var s discSleep
				s.err = pool.QueryRow(ctx, "SELECT inet_server_port() FROM pg_sleep(2)").Scan(&s.port)
				sleeps <- s
			}()
		}
		routingtest.WaitFor(t, "a two-second read running on replica2", func() bool {
			return nodeStat(pool, pgxroute.ReadGroupName, discSRVMember(r2)).InFlight > 0
		})
		changed := time.Now()
		// dnsmasq restarts with the new records; a query in flight when it
		// stops would be lost (and stall that Discover for the resolver's
		// timeout, 5 s): no Discover runs meanwhile, as a DNS server
		// changing its records drops no query.
		gate.mu.Lock()
		d.SetSRV(discSRVRecords(primary, r1, r3))
		gate.mu.Unlock()
		served := time.Now()
		// The router's own view, polled: when replica2 left its members,
		// when replica3 came up in them, whether replica2 was seen
		// draining with calls in flight.
		var dropped, joined time.Time
		var drainSeen pgxroute.DrainingStat
		routingtest.WaitFor(t, "the members to follow the records", func() bool {
			st := pool.Stat()
			if dropped.IsZero() && !slices.ContainsFunc(st.Members, func(m pgxroute.MemberStat) bool { return m.Name == discSRVMember(r2) }) {
				dropped = time.Now()
			}
			for _, dr := range st.Draining {
				if dr.Name == discSRVMember(r2) && drainSeen.Name == "" {
					drainSeen = dr
				}
			}
			if joined.IsZero() && memberState(pool, discSRVMember(r3)) == pgxroute.StateUp {
				joined = time.Now()
			}
			return !dropped.IsZero() && !joined.IsZero()
		})
		onR2 := 0
		for range cap(sleeps) {
			s := <-sleeps
			switch {
			case s.err != nil:
				t.Errorf("a two-second read failed: %v", s.err)
			case s.port == r2.Port():
				onR2++
			}
		}
		if drainSeen.Name == "" || drainSeen.InFlight == 0 {
			t.Errorf("Stat().Draining did not show replica2 with its two-second reads in flight (saw %+v)", drainSeen)
		}
		t.Logf("two-second reads on replica2 when it was removed: %d of %d, all done; Stat().Draining showed %+v", onR2, cap(sleeps), drainSeen)
		routingtest.WaitFor(t, "a scoped read on replica3", func() bool { return !reads.firstEnd(served, readOn(r3.Port())).IsZero() })
		first := reads.firstEnd(served, readOn(r3.Port()))
		routingtest.WaitFor(t, "replica2 drained", func() bool { return !discDraining(pool, discSRVMember(r2)) })
		drained := time.Now()
		// replica2's server: no connection but this one's once drained
		// (the probes stopped with its removal).
		routingtest.WaitFor(t, "no client connection left on replica2", func() bool {
			var n int
			ask(t, r2, &n, "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()")
			return n == 0
		})
		t.Logf("FIGURES dns-change: records served (dnsmasq restart) %s; served→replica2 out of the members %s, served→replica3 up %s, served→first read on replica3 %s, served→replica2 drained (seen) %s",
			served.Sub(changed).Round(time.Millisecond), discSince(served, dropped), discSince(served, joined), discSince(served, first), discSince(served, drained))

		st := pool.Stat()
		want := []string{discSRVMember(primary), discSRVMember(r1), discSRVMember(r3)}
		if diff := cmp.Diff(want, st.Discovery.Members); diff != "" {
			t.Errorf("Stat().Discovery.Members (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(want, discMembers(pool)); diff != "" {
			t.Errorf("Stat().Members (-want +got):\n%s", diff)
		}
		if st.Membership.Added < before.Added+1 || st.Membership.Removed < before.Removed+1 || st.Membership.Drained < before.Drained+1 {
			t.Errorf("Stat().Membership %+v, was %+v: want a node more added, removed and drained", st.Membership, before)
		}
		for _, c := range []struct {
			node string
			kind pgxroute.HealthEventKind
		}{{discSRVMember(r3), pgxroute.EventNodeAdded}, {discSRVMember(r2), pgxroute.EventNodeRemoved}, {discSRVMember(r2), pgxroute.EventNodeDrained}} {
			if !discHasEvent(events, c.node, c.kind) {
				t.Errorf("no %s event for %s: %v", c.kind, c.node, events.of(c.node))
			}
		}
		// dropped is when the poll saw it: the router removed replica2
		// before, so no read started after may have reached it.
		if on, all := reads.count(dropped, readOn(r2.Port())), reads.started(dropped); on != 0 {
			t.Errorf("%d of %d scoped reads started after replica2 left the members ran on it", on, all)
		}
		if on, all := reads.count(dropped, readOn(r3.Port())), reads.started(dropped); on == 0 {
			t.Errorf("none of %d scoped reads started after the change ran on replica3", all)
		}
	})

	t.Run("DNS down", func(t *testing.T) {
		members := discMembers(pool)
		failures := pool.Stat().Discovery.Failures
		stopped := time.Now()
		d.Stop()
		routingtest.WaitFor(t, "three failed Discover calls", func() bool { return pool.Stat().Discovery.Failures >= failures+3 })
		failing := time.Now()
		st := pool.Stat()
		if st.Discovery.LastError == "" || st.Discovery.LastErrorAt.Before(stopped) {
			t.Errorf("Stat().Discovery after %d failures: LastError %q at %v, want one after dnsmasq stopped (%v)", st.Discovery.Failures, st.Discovery.LastError, st.Discovery.LastErrorAt, stopped)
		}
		if !strings.Contains(st.Discovery.LastError, strings.TrimSuffix(dnsSRVName, ".")) {
			t.Errorf("Stat().Discovery.LastError %q does not name %s", st.Discovery.LastError, dnsSRVName)
		}
		if !discAnyEvent(events, pgxroute.EventDiscoveryFailed) {
			t.Errorf("no %s event", pgxroute.EventDiscoveryFailed)
		}
		if diff := cmp.Diff(members, discMembers(pool)); diff != "" {
			t.Errorf("the members changed while DNS was down (-before +after):\n%s", diff)
		}
		// Calls still succeed, on the members kept: reads on replica1 and
		// replica3, writes on the primary (the load's).
		l.waitWrites(t, primary.Port(), 20)
		ports := map[int]int{}
		for range 50 {
			rd := reads.readOnce()
			if rd.err != nil {
				t.Fatalf("a routed read while DNS is down: %v", rd.err)
			}
			ports[rd.port]++
		}
		if ports[r1.Port()]+ports[r3.Port()] != 50 {
			t.Errorf("reads while DNS is down ran on ports %v, want replica1 (%d) and replica3 (%d)", ports, r1.Port(), r3.Port())
		}
		t.Logf("FIGURES dns-down: stopped→3 failures %s; Discovery %+v", failing.Sub(stopped).Round(time.Millisecond), *st.Discovery)
	})
	reads.end()
	end()
	l.check(t)
	reads.check(t, byPort)
	reads.checkReads(t)
	discNoPassword(t, pool, &logs)
}

// TestDNSDiscoveryOnEjection: with a DiscoveryInterval of a minute, the
// router asks the discoverer at New, then 48 to 72 s later, and sooner when
// something happens. An operator takes replica1 out of DNS and stops it:
// the router ejects it at its first failed call or probe, asks DNS soon
// (within the spread, a tenth of the interval), and drops it, where the
// interval alone would have kept it for most of a minute. Scoped reads run
// throughout: none fails.
func TestDNSDiscoveryOnEjection(t *testing.T) {
	routingtest.SkipWithoutDnsmasq(t)
	c := ownCluster(t, routingtest.ClusterOptions{Replicas: 2})
	primary, r1, r2 := c.Primary(), c.Replicas()[0], c.Replicas()[1]
	d := routingtest.StartDnsmasq(t, discSRVRecords(primary, r1, r2), discSRVHosts(c))
	gate := &discGate{d: dns.New(dns.Config{Name: dnsSRVName, ConnString: dnsTemplate, Resolver: d.Resolver()})}
	rec := &discCallRecorder{d: gate}
	var logs routingtest.SyncBuffer
	logRouter(t, &logs)
	const interval = time.Minute
	created := time.Now()
	pool := discoveryPool(t, rec, interval, nil, &logs)
	routingtest.WaitFor(t, "every member up", func() bool {
		return discMembersUp(pool, discSRVMember(primary), discSRVMember(r1), discSRVMember(r2))
	})
	reads := startCallLoad(t, pool, scopedReadLoad)
	routingtest.WaitFor(t, "scoped reads on replica1", func() bool { return reads.count(time.Time{}, readOn(r1.Port())) > 0 })

	gate.mu.Lock()
	d.SetSRV(discSRVRecords(primary, r2))
	gate.mu.Unlock()
	stopped := time.Now()
	if err := c.Stop(r1); err != nil {
		t.Fatal(err)
	}
	routingtest.WaitFor(t, "replica1 dropped from the members", func() bool {
		return !slices.Contains(discMembers(pool), discSRVMember(r1)) && !discDraining(pool, discSRVMember(r1))
	})
	dropped := time.Now()
	calls := rec.between(stopped, dropped)
	if len(calls) == 0 {
		t.Fatalf("replica1 left the members without a Discover call after it stopped")
	}
	// The interval's first call comes at least 4/5 of it after New's.
	if regular := created.Add(interval * 4 / 5); !calls[0].Before(regular) {
		t.Fatalf("the first call after the stop came at %v, past the interval's first (from %v): it shows nothing", calls[0], regular)
	}
	reads.end()
	reads.check(t, byPort)
	reads.checkReads(t)
	if on, all := reads.count(dropped, readOn(r1.Port())), reads.started(dropped); on != 0 {
		t.Errorf("%d of %d scoped reads started after replica1 left ran on it", on, all)
	}
	if st := pool.Stat(); st.Membership.Removed == 0 || st.Membership.Drained == 0 {
		t.Errorf("Stat().Membership %+v: want replica1 removed and drained", st.Membership)
	}
	t.Logf("FIGURES dns-ejection: stop→first Discover call %s, stop→replica1 out of the members and drained %s; Discover calls since the stop %d, in all %d (New's included)",
		calls[0].Sub(stopped).Round(time.Millisecond), dropped.Sub(stopped).Round(time.Millisecond), len(calls), len(rec.between(time.Time{}, time.Now())))
}

// discGate is a Discoverer that passes each call to another, unless the
// test holds mu: the calls then wait.
type discGate struct {
	mu sync.RWMutex
	d  pgxroute.Discoverer
}

// Discover implements pgxroute.Discoverer.
func (g *discGate) Discover(ctx context.Context) ([]pgxroute.Node, error) {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.d.Discover(ctx)
}

// discSleep is the result of a two-second read: the port of the server
// that answered.
type discSleep struct {
	port int
	err  error
}

// discCallRecorder is a Discoverer that passes each call to another and records
// when it was made: the tests count the calls the router makes.
type discCallRecorder struct {
	d pgxroute.Discoverer

	mu    sync.Mutex
	calls []time.Time
}

// Discover implements pgxroute.Discoverer.
func (c *discCallRecorder) Discover(ctx context.Context) ([]pgxroute.Node, error) {
	c.mu.Lock()
	c.calls = append(c.calls, time.Now())
	c.mu.Unlock()
	return c.d.Discover(ctx)
}

// between returns the calls made from a to b.
func (c *discCallRecorder) between(a, b time.Time) []time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []time.Time
	for _, at := range c.calls {
		if !at.Before(a) && at.Before(b) {
			out = append(out, at)
		}
	}
	return out
}

// TestDiscoveryLoadFigures measures, for docs/membership.md, the discovery
// requests each pool makes in steady state with the default
// DiscoveryInterval: 8 pools on one dnsmasq (SRV, 3 targets) over the
// shared cluster, a minute of reads with every node up, from the first
// call of every pool's loop on. Each Discover call
// is counted by a wrapper and by dnsmasq's log of SRV queries. It reports
// and asserts no rate: set PGXROUTE_FIGURES=1 to run it.
func TestDiscoveryLoadFigures(t *testing.T) {
	if os.Getenv("PGXROUTE_FIGURES") == "" {
		t.Skip("figures for the docs: set PGXROUTE_FIGURES=1")
	}
	c := sharedCluster(t)
	d := routingtest.StartDnsmasq(t, discSRVRecords(c.Nodes()...), discSRVHosts(c))
	const pools, run = 8, time.Minute
	var recs []*discCallRecorder
	var all []*pgxroute.RoutedPool
	for range pools {
		rec := &discCallRecorder{d: dns.New(dns.Config{Name: dnsSRVName, ConnString: dnsTemplate, Resolver: d.Resolver()})}
		pool, err := pgxroute.New(context.Background(), pgxroute.Config{Discovery: rec})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(pool.Close)
		recs, all = append(recs, rec), append(all, pool)
	}
	for _, pool := range all {
		routingtest.WaitFor(t, "every member up", func() bool {
			return discMembersUp(pool, discSRVMember(c.Primary()), discSRVMember(c.Replicas()[0]), discSRVMember(c.Replicas()[1]))
		})
	}
	// Steady state: past each pool's first call of its loop (after New's
	// own), at 24 to 36 s.
	for _, pool := range all {
		routingtest.WaitFor(t, "the pool's first Discover call after New's", func() bool { return pool.Stat().Discovery.Calls > 1 })
	}
	// A read a second on each pool, the members steady.
	from := time.Now()
	queriesBefore, allBefore := strings.Count(d.Output(), "query[SRV]"), d.Queries()
	var statBefore int64
	for _, pool := range all {
		statBefore += pool.Stat().Discovery.Calls
	}
	ctx := context.Background()
	for time.Since(from) < run {
		for _, pool := range all {
			var port int
			if err := pool.QueryRow(ctx, "SELECT inet_server_port()").Scan(&port); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(time.Second)
	}
	to := time.Now()
	time.Sleep(100 * time.Millisecond) // dnsmasq logs a moment after it answers
	queries, allQueries := strings.Count(d.Output(), "query[SRV]")-queriesBefore, d.Queries()-allBefore
	var statCalls int64
	calls := 0
	var gaps []time.Duration
	for i, rec := range recs {
		statCalls += all[i].Stat().Discovery.Calls
		at := rec.between(from, to)
		calls += len(at)
		for j := 1; j < len(at); j++ {
			gaps = append(gaps, at[j].Sub(at[j-1]))
		}
		t.Logf("pool %d: %d Discover calls in %v at %v", i, len(at), to.Sub(from).Round(time.Millisecond), discOffsets(from, at))
	}
	statCalls -= statBefore
	secs := to.Sub(from).Seconds()
	slices.Sort(gaps)
	var mean time.Duration
	for _, g := range gaps {
		mean += g / time.Duration(len(gaps))
	}
	t.Logf("FIGURES discovery-load: %d pools, default DiscoveryInterval, %.1f s: Discover calls %d (Stat: %d, dnsmasq SRV queries: %d) = %.4f calls/s per pool (one per %.1f s); DNS queries %d = %.3f/s per pool; %d intervals between a pool's calls, mean %v: %v",
		pools, secs, calls, statCalls, queries, float64(calls)/pools/secs, secs*pools/float64(max(calls, 1)), allQueries, float64(allQueries)/pools/secs,
		len(gaps), mean.Round(time.Millisecond), gaps)
	if calls == 0 {
		t.Errorf("no Discover call in %v with the default interval", to.Sub(from))
	}
}

// discOffsets formats each time as its distance from start.
func discOffsets(start time.Time, at []time.Time) string {
	var b strings.Builder
	for i, a := range at {
		if i > 0 {
			b.WriteString(" ")
		}
		fmt.Fprintf(&b, "%.1fs", a.Sub(start).Seconds())
	}
	return b.String()
}
