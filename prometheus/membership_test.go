package prometheus_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pgxroute/pgxroute"
	"github.com/pgxroute/pgxroute/internal/obstest"
	pgxrouteprom "github.com/pgxroute/pgxroute/prometheus"
	"github.com/pgxroute/pgxroute/routingtest"
)

// sample gathers col and returns the value of the metric called name
// without labels (a pool-wide one), and whether it was there.
func sample(t *testing.T, col prometheus.Collector, name string) (float64, bool) {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(col)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		if len(mf.GetMetric()) != 1 {
			t.Fatalf("%s: %d samples, want 1", name, len(mf.GetMetric()))
		}
		m := mf.GetMetric()[0]
		if c := m.GetCounter(); c != nil {
			return c.GetValue(), true
		}
		return m.GetGauge().GetValue(), true
	}
	return 0, false
}

// TestCollectorMembership: SetGroup replaces the read group's replica that
// holds an open transaction (the server says which) by a node that listens
// nowhere. Compared with testutil.CollectAndCompare: the counters of
// added and removed nodes 1 (a member is counted once, though both cluster
// groups list every member while roles follow the cluster), one node
// draining while the transaction runs; in the scrape, the new node
// joining and no series of the removed node; after the commit, no node
// draining and one drained. The scrape passes promtool check metrics.
func TestCollectorMembership(t *testing.T) {
	c, pool := obstest.NewRouted(t, func(cfg *pgxroute.Config) { cfg.DrainTimeout = time.Minute })
	col := pgxrouteprom.NewCollector(pool, nil)
	ctx := context.Background()
	tx, victim := obstest.ReplaceTxReplica(t, c, pool)
	membership := func(draining, drained int) string {
		return strings.NewReplacer(
			"added_total 0", "added_total 1",
			"removed_total 0", "removed_total 1",
			"draining_nodes 0", "draining_nodes "+strconv.Itoa(draining),
			"drained_total 0", "drained_total "+strconv.Itoa(drained),
		).Replace(wantNoMembershipChange)
	}
	if err := testutil.CollectAndCompare(col, strings.NewReader(membership(1, 0)), membershipMetrics...); err != nil {
		t.Fatalf("while %s drains: %v", victim, err)
	}
	// The new node joining, the removed one without series (the other
	// nodes' states are left out: a probe late on a loaded machine may make
	// one suspect for a moment).
	text := scrape(t, col)
	for _, s := range []string{"down", "joining", "lagging", "suspect", "up"} {
		want := fmt.Sprintf(`pgxroute_node_state{node="joiner",state="%s"} %d`, s, map[bool]int{true: 1}[s == "joining"])
		if !strings.Contains(text, want+"\n") {
			t.Errorf("the scrape lacks %s", want)
		}
	}
	if strings.Contains(text, `node="`+victim+`"`) {
		t.Errorf("the scrape still has series of %s, removed from every group:\n%s", victim, text)
	}
	checkWithPromtool(t, col, `pgxroute_membership_draining_nodes 1`)

	if err := tx.Commit(ctx); err != nil {
		t.Fatalf("commit on the draining node: %v", err)
	}
	routingtest.WaitFor(t, victim+" drained", func() bool { return pool.Stat().Membership.Drained == 1 })
	if err := testutil.CollectAndCompare(col, strings.NewReader(membership(0, 1)), membershipMetrics...); err != nil {
		t.Fatalf("once %s drained: %v", victim, err)
	}
}

// TestCollectorDiscovery: with a discoverer that fails (the built-in
// Patroni one, its REST API on a port nothing listens on), the discovery
// counters grow (failures <= calls), no member, no last success; reads
// still run. Once the discoverer answers (the cluster's own nodes), 3
// members and the time of Stat's last success, membership unchanged; the
// scrape passes promtool check metrics.
func TestCollectorDiscovery(t *testing.T) {
	var disc *obstest.SwitchDiscoverer
	c, pool := obstest.NewRouted(t, func(cfg *pgxroute.Config) {
		disc = obstest.NewSwitchDiscoverer(obstest.DeadPatroni(t, "Sw0rdf1sh-prom", cfg.Replicas[0].ConnString))
		cfg.Discovery = disc
		cfg.DiscoveryInterval = 200 * time.Millisecond
	})
	col := pgxrouteprom.NewCollector(pool, nil)
	routingtest.WaitFor(t, "two failed discoveries", func() bool {
		d := pool.Stat().Discovery
		return d != nil && d.Failures >= 2
	})
	// (Bounded retries: on a loaded machine a probe late for a moment may
	// send a read to the primary.)
	routingtest.WaitFor(t, "a read served by a replica while discovery fails", func() bool {
		return strings.HasPrefix(routingtest.ServedBy(t, context.Background(), c, pool, obstest.ReadSQL), "replica")
	})
	// Failures first: both only grow, and a call may fail between the two
	// gathers.
	failures, _ := sample(t, col, "pgxroute_discovery_failures_total")
	calls, _ := sample(t, col, "pgxroute_discovery_calls_total")
	if failures < 2 || calls < failures {
		t.Errorf("pgxroute_discovery_calls_total %v, _failures_total %v: want 2 failures or more, and as many calls", calls, failures)
	}
	if m, ok := sample(t, col, "pgxroute_discovery_members"); !ok || m != 0 {
		t.Errorf("pgxroute_discovery_members %v (present %v), want 0", m, ok)
	}
	if _, ok := sample(t, col, "pgxroute_discovery_last_success_timestamp_seconds"); ok {
		t.Errorf("pgxroute_discovery_last_success_timestamp_seconds before a success")
	}

	disc.Set(obstest.ListDiscoverer(obstest.ClusterNodes(c)))
	routingtest.WaitFor(t, "a successful discovery", func() bool {
		d := pool.Stat().Discovery
		return d != nil && !d.LastSuccessAt.IsZero()
	})
	if m, _ := sample(t, col, "pgxroute_discovery_members"); m != 3 {
		t.Errorf("pgxroute_discovery_members %v, want 3", m)
	}
	before := pool.Stat().Discovery.LastSuccessAt
	last, _ := sample(t, col, "pgxroute_discovery_last_success_timestamp_seconds")
	after := pool.Stat().Discovery.LastSuccessAt
	if lo, hi := float64(before.UnixNano())/1e9, float64(after.UnixNano())/1e9; last < lo || last > hi {
		t.Errorf("pgxroute_discovery_last_success_timestamp_seconds %v, want Stat's (%v .. %v)", last, lo, hi)
	}
	for _, name := range []string{"pgxroute_membership_added_total", "pgxroute_membership_removed_total"} {
		if v, _ := sample(t, col, name); v != 0 {
			t.Errorf("%s %v, want 0: the discoverer gave the configured nodes", name, v)
		}
	}
	checkWithPromtool(t, col, `pgxroute_discovery_members 3`, `pgxroute_discovery_calls_total `, `pgxroute_discovery_failures_total `)
}
