package otel

import (
	"context"
	"fmt"
	"slices"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"

	"github.com/pgxroute/pgxroute"
)

// Metrics is the set of observable instruments NewMetrics registered over a
// RoutedPool. They cost nothing per call: one callback reads
// RoutedPool.Stat when the reader collects.
type Metrics struct {
	reg metric.Registration
}

// instrument kinds of the spec tables.
const (
	counter = iota
	upDown
	gauge
)

// intSpec is an integer instrument read from a node's (or its pool's) stat.
// Adding a NodeStat field to the metrics is one entry in nodeInts.
type intSpec struct {
	name, unit, desc string
	kind             int
	value            func(pgxroute.NodeStat) int64
}

// floatSpec is a floating-point instrument read from a node's stat.
type floatSpec struct {
	name, unit, desc string
	kind             int
	value            func(pgxroute.NodeStat) float64
}

// nodeInts are the per-node integer instruments (attributes: the node's).
var nodeInts = []intSpec{
	{"pgxroute.node.calls.in_flight", "{call}", "Routed calls running on the node, in any group.", upDown,
		func(n pgxroute.NodeStat) int64 { return n.InFlight }},
	{"pgxroute.node.wal_distance", "By", "WAL distance of the replica to the primary, as of its last probe.", gauge,
		func(n pgxroute.NodeStat) int64 { return n.LagBytes }},
	{"pgxroute.node.ejections", "{ejection}", "Times the node was marked down (probes failed, or a call's connection failed).", counter,
		func(n pgxroute.NodeStat) int64 { return n.Ejections }},
	{"pgxroute.node.readmissions", "{readmission}", "Times the node took calls again after being down.", counter,
		func(n pgxroute.NodeStat) int64 { return n.Readmissions }},
	{"pgxroute.node.read_retries", "{call}", "Reads whose connection to the node failed and that were retried on another node.", counter,
		func(n pgxroute.NodeStat) int64 { return n.Retries }},
	{"pgxroute.node.hedges", "{call}", "Hedged reads sent to the node because their first row was late on another replica (HedgeAfter).", counter,
		func(n pgxroute.NodeStat) int64 { return n.Hedges }},
	{"pgxroute.node.hedge_wins", "{call}", "Hedged reads sent to the node that answered first.", counter,
		func(n pgxroute.NodeStat) int64 { return n.HedgeWins }},
}

// nodeFloats are the per-node floating-point instruments.
var nodeFloats = []floatSpec{
	{"pgxroute.node.lag", "s", "Replay delay of the replica, as of its last probe.", gauge,
		func(n pgxroute.NodeStat) float64 { return n.Lag.Seconds() }},
}

// memberSpec is a gauge of a cluster member (a node of the default or read
// group), read from Stat.Members. Adding a MemberStat field is one entry in
// memberInts.
type memberSpec struct {
	name, unit, desc string
	value            func(*pgxroute.Stat, pgxroute.MemberStat) int64
}

// memberInts are the per-member gauges (attributes: the node's).
var memberInts = []memberSpec{
	{"pgxroute.member.primary", "1", "1 for the member writes go to now, 0 for the others (all 0 while no primary is known).",
		func(_ *pgxroute.Stat, m pgxroute.MemberStat) int64 { return b2i(m.Primary) }},
	{"pgxroute.member.timeline", "1", "The member's timeline as of its last probe (a primary's current WAL timeline, the timeline a replica streams), 0 when unknown.",
		func(_ *pgxroute.Stat, m pgxroute.MemberStat) int64 { return int64(m.Timeline) }},
	{"pgxroute.member.stale_primary", "1", "1 when the member reports being a primary on a lower timeline than the primary (split brain; it takes no calls), else 0.",
		func(_ *pgxroute.Stat, m pgxroute.MemberStat) int64 { return b2i(m.Stale) }},
	{"pgxroute.member.split_brain", "1", "1 when the member is one of the members that report being a primary on the same, highest, timeline (split brain; writes fail while it lasts), else 0.",
		func(st *pgxroute.Stat, m pgxroute.MemberStat) int64 {
			return b2i(slices.Contains(st.SplitBrain, m.Name))
		}},
}

// clusterSpec is an integer instrument of the whole pool, read from Stat,
// without node attributes. present, when not nil, says whether the
// instrument has an observation in this Stat (the discovery instruments
// have none without Config.Discovery).
type clusterSpec struct {
	name, unit, desc string
	kind             int
	value            func(*pgxroute.Stat) int64
	present          func(*pgxroute.Stat) bool
}

// hasDiscovery: the pool has a Config.Discovery.
func hasDiscovery(st *pgxroute.Stat) bool { return st.Discovery != nil }

