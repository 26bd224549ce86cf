package pgxroute

import (
	"github.com/pgxroute/pgxroute/stickiness"
)

// Read-your-writes by WAL position.
//
// After a write of a scope ends on the primary, the scope waits for the
// first probe of the primary that starts after that moment: the insert
// position that probe reads is at or past the end of the write's commit
// record. A replica may serve the scope once its replayed position, as its
// own probes report it, is at or past that position. Until then the scope's
// reads go to the default group. The write itself costs nothing more: the
// primary's prober is asked for an early probe, on its own connection.
//
// Monotonic reads: a read that a replica serves raises the scope's position
// to the replica's known position, and a read the primary serves makes the
// scope wait for the primary's next probe, as a write does; so no later read
// of the scope can go to a node known to be behind an earlier one.
//
// Every function here reads the primary's positions in the snapshot the
// routing decision loaded.

// primaryProbe returns the last probe of the node whose positions are the
// primary's in v (topology.positionsFrom), or nil.
func (p *RoutedPool) primaryProbe(v *snapshot) *probeResult {
	return v.nodes[v.mem.topo.positionsFrom(v)].probe
}

// awaitPosition makes scope s wait for the position of the primary's next
// probe, and asks for that probe now.
func (p *RoutedPool) awaitPosition(v *snapshot, s *stickiness.Scope) {
	n := v.mem.nodes[v.mem.topo.positionsFrom(v)]
	s.Await(n.probesStarted.Load() + 1)
	n.requestProbe()
}

// resolvePending turns the scope's wait for a primary probe into a position
// when that probe has completed. It reports whether the scope has no wait
// left.
func (p *RoutedPool) resolvePending(v *snapshot, s *stickiness.Scope) bool {
	pend := s.Pending()
	if pend == 0 {
		return true
	}
	if r := p.primaryProbe(v); r != nil && r.seq >= pend {
		if r.noPosition {
			return false // the primary does not tell its position: stay on it
		}
		if r.origin != nil && s.Origin() != r.origin {
			s.SetOrigin(r.origin)
		}
		s.Resolve(r.seq, r.lsn)
		return s.Pending() == 0
	}
	v.mem.nodes[v.mem.topo.positionsFrom(v)].requestProbe()
	return false
}

// require raises the scope's position, in the primary's current history.
// A scope whose positions belong to another history (sameHistory) is
// routed to the primary before it gets here.
func (p *RoutedPool) require(v *snapshot, s *stickiness.Scope, lsn uint64) {
	if r := p.primaryProbe(v); r != nil && r.origin != nil && s.Origin() != r.origin {
		s.SetOrigin(r.origin)
	}
	s.Require(lsn)
}

// checkToken trusts a token's position only when it belongs to the
// primary's current system and timeline and is not ahead of the primary's
// last known position. Otherwise (or when the token's write position was
// unknown) the scope waits for the primary's next position: that covers
// any genuine token, and a forged one cannot hold the scope longer.
func (p *RoutedPool) checkToken(v *snapshot, s *stickiness.Scope, t *stickiness.Token) {
	r := p.primaryProbe(v)
	if r != nil && r.origin != nil && !r.noPosition && !t.Pending && t.LSN <= r.lsn &&
		t.Origin.Timeline == r.origin.Timeline &&
		(t.Origin.SystemID == 0 || r.origin.SystemID == 0 || t.Origin.SystemID == r.origin.SystemID) {
		p.require(v, s, t.LSN)
		return
	}
	p.awaitPosition(v, s)
}

// sameHistory reports whether the scope's positions, if it has any, belong
// to the current primary's system and timeline.
func (p *RoutedPool) sameHistory(v *snapshot, s *stickiness.Scope) bool {
	o := s.Origin()
	if o == nil || s.Need() == 0 {
		return true
	}
	r := p.primaryProbe(v)
	return r == nil || r.origin == nil || *r.origin == *o
}

// hasReplayed reports whether replica n is known in v to have replayed need
// in the current primary's history: its replayed position is at or past
// need and, when both are known, it replays the primary's timeline (a
// replica still on the old primary's timeline after a failover may be past
// need there and still miss the new primary's writes).
func (p *RoutedPool) hasReplayed(v *snapshot, n *node, need uint64) bool {
	r := v.nodes[n.index].probe
	if r == nil || r.lsn < need || r.noPosition {
		return false
	}
	if pr := p.primaryProbe(v); pr != nil && pr.timeline != 0 && r.timeline != 0 && r.timeline != pr.timeline {
		return false
	}
	return true
}
