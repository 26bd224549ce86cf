package pgxroute

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgxroute/pgxroute/balancer"
)

// Membership: which nodes the pool has, and which groups list them.
//
// The nodes and each group's members are part of the published snapshot
// (snapshot.mem, an immutable membership), so that a routing decision sees
// the members and their states of one moment. New makes the first one;
// SetGroup and Config.Discovery replace it while the pool runs, one change
// at a time (RoutedPool.memMu, taken before the publisher's mutex), each
// published with the node states it needs (a new node joining).
//
// A node lives in a slot of the snapshot (node.index) from its addition
// until its pool is closed after its removal: a removed node keeps its slot
// while it drains, so that the calls still running on it find their node
// and its state, and the slot is free for another node afterwards.
//
// Removal: the membership without the node is published, then the node is
// marked removed. A call that decided on an earlier snapshot and starts
// its attempt after that finds the mark (startAttempt counts the attempt
// before it looks, and the drain looks at the count after the mark, so
// one of the two sees the other) and is routed again on a newer snapshot.
// The drain waits for the calls, transactions and acquired connections on
// the node, then closes its pool (DrainTimeout: then its connections are
// closed first, and their calls fail with ErrNodeRemoved).

// configured is one node of a group as configured (New, SetGroup,
// Discovery).
type configured struct {
	node    *node
	weight  int
	noReads bool
}

// memberList is one group's members in a membership: the configured nodes
// and, for a group that follows the cluster's roles, every other member of
// the cluster with weight 1; and a balancer over them all (for a group that
// follows no role, and for the last resort: pickAnswering).
type memberList struct {
	members  []*member
	balancer *balancer.Balancer
}

// drainingNode is a node removed from every group whose calls still run.
type drainingNode struct {
	node  *node
	since time.Time
}

// membership is the pool's nodes and groups at one time. Immutable.
type membership struct {
	nodes    []*node        // by slot (node.index); nil: a free slot
	config   [][]configured // by group.index: the nodes as configured
	groups   []memberList   // by group.index
	topo     topology
	expect   []role // by slot: the role static roles give (roleUnknown: none)
	noReads  []bool // by slot: Node.NoReads
	draining []drainingNode
}

// node returns the node in slot i, or nil.
func (m *membership) node(i int) *node {
	if i < 0 || i >= len(m.nodes) {
		return nil
	}
	return m.nodes[i]
}

// clusterGroups returns the indices of the default and read groups.
func (p *RoutedPool) clusterGroups() []int {
	if p.readGroup == nil {
		return []int{p.defaultGroup.index}
	}
	return []int{p.defaultGroup.index, p.readGroup.index}
}

// buildMembership returns the membership whose nodes (by slot) are nodes,
// whose groups list config, and in which draining drain; prev (nil at New)
// lends its members and balancers where they did not change, so that a
// member's counters and a round-robin's turn carry on.
func (p *RoutedPool) buildMembership(prev *membership, nodes []*node, config [][]configured, draining []drainingNode) (*membership, error) {
	m := &membership{
		nodes: nodes, config: config, groups: make([]memberList, len(p.groups)), draining: draining,
		expect: make([]role, len(nodes)), noReads: make([]bool, len(nodes)),
	}
	m.topo = topology{
		followsRoles: p.followsRoles,
		maxLag:       p.healthCfg.MaxReplicaLag, maxLagBytes: p.healthCfg.MaxReplicaLagBytes,
		staticPrimary: config[p.defaultGroup.index][0].node.index,
	}
	isMember := make([]bool, len(nodes))
	inDefault := make([]bool, len(nodes))
	inRead := make([]bool, len(nodes))
	for _, gi := range p.clusterGroups() {
		for _, c := range config[gi] {
			i := c.node.index
			if !isMember[i] {
				isMember[i] = true
				m.topo.members = append(m.topo.members, i)
			}
			inDefault[i] = inDefault[i] || gi == p.defaultGroup.index
			inRead[i] = inRead[i] || gi != p.defaultGroup.index
			m.noReads[i] = m.noReads[i] || c.noReads
		}
	}
	if !p.followsRoles {
		for _, i := range m.topo.members {
			switch {
			case inDefault[i] && !inRead[i]:
				m.expect[i] = rolePrimary
			case inRead[i] && !inDefault[i]:
				m.expect[i] = roleReplica
			}
		}
	}
	for _, g := range p.groups {
		var ms []*member
		in := make([]bool, len(nodes))
		for _, c := range config[g.index] {
			ms = append(ms, memberFor(prev, g, c.node, c.weight))
			in[c.node.index] = true
		}
		if p.followsRoles && g.onlyRole != roleUnknown {
			for _, i := range m.topo.members {
				if !in[i] {
					ms = append(ms, memberFor(prev, g, nodes[i], 1))
				}
			}
		}
		if prev != nil && slices.Equal(prev.groups[g.index].members, ms) {
			m.groups[g.index] = prev.groups[g.index]
			continue
		}
		w := make([]int, len(ms))
		for i, mb := range ms {
			w[i] = mb.weight
		}
		b, err := balancer.New(p.strategy, w, balancer.Options{Seed: p.seed})
		if err != nil {
			return nil, fmt.Errorf("%w: group %q: %w", ErrConfig, g.name, err)
		}
		m.groups[g.index] = memberList{members: ms, balancer: b}
	}
	return m, nil
}

