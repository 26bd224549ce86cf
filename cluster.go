package pgxroute

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The snapshot: one published state of every node and of the cluster.
//
// Everything routing reads about the nodes (their health, roles, timelines,
// positions and lag; which member is the primary; which nodes each group may
// pick now) is one immutable snapshot, published through one atomic
// pointer. A routing decision loads it once and passes it down; it never
// waits. Counters (calls in flight, calls by reason, ejections, hedges) stay
// atomics on the nodes: they are counts, not state routing decides by.
//
// The nodes of the default group and of the read group are the members of
// one replication cluster. Unless roles are static (Config.StaticRoles,
// health checks off, or a member given as a Backend), their roles are what
// the probes see: the configuration is only the first guess (the default
// group's first node is the primary, every other member a replica).
//
// A snapshot changes only in publisher.apply: one outcome for one node (a
// probe's, or a routed call's failure) goes through nextNodeState
// (health.go), then computeSnapshot, a pure function of the previous
// snapshot and the new node states, decides the primary, split brains, lag,
// and the groups' pickable members. Writers are serialised by the
// publisher's mutex; readers never take it. A call that waits for a primary
// waits on the snapshot's next channel, closed when the next one is
// published.

// snapshot is one immutable state of the pool's nodes and cluster.
type snapshot struct {
	mem    *membership  // the nodes and each group's members (membership.go)
	nodes  []nodeState  // by node.index (slot)
	groups []groupState // by group.index: what each group may pick now (group.go)
	// primary is the member (a node index) writes go to; -1: none known.
	primary int
	// last is the member that was primary last (for positions while none
	// is known); -1 before any.
	last int
	// split lists the members that report being a primary on the same,
	// highest, timeline: no primary is chosen while it lasts.
	split     []int
	changes   int64     // primary changes seen
	changedAt time.Time // the last one
	// maxTimeline is the highest timeline a member was seen on as a
	// primary: a primary on a lower one is stale even while the one on
	// the higher timeline is down (it would take writes the cluster's
	// history has left behind).
	maxTimeline uint32
	next        chan struct{}
}

// state returns node i's state in v: the zero state for a slot v does not
// have (a node added since).
func (v *snapshot) state(i int) nodeState {
	if i < len(v.nodes) {
		return v.nodes[i]
	}
	return nodeState{}
}

// hasPrimary is the condition of a call that needs the primary.
func hasPrimary(v *snapshot) bool { return v.primary >= 0 }

// topology is what computeSnapshot needs to know of the pool: which nodes
// are the cluster's members, whether routing follows their roles, and the
// lag limits.
type topology struct {
	members      []int // node indices of the default and read groups' nodes
	followsRoles bool
	// staticPrimary is, with static roles, the node whose positions the
	// replicas' lag is measured against: the default group's first.
	staticPrimary int
	maxLag        time.Duration // 0 or negative: no limit
	maxLagBytes   int64         // 0: no limit
}

// positionsFrom returns the node whose WAL positions are the primary's in v:
// following the roles, the primary now or else the last one; with static
// roles, the default group's first node.
func (t *topology) positionsFrom(v *snapshot) int {
	if t.followsRoles {
		if v.primary >= 0 {
			return v.primary
		}
		if v.last >= 0 {
			return v.last
		}
	}
	return t.staticPrimary
}

// clusterChange is what changed from one snapshot to the next, beyond the
// node's own transition: for the events.
type clusterChange struct {
	primaryChanged bool // the primary differs from the previous snapshot's
	splitStarted   bool // a split brain with equal timelines began
	staleAdded     []int
	laggingChanged []int // nodes whose lagging flag flipped
}

// initialSnapshot is the snapshot before any probe: every node up, the
// members in their configured roles (the first one primary).
func initialSnapshot(mem *membership) *snapshot {
	v := &snapshot{mem: mem, nodes: make([]nodeState, len(mem.nodes)), primary: -1, last: -1, next: make(chan struct{})}
	for k, i := range mem.topo.members {
		v.nodes[i].role = roleReplica
		if k == 0 {
			v.nodes[i].role = rolePrimary
			v.primary, v.last = i, i
		}
	}
	return v
}

