package pgxroute

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/pgxroute/pgxroute/balancer"
)

// Following the cluster.
//
// The nodes of the default group and of the read group are the members of
// one replication cluster. Unless Config.StaticRoles is set (or health
// checks are off), their roles are what the probes see: the configuration
// is only the first guess (the default group's first node is the primary,
// every other member a replica) until the first probes answer. Every
// change a prober or a routed call sees is folded into a clusterView by
// computeView, a pure function of the previous view and of what each member
// was last seen as, and published through one atomic pointer: the router
// reads it without a lock, and a call that waits for a primary waits on the
// view's next channel.

// memberObs is what the router knows of one member when a view is computed.
type memberObs struct {
	up       bool     // neither down nor suspect
	role     nodeRole // what its last probe saw (roleUnknown: none yet)
	timeline uint32   // its timeline as of that probe (0: unknown)
	probes   uint64   // the number of its last answered probe
}

// clusterView is one immutable state of the cluster.
type clusterView struct {
	obs     []memberObs // by member index (node.ci)
	primary int         // the member writes go to; -1: none known
	// last is the member that was primary last (for positions while none
	// is known); -1 before any.
	last int
	// stale marks members that report being a primary on a lower timeline
	// than the primary (split brain): they take no calls.
	stale []bool
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
	// sets are, following the cluster, the members that may take the
	// default group's calls (the primary) and the read group's (the
	// replicas), each with a balancer of its own, so that a strategy
	// balances over the members of the role alone (a round-robin over two
	// replicas alternates exactly). A set is carried over to the next view
	// while its members stay the same.
	sets [2]*roleSet
}

// roleSet is members of a group with a balancer over them: every member
// (the group's own), or, following the cluster, those of its role now.
type roleSet struct {
	members []*member
	bal     *balancer.Balancer
}

// setView lets the balancer ask a role set about its members without
// allocating.
type setView roleSet

// Usable implements balancer.Nodes: the member is up and not lagging.
func (s *setView) Usable(i int) bool {
	n := s.members[i].node
	return n.health.up() && !n.health.lagging.Load()
}

// InFlight implements balancer.Nodes.
func (s *setView) InFlight(i int) int64 { return s.members[i].node.inFlight() }

// setUpView is a setView in which lagging members are usable too.
type setUpView roleSet

// Usable implements balancer.Nodes: the member is up.
func (s *setUpView) Usable(i int) bool { return s.members[i].node.health.up() }

// InFlight implements balancer.Nodes.
func (s *setUpView) InFlight(i int) int64 { return s.members[i].node.inFlight() }

// buildSets fills v's role sets for the groups that follow the cluster,
// reusing prev's where the members did not change.
func (p *RoutedPool) buildSets(v, prev *clusterView) {
	for _, g := range []*group{p.def, p.read} {
		if g == nil || g.roles == anyRole {
			continue
		}
		var ms []*member
		for i, m := range g.members {
			if g.qualifiesIn(v, i) {
				ms = append(ms, m)
			}
		}
		k := g.roles - 1
		if prev != nil && prev.sets[k] != nil && slices.Equal(prev.sets[k].members, ms) {
			v.sets[k] = prev.sets[k]
			continue
		}
		set := &roleSet{members: ms}
		if len(ms) > 0 {
			w := make([]int, len(ms))
			for i, m := range ms {
				w[i] = m.weight
			}
			b, err := balancer.New(p.strategy, w, balancer.Options{Seed: p.seed})
			if err != nil {
				// The weights were accepted by New: cannot happen; keep the
				// previous set rather than route by a broken one.
				if prev != nil {
					v.sets[k] = prev.sets[k]
				}
				continue
			}
			set.bal = b
		}
		v.sets[k] = set
	}
}

// isPrimary reports whether member i is the one writes go to.
func (v *clusterView) isPrimary(i int) bool { return i >= 0 && i == v.primary }

// isReplica reports whether member i is a replica now (or guessed to be one
// before its first probe) and not a stale primary.
func (v *clusterView) isReplica(i int) bool {
	return i >= 0 && i < len(v.obs) && v.obs[i].role == roleIsReplica && !v.stale[i]
}

// initialView is the view before any probe: the configured roles.
func initialView(members int) *clusterView {
	v := &clusterView{obs: make([]memberObs, members), stale: make([]bool, members), next: make(chan struct{})}
	for i := range v.obs {
		v.obs[i] = memberObs{up: true, role: roleIsReplica}
	}
	if members > 0 {
		v.obs[0].role = roleIsPrimary
		v.primary, v.last = 0, 0
	}
	return v
}

// viewChange is what changed from one view to the next, for the log and the
// HealthTracer.
type viewChange struct {
	primaryChanged bool // v.primary differs from the previous view's
	splitStarted   bool // a split brain with equal timelines began
	staleAdded     []int
}

