package pgxroute

import (
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgxroute/pgxroute/internal/pgtext"
)

// Stat is a snapshot of a RoutedPool: every group, and in it every node with
// its pool statistics, routed calls by reason, and health. It holds no
// credentials.
type Stat struct {
	// Groups lists the bind groups, the default group first, then the read
	// group (when it has nodes), then the others by name.
	Groups []GroupStat
	// Primary names the member writes go to now; "" while none is known (a
	// failover, a split brain).
	Primary string
	// PrimaryChanges counts the times another member became the primary,
	// and LastPrimaryChange is the time of the last one.
	PrimaryChanges    int64
	LastPrimaryChange time.Time
	// SplitBrain names the members that report being a primary on the same,
	// highest, timeline (writes fail while it lasts); StalePrimaries those
	// that report being a primary on a lower timeline than the primary
	// (they take no calls).
	SplitBrain     []string
	StalePrimaries []string
	// Members lists the cluster's members (the nodes of the default and
	// read groups) with what each was last seen as.
	Members []MemberStat
	// Draining lists the nodes removed from every group (SetGroup,
	// Discovery) whose calls, transactions or acquired connections still
	// run: they take no new call, and their pools close when these end or
	// Config.DrainTimeout runs out.
	Draining []DrainingStat
	// Membership counts the changes of the groups' nodes while the pool ran.
	Membership MembershipStat
	// Discovery is Config.Discovery's state; nil without it.
	Discovery *DiscoveryStat
}

// DrainingStat is a node removed from every group that still drains.
type DrainingStat struct {
	Name string
	// Since is when it was removed.
	Since time.Time
	// InFlight counts its routed calls still running (open transactions and
	// unread rows included); Acquired its pool's acquired connections.
	InFlight int64
	Acquired int32
}

// MembershipStat counts the membership changes (SetGroup, Discovery).
type MembershipStat struct {
	// Added and Removed count nodes added to and removed from a group; a
	// member of the cluster counts once while roles follow the cluster
	// (the default and read groups then both hold every member).
	Added, Removed int64
	// Drained counts removed nodes whose pools closed, and DrainTimeouts
	// those of them whose calls DrainTimeout cut short.
	Drained, DrainTimeouts int64
	// LastChange is the time of the last change.
	LastChange time.Time
}

// DiscoveryStat is what Config.Discovery did.
type DiscoveryStat struct {
	// Calls counts the Discover calls, Failures those that failed or
	// returned a list the router refused (the members then stay as they
	// were).
	Calls, Failures int64
	// LastError is the last failure's error, without passwords, and
	// LastErrorAt its time; LastSuccessAt is the time of the last call that
	// succeeded.
	LastError     string
	LastErrorAt   time.Time
	LastSuccessAt time.Time
	// Members names the members the last successful call gave.
	Members []string
}

// MemberStat is one member of the cluster as the router sees it.
type MemberStat struct {
	Name string
	// Role is "primary", "replica" or "unknown" (no probe yet): what its last
	// probe saw, or the configured role before it.
	Role string
	// Timeline is, on a primary, the timeline of its current WAL file; on a
	// replica, the timeline its WAL receiver streams; 0 when unknown.
	Timeline uint32
	State    NodeState
	// Primary: writes go to this member now. Stale: it reports being a
	// primary on a lower timeline than the primary (split brain).
	Primary, Stale bool
}

// GroupStat is a bind group's part of Stat.
type GroupStat struct {
	Name string
	// AllLagging is true when every up node of the group lags beyond the
	// limits (they still take reads: none is ejected for lag alone).
	AllLagging bool
	Nodes      []NodeStat
}

// NodeStat is one node of a group.
type NodeStat struct {
	Name string
	// Host and Port are the node's server address as its pool dials it (the
	// first host of a multi-host connection string); empty and 0 for a
	// Node.Backend. They feed OpenTelemetry's server.address and
	// server.port.
	Host   string
	Port   uint16
	Weight int
	// Calls counts the calls this group sent the node, by reason; Total is
	// their sum.
	Calls map[Reason]int64
	Total int64
	// InFlight counts the routed calls running on the node, in any group.
	InFlight int64
	// Pool is the node's pgxpool statistics (shared by its groups); nil for
	// a Node.Backend.
	Pool *pgxpool.Stat

	State NodeState
	// Role is what the last probe saw: "primary", "replica" or "unknown"
	// (no probe yet, or health checks off).
	Role string
	// RoleMismatch is true when a default-group node is in recovery or a
	// read-group node is not.
	RoleMismatch bool
	// NoReads: the node takes no reads of the read group (Node.NoReads).
	NoReads bool
	// Lag is the replica's replay delay; LagBytes its WAL distance to the
	// primary.
	Lag      time.Duration
	LagBytes int64
	// Position is the node's WAL position as of its last probe (replayed on
	// a replica, inserted on a primary), in pg_lsn's text form.
	Position string
	// LastError is the last connection or probe error, without passwords,
	// and LastErrorAt its time.
	LastError    string
	LastErrorAt  time.Time
	Ejections    int64
	Readmissions int64
	Retries      int64
	// Probes counts the health probes started on the node: the regular ones
	// and those asked for (a failover, read-your-writes catching up).
	Probes int64
	// Hedges counts the hedged reads sent to the node (HedgeAfter), and
	// HedgeWins those of them that answered first.
	Hedges, HedgeWins int64
}