// computeSnapshot returns the snapshot after prev when the nodes are as
// nodes says (a new slice, which it completes) and the cluster's members and
// rules are t, and what changed. The caller sets the snapshot's membership.
//
// The primary is the one member that is up and reports being a primary; of
// several, the one on the highest timeline, the others being stale; with
// several on that timeline, none (a split brain the router does not guess
// through). A replica lags when its replay delay or its WAL distance to the
// primary is beyond the limits.
func computeSnapshot(prev *snapshot, nodes []nodeState, t *topology, now time.Time) (*snapshot, clusterChange) {
	v := &snapshot{
		nodes: nodes, primary: -1, last: prev.last, changes: prev.changes, changedAt: prev.changedAt,
		maxTimeline: prev.maxTimeline, next: make(chan struct{}),
	}
	timeline := func(i int) uint32 {
		if p := nodes[i].probe; p != nil {
			return p.timeline
		}
		return 0
	}
	for _, i := range t.members {
		if nodes[i].role == rolePrimary {
			v.maxTimeline = max(v.maxTimeline, timeline(i))
		}
	}
	var best uint32
	var cands []int
	for _, i := range t.members {
		nodes[i].stale = false
		if !nodes[i].up() || nodes[i].role != rolePrimary {
			continue
		}
		if tl := timeline(i); tl != 0 && tl < v.maxTimeline {
			nodes[i].stale = true // behind the cluster's history, whoever is up
			continue
		}
		cands = append(cands, i)
		best = max(best, timeline(i))
	}
	var top []int
	for _, i := range cands {
		if timeline(i) == best {
			top = append(top, i)
		} else {
			nodes[i].stale = true
		}
	}
	switch len(top) {
	case 0:
	case 1:
		v.primary = top[0]
	default:
		v.split = top
	}
	if v.last >= 0 && !slices.Contains(t.members, v.last) {
		v.last = -1 // no longer a member (membership.go): its positions say nothing
	}
	var ch clusterChange
	if v.primary != prev.primary {
		ch.primaryChanged = true
		if v.primary >= 0 {
			if v.primary != prev.last {
				v.changes++
				v.changedAt = now
			}
			v.last = v.primary
		}
	}
	ch.splitStarted = len(v.split) > 0 && len(prev.split) == 0
	for _, i := range t.members {
		if nodes[i].stale && !prev.state(i).stale {
			ch.staleAdded = append(ch.staleAdded, i)
		}
	}

	var primaryLSN uint64
	if pr := nodes[t.positionsFrom(v)].probe; pr != nil && !pr.recovery {
		primaryLSN = pr.lsn
	}
	for i := range nodes {
		n := &nodes[i]
		n.lagBytes, n.lagging = 0, false
		if n.probe != nil && n.probe.recovery {
			if primaryLSN > n.probe.lsn {
				n.lagBytes = int64(primaryLSN - n.probe.lsn)
			}
			n.lagging = (t.maxLag > 0 && n.probe.lag > t.maxLag) || (t.maxLagBytes > 0 && n.lagBytes > t.maxLagBytes)
		}
		if n.lagging != prev.state(i).lagging {
			ch.laggingChanged = append(ch.laggingChanged, i)
		}
	}
	return v, ch
}

// publisher owns the snapshot: it applies outcomes one at a time and
// publishes the result. Its mutex serialises writers only; calls read the
// pointer without it.
type publisher struct {
	mu   sync.Mutex // held while one outcome or membership is applied and published
	snap atomic.Pointer[snapshot]
}

// apply applies outcome o of node n, publishes the new snapshot, then
// reports what changed and acts on it (interrupts, probes).
func (p *RoutedPool) apply(n *node, o outcome) {
	if o.at.IsZero() {
		o.at = time.Now()
	}
	if n.removed.Load() {
		return // it drains: its health no longer matters
	}
	if o.kind == callFailed {
		o.probesStarted = n.probesStarted.Load()
	}
	var t transition
	v, prev, ch := p.publish(o.at, nil, func(nodes []nodeState, mem *membership) {
		if mem.node(n.index) == n { // not a node removed since
			nodes[n.index], t = nextNodeState(nodes[n.index], o, p.rulesFor(mem, n))
		}
	})

	for _, e := range t.events {
		switch e.kind {
		case EventEjected:
			n.ejections.Add(1)
			if slices.Contains(v.mem.topo.members, n.index) {
				p.discoverSoon() // the member may have left the cluster
			}
		case EventReadmitted:
			n.readmissions.Add(1)
		}
		p.nodeEvent(v, n, e.kind, e.why, e.err)
	}
	if t.interrupt {
		n.interrupt()
	}
	if t.resetPool && n.pool != nil {
		// The idle connections of a server that failed one are likely dead
		// too (a crash, a restart): drop them, so that no later call sends
		// a statement on one (and loses track of whether it ran).
		n.pool.Reset()
	}
	if t.probeNow {
		n.requestProbe()
	}
	p.clusterEvents(v, prev, ch)
}