// memberFor returns node n's member of g with weight w: prev's when it has
// one (a new one with the counters copied when the weight changed).
func memberFor(prev *membership, g *group, n *node, w int) *member {
	if prev != nil {
		for _, old := range prev.groups[g.index].members {
			if old.node != n {
				continue
			}
			if old.weight == w {
				return old
			}
			m := &member{node: n, weight: w}
			for r := range old.calls {
				m.calls[r].Store(old.calls[r].Load())
			}
			return m
		}
	}
	return &member{node: n, weight: w}
}

// membershipCounts are the membership changes Stat reports.
type membershipCounts struct {
	added, removed, drained, drainTimeouts atomic.Int64
	lastChange                             atomic.Int64 // unix nanoseconds; 0: none
}

// SetGroup replaces the nodes of bind group group while the pool runs.
//
// A node keeps its identity by name (given, or derived from its connection
// as New derives it): one with the same name and connection (the same
// ConnString, or the same PoolConfig, Pool or Backend value) is kept as it
// is, its pool, health and counters included, with the weight given now.
// A new node gets a pool and is probed: it takes calls only after its
// first answered probe (StateJoining until then; at once when health checks
// are off or it is a Backend, which is never probed). A node in no group
// any more takes no new call from the moment SetGroup returns; the calls,
// transactions and acquired connections running on it finish, then its pool
// closes (Config.DrainTimeout bounds the wait). A changed connection under
// the same name is a removal and an addition.
//
// For the default and read groups, whose nodes are the replication
// cluster's members, roles still come from the probes (unless they are
// static): a member added to either may turn out to be the primary.
//
// An empty list empties a group (but the default group): a read group with
// no node sends reads to the default group. The read group exists only if
// New had a node for it, an empty Groups[ReadGroup], or Discovery.
//
// A bad list (a malformed node, two nodes with one name or one connection,
// a name another group's node has, an empty default group, a Backend
// member while roles follow the cluster) returns an error wrapping ErrConfig
// that names the group and node, and an unknown group one wrapping
// ErrUnknownGroup; nothing changes then. SetGroup is safe for concurrent use
// with calls and with other SetGroup calls, which apply one at a time.
func (p *RoutedPool) SetGroup(ctx context.Context, name string, nodes []Node) error {
	g := p.group(name)
	if g == nil {
		if name == p.readGroupName {
			return fmt.Errorf("pgxroute: SetGroup: %w %q: New had no node for it (to add replicas later, give Groups[%q] as an empty list, or set Discovery)", ErrUnknownGroup, name, name)
		}
		return fmt.Errorf("pgxroute: SetGroup: %w %q", ErrUnknownGroup, name)
	}
	return p.setGroups(ctx, map[*group][]Node{g: nodes})
}

