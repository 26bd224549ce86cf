package prometheus_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pgxroute/pgxroute"
	"github.com/pgxroute/pgxroute/internal/obstest"
	pgxrouteprom "github.com/pgxroute/pgxroute/prometheus"
	"github.com/pgxroute/pgxroute/routingtest"
)

// The member gauges' HELP and TYPE lines.
const (
	helpPrimary = `# HELP pgxroute_member_primary 1 for the member writes go to now, 0 for the others (all 0 while no primary is known).
# TYPE pgxroute_member_primary gauge
`
	helpTimeline = `# HELP pgxroute_member_timeline The member's timeline as of its last probe (a primary's current WAL timeline, the timeline a replica streams), 0 when unknown.
# TYPE pgxroute_member_timeline gauge
`
	helpStale = `# HELP pgxroute_member_stale_primary 1 when the member reports being a primary on a lower timeline than the primary (split brain; it takes no calls), else 0.
# TYPE pgxroute_member_stale_primary gauge
`
	helpSplit = `# HELP pgxroute_member_split_brain 1 when the member is one of the members that report being a primary on the same, highest, timeline (split brain; writes fail while it lasts), else 0.
# TYPE pgxroute_member_split_brain gauge
`
	helpChanges = `# HELP pgxroute_primary_changes_total Times another member became the primary (failovers and switchovers the router followed).
# TYPE pgxroute_primary_changes_total counter
`
)

