// Package prometheus is a Prometheus collector over a pgxroute.RoutedPool
// (github.com/prometheus/client_golang): register it, scrape it.
//
// Every metric is read from RoutedPool.Stat at scrape time, so a routed call
// costs nothing more. The names follow Prometheus' conventions
// (pgxroute_..._total for counters, base units in _seconds and _bytes) and
// the labels are bounded: group, node, reason, state, role, and the node's
// server_address and server_port on pgxroute_node_info alone; never SQL
// text.
// docs/observability.md lists every metric.
//
// The module is separate from pgxroute's so that the library's go.mod stays
// free of client_golang. Import it as
//
//	import pgxrouteprom "github.com/pgxroute/pgxroute/prometheus"
package prometheus

import (
	"slices"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pgxroute/pgxroute"
)

// Namespace is the prefix of every metric name.
const Namespace = "pgxroute"

// Collector is a prometheus.Collector over a RoutedPool. It is safe for
// concurrent use (Stat is).
type Collector struct {
	pool *pgxroute.RoutedPool

	calls, groupLagging, state, role, conns *prometheus.Desc
	info, primaryChanges, lastPrimaryChange *prometheus.Desc
	lastDiscovery                           *prometheus.Desc
	node, pool2                             []nodeMetric
	member                                  []memberMetric
	cluster                                 []clusterMetric
}

// clusterMetric is a metric of the whole pool, without labels, read from
// Stat. present, when not nil, says whether the metric has a sample in this
// Stat (the discovery metrics have none without Config.Discovery). Adding
// one is one entry in clusterMetrics.
type clusterMetric struct {
	name, help string
	typ        prometheus.ValueType
	value      func(*pgxroute.Stat) float64
	present    func(*pgxroute.Stat) bool
	desc       *prometheus.Desc
}

// hasDiscovery: the pool has a Config.Discovery.
func hasDiscovery(st *pgxroute.Stat) bool { return st.Discovery != nil }

// clusterMetrics are the pool-wide metrics of membership and discovery
// (Stat.Membership, Stat.Draining, Stat.Discovery).
var clusterMetrics = []clusterMetric{
	{name: "membership_added_total", help: "Nodes added to a bind group while the pool ran (SetGroup, Discovery).", typ: prometheus.CounterValue,
		value: func(st *pgxroute.Stat) float64 { return float64(st.Membership.Added) }},
	{name: "membership_removed_total", help: "Nodes removed from a bind group while the pool ran (SetGroup, Discovery).", typ: prometheus.CounterValue,
		value: func(st *pgxroute.Stat) float64 { return float64(st.Membership.Removed) }},
	{name: "membership_drained_total", help: "Removed nodes whose pools closed once their calls ended or DrainTimeout ran out.", typ: prometheus.CounterValue,
		value: func(st *pgxroute.Stat) float64 { return float64(st.Membership.Drained) }},
	{name: "membership_drain_timeouts_total", help: "Removed nodes whose remaining calls DrainTimeout cut short (their calls failed with ErrNodeRemoved).", typ: prometheus.CounterValue,
		value: func(st *pgxroute.Stat) float64 { return float64(st.Membership.DrainTimeouts) }},
	{name: "membership_draining_nodes", help: "Nodes removed from every group whose calls, transactions or acquired connections still run.", typ: prometheus.GaugeValue,
		value: func(st *pgxroute.Stat) float64 { return float64(len(st.Draining)) }},
	{name: "discovery_calls_total", help: "Calls of Config.Discovery's Discover (absent without Config.Discovery).", typ: prometheus.CounterValue,
		value: func(st *pgxroute.Stat) float64 { return float64(st.Discovery.Calls) }, present: hasDiscovery},
	{name: "discovery_failures_total", help: "Discover calls that failed or returned a list the router refused; the members stayed as they were (absent without Config.Discovery).", typ: prometheus.CounterValue,
		value: func(st *pgxroute.Stat) float64 { return float64(st.Discovery.Failures) }, present: hasDiscovery},
	{name: "discovery_members", help: "Members the last successful Discover call gave (absent without Config.Discovery).", typ: prometheus.GaugeValue,
		value: func(st *pgxroute.Stat) float64 { return float64(len(st.Discovery.Members)) }, present: hasDiscovery},
}