// publish publishes the snapshot after the current one with membership mem
// (nil: the current one's) in which change changed the nodes' states (a
// copy of them, one per slot of mem), and returns it with the one before it
// and what changed.
func (p *RoutedPool) publish(at time.Time, mem *membership, change func(nodes []nodeState, mem *membership)) (v, prev *snapshot, ch clusterChange) {
	p.pub.mu.Lock()
	defer p.pub.mu.Unlock()
	prev = p.pub.snap.Load()
	if mem == nil {
		mem = prev.mem
	}
	nodes := make([]nodeState, len(mem.nodes))
	copy(nodes, prev.nodes)
	change(nodes, mem)
	v, ch = computeSnapshot(prev, nodes, &mem.topo, at)
	v.mem = mem
	p.buildGroups(v, prev)
	p.pub.snap.Store(v)
	close(prev.next)
	return v, prev, ch
}

// rulesFor returns the health rules of node n in membership mem.
func (p *RoutedPool) rulesFor(mem *membership, n *node) healthRules {
	return healthRules{
		failuresToEject:    p.healthCfg.FailuresToEject,
		successesToReadmit: p.healthCfg.SuccessesToReadmit,
		ejectOnCall:        p.probing,
		expect:             mem.expect[n.index],
	}
}

// clusterEvents reports the cluster's changes from prev to v.
func (p *RoutedPool) clusterEvents(v, prev *snapshot, ch clusterChange) {
	for _, i := range ch.laggingChanged {
		n, s := v.mem.nodes[i], &v.nodes[i]
		if n == nil {
			continue
		}
		if s.lagging {
			p.report(HealthEvent{Kind: EventLagging, Node: n.name, State: s.state(), Role: s.role.String(),
				Detail: "the replica lags beyond the limits; it takes no reads", Lag: s.probe.lag, LagBytes: s.lagBytes, At: time.Now()})
		} else {
			p.nodeEvent(v, n, EventCaughtUp, "the replica is within the lag limits again", "")
		}
	}
	if !p.followsRoles {
		return
	}
	name := func(v *snapshot, i int) string {
		if n := v.mem.node(i); n != nil {
			return n.name
		}
		return ""
	}
	if ch.primaryChanged {
		ev := HealthEvent{Kind: EventPrimaryChanged, Role: "primary", At: time.Now()}
		if v.primary >= 0 {
			ev.Node = name(v, v.primary)
			if prev.primary >= 0 {
				ev.Previous = name(prev, prev.primary)
			} else if prev.last >= 0 && prev.last != v.primary {
				ev.Previous = name(prev, prev.last)
			}
			ev.Detail = "writes go to the new primary"
		} else {
			if prev.primary >= 0 {
				ev.Previous = name(prev, prev.primary)
			}
			ev.Detail = "primary lost: writes wait for a new one (FailoverTimeout)"
		}
		p.report(ev)
		if v.primary < 0 {
			p.probeAll()
			p.discoverSoon() // the primary may have left the cluster
		}
	}
	for _, i := range ch.staleAdded {
		p.report(HealthEvent{Kind: EventSplitBrain, Node: name(v, i), Previous: name(v, max(v.primary, v.last, 0)), State: v.nodes[i].state(), Role: "primary",
			Detail: "a member reports being a primary on a lower timeline than the cluster's; it takes no calls", At: time.Now()})
	}
	if ch.splitStarted {
		a, b := v.split[0], v.split[1]
		p.report(HealthEvent{Kind: EventSplitBrain, Node: name(v, a), Previous: name(v, b), State: v.nodes[a].state(), Role: "primary",
			Detail: "two members report being a primary on the same timeline; writes fail until one is demoted", At: time.Now()})
	}
}