// clusterInts are the pool-wide instruments of membership and discovery
// (Stat.Membership, Stat.Draining, Stat.Discovery). Adding one is one entry.
var clusterInts = []clusterSpec{
	{"pgxroute.membership.added", "{node}", "Nodes added to a bind group while the pool ran (SetGroup, Discovery).", counter,
		func(st *pgxroute.Stat) int64 { return st.Membership.Added }, nil},
	{"pgxroute.membership.removed", "{node}", "Nodes removed from a bind group while the pool ran (SetGroup, Discovery).", counter,
		func(st *pgxroute.Stat) int64 { return st.Membership.Removed }, nil},
	{"pgxroute.membership.drained", "{node}", "Removed nodes whose pools closed once their calls ended or DrainTimeout ran out.", counter,
		func(st *pgxroute.Stat) int64 { return st.Membership.Drained }, nil},
	{"pgxroute.membership.drain_timeouts", "{node}", "Removed nodes whose remaining calls DrainTimeout cut short (their calls failed with ErrNodeRemoved).", counter,
		func(st *pgxroute.Stat) int64 { return st.Membership.DrainTimeouts }, nil},
	{"pgxroute.membership.draining", "{node}", "Nodes removed from every group whose calls, transactions or acquired connections still run.", upDown,
		func(st *pgxroute.Stat) int64 { return int64(len(st.Draining)) }, nil},
	{"pgxroute.discovery.calls", "{call}", "Calls of Config.Discovery's Discover (absent without Config.Discovery).", counter,
		func(st *pgxroute.Stat) int64 { return st.Discovery.Calls }, hasDiscovery},
	{"pgxroute.discovery.failures", "{call}", "Discover calls that failed or returned a list the router refused; the members stayed as they were (absent without Config.Discovery).", counter,
		func(st *pgxroute.Stat) int64 { return st.Discovery.Failures }, hasDiscovery},
	{"pgxroute.discovery.members", "{node}", "Members the last successful Discover call gave (absent without Config.Discovery).", upDown,
		func(st *pgxroute.Stat) int64 { return int64(len(st.Discovery.Members)) }, hasDiscovery},
}

// poolInts are the per-node pgxpool instruments beyond the semantic
// conventions' (attributes: the node's and db.client.connection.pool.name).
var poolInts = []intSpec{
	{"db.client.connection.max", "{connection}", "The maximum number of open connections allowed (pgxpool MaxConns).", upDown,
		func(n pgxroute.NodeStat) int64 { return int64(n.Pool.MaxConns()) }},
	{"pgxroute.pool.connections.constructing", "{connection}", "Connections of the node's pool being established.", upDown,
		func(n pgxroute.NodeStat) int64 { return int64(n.Pool.ConstructingConns()) }},
	{"pgxroute.pool.acquires", "{acquire}", "Successful connection acquisitions from the node's pool.", counter,
		func(n pgxroute.NodeStat) int64 { return n.Pool.AcquireCount() }},
	{"pgxroute.pool.canceled_acquires", "{acquire}", "Acquisitions from the node's pool canceled by their context.", counter,
		func(n pgxroute.NodeStat) int64 { return n.Pool.CanceledAcquireCount() }},
	{"pgxroute.pool.empty_acquires", "{acquire}", "Successful acquisitions that waited for a connection because none was idle.", counter,
		func(n pgxroute.NodeStat) int64 { return n.Pool.EmptyAcquireCount() }},
	{"pgxroute.pool.connections.created", "{connection}", "Connections the node's pool opened.", counter,
		func(n pgxroute.NodeStat) int64 { return n.Pool.NewConnsCount() }},
}

// poolFloats are the per-node pgxpool floating-point instruments.
var poolFloats = []floatSpec{
	{"pgxroute.pool.acquire.duration", "s", "Total time successful acquisitions from the node's pool took.", counter,
		func(n pgxroute.NodeStat) float64 { return n.Pool.AcquireDuration().Seconds() }},
}

// The enumerations observed as one series per value, 1 for the current.
var (
	nodeStates = []pgxroute.NodeState{pgxroute.StateUp, pgxroute.StateLagging, pgxroute.StateDown, pgxroute.StateSuspect, pgxroute.StateJoining}
	nodeRoles  = []string{"primary", "replica", "unknown"}
)

func newInt(m metric.Meter, s intSpec) (metric.Int64Observable, error) {
	switch s.kind {
	case counter:
		return m.Int64ObservableCounter(s.name, metric.WithUnit(s.unit), metric.WithDescription(s.desc))
	case upDown:
		return m.Int64ObservableUpDownCounter(s.name, metric.WithUnit(s.unit), metric.WithDescription(s.desc))
	default:
		return m.Int64ObservableGauge(s.name, metric.WithUnit(s.unit), metric.WithDescription(s.desc))
	}
}