// memberMetric is a gauge of a cluster member (a node of the default or
// read group), read from Stat.Members and labelled with the node. Adding a
// MemberStat field to the collector is one entry in memberMetrics.
type memberMetric struct {
	name, help string
	value      func(*pgxroute.Stat, pgxroute.MemberStat) float64
	desc       *prometheus.Desc
}

// memberMetrics are the per-member gauges, one series per member of the
// cluster.
var memberMetrics = []memberMetric{
	{name: "member_primary", help: "1 for the member writes go to now, 0 for the others (all 0 while no primary is known).",
		value: func(_ *pgxroute.Stat, m pgxroute.MemberStat) float64 { return b2f(m.Primary) }},
	{name: "member_timeline", help: "The member's timeline as of its last probe (a primary's current WAL timeline, the timeline a replica streams), 0 when unknown.",
		value: func(_ *pgxroute.Stat, m pgxroute.MemberStat) float64 { return float64(m.Timeline) }},
	{name: "member_stale_primary", help: "1 when the member reports being a primary on a lower timeline than the primary (split brain; it takes no calls), else 0.",
		value: func(_ *pgxroute.Stat, m pgxroute.MemberStat) float64 { return b2f(m.Stale) }},
	{name: "member_split_brain", help: "1 when the member is one of the members that report being a primary on the same, highest, timeline (split brain; writes fail while it lasts), else 0.",
		value: func(st *pgxroute.Stat, m pgxroute.MemberStat) float64 {
			return b2f(slices.Contains(st.SplitBrain, m.Name))
		}},
}

// nodeMetric is one metric read from a node's stat, labelled with the node.
// Adding a NodeStat field to the collector is one entry in nodeMetrics or
// poolMetrics.
type nodeMetric struct {
	name, help string
	typ        prometheus.ValueType
	value      func(pgxroute.NodeStat) float64
	desc       *prometheus.Desc
}

var nodeMetrics = []nodeMetric{
	{name: "node_in_flight_calls", help: "Routed calls running on the node, in any group.", typ: prometheus.GaugeValue,
		value: func(n pgxroute.NodeStat) float64 { return float64(n.InFlight) }},
	{name: "node_replay_lag_seconds", help: "Replay delay of the replica as of its last probe, in seconds.", typ: prometheus.GaugeValue,
		value: func(n pgxroute.NodeStat) float64 { return n.Lag.Seconds() }},
	{name: "node_replay_lag_bytes", help: "WAL distance of the replica to the primary as of its last probe, in bytes.", typ: prometheus.GaugeValue,
		value: func(n pgxroute.NodeStat) float64 { return float64(n.LagBytes) }},
	{name: "node_ejections_total", help: "Times the node was marked down (probes failed, or a call's connection failed).", typ: prometheus.CounterValue,
		value: func(n pgxroute.NodeStat) float64 { return float64(n.Ejections) }},
	{name: "node_readmissions_total", help: "Times the node took calls again after being down.", typ: prometheus.CounterValue,
		value: func(n pgxroute.NodeStat) float64 { return float64(n.Readmissions) }},
	{name: "node_read_retries_total", help: "Reads whose connection to the node failed and that were retried on another node.", typ: prometheus.CounterValue,
		value: func(n pgxroute.NodeStat) float64 { return float64(n.Retries) }},
	{name: "node_hedges_total", help: "Hedged reads sent to the node because their first row was late on another replica (HedgeAfter).", typ: prometheus.CounterValue,
		value: func(n pgxroute.NodeStat) float64 { return float64(n.Hedges) }},
	{name: "node_hedge_wins_total", help: "Hedged reads sent to the node that answered first.", typ: prometheus.CounterValue,
		value: func(n pgxroute.NodeStat) float64 { return float64(n.HedgeWins) }},
}