// setGroups replaces the nodes of several groups at once (SetGroup, and
// Discovery for the default and read groups together).
func (p *RoutedPool) setGroups(ctx context.Context, lists map[*group][]Node) error {
	specs := make(map[*group][]nodeSpec, len(lists))
	for g, nodes := range lists {
		if len(nodes) == 0 && g == p.defaultGroup {
			return fmt.Errorf("%w: group %q has no node: the default group needs one", ErrConfig, g.name)
		}
		specs[g] = []nodeSpec{} // an empty list empties the group
		for i, n := range nodes {
			ns, err := n.normalise(g.name, i)
			if err != nil {
				return err
			}
			specs[g] = append(specs[g], ns)
		}
	}

	// The events are reported once memMu is released: a tracer may call
	// SetGroup.
	var events []HealthEvent
	var after func()
	p.memMu.Lock()
	defer func() {
		p.memMu.Unlock()
		for _, ev := range events {
			p.report(ev)
		}
		if after != nil {
			after()
		}
	}()
	if p.closed.Load() {
		return ErrClosed
	}
	cur := p.pub.snap.Load().mem
	plan, err := p.planChange(cur, specs)
	if err != nil {
		return err
	}
	// Slots: the new nodes take free ones, then new ones at the end.
	nodes := slices.Clone(cur.nodes)
	var added []*node
	free := 0
	for _, ns := range plan.fresh {
		for free < len(nodes) && nodes[free] != nil {
			free++
		}
		if free == len(nodes) {
			nodes = append(nodes, nil)
		}
		n, err := p.newNode(ctx, plan.groupOf[ns.name], ns, free)
		if err != nil {
			plan.abort()
			return err
		}
		plan.made[ns.name] = n
		nodes[free] = n
		added = append(added, n)
	}
	config := slices.Clone(cur.config)
	for g, list := range specs {
		config[g.index] = nil
		for _, ns := range list {
			n := plan.kept[ns.name]
			if n == nil {
				n = plan.made[ns.name]
			}
			config[g.index] = append(config[g.index], configured{node: n, weight: ns.weight, noReads: ns.noReads})
		}
	}
	if p.followsRoles {
		for _, gi := range p.clusterGroups() {
			for _, c := range config[gi] {
				if c.node.pool == nil {
					plan.abort()
					return fmt.Errorf("%w: group %q node %q: a Backend cannot be a member while roles follow the cluster (it is never probed)", ErrConfig, p.groups[gi].name, c.node.name)
				}
			}
		}
	}

	// The nodes in no group any more drain.
	listed := make([]bool, len(nodes))
	for _, list := range config {
		for _, c := range list {
			listed[c.node.index] = true
		}
	}
	now := time.Now()
	draining := slices.Clone(cur.draining)
	var removed []*node
	for i, n := range cur.nodes {
		if n != nil && !listed[i] && !slices.ContainsFunc(cur.draining, func(d drainingNode) bool { return d.node == n }) {
			draining = append(draining, drainingNode{node: n, since: now})
			removed = append(removed, n)
		}
	}
	next, err := p.buildMembership(cur, nodes, config, draining)
	if err != nil {
		plan.abort()
		return err
	}
	v, prev, ch := p.publish(now, next, func(states []nodeState, _ *membership) {
		for _, n := range added {
			states[n.index] = nodeState{joining: p.probing && n.pool != nil}
		}
	})
	for _, n := range removed {
		n.removed.Store(true)
	}
	events = p.countMembers(cur, next, now)
	for _, n := range removed {
		n.stopProber()
		p.bg.Add(1)
		go p.drain(n, now)
	}
	if p.probing {
		for _, n := range added {
			if n.pool != nil {
				p.startProber(n)
				n.requestProbe()
			}
		}
	}
	after = func() { p.clusterEvents(v, prev, ch) }
	return nil
}

// changePlan is what a membership change does with each node given: keep
// an existing node (kept, by name) or make a new one (fresh; made once
// made).
type changePlan struct {
	kept    map[string]*node
	fresh   []nodeSpec
	groupOf map[string]string // a fresh node's first group, for ConfigurePool
	made    map[string]*node
}

// abort closes the pools a failed change made.
func (c *changePlan) abort() {
	for _, n := range c.made {
		if n.owned {
			n.pool.Close()
		}
	}
}

