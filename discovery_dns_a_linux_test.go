package pgxroute_test

import (
	"context"
	"net"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pgxroute/pgxroute"
	"github.com/pgxroute/pgxroute/discovery/dns"
	"github.com/pgxroute/pgxroute/routingtest"
)

// The router with Config.Discovery on DNS A records, as a Kubernetes
// headless service serves its pods: one name, one address per member, every
// member on the same port. The harness's SharedPort cluster puts each node
// on a loopback address of its own (127.0.0.2, 127.0.0.3, ...) and all on
// one port, and a real dnsmasq (routingtest.StartDnsmasq) serves the
// addresses under one name. Since the port is the same everywhere, where a
// call ran is the server's address: host(inet_server_addr()).

// dnsAName is the name of the A records.
const dnsAName = "pg.test."

// dnsAHosts returns dnsmasq's hosts file lines that give dnsAName the
// addresses of nodes.
func dnsAHosts(nodes ...*routingtest.Node) []string {
	var out []string
	for _, n := range nodes {
		out = append(out, n.Host()+" "+dnsAName)
	}
	return out
}

// dnsAMember is the name the router gives n's member: its address and the
// shared port.
func dnsAMember(n *routingtest.Node) string {
	return net.JoinHostPort(n.Host(), strconv.Itoa(n.Port()))
}

