package pgxroute

import (
	"fmt"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/pgxroute/pgxroute/balancer"
)

// Picking: which member of a group takes a call, on one snapshot. Which
// group a call goes to, and when it runs again, is route.go's.

// member is a node's place in one group: its weight there and the calls the
// group sent it, by reason.
type member struct {
	node   *node
	weight int
	_      [48]byte // calls, written by every call, start a new cache line
	calls  [numReasons]atomic.Int64
}

// group is a bind group. It is immutable after New; its members are in
// the snapshot's membership (membership.go), and what it may pick now in
// the snapshot's groupState.
type group struct {
	name  string
	index int // in RoutedPool.groups, snapshot.groups and membership.groups
	// onlyRole is the role a member must have now to take the group's
	// calls: rolePrimary for the default group and roleReplica for the read
	// group when they follow the cluster; roleUnknown (any) otherwise.
	onlyRole role
	// isRead: the read group (Node.NoReads keeps members out of it).
	isRead bool
}

// groupState is what a group may pick from in one snapshot: the members of
// its role now (every member, for a group that follows no role) with a
// balancer over them alone, so that a strategy balances over the members of
// the role (a round-robin over two replicas alternates exactly), and each
// one's health. A role set's balancer is carried over to the next snapshot
// while its members stay the same.
type groupState struct {
	members  []*member
	balancer *balancer.Balancer // nil when members is empty
	usable   []bool             // by index in members: up and not lagging
	up       []bool             // up, lagging or not
	lagging  []bool
}

// Usable implements balancer.Nodes.
func (s *groupState) Usable(i int) bool { return s.usable[i] }

// InFlight implements balancer.Nodes.
func (s *groupState) InFlight(i int) int64 { return s.members[i].node.inFlight() }

// groupUpView is a groupState in which lagging members are usable too.
type groupUpView groupState

// Usable implements balancer.Nodes: the member is up.
func (s *groupUpView) Usable(i int) bool { return s.up[i] }

// InFlight implements balancer.Nodes.
func (s *groupUpView) InFlight(i int) int64 { return s.members[i].node.inFlight() }

// qualifies reports whether m may take g's calls by its role in v.
func (g *group) qualifies(v *snapshot, m *member) bool {
	i := m.node.index
	if g.isRead && v.mem.noReads[i] {
		return false
	}
	switch g.onlyRole {
	case rolePrimary:
		return i == v.primary
	case roleReplica:
		return v.nodes[i].role == roleReplica && !v.nodes[i].stale
	}
	return true
}

// buildGroups fills v's group states, reusing prev's balancers where a
// role set's members did not change.
func (p *RoutedPool) buildGroups(v, prev *snapshot) {
	v.groups = make([]groupState, len(p.groups))
	for _, g := range p.groups {
		gs := &v.groups[g.index]
		all := &v.mem.groups[g.index]
		if g.onlyRole == roleUnknown {
			gs.members, gs.balancer = all.members, all.balancer
			if len(all.members) == 0 {
				gs.balancer = nil
			}
		} else {
			for _, m := range all.members {
				if g.qualifies(v, m) {
					gs.members = append(gs.members, m)
				}
			}
			if prev != nil && prev.groups != nil && slices.Equal(prev.groups[g.index].members, gs.members) {
				gs.balancer = prev.groups[g.index].balancer
			} else if len(gs.members) > 0 {
				w := make([]int, len(gs.members))
				for i, m := range gs.members {
					w[i] = m.weight
				}
				// The weights were accepted by New: New cannot fail here.
				gs.balancer, _ = balancer.New(p.strategy, w, balancer.Options{Seed: p.seed})
			}
		}
		k := len(gs.members)
		flags := make([]bool, 3*k)
		gs.usable, gs.up, gs.lagging = flags[:k:k], flags[k:2*k:2*k], flags[2*k:]
		for i, m := range gs.members {
			s := &v.nodes[m.node.index]
			ok := s.up() && g.qualifies(v, m)
			gs.up[i], gs.lagging[i] = ok, s.lagging
			gs.usable[i] = ok && !s.lagging
		}
	}
}

// pick chooses a usable member of g in v, or nil when none is.
func (g *group) pick(v *snapshot) *member {
	gs := &v.groups[g.index]
	if gs.balancer == nil {
		return nil
	}
	if i := gs.balancer.Pick(gs); i >= 0 {
		return gs.members[i]
	}
	return nil
}

// pickLagging chooses an up member of g in v, lagging or not, or nil.
func (g *group) pickLagging(v *snapshot) *member {
	gs := &v.groups[g.index]
	if gs.balancer == nil {
		return nil
	}
	if i := gs.balancer.Pick((*groupUpView)(gs)); i >= 0 {
		return gs.members[i]
	}
	return nil
}

// allLagging reports whether every up member of g's role lags beyond the
// limits in v (and at least one is up).
func (g *group) allLagging(v *snapshot) bool {
	gs := &v.groups[g.index]
	any := false
	for i := range gs.members {
		if gs.up[i] {
			if !gs.lagging[i] {
				return false
			}
			any = true
		}
	}
	return any
}

// pickAnswering chooses a member by the strategy alone, healthy or not,
// among those of the group's role that did not stop answering (for a group
// with no healthy node, where the server's own error beats a guess); nil
// when there is none. A read group never takes a member that is (or was
// last seen as) a primary this way.
func (g *group) pickAnswering(v *snapshot) *member {
	all := &v.mem.groups[g.index]
	answers := func(m *member) bool {
		s := &v.nodes[m.node.index]
		return !s.suspect && !s.joining && (g.onlyRole == rolePrimary || g.qualifies(v, m))
	}
	if len(all.members) == 0 {
		return nil
	}
	if m := all.members[all.balancer.Pick(nil)]; answers(m) {
		return m
	}
	for _, m := range all.members {
		if answers(m) {
			return m
		}
	}
	return nil
}

// noneAnswering is the error of a call to g when every member stopped
// answering: it names each with its state and last error.
func (g *group) noneAnswering(v *snapshot) error {
	var b strings.Builder
	if len(v.mem.groups[g.index].members) == 0 {
		return fmt.Errorf("%w in group %q: the group has no node", ErrNoHealthyNode, g.name)
	}
	for i, m := range v.mem.groups[g.index].members {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "node %q stopped answering (%s)", m.node.name, v.nodes[m.node.index].describe())
	}
	return fmt.Errorf("%w in group %q: %s", ErrNoHealthyNode, g.name, b.String())
}

// pickOther chooses the usable member other than m with the fewest calls in
// flight for its weight (the first after m on a tie), or nil: the target of
// a hedge or of a read's retry. It takes no turn of the group's balancer, so
// that hedges and retries leave the first attempts' shares as configured
// (hedges that took round-robin turns sent three quarters and more of the
// first attempts to the slow replica they were hedging against).
func (g *group) pickOther(v *snapshot, m *member) *member {
	gs := &v.groups[g.index]
	var best *member
	var bestLoad int64
	k := len(gs.members)
	start := slices.Index(gs.members, m) + 1 // 0 when m is not among them
	for j := range k {
		i := (start + j) % k
		c := gs.members[i]
		if c == m || !gs.usable[i] {
			continue
		}
		// a/wa < b/wb, as a*wb < b*wa: no division, no float.
		load := c.node.inFlight()
		if best == nil || load*int64(best.weight) < bestLoad*int64(c.weight) {
			best, bestLoad = c, load
		}
	}
	return best
}