// poolMetrics are read from the node's pgxpool statistics (absent for a
// node given as a Backend).
var poolMetrics = []nodeMetric{
	{name: "pool_max_connections", help: "Maximum size of the node's connection pool.", typ: prometheus.GaugeValue,
		value: func(n pgxroute.NodeStat) float64 { return float64(n.Pool.MaxConns()) }},
	{name: "pool_acquires_total", help: "Successful connection acquisitions from the node's pool.", typ: prometheus.CounterValue,
		value: func(n pgxroute.NodeStat) float64 { return float64(n.Pool.AcquireCount()) }},
	{name: "pool_acquire_seconds_total", help: "Total time successful acquisitions from the node's pool took, in seconds.", typ: prometheus.CounterValue,
		value: func(n pgxroute.NodeStat) float64 { return n.Pool.AcquireDuration().Seconds() }},
	{name: "pool_canceled_acquires_total", help: "Acquisitions from the node's pool canceled by their context.", typ: prometheus.CounterValue,
		value: func(n pgxroute.NodeStat) float64 { return float64(n.Pool.CanceledAcquireCount()) }},
	{name: "pool_empty_acquires_total", help: "Successful acquisitions that waited for a connection because none was idle.", typ: prometheus.CounterValue,
		value: func(n pgxroute.NodeStat) float64 { return float64(n.Pool.EmptyAcquireCount()) }},
	{name: "pool_connections_created_total", help: "Connections the node's pool opened.", typ: prometheus.CounterValue,
		value: func(n pgxroute.NodeStat) float64 { return float64(n.Pool.NewConnsCount()) }},
}

// The enumerations exported as one series per value, 1 for the current.
var (
	nodeStates = []pgxroute.NodeState{pgxroute.StateUp, pgxroute.StateLagging, pgxroute.StateDown, pgxroute.StateSuspect, pgxroute.StateJoining}
	nodeRoles  = []string{"primary", "replica", "unknown"}
)

// NewCollector returns a collector over pool. constLabels are added to every
// metric (a service or cluster name, say; nil for none).
func NewCollector(pool *pgxroute.RoutedPool, constLabels prometheus.Labels) *Collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", name), help, labels, constLabels)
	}
	c := &Collector{
		pool:         pool,
		calls:        d("calls_total", "Routed calls (attempts) by bind group, node and routing reason.", "group", "node", "reason"),
		groupLagging: d("group_all_lagging", "1 when every up node of the bind group lags beyond the limits, else 0.", "group"),
		state:        d("node_state", "1 for the node's current state (up, lagging, down, suspect, joining), 0 for the others.", "node", "state"),
		role:         d("node_role", "1 for the role the node's last probe saw (primary, replica, unknown), 0 for the others.", "node", "role"),
		conns:        d("pool_connections", "Connections of the node's pool by state: idle, used (acquired), constructing.", "node", "state"),
		info: d("node_info", "Always 1: the server address the node's pool dials (server_address, server_port; empty for a Backend), to join on node.",
			"node", "server_address", "server_port"),
		primaryChanges:    d("primary_changes_total", "Times another member became the primary (failovers and switchovers the router followed)."),
		lastPrimaryChange: d("last_primary_change_timestamp_seconds", "Time of the last primary change, in seconds since the Unix epoch (absent before the first)."),
		lastDiscovery: d("discovery_last_success_timestamp_seconds",
			"Time of the last successful Discover call, in seconds since the Unix epoch (absent before the first, and without Config.Discovery)."),
	}
	for _, m := range clusterMetrics {
		m.desc = d(m.name, m.help)
		c.cluster = append(c.cluster, m)
	}
	for _, m := range memberMetrics {
		m.desc = d(m.name, m.help, "node")
		c.member = append(c.member, m)
	}
	for _, src := range [][]nodeMetric{nodeMetrics, poolMetrics} {
		out := make([]nodeMetric, len(src))
		for i, m := range src {
			m.desc = d(m.name, m.help, "node")
			out[i] = m
		}
		if c.node == nil {
			c.node = out
		} else {
			c.pool2 = out
		}
	}
	return c
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.calls, c.groupLagging, c.state, c.role, c.conns, c.info, c.primaryChanges, c.lastPrimaryChange, c.lastDiscovery} {
		ch <- d
	}
	for _, m := range c.cluster {
		ch <- m.desc
	}
	for _, m := range c.member {
		ch <- m.desc
	}
	for _, m := range c.node {
		ch <- m.desc
	}
	for _, m := range c.pool2 {
		ch <- m.desc
	}
}