// TestDNSDiscoveryARecords runs a pool configured only with dns.New on a
// plain name (A records; DiscoveryInterval 300 ms) over a SharedPort
// cluster of a primary and two replicas, all three addresses served under
// pg.test, with 8 goroutines of scoped reads and 2 of writes, each asking
// the server that answered for its address:
//
//   - writes run on the primary, reads on the replicas (both take some);
//   - replica2's address leaves the records (dnsmasq reads its hosts file
//     again): replica2 leaves the members and drains, no read started
//     after it left reaches it, and its server keeps no client connection;
//   - the address comes back: replica2 is a member again and takes reads;
//   - no read and no write fails throughout.
//
// The times (records changed → member out, drained; records back → member
// up, first read on it) are logged as FIGURES, not asserted.
func TestDNSDiscoveryARecords(t *testing.T) {
	routingtest.SkipWithoutDnsmasq(t)
	c := ownCluster(t, routingtest.ClusterOptions{SharedPort: true})
	primary, reps := c.Primary(), c.Replicas()
	r1, r2 := reps[0], reps[1]
	d := routingtest.StartDnsmasq(t, nil, dnsAHosts(primary, r1, r2))

	// The host is replaced by each address; the port is every member's.
	// The password is never asked for (the harness trusts loopback): it is
	// looked for, and must not show, in Stat and the router's log.
	connString := "postgres://postgres:" + discoveryPassword + "@pg.test:" + strconv.Itoa(primary.Port()) +
		"/postgres?sslmode=disable&connect_timeout=2&pool_max_conns=16"
	var logs routingtest.SyncBuffer
	logRouter(t, &logs)
	events := &healthEvents{}
	pool := discoveryPool(t, dns.New(dns.Config{Name: dnsAName, ConnString: connString, Resolver: d.Resolver()}), 300*time.Millisecond, events, &logs)
	routingtest.WaitFor(t, "the three addresses up as members", func() bool {
		return discMembersUp(pool, dnsAMember(primary), dnsAMember(r1), dnsAMember(r2))
	})
	if st := pool.Stat(); st.Primary != dnsAMember(primary) {
		t.Errorf("Stat: primary %q, want %q", st.Primary, dnsAMember(primary))
	}
	l := startAddrLoad(t, pool, 8, 2)

	t.Run("routing", func(t *testing.T) {
		routingtest.WaitFor(t, "writes and reads on every node", func() bool {
			return l.writesOn(primary.Host(), time.Time{}) >= 20 &&
				l.readsOn(r1.Host(), time.Time{}) >= 20 && l.readsOn(r2.Host(), time.Time{}) >= 20
		})
		l.checkPlaces(t, primary.Host())
	})

	t.Run("address removed", func(t *testing.T) {
		changed := time.Now()
		d.SetHosts(dnsAHosts(primary, r1))
		var dropped time.Time
		routingtest.WaitFor(t, "replica2 out of the members", func() bool {
			if !slices.Contains(discMembers(pool), dnsAMember(r2)) {
				dropped = time.Now()
			}
			return !dropped.IsZero()
		})
		routingtest.WaitFor(t, "replica2 drained", func() bool { return !discDraining(pool, dnsAMember(r2)) })
		drained := time.Now()
		// replica2's server: no client connection but this one's (the
		// probes stopped with its removal, its pool closed once drained).
		routingtest.WaitFor(t, "no client connection left on replica2", func() bool {
			var n int
			ask(t, r2, &n, "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()")
			return n == 0
		})
		// The read load goes on without it for a while.
		routingtest.WaitFor(t, "200 reads on replica1 after replica2 left", func() bool { return l.readsOn(r1.Host(), dropped) >= 200 })
		// dropped is when the poll saw it: the router removed replica2
		// before, so no read started after may have reached it.
		if on := l.readsOn(r2.Host(), dropped); on != 0 {
			t.Errorf("%d reads started after replica2 left the members ran on it", on)
		}
		if diff := cmp.Diff([]string{dnsAMember(primary), dnsAMember(r1)}, pool.Stat().Discovery.Members); diff != "" {
			t.Errorf("Stat().Discovery.Members (-want +got):\n%s", diff)
		}
		for _, kind := range []pgxroute.HealthEventKind{pgxroute.EventNodeRemoved, pgxroute.EventNodeDrained} {
			if !discHasEvent(events, dnsAMember(r2), kind) {
				t.Errorf("no %s event for %s: %v", kind, dnsAMember(r2), events.of(dnsAMember(r2)))
			}
		}
		t.Logf("FIGURES dns-a-removed: records changed (SIGHUP)→replica2 out of the members %s, →drained (seen) %s",
			discSince(changed, dropped), discSince(changed, drained))
	})

	t.Run("address back", func(t *testing.T) {
		back := time.Now()
		d.SetHosts(dnsAHosts(primary, r1, r2))
		var joined time.Time
		routingtest.WaitFor(t, "replica2 up as a member again", func() bool {
			if memberState(pool, dnsAMember(r2)) == pgxroute.StateUp {
				joined = time.Now()
			}
			return !joined.IsZero()
		})
		routingtest.WaitFor(t, "a read on replica2 again", func() bool { return l.readsOn(r2.Host(), back) > 0 })
		first := l.firstReadOn(r2.Host(), back)
		if diff := cmp.Diff([]string{dnsAMember(primary), dnsAMember(r1), dnsAMember(r2)}, discMembers(pool)); diff != "" {
			t.Errorf("Stat().Members (-want +got):\n%s", diff)
		}
		t.Logf("FIGURES dns-a-back: records back (SIGHUP)→replica2 up as a member %s, →first read on replica2 %s",
			discSince(back, joined), discSince(back, first))
	})
	l.end()
	l.checkPlaces(t, primary.Host())
	l.check(t)
	discNoPassword(t, pool, &logs)
}

// addrCall is one call of an addrLoad: when it started and ended, the
// address of the server that answered, and whether Stat showed no replica
// taking reads just before or just after it (a read then falls back to the
// primary by design).
type addrCall struct {
	start, end time.Time
	addr       string
	noReplica  bool
	err        error
}

// addrLoad sends scoped reads (each in a scope of its own, so that the
// writes beside them do not hold them on the primary) and writes into
// items through a pool, each goroutine every 5 ms, and records where each
// ran by asking the server for its address.
type addrLoad struct {
	stop chan struct{}
	wg   sync.WaitGroup
	once sync.Once

	mu     sync.Mutex
	reads  []addrCall
	writes []addrCall
}