// planChange checks the new lists of some groups against the membership
// cur and each other, names the nodes whose names derive from their
// connection, and decides which nodes are kept and which are new.
func (p *RoutedPool) planChange(cur *membership, specs map[*group][]nodeSpec) (*changePlan, error) {
	plan := &changePlan{kept: map[string]*node{}, groupOf: map[string]string{}, made: map[string]*node{}}
	// The nodes that stay listed by the groups not replaced, by name.
	others := map[string]string{} // node name -> a group that lists it
	for _, g := range p.groups {
		if _, replaced := specs[g]; replaced {
			continue
		}
		for _, c := range cur.config[g.index] {
			if _, ok := others[c.node.name]; !ok {
				others[c.node.name] = g.name
			}
		}
	}
	live := map[string]*node{} // every listed node by name
	for _, list := range cur.config {
		for _, c := range list {
			live[c.node.name] = c.node
		}
	}
	byKey := map[string]*node{}
	for _, n := range live {
		byKey[n.key] = n
	}
	// Derived names: an existing node's when the connection is the same,
	// else "host:port", then "/database", then "#2"...
	taken := map[string]string{} // name -> key, of every node in play
	for name, n := range live {
		taken[name] = n.key
	}
	order := make([]*group, 0, len(specs))
	for _, g := range p.groups {
		if _, ok := specs[g]; ok {
			order = append(order, g)
		}
	}
	for _, g := range order {
		for _, ns := range specs[g] {
			if !ns.derived {
				taken[ns.name] = ns.key // a name given is never changed
			}
		}
	}
	for _, g := range order {
		list := specs[g]
		for i := range list {
			ns := &list[i]
			if !ns.derived {
				continue
			}
			if n := byKey[ns.key]; n != nil {
				ns.name = n.name
				continue
			}
			base := ns.name
			name := base
			for k := 1; ; k++ {
				key, ok := taken[name]
				if !ok || key == ns.key {
					break
				}
				name = base + "/" + ns.db
				if k > 1 {
					name += "#" + strconv.Itoa(k)
				}
			}
			taken[name] = ns.key
			ns.name = name
		}
	}
	given := map[string]nodeSpec{} // every node of the new lists, by name
	for _, g := range order {
		seenName, seenKey := map[string]bool{}, map[string]bool{}
		for _, ns := range specs[g] {
			if seenName[ns.name] {
				return nil, fmt.Errorf("%w: group %q node %q: two nodes of the group have this name", ErrConfig, g.name, ns.name)
			}
			if seenKey[ns.key] {
				return nil, fmt.Errorf("%w: group %q node %q: the node is listed twice in the group", ErrConfig, g.name, ns.name)
			}
			seenName[ns.name], seenKey[ns.key] = true, true
			if prev, ok := given[ns.name]; ok {
				if prev.key != ns.key {
					return nil, fmt.Errorf("%w: group %q node %q: the name is used by another node", ErrConfig, g.name, ns.name)
				}
				continue
			}
			given[ns.name] = ns
			n := live[ns.name]
			switch {
			case n != nil && n.key == ns.key:
				plan.kept[ns.name] = n
			case n != nil:
				if og, ok := others[ns.name]; ok {
					return nil, fmt.Errorf("%w: group %q node %q: group %q lists a node of this name with another connection", ErrConfig, g.name, ns.name, og)
				}
				fallthrough
			default:
				plan.fresh = append(plan.fresh, ns)
				plan.groupOf[ns.name] = g.name
			}
		}
	}
	return plan, nil
}

// newNode makes the node of spec ns in slot index, first listed by group:
// its pool (the router's, unless ns carries the user's Pool or a Backend),
// set up as New sets up every pool.
func (p *RoutedPool) newNode(ctx context.Context, group string, ns nodeSpec, index int) (*node, error) {
	n := &node{name: ns.name, index: index, key: ns.key, pool: ns.pool, backend: ns.backend}
	if n.pool == nil && n.backend == nil {
		if ns.cfg.ConnConfig.ConnectTimeout == 0 && p.nodeSetup.connectTimeout >= 0 {
			ns.cfg.ConnConfig.ConnectTimeout = max(p.nodeSetup.connectTimeout, 0)
			if ns.cfg.ConnConfig.ConnectTimeout == 0 {
				ns.cfg.ConnConfig.ConnectTimeout = defaultConnectTimeout
			}
		}
		p.nodeSetup.tcp.setDialer(ns.cfg)
		if f := p.nodeSetup.configurePool; f != nil {
			f(group, ns.name, ns.cfg)
		}
		if dial := ns.cfg.ConnConfig.DialFunc; dial != nil {
			n.dial = dial
			ns.cfg.ConnConfig.DialFunc = n.conns.track(dial, func() bool { return p.suspect(n) })
		}
		pool, err := pgxpool.NewWithConfig(ctx, ns.cfg)
		if err != nil {
			return nil, fmt.Errorf("pgxroute: group %q node %q: %w", group, ns.name, err)
		}
		n.pool, n.owned = pool, true
	}
	if n.backend == nil {
		n.backend = n.pool
	}
	if n.pool != nil {
		cc := n.pool.Config().ConnConfig
		n.host, n.port = cc.Host, cc.Port
		if p.probing {
			n.kick, n.proberExited = make(chan struct{}, 1), make(chan struct{})
		}
	}
	return n, nil
}

// nodeSetup is what New and SetGroup set up every pool they create with.
type nodeSetup struct {
	connectTimeout time.Duration // Config.ConnectTimeout (0: the default)
	tcp            TCPConfig
	configurePool  func(group, node string, cfg *pgxpool.Config)
}

