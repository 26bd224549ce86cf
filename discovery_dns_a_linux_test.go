package pgxroute_test

import (
	"net"
	"slices"
	"strconv"
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
	l := startCallLoad(t, pool, loadOptions{Readers: 8, Writers: 2, Every: 5 * time.Millisecond, Note: "dns-a", WatchReplicas: true})

	t.Run("routing", func(t *testing.T) {
		routingtest.WaitFor(t, "writes and reads on every node", func() bool {
			return l.count(time.Time{}, writeAt(primary.Host())) >= 20 &&
				l.count(time.Time{}, readAt(r1.Host())) >= 20 && l.count(time.Time{}, readAt(r2.Host())) >= 20
		})
		l.checkWritesAt(t, primary.Host())
		l.checkReads(t)
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
		routingtest.WaitFor(t, "200 reads on replica1 after replica2 left", func() bool { return l.count(dropped, readAt(r1.Host())) >= 200 })
		// dropped is when the poll saw it: the router removed replica2
		// before, so no read started after may have reached it.
		if on := l.count(dropped, readAt(r2.Host())); on != 0 {
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
		routingtest.WaitFor(t, "a read on replica2 again", func() bool { return l.count(back, readAt(r2.Host())) > 0 })
		first := l.firstEnd(back, readAt(r2.Host()))
		if diff := cmp.Diff([]string{dnsAMember(primary), dnsAMember(r1), dnsAMember(r2)}, discMembers(pool)); diff != "" {
			t.Errorf("Stat().Members (-want +got):\n%s", diff)
		}
		t.Logf("FIGURES dns-a-back: records back (SIGHUP)→replica2 up as a member %s, →first read on replica2 %s",
			discSince(back, joined), discSince(back, first))
	})
	l.end()
	l.checkWritesAt(t, primary.Host())
	l.checkReads(t)
	l.check(t, byAddr)
	discNoPassword(t, pool, &logs)
}