func newFloat(m metric.Meter, s floatSpec) (metric.Float64Observable, error) {
	switch s.kind {
	case counter:
		return m.Float64ObservableCounter(s.name, metric.WithUnit(s.unit), metric.WithDescription(s.desc))
	case upDown:
		return m.Float64ObservableUpDownCounter(s.name, metric.WithUnit(s.unit), metric.WithDescription(s.desc))
	default:
		return m.Float64ObservableGauge(s.name, metric.WithUnit(s.unit), metric.WithDescription(s.desc))
	}
}

// NewMetrics registers the pool's instruments with a meter of the provider
// (WithMeterProvider; default the global one). Unregister removes them.
func NewMetrics(pool *pgxroute.RoutedPool, opts ...Option) (*Metrics, error) {
	o := newOptions(opts)
	meter := o.mp.Meter(ScopeName)
	var all []metric.Observable
	fail := func(name string, err error) (*Metrics, error) {
		return nil, fmt.Errorf("pgxroute/otel: instrument %s: %w", name, err)
	}

	calls, err := meter.Int64ObservableCounter("pgxroute.calls", metric.WithUnit("{call}"),
		metric.WithDescription("Routed calls (attempts) by bind group, node and routing reason."))
	if err != nil {
		return fail("pgxroute.calls", err)
	}
	state, err := meter.Int64ObservableGauge("pgxroute.node.state", metric.WithUnit("1"),
		metric.WithDescription("1 for the node's current state (pgxroute.node.state: up, lagging, down, suspect, joining), 0 for the others."))
	if err != nil {
		return fail("pgxroute.node.state", err)
	}
	role, err := meter.Int64ObservableGauge("pgxroute.node.role", metric.WithUnit("1"),
		metric.WithDescription("1 for the role the node's last probe saw (pgxroute.node.role: primary, replica, unknown), 0 for the others."))
	if err != nil {
		return fail("pgxroute.node.role", err)
	}
	lagging, err := meter.Int64ObservableGauge("pgxroute.group.all_lagging", metric.WithUnit("1"),
		metric.WithDescription("1 when every up node of the bind group lags beyond the limits."))
	if err != nil {
		return fail("pgxroute.group.all_lagging", err)
	}
	conns, err := meter.Int64ObservableUpDownCounter("db.client.connection.count", metric.WithUnit("{connection}"),
		metric.WithDescription("The number of connections that are currently in state described by the state attribute."))
	if err != nil {
		return fail("db.client.connection.count", err)
	}
	changes, err := meter.Int64ObservableCounter("pgxroute.primary.changes", metric.WithUnit("{change}"),
		metric.WithDescription("Times another member became the primary (failovers and switchovers the router followed)."))
	if err != nil {
		return fail("pgxroute.primary.changes", err)
	}
	lastChange, err := meter.Float64ObservableGauge("pgxroute.primary.last_change", metric.WithUnit("s"),
		metric.WithDescription("Time of the last primary change, in seconds since the Unix epoch (absent before the first)."))
	if err != nil {
		return fail("pgxroute.primary.last_change", err)
	}
	lastDiscovery, err := meter.Float64ObservableGauge("pgxroute.discovery.last_success", metric.WithUnit("s"),
		metric.WithDescription("Time of the last successful Discover call, in seconds since the Unix epoch (absent before the first, and without Config.Discovery)."))
	if err != nil {
		return fail("pgxroute.discovery.last_success", err)
	}
	all = append(all, calls, state, role, lagging, conns, changes, lastChange, lastDiscovery)

	cints := make([]metric.Int64Observable, len(clusterInts))
	for i, s := range clusterInts {
		if cints[i], err = newInt(meter, intSpec{name: s.name, unit: s.unit, desc: s.desc, kind: s.kind}); err != nil {
			return fail(s.name, err)
		}
		all = append(all, cints[i])
	}

	members := make([]metric.Int64Observable, len(memberInts))
	for i, s := range memberInts {
		if members[i], err = meter.Int64ObservableGauge(s.name, metric.WithUnit(s.unit), metric.WithDescription(s.desc)); err != nil {
			return fail(s.name, err)
		}
		all = append(all, members[i])
	}

	ints := make([]metric.Int64Observable, len(nodeInts))
	for i, s := range nodeInts {
		if ints[i], err = newInt(meter, s); err != nil {
			return fail(s.name, err)
		}
		all = append(all, ints[i])
	}
	floats := make([]metric.Float64Observable, len(nodeFloats))
	for i, s := range nodeFloats {
		if floats[i], err = newFloat(meter, s); err != nil {
			return fail(s.name, err)
		}
		all = append(all, floats[i])
	}
	pints := make([]metric.Int64Observable, len(poolInts))
	for i, s := range poolInts {
		if pints[i], err = newInt(meter, s); err != nil {
			return fail(s.name, err)
		}
		all = append(all, pints[i])
	}
	pfloats := make([]metric.Float64Observable, len(poolFloats))
	for i, s := range poolFloats {
		if pfloats[i], err = newFloat(meter, s); err != nil {
			return fail(s.name, err)
		}
		all = append(all, pfloats[i])
	}

	base := append([]attribute.KeyValue{semconv.DBSystemNamePostgreSQL}, o.attrs...)
	cb := func(_ context.Context, obs metric.Observer) error {
		st := pool.Stat()
		seen := map[string][]attribute.KeyValue{} // a node's attributes, once it was observed
		for _, g := range st.Groups {
			obs.ObserveInt64(lagging, b2i(g.AllLagging), metric.WithAttributes(append(base[:len(base):len(base)], GroupKey.String(g.Name))...))
			for _, n := range g.Nodes {
				na := nodeAttrs(base, n)
				for r, c := range n.Calls {
					a := append(na[:len(na):len(na)], GroupKey.String(g.Name), ReasonKey.String(ReasonName(r)))
					obs.ObserveInt64(calls, c, metric.WithAttributes(a...))
				}
				if _, dup := seen[n.Name]; dup { // a node in several groups: its own figures once
					continue
				}
				seen[n.Name] = na
				for _, s := range nodeStates {
					obs.ObserveInt64(state, b2i(n.State == s), metric.WithAttributes(append(na[:len(na):len(na)], StateKey.String(s.String()))...))
				}
				for _, r := range nodeRoles {
					obs.ObserveInt64(role, b2i(n.Role == r), metric.WithAttributes(append(na[:len(na):len(na)], RoleKey.String(r))...))
				}
				set := metric.WithAttributes(na...)
				for i, s := range nodeInts {
					obs.ObserveInt64(ints[i], s.value(n), set)
				}
				for i, s := range nodeFloats {
					obs.ObserveFloat64(floats[i], s.value(n), set)
				}
				if n.Pool == nil {
					continue
				}
				pa := append(na[:len(na):len(na)], semconv.DBClientConnectionPoolName(n.Name))
				obs.ObserveInt64(conns, int64(n.Pool.IdleConns()), metric.WithAttributes(append(pa[:len(pa):len(pa)], semconv.DBClientConnectionStateIdle)...))
				obs.ObserveInt64(conns, int64(n.Pool.AcquiredConns()), metric.WithAttributes(append(pa[:len(pa):len(pa)], semconv.DBClientConnectionStateUsed)...))
				pset := metric.WithAttributes(pa...)
				for i, s := range poolInts {
					obs.ObserveInt64(pints[i], s.value(n), pset)
				}
				for i, s := range poolFloats {
					obs.ObserveFloat64(pfloats[i], s.value(n), pset)
				}
			}
		}
		cluster := metric.WithAttributes(base...)
		obs.ObserveInt64(changes, st.PrimaryChanges, cluster)
		if !st.LastPrimaryChange.IsZero() {
			obs.ObserveFloat64(lastChange, float64(st.LastPrimaryChange.UnixNano())/1e9, cluster)
		}
		for i, s := range clusterInts {
			if s.present == nil || s.present(st) {
				obs.ObserveInt64(cints[i], s.value(st), cluster)
			}
		}
		if d := st.Discovery; d != nil && !d.LastSuccessAt.IsZero() {
			obs.ObserveFloat64(lastDiscovery, float64(d.LastSuccessAt.UnixNano())/1e9, cluster)
		}
		for _, m := range st.Members {
			ma, ok := seen[m.Name]
			if !ok { // cannot happen: every member is a node of a group
				ma = nodeAttrs(base, pgxroute.NodeStat{Name: m.Name})
			}
			set := metric.WithAttributes(ma...)
			for i, s := range memberInts {
				obs.ObserveInt64(members[i], s.value(st, m), set)
			}
		}
		return nil
	}
	reg, err := meter.RegisterCallback(cb, all...)
	if err != nil {
		return nil, fmt.Errorf("pgxroute/otel: register callback: %w", err)
	}
	return &Metrics{reg: reg}, nil
}

// nodeAttrs returns the attributes of a node's observations: base, the
// node's name and, when its pool dials one (not a Node.Backend), its
// server.address and server.port (semantic conventions).
func nodeAttrs(base []attribute.KeyValue, n pgxroute.NodeStat) []attribute.KeyValue {
	a := append(base[:len(base):len(base)], NodeKey.String(n.Name))
	if n.Host != "" {
		a = append(a, semconv.ServerAddress(n.Host), semconv.ServerPort(int(n.Port)))
	}
	return a
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// Unregister removes the instruments' callback: the pool is no longer
// observed.
func (m *Metrics) Unregister() error {
	if err := m.reg.Unregister(); err != nil {
		return fmt.Errorf("pgxroute/otel: unregister: %w", err)
	}
	return nil
}