// countMembers counts the nodes each group gained and lost from cur to
// next, and returns the events that report them. While roles follow the cluster, the default and
// read groups both hold every member: a member that joins or leaves the
// cluster is reported once, as the read group's (the default group's when
// it is the only one it is configured in).
func (p *RoutedPool) countMembers(cur, next *membership, at time.Time) []HealthEvent {
	var events []HealthEvent
	changed := false
	for _, g := range p.groups {
		if p.followsRoles && g == p.defaultGroup {
			continue // reported with the read group
		}
		was, is := cur.groups[g.index].members, next.groups[g.index].members
		has := func(ms []*member, n *node) bool {
			return slices.ContainsFunc(ms, func(m *member) bool { return m.node == n })
		}
		name := func(n *node, mem *membership) string {
			if p.followsRoles && g == p.readGroup && !slices.ContainsFunc(mem.config[g.index], func(c configured) bool { return c.node == n }) {
				return p.defaultGroup.name
			}
			return g.name
		}
		for _, m := range is {
			if !has(was, m.node) {
				changed = true
				p.members.added.Add(1)
				detail, state := "added: it takes calls after its first answered probe", StateJoining
				if !p.probing || m.node.pool == nil {
					detail, state = "added", StateUp
				}
				events = append(events, HealthEvent{Kind: EventNodeAdded, Node: m.node.name, Group: name(m.node, next), State: state, Detail: detail, At: at})
			}
		}
		for _, m := range was {
			if !has(is, m.node) {
				changed = true
				p.members.removed.Add(1)
				detail := "removed from the group"
				if m.node.removed.Load() {
					detail = "removed: it takes no new call and drains"
				}
				events = append(events, HealthEvent{Kind: EventNodeRemoved, Node: m.node.name, Group: name(m.node, cur), Detail: detail, At: at})
			}
		}
	}
	if changed {
		p.members.lastChange.Store(at.UnixNano())
	}
	return events
}

// drainPoll is how often a drain looks whether a removed node's calls
// ended.
const drainPoll = 10 * time.Millisecond

// drain waits for the calls, transactions and acquired connections on the
// removed node n to end, at most DrainTimeout, then closes its pool (a pool
// the router created: past the timeout, its connections are closed first,
// and their calls fail with ErrNodeRemoved) and frees its slot.
func (p *RoutedPool) drain(n *node, since time.Time) {
	defer p.bg.Done()
	timedOut := !n.drained()
	if timedOut && p.drainTimeout >= 0 {
		deadline := time.NewTimer(p.drainTimeout)
		tick := time.NewTicker(drainPoll)
	wait:
		for {
			select {
			case <-p.bgCtx.Done():
				deadline.Stop()
				tick.Stop()
				return // Close closes the pools
			case <-deadline.C:
				break wait
			case <-tick.C:
				if n.drained() {
					timedOut = false
					break wait
				}
			}
		}
		deadline.Stop()
		tick.Stop()
	}
	detail := "every call on it ended; its pool is closed"
	if timedOut {
		p.members.drainTimeouts.Add(1)
		detail = fmt.Sprintf("DrainTimeout (%s) ran out: its connections were closed, their calls failed", p.drainTimeout)
		if n.owned {
			n.cut.Store(true)
			n.interrupt()
		} else {
			detail = fmt.Sprintf("DrainTimeout (%s) ran out; its pool (Node.Pool, the caller's) is left open", p.drainTimeout)
		}
	}
	n.waitProber()
	if n.owned {
		n.pool.Close()
	}
	p.freeSlot(n)
	p.members.drained.Add(1)
	p.report(HealthEvent{Kind: EventNodeDrained, Node: n.name, Detail: fmt.Sprintf("%s (drained in %s)", detail, time.Since(since).Round(time.Millisecond)), At: time.Now()})
}

// drained reports whether nothing runs on the removed node n any more: no
// routed call, and no connection of a pool the router made acquired (a
// transaction, Acquire). A pool given as Node.Pool is the caller's, who
// may use it elsewhere: only the routed calls count.
func (n *node) drained() bool {
	if n.inFlight() != 0 {
		return false
	}
	return !n.owned || n.pool.Stat().AcquiredConns() == 0
}

// freeSlot takes the drained node n out of the membership: its slot is free.
func (p *RoutedPool) freeSlot(n *node) {
	p.memMu.Lock()
	defer p.memMu.Unlock()
	cur := p.pub.snap.Load().mem
	if cur.node(n.index) != n {
		return
	}
	nodes := slices.Clone(cur.nodes)
	nodes[n.index] = nil
	draining := slices.DeleteFunc(slices.Clone(cur.draining), func(d drainingNode) bool { return d.node == n })
	next, err := p.buildMembership(cur, nodes, cur.config, draining)
	if err != nil {
		return // the groups are cur's, which built: it cannot fail
	}
	p.publish(time.Now(), next, func(states []nodeState, _ *membership) {
		states[n.index] = nodeState{}
	})
}