// nodeEvent reports a health event of node n as of snapshot v.
func (p *RoutedPool) nodeEvent(v *snapshot, n *node, kind HealthEventKind, why, err string) {
	s := &v.nodes[n.index]
	p.report(HealthEvent{Kind: kind, Node: n.name, State: s.state(), Role: s.role.String(), Err: err, Detail: why, At: time.Now()})
}

// report passes a health event to the pool's health tracers (the Logger's
// adapter among them).
func (p *RoutedPool) report(ev HealthEvent) {
	if p.healthTracer != nil {
		p.healthTracer.TraceHealth(context.Background(), ev)
	}
}

// probeAll asks every member's prober for a probe now.
func (p *RoutedPool) probeAll() {
	mem := p.pub.snap.Load().mem
	for _, i := range mem.topo.members {
		mem.nodes[i].requestProbe()
	}
}

// awaitSnapshot returns the first snapshot, the current one included, for
// which ok holds; it waits for one up to HealthConfig.FailoverTimeout and
// the end of ctx, asking every member for a probe. The error wraps
// ErrNoPrimary and ErrNoHealthyNode (and the context's error when ctx ended
// first) and names every member with what it was last seen as.
//
// until, when not zero, ends the wait earlier: a call that waits more than
// once (its primary lost again) waits FailoverTimeout in all.
func (p *RoutedPool) awaitSnapshot(ctx context.Context, ok func(*snapshot) bool, until time.Time) (*snapshot, error) {
	v := p.pub.snap.Load()
	if ok(v) {
		return v, nil
	}
	wait := p.healthCfg.FailoverTimeout
	if wait < 0 || !p.followsRoles {
		return v, p.noPrimary(v, nil)
	}
	if !until.IsZero() {
		wait = min(wait, time.Until(until))
	}
	p.probeAll()
	timer := time.NewTimer(max(wait, 0))
	defer timer.Stop()
	for {
		select {
		case <-v.next:
			v = p.pub.snap.Load()
			if ok(v) {
				return v, nil
			}
		case <-timer.C:
			return v, p.noPrimary(v, nil)
		case <-ctx.Done():
			return v, p.noPrimary(v, ctx.Err())
		}
	}
}

// noPrimary is the error of a call that needed the primary when snapshot v
// has none; cause is the context's error, if it ended the wait.
func (p *RoutedPool) noPrimary(v *snapshot, cause error) error {
	var b strings.Builder
	for k, i := range v.mem.topo.members {
		if k > 0 {
			b.WriteString(", ")
		}
		s := &v.nodes[i]
		fmt.Fprintf(&b, "%q %s", v.mem.nodes[i].name, s.role)
		if s.probe != nil && s.probe.timeline != 0 {
			fmt.Fprintf(&b, " on timeline %d", s.probe.timeline)
		}
		switch {
		case s.stale:
			b.WriteString(" (stale primary)")
		case !s.up():
			fmt.Fprintf(&b, " (%s)", s.describe())
		}
	}
	e := &noPrimaryError{errs: []error{ErrNoPrimary, ErrNoHealthyNode}}
	what := "no member is primary"
	if len(v.split) > 1 {
		tl := uint32(0)
		if pr := v.nodes[v.split[0]].probe; pr != nil {
			tl = pr.timeline
		}
		what = fmt.Sprintf("split brain: %q and %q both report being the primary on timeline %d",
			v.mem.nodes[v.split[0]].name, v.mem.nodes[v.split[1]].name, tl)
		e.errs = append(e.errs, ErrSplitBrain)
	}
	if cause != nil {
		what = fmt.Sprintf("%v while waiting for a primary: %s", cause, what)
		e.errs = append(e.errs, cause)
	}
	e.msg = fmt.Sprintf("%s (members: %s)", what, b.String())
	return e
}

// noPrimaryError is the error of a call that needed the primary while none
// was known. It wraps ErrNoPrimary, ErrNoHealthyNode, ErrSplitBrain when two
// members claim the role, and the context's error when it ended the wait.
type noPrimaryError struct {
	msg  string
	errs []error
}

func (e *noPrimaryError) Error() string   { return "pgxroute: no primary: " + e.msg }
func (e *noPrimaryError) Unwrap() []error { return e.errs }