// startAddrLoad starts an addrLoad of readers and writers goroutines; the
// test's cleanup ends it (before the pool closes) if the test does not.
func startAddrLoad(t *testing.T, pool *pgxroute.RoutedPool, readers, writers int) *addrLoad {
	l := &addrLoad{stop: make(chan struct{})}
	run := func(write bool) {
		defer l.wg.Done()
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			ctx, cancel := context.WithTimeout(pgxroute.WithScope(context.Background()), 30*time.Second)
			before := replicaTakesReads(pool.Stat())
			rc := addrCall{start: time.Now()}
			if write {
				rc.err = pool.QueryRow(ctx, "INSERT INTO items (id, note) VALUES ($1, 'dns-a') RETURNING host(inet_server_addr())", nextID()).Scan(&rc.addr)
			} else {
				rc.err = pool.QueryRow(ctx, "SELECT host(inet_server_addr())").Scan(&rc.addr)
			}
			rc.end = time.Now()
			cancel()
			rc.noReplica = !before || !replicaTakesReads(pool.Stat())
			l.mu.Lock()
			if write {
				l.writes = append(l.writes, rc)
			} else {
				l.reads = append(l.reads, rc)
			}
			l.mu.Unlock()
			select {
			case <-l.stop:
				return
			case <-tick.C:
			}
		}
	}
	for i := range readers + writers {
		l.wg.Add(1)
		go run(i >= readers)
	}
	t.Cleanup(l.end)
	return l
}

// end stops the load and waits for its last calls; it is safe to call more
// than once.
func (l *addrLoad) end() {
	l.once.Do(func() { close(l.stop) })
	l.wg.Wait()
}

func (l *addrLoad) readList() []addrCall {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.reads)
}

func (l *addrLoad) writeList() []addrCall {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.writes)
}

// onAfter counts the successful calls of calls that addr answered among
// those started after since.
func onAfter(calls []addrCall, addr string, since time.Time) int {
	n := 0
	for _, c := range calls {
		if c.err == nil && c.addr == addr && c.start.After(since) {
			n++
		}
	}
	return n
}

// readsOn counts the reads addr answered among those started after since.
func (l *addrLoad) readsOn(addr string, since time.Time) int {
	return onAfter(l.readList(), addr, since)
}

// writesOn counts the writes addr answered among those started after since.
func (l *addrLoad) writesOn(addr string, since time.Time) int {
	return onAfter(l.writeList(), addr, since)
}

// firstReadOn returns the end of the first read addr answered among those
// started after since, or the zero time.
func (l *addrLoad) firstReadOn(addr string, since time.Time) time.Time {
	var first time.Time
	for _, rd := range l.readList() {
		if rd.err == nil && rd.addr == addr && rd.start.After(since) && (first.IsZero() || rd.end.Before(first)) {
			first = rd.end
		}
	}
	return first
}

// checkPlaces fails the test for every write the primary (at address
// primary) did not answer, and for every read it answered while a replica
// took reads: a read that saw none (a replica suspected for a moment on a
// loaded machine) falls back to the primary by design.
func (l *addrLoad) checkPlaces(t *testing.T, primary string) {
	t.Helper()
	bad := 0
	for _, w := range l.writeList() {
		if w.err == nil && w.addr != primary {
			if bad++; bad <= 5 {
				t.Errorf("a write started at %s ran on %s, not on the primary (%s)", w.start.Format("15:04:05.000"), w.addr, primary)
			}
		}
	}
	for _, rd := range l.readList() {
		if rd.err == nil && rd.addr == primary && !rd.noReplica {
			if bad++; bad <= 5 {
				t.Errorf("a read started at %s ran on the primary while a replica took reads", rd.start.Format("15:04:05.000"))
			}
		}
	}
}

// check fails the test for every failed call and logs the counts.
func (l *addrLoad) check(t *testing.T) {
	t.Helper()
	for _, kind := range []struct {
		what  string
		calls []addrCall
	}{{"read", l.readList()}, {"write", l.writeList()}} {
		failed, by := 0, map[string]int{}
		for _, c := range kind.calls {
			if c.err != nil {
				if failed++; failed <= 5 {
					t.Errorf("a %s started at %s failed: %v", kind.what, c.start.Format("15:04:05.000"), c.err)
				}
				continue
			}
			by[c.addr]++
		}
		t.Logf("%ss: %d, failed %d, by server address %v", kind.what, len(kind.calls), failed, by)
	}
}