// Stat returns a snapshot of the pool's groups and nodes: one published
// snapshot of their states, and the counters as they are when read. It takes
// no lock that calls wait on.
func (p *RoutedPool) Stat() *Stat {
	v := p.pub.snap.Load()
	st := &Stat{}
	for _, g := range p.groups {
		gs := GroupStat{Name: g.name, AllLagging: g.allLagging(v)}
		for _, m := range v.mem.groups[g.index].members {
			n := m.node
			s := &v.nodes[n.index]
			ns := NodeStat{
				Name:         n.name,
				Weight:       m.weight,
				Calls:        map[Reason]int64{},
				InFlight:     n.inFlight(),
				State:        s.state(),
				Role:         "unknown",
				RoleMismatch: s.roleMismatch,
				NoReads:      v.mem.noReads[n.index],
				LagBytes:     s.lagBytes,
				Ejections:    n.ejections.Load(),
				Readmissions: n.readmissions.Load(),
				Retries:      n.retries.Load(),
				Probes:       int64(n.probesStarted.Load()),
				Hedges:       n.hedges.Load(),
				HedgeWins:    n.hedgeWins.Load(),
				LastError:    s.lastErr,
				LastErrorAt:  s.lastErrAt,
			}
			for r := range m.calls {
				if c := m.calls[r].Load(); c != 0 {
					ns.Calls[Reason(r)] = c
					ns.Total += c
				}
			}
			if n.pool != nil {
				ns.Pool = n.pool.Stat()
				ns.Host, ns.Port = n.host, n.port
			}
			if r := s.probe; r != nil {
				ns.Role, ns.Lag, ns.Position = roleOf(r).String(), r.lag, pgtext.FormatLSN(r.lsn)
			}
			gs.Nodes = append(gs.Nodes, ns)
		}
		st.Groups = append(st.Groups, gs)
	}
	st.PrimaryChanges, st.LastPrimaryChange = v.changes, v.changedAt
	if v.primary >= 0 {
		st.Primary = v.mem.nodes[v.primary].name
	}
	for _, i := range v.split {
		st.SplitBrain = append(st.SplitBrain, v.mem.nodes[i].name)
	}
	for _, d := range v.mem.draining {
		ds := DrainingStat{Name: d.node.name, Since: d.since, InFlight: d.node.inFlight()}
		if d.node.pool != nil {
			ds.Acquired = d.node.pool.Stat().AcquiredConns()
		}
		st.Draining = append(st.Draining, ds)
	}
	st.Membership = MembershipStat{
		Added: p.members.added.Load(), Removed: p.members.removed.Load(),
		Drained: p.members.drained.Load(), DrainTimeouts: p.members.drainTimeouts.Load(),
	}
	if t := p.members.lastChange.Load(); t != 0 {
		st.Membership.LastChange = time.Unix(0, t)
	}
	st.Discovery = p.discoveryStat()
	for _, i := range v.mem.topo.members {
		s := &v.nodes[i]
		ms := MemberStat{Name: v.mem.nodes[i].name, Role: s.role.String(), State: s.state(), Primary: v.primary == i, Stale: s.stale}
		if s.probe != nil {
			ms.Timeline = s.probe.timeline
		}
		if ms.Stale {
			st.StalePrimaries = append(st.StalePrimaries, ms.Name)
		}
		st.Members = append(st.Members, ms)
	}
	return st
}

// Group returns the named group's part of the snapshot, or false.
func (s *Stat) Group(name string) (GroupStat, bool) {
	for _, g := range s.Groups {
		if g.Name == name {
			return g, true
		}
	}
	return GroupStat{}, false
}

// Node returns the named node's part of the group, or false.
func (g GroupStat) Node(name string) (NodeStat, bool) {
	for _, n := range g.Nodes {
		if n.Name == name {
			return n, true
		}
	}
	return NodeStat{}, false
}