// computeView returns the view after prev when the members are as obs says,
// and what changed. The primary is the one member that is up and reports
// being a primary; of several, the one on the highest timeline, the others
// being stale; with several on that timeline, none (a split brain the
// router does not guess through). A member whose role is not yet known
// keeps the role it had in prev.
func computeView(prev *clusterView, obs []memberObs, now time.Time) (*clusterView, viewChange) {
	v := &clusterView{
		obs: make([]memberObs, len(obs)), stale: make([]bool, len(obs)),
		primary: -1, last: prev.last, changes: prev.changes, changedAt: prev.changedAt,
		maxTimeline: prev.maxTimeline, next: make(chan struct{}),
	}
	copy(v.obs, obs)
	for i := range v.obs {
		if v.obs[i].role == roleUnknown {
			v.obs[i].role = prev.obs[i].role
		}
	}
	for _, o := range v.obs {
		if o.role == roleIsPrimary {
			v.maxTimeline = max(v.maxTimeline, o.timeline)
		}
	}
	var best uint32
	var cands []int
	for i, o := range v.obs {
		if !o.up || o.role != roleIsPrimary {
			continue
		}
		if o.timeline != 0 && o.timeline < v.maxTimeline {
			v.stale[i] = true // behind the cluster's history, whoever is up
			continue
		}
		cands = append(cands, i)
		best = max(best, o.timeline)
	}
	var top []int
	for _, i := range cands {
		if v.obs[i].timeline == best {
			top = append(top, i)
		} else {
			v.stale[i] = true
		}
	}
	switch len(top) {
	case 0:
	case 1:
		v.primary = top[0]
	default:
		v.split = top
	}
	var ch viewChange
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
	for i := range v.stale {
		if v.stale[i] && !prev.stale[i] {
			ch.staleAdded = append(ch.staleAdded, i)
		}
	}
	return v, ch
}

// publishView recomputes the cluster view from every member's health and
// publishes it, then logs and traces what changed. Probers and routed calls
// call it after a change; writers are serialised, readers never wait.
func (h *healthChecker) publishView() {
	p := h.p
	h.viewMu.Lock()
	prev := p.cluster.Load()
	obs := make([]memberObs, len(p.members))
	for i, n := range p.members {
		o := memberObs{up: n.health.up(), role: nodeRole(n.health.role.Load())}
		if r := n.health.last.Load(); r != nil {
			o.timeline, o.probes = r.timeline, r.seq
		}
		obs[i] = o
	}
	v, ch := computeView(prev, obs, time.Now())
	if h.dynamic {
		p.buildSets(v, prev)
	}
	p.cluster.Store(v)
	close(prev.next)
	h.viewMu.Unlock()

	if !h.dynamic {
		return
	}
	if ch.primaryChanged {
		if v.primary >= 0 {
			prevName := ""
			if prev.primary >= 0 {
				prevName = p.members[prev.primary].name
			} else if prev.last >= 0 && prev.last != v.primary {
				prevName = p.members[prev.last].name
			}
			h.primaryEvent(p.members[v.primary].name, prevName, "pgxroute: primary changed: writes go to the new primary")
		} else {
			prevName := ""
			if prev.primary >= 0 {
				prevName = p.members[prev.primary].name
			}
			h.primaryEvent("", prevName, "pgxroute: primary lost: writes wait for a new one (FailoverTimeout)")
			h.kickAll()
		}
	}
	for _, i := range ch.staleAdded {
		other := p.members[max(v.primary, v.last, 0)]
		h.splitEvent(p.members[i], other, "pgxroute: split brain: a member reports being a primary on a lower timeline than the cluster's; it takes no calls")
	}
	if ch.splitStarted {
		h.splitEvent(p.members[v.split[0]], p.members[v.split[1]], "pgxroute: split brain: two members report being a primary on the same timeline; writes fail until one is demoted")
	}
}

// kickAll asks every member's prober for a probe now.
func (h *healthChecker) kickAll() {
	for _, n := range h.p.members {
		n.health.requestProbe()
	}
}

// awaitView returns the first view, the current one included, for which ok
// holds; it waits for one up to HealthConfig.FailoverTimeout and the end of
// ctx, asking every member for a probe. The error wraps ErrNoPrimary and
// ErrNoHealthyNode (and the context's error when ctx ended first) and names
// every member with what it was last seen as.
//
// until, when not zero, ends the wait earlier: a call that waits more than
// once (its primary lost again) waits FailoverTimeout in all.
func (p *RoutedPool) awaitView(ctx context.Context, ok func(*clusterView) bool, until time.Time) (*clusterView, error) {
	v := p.cluster.Load()
	if ok(v) {
		return v, nil
	}
	wait := p.health.cfg.FailoverTimeout
	if wait < 0 || !p.following {
		return v, p.noPrimary(v, nil)
	}
	if !until.IsZero() {
		wait = min(wait, time.Until(until))
	}
	p.health.kickAll()
	timer := time.NewTimer(max(wait, 0))
	defer timer.Stop()
	for {
		select {
		case <-v.next:
			v = p.cluster.Load()
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

// hasPrimary is the condition of a call that needs the primary.
func hasPrimary(v *clusterView) bool { return v.primary >= 0 }

// noPrimary is the error of a call that needed the primary when view v has
// none; cause is the context's error, if it ended the wait.
func (p *RoutedPool) noPrimary(v *clusterView, cause error) error {
	var b strings.Builder
	for i, n := range p.members {
		if i > 0 {
			b.WriteString(", ")
		}
		o := v.obs[i]
		fmt.Fprintf(&b, "%q %s", n.name, o.role)
		if o.timeline != 0 {
			fmt.Fprintf(&b, " on timeline %d", o.timeline)
		}
		switch {
		case v.stale[i]:
			b.WriteString(" (stale primary)")
		case !o.up:
			fmt.Fprintf(&b, " (%s)", n.health.describe())
		}
	}
	e := &noPrimaryError{errs: []error{ErrNoPrimary, ErrNoHealthyNode}}
	what := "no member is primary"
	if len(v.split) > 1 {
		what = fmt.Sprintf("split brain: %q and %q both report being the primary on timeline %d",
			p.members[v.split[0]].name, p.members[v.split[1]].name, v.obs[v.split[0]].timeline)
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