// TestCollectorFailover: on a real cluster, the primary killed and replica1
// promoted: pgxroute_primary_changes_total goes from 0 to 1,
// pgxroute_member_primary from primary to replica1, replica1's timeline
// from 1 to 2; the write that found the primary dead is counted once on it
// and once on replica1 with reason="failover"; pgxroute_node_info carries
// each node's server address; the scrape passes promtool.
func TestCollectorFailover(t *testing.T) {
	c, pool := obstest.NewFailoverPool(t, nil)
	col := pgxrouteprom.NewCollector(pool, nil)
	pport, rport := c.Primary().Port(), c.Replicas()[0].Port() // before the harness swaps them
	info := fmt.Sprintf(`# HELP pgxroute_node_info Always 1: the server address the node's pool dials (server_address, server_port; empty for a Backend), to join on node.
# TYPE pgxroute_node_info gauge
pgxroute_node_info{node="primary",server_address="127.0.0.1",server_port="%d"} 1
pgxroute_node_info{node="replica1",server_address="127.0.0.1",server_port="%d"} 1
`, pport, rport)
	if err := testutil.CollectAndCompare(col, strings.NewReader(helpChanges+`pgxroute_primary_changes_total 0
`+helpPrimary+`pgxroute_member_primary{node="primary"} 1
pgxroute_member_primary{node="replica1"} 0
`+helpTimeline+`pgxroute_member_timeline{node="primary"} 1
pgxroute_member_timeline{node="replica1"} 1
`+info), "pgxroute_primary_changes_total", "pgxroute_member_primary", "pgxroute_member_timeline", "pgxroute_node_info",
		"pgxroute_last_primary_change_timestamp_seconds"); err != nil {
		t.Fatalf("before the failover: %v", err)
	}

	start := time.Now()
	obstest.Failover(t, c, pool)

	if err := testutil.CollectAndCompare(col, strings.NewReader(helpChanges+`pgxroute_primary_changes_total 1
`+helpPrimary+`pgxroute_member_primary{node="primary"} 0
pgxroute_member_primary{node="replica1"} 1
`+helpTimeline+`pgxroute_member_timeline{node="primary"} 1
pgxroute_member_timeline{node="replica1"} 2
`+helpStale+`pgxroute_member_stale_primary{node="primary"} 0
pgxroute_member_stale_primary{node="replica1"} 0
`+helpSplit+`pgxroute_member_split_brain{node="primary"} 0
pgxroute_member_split_brain{node="replica1"} 0
# HELP pgxroute_calls_total Routed calls (attempts) by bind group, node and routing reason.
# TYPE pgxroute_calls_total counter
pgxroute_calls_total{group="default",node="primary",reason="write_no_scope"} 1
pgxroute_calls_total{group="default",node="replica1",reason="failover"} 1
# HELP pgxroute_node_ejections_total Times the node was marked down (probes failed, or a call's connection failed).
# TYPE pgxroute_node_ejections_total counter
pgxroute_node_ejections_total{node="primary"} 1
pgxroute_node_ejections_total{node="replica1"} 0
# HELP pgxroute_node_role 1 for the role the node's last probe saw (primary, replica, unknown), 0 for the others.
# TYPE pgxroute_node_role gauge
pgxroute_node_role{node="primary",role="primary"} 1
pgxroute_node_role{node="primary",role="replica"} 0
pgxroute_node_role{node="primary",role="unknown"} 0
pgxroute_node_role{node="replica1",role="primary"} 1
pgxroute_node_role{node="replica1",role="replica"} 0
pgxroute_node_role{node="replica1",role="unknown"} 0
`+info), "pgxroute_primary_changes_total", "pgxroute_member_primary", "pgxroute_member_timeline", "pgxroute_member_stale_primary",
		"pgxroute_member_split_brain", "pgxroute_calls_total", "pgxroute_node_ejections_total", "pgxroute_node_role", "pgxroute_node_info"); err != nil {
		t.Fatalf("after the failover: %v", err)
	}

	// The time of the change: Stat's, within the test.
	st := pool.Stat()
	if st.LastPrimaryChange.Before(start) || st.LastPrimaryChange.After(time.Now()) {
		t.Errorf("Stat.LastPrimaryChange %v is not within the test", st.LastPrimaryChange)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(col)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var ts []float64
	for _, mf := range mfs {
		if mf.GetName() == "pgxroute_last_primary_change_timestamp_seconds" {
			for _, m := range mf.GetMetric() {
				ts = append(ts, m.GetGauge().GetValue())
			}
		}
	}
	if want := float64(st.LastPrimaryChange.UnixNano()) / 1e9; len(ts) != 1 || ts[0] != want {
		t.Errorf("pgxroute_last_primary_change_timestamp_seconds = %v, want [%v]", ts, want)
	}
	checkWithPromtool(t, col, `pgxroute_primary_changes_total 1`, `pgxroute_last_primary_change_timestamp_seconds `)
}

// TestCollectorStalePrimary: after a failover to replica1, the old primary
// started again (a second primary, on timeline 1): it is a stale primary,
// replica1 stays the primary, and no split brain is reported (the
// timelines differ).
func TestCollectorStalePrimary(t *testing.T) {
	c := routingtest.NewCluster(t, routingtest.ClusterOptions{Replicas: 1})
	ctx := context.Background()
	pool, err := pgxroute.New(ctx, pgxroute.Config{
		Groups:   map[string][]pgxroute.Node{pgxroute.DefaultGroupName: {{Name: "primary", ConnString: c.Primary().ConnString()}}},
		Replicas: []pgxroute.Node{{Name: "replica1", ConnString: c.Replicas()[0].ConnString()}},
		Health:   pgxroute.HealthConfig{Interval: 100 * time.Millisecond, Timeout: time.Second},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	col := pgxrouteprom.NewCollector(pool, nil)
	old, r1 := c.Primary(), c.Replicas()[0]
	if err := c.Kill(old); err != nil {
		t.Fatal(err)
	}
	if err := c.Promote(ctx, r1); err != nil {
		t.Fatal(err)
	}
	routingtest.WaitFor(t, "replica1 as the primary", func() bool { return pool.Stat().Primary == "replica1" })
	if err := c.Start(ctx, old); err != nil { // a second primary, on timeline 1
		t.Fatal(err)
	}
	routingtest.WaitFor(t, "the old primary seen as stale", func() bool {
		s := pool.Stat().StalePrimaries
		return len(s) == 1 && s[0] == "primary"
	})
	if err := testutil.CollectAndCompare(col, strings.NewReader(helpChanges+`pgxroute_primary_changes_total 1
`+helpPrimary+`pgxroute_member_primary{node="primary"} 0
pgxroute_member_primary{node="replica1"} 1
`+helpTimeline+`pgxroute_member_timeline{node="primary"} 1
pgxroute_member_timeline{node="replica1"} 2
`+helpStale+`pgxroute_member_stale_primary{node="primary"} 1
pgxroute_member_stale_primary{node="replica1"} 0
`+helpSplit+`pgxroute_member_split_brain{node="primary"} 0
pgxroute_member_split_brain{node="replica1"} 0
`), "pgxroute_primary_changes_total", "pgxroute_member_primary", "pgxroute_member_timeline", "pgxroute_member_stale_primary",
		"pgxroute_member_split_brain"); err != nil {
		t.Fatal(err)
	}
}

// TestCollectorBackendNodes: on a fake (nodes given as Backends, never
// probed, roles as configured), pgxroute_node_info has empty server labels,
// the configured primary is the member primary and no timeline is known.
func TestCollectorBackendNodes(t *testing.T) {
	f := routingtest.NewFake(t, routingtest.FakeOptions{})
	col := pgxrouteprom.NewCollector(f.Pool, nil)
	if err := testutil.CollectAndCompare(col, strings.NewReader(`# HELP pgxroute_node_info Always 1: the server address the node's pool dials (server_address, server_port; empty for a Backend), to join on node.
# TYPE pgxroute_node_info gauge
pgxroute_node_info{node="primary",server_address="",server_port=""} 1
pgxroute_node_info{node="replica1",server_address="",server_port=""} 1
pgxroute_node_info{node="replica2",server_address="",server_port=""} 1
`+helpChanges+`pgxroute_primary_changes_total 0
`+helpPrimary+`pgxroute_member_primary{node="primary"} 1
pgxroute_member_primary{node="replica1"} 0
pgxroute_member_primary{node="replica2"} 0
`+helpTimeline+`pgxroute_member_timeline{node="primary"} 0
pgxroute_member_timeline{node="replica1"} 0
pgxroute_member_timeline{node="replica2"} 0
`), "pgxroute_node_info", "pgxroute_primary_changes_total", "pgxroute_member_primary", "pgxroute_member_timeline",
		"pgxroute_last_primary_change_timestamp_seconds"); err != nil {
		t.Fatal(err)
	}
}

// TestCollectorHedges: with HedgeAfter on a real cluster and replica1 slow
// (a function that sleeps there only), a read that started on replica1 is
// hedged to replica2, which answers first: the scrape's hedge counters and
// calls are exactly Stat's, and show at least that one won hedge and its
// reason="hedge" call on replica2.
func TestCollectorHedges(t *testing.T) {
	c := routingtest.NewCluster(t, routingtest.ClusterOptions{Replicas: 2})
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, c.Primary().ConnString())
	if err != nil {
		t.Fatal(err)
	}
	_, err = conn.Exec(ctx, `CREATE FUNCTION slow_on(p int) RETURNS int LANGUAGE sql STABLE AS
		'SELECT CASE WHEN inet_server_port() = p THEN (SELECT 1 FROM pg_sleep(2)) ELSE 1 END'`)
	conn.Close(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.WaitReplay(ctx); err != nil {
		t.Fatal(err)
	}
	cfg := pgxroute.Config{
		Groups:     map[string][]pgxroute.Node{pgxroute.DefaultGroupName: {{Name: "primary", ConnString: c.Primary().ConnString()}}},
		HedgeAfter: 100 * time.Millisecond,
		Health:     pgxroute.HealthConfig{Interval: 100 * time.Millisecond, Timeout: 5 * time.Second},
	}
	for i, r := range c.Replicas() {
		cfg.Replicas = append(cfg.Replicas, pgxroute.Node{Name: fmt.Sprintf("replica%d", i+1), ConnString: r.ConnString()})
	}
	pool, err := pgxroute.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	col := pgxrouteprom.NewCollector(pool, nil)
	node := func(st *pgxroute.Stat, name string) pgxroute.NodeStat {
		g, _ := st.Group(pgxroute.ReadGroupName)
		n, _ := g.Node(name)
		return n
	}
	r1port, r2port := c.Replicas()[0].Port(), c.Replicas()[1].Port()
	for i := 0; node(pool.Stat(), "replica2").HedgeWins == 0; i++ {
		if i == 10 {
			t.Fatalf("no hedge won by replica2 in 10 reads: %+v", node(pool.Stat(), "replica2"))
		}
		var one, port int
		if err := pool.QueryRow(ctx, "SELECT slow_on($1), inet_server_port()", r1port).Scan(&one, &port); err != nil {
			t.Fatal(err)
		}
		if port != r2port && port != r1port {
			t.Fatalf("read answered by port %d, not a replica", port)
		}
	}
	routingtest.WaitFor(t, "the hedges' losers to end", func() bool {
		for _, g := range pool.Stat().Groups {
			for _, n := range g.Nodes {
				if n.InFlight != 0 {
					return false
				}
			}
		}
		return true
	})
	st := pool.Stat()
	var want strings.Builder
	want.WriteString("# HELP pgxroute_node_hedges_total Hedged reads sent to the node because their first row was late on another replica (HedgeAfter).\n# TYPE pgxroute_node_hedges_total counter\n")
	nodeOf := func(name string) pgxroute.NodeStat { // the node's own figures, in whichever group lists it
		for _, g := range st.Groups {
			if n, ok := g.Node(name); ok {
				return n
			}
		}
		t.Fatalf("no node %s in Stat", name)
		return pgxroute.NodeStat{}
	}
	for _, n := range []string{"primary", "replica1", "replica2"} {
		fmt.Fprintf(&want, "pgxroute_node_hedges_total{node=%q} %d\n", n, nodeOf(n).Hedges)
	}
	want.WriteString("# HELP pgxroute_node_hedge_wins_total Hedged reads sent to the node that answered first.\n# TYPE pgxroute_node_hedge_wins_total counter\n")
	for _, n := range []string{"primary", "replica1", "replica2"} {
		fmt.Fprintf(&want, "pgxroute_node_hedge_wins_total{node=%q} %d\n", n, nodeOf(n).HedgeWins)
	}
	r2 := node(st, "replica2")
	want.WriteString("# HELP pgxroute_calls_total Routed calls (attempts) by bind group, node and routing reason.\n# TYPE pgxroute_calls_total counter\n")
	if r2.Calls[pgxroute.ReasonHedge] == 0 || r2.HedgeWins == 0 || r2.Hedges < r2.HedgeWins {
		t.Fatalf("replica2: %d hedge calls, %d hedges, %d won", r2.Calls[pgxroute.ReasonHedge], r2.Hedges, r2.HedgeWins)
	}
	for _, g := range st.Groups {
		for _, n := range g.Nodes {
			for _, r := range pgxroute.Reasons() {
				if v := n.Calls[r]; v != 0 {
					fmt.Fprintf(&want, "pgxroute_calls_total{group=%q,node=%q,reason=%q} %d\n", g.Name, n.Name, r.Name(), v)
				}
			}
		}
	}
	if err := testutil.CollectAndCompare(col, strings.NewReader(want.String()),
		"pgxroute_node_hedges_total", "pgxroute_node_hedge_wins_total", "pgxroute_calls_total"); err != nil {
		t.Fatal(err)
	}
	t.Logf("replica2: %d hedges, %d won; calls %v", r2.Hedges, r2.HedgeWins, r2.Calls)
}