// Collect implements prometheus.Collector: it reads the pool's Stat once.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	st := c.pool.Stat()
	seen := map[string]bool{}
	for _, g := range st.Groups {
		ch <- prometheus.MustNewConstMetric(c.groupLagging, prometheus.GaugeValue, b2f(g.AllLagging), g.Name)
		for _, n := range g.Nodes {
			for r, v := range n.Calls {
				ch <- prometheus.MustNewConstMetric(c.calls, prometheus.CounterValue, float64(v), g.Name, n.Name, ReasonName(r))
			}
			if seen[n.Name] { // a node in several groups: its own figures once
				continue
			}
			seen[n.Name] = true
			port := ""
			if n.Host != "" {
				port = strconv.Itoa(int(n.Port))
			}
			ch <- prometheus.MustNewConstMetric(c.info, prometheus.GaugeValue, 1, n.Name, n.Host, port)
			for _, s := range nodeStates {
				ch <- prometheus.MustNewConstMetric(c.state, prometheus.GaugeValue, b2f(n.State == s), n.Name, s.String())
			}
			for _, r := range nodeRoles {
				ch <- prometheus.MustNewConstMetric(c.role, prometheus.GaugeValue, b2f(n.Role == r), n.Name, r)
			}
			for _, m := range c.node {
				ch <- prometheus.MustNewConstMetric(m.desc, m.typ, m.value(n), n.Name)
			}
			if n.Pool == nil {
				continue
			}
			ch <- prometheus.MustNewConstMetric(c.conns, prometheus.GaugeValue, float64(n.Pool.IdleConns()), n.Name, "idle")
			ch <- prometheus.MustNewConstMetric(c.conns, prometheus.GaugeValue, float64(n.Pool.AcquiredConns()), n.Name, "used")
			ch <- prometheus.MustNewConstMetric(c.conns, prometheus.GaugeValue, float64(n.Pool.ConstructingConns()), n.Name, "constructing")
			for _, m := range c.pool2 {
				ch <- prometheus.MustNewConstMetric(m.desc, m.typ, m.value(n), n.Name)
			}
		}
	}
	ch <- prometheus.MustNewConstMetric(c.primaryChanges, prometheus.CounterValue, float64(st.PrimaryChanges))
	if !st.LastPrimaryChange.IsZero() {
		ch <- prometheus.MustNewConstMetric(c.lastPrimaryChange, prometheus.GaugeValue, float64(st.LastPrimaryChange.UnixNano())/1e9)
	}
	for _, m := range c.cluster {
		if m.present == nil || m.present(st) {
			ch <- prometheus.MustNewConstMetric(m.desc, m.typ, m.value(st))
		}
	}
	if d := st.Discovery; d != nil && !d.LastSuccessAt.IsZero() {
		ch <- prometheus.MustNewConstMetric(c.lastDiscovery, prometheus.GaugeValue, float64(d.LastSuccessAt.UnixNano())/1e9)
	}
	for _, m := range st.Members {
		for _, mm := range c.member {
			ch <- prometheus.MustNewConstMetric(mm.desc, prometheus.GaugeValue, mm.value(st, m), m.Name)
		}
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
