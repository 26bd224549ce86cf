package pgxroute

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgxroute/pgxroute/balancer"
)

// node is one server: one pgxpool, shared by every group that lists it.
type node struct {
	name  string
	be    Backend         // where calls run: pool, or a Node.Backend
	pool  *pgxpool.Pool   // nil for a Node.Backend
	owned bool            // the router created the pool and closes it
	conns connSet         // the open sockets of a pool the router created
	dial  pgconn.DialFunc // the dialer under conns' tracking: the probes' own

	// interrupts counts the interruptions of the node's calls (interrupt):
	// a call that sees it change while it ran was interrupted.
	interrupts atomic.Uint64

	// started and ended count the routed calls (attempts) that started
	// and ended on the node: one add each per call, no more. They are
	// written by every call: on a cache line of their own, so that the
	// read-mostly fields above are not invalidated with them.
	_       [64]byte
	started atomic.Uint64
	ended   atomic.Uint64
	_       [48]byte
	health  nodeHealth

	ci int // the node's index among the cluster's members; -1: not one

	hedges, hedgeWins atomic.Int64 // hedged reads sent to the node, and won (hedge.go)

	host string // the server address its pool dials (Stat)
	port uint16
}

// inFlight returns the count of routed calls running on the node. ended is
// read first: every call that ended had started, so the difference is
// never negative.
func (n *node) inFlight() int64 {
	e := n.ended.Load()
	return int64(n.started.Load() - e)
}

// member is a node's place in one group: its weight there and the calls the
// group sent it, by reason.
type member struct {
	node   *node
	weight int
	_      [48]byte // calls, written by every call, start a new cache line
	calls  [numReasons]atomic.Int64
}

// group is a bind group: weighted nodes and the balancer over them. It is
// immutable after New but for atomics.
type group struct {
	name string
	// roleSet holds every member of the group and the balancer over them
	// all; a group that follows the cluster picks from the view's set of
	// the members of its role instead (pickBy).
	roleSet
	// roles says which members may take the group's calls now: any (the
	// configured members, whatever their roles), or, following the
	// cluster, only the primary (the default group) or only replicas (the
	// read group). cl is the cluster view those read.
	roles groupRoles
	cl    *atomic.Pointer[clusterView]
}

// groupRoles is how a group's members qualify by role.
type groupRoles uint8

const (
	anyRole     groupRoles = iota // StaticRoles, other bind groups
	primaryRole                   // the default group, following the cluster
	replicaRole                   // the read group, following the cluster
)

// qualifies reports whether member i may take calls of g by its role now.
func (g *group) qualifies(i int) bool {
	if g.roles == anyRole {
		return true
	}
	return g.qualifiesIn(g.cl.Load(), i)
}

// qualifiesIn is qualifies in view v.
func (g *group) qualifiesIn(v *clusterView, i int) bool {
	switch g.roles {
	case primaryRole:
		return v.isPrimary(g.members[i].node.ci)
	case replicaRole:
		return v.isReplica(g.members[i].node.ci)
	}
	return true
}

// usable reports whether member i is up, not lagging, and of the group's
// role now.
func (g *group) usable(i int) bool {
	n := g.members[i].node
	return n.health.up() && !n.health.lagging.Load() && g.qualifies(i)
}

// pick chooses a usable member, or nil when none is. A group that follows
// the cluster picks among the members of its role now (the view's set).
func (g *group) pick() *member { return g.pickBy(false) }

// pickLagging chooses an up member, lagging or not, or nil.
func (g *group) pickLagging() *member { return g.pickBy(true) }

// pickBy is pick, or with lagging pickLagging.
func (g *group) pickBy(lagging bool) *member {
	s := &g.roleSet // every member qualifies (anyRole)
	if g.roles != anyRole {
		if s = g.cl.Load().sets[g.roles-1]; s == nil || s.bal == nil {
			return nil
		}
	}
	var nodes balancer.Nodes = (*setView)(s)
	if lagging {
		nodes = (*setUpView)(s)
	}
	if i := s.bal.Pick(nodes); i >= 0 {
		return s.members[i]
	}
	return nil
}

// allLagging reports whether every up member of the group's role lags
// beyond the limits (and at least one is up).
func (g *group) allLagging() bool {
	any := false
	for i, m := range g.members {
		if m.node.health.up() && g.qualifies(i) {
			if !m.node.health.lagging.Load() {
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
// when there is none.
func (g *group) pickAnswering() *member {
	i := g.bal.Pick(nil)
	if m := g.members[i]; !m.node.health.suspect.Load() && g.answeringRole(i) {
		return m
	}
	for i, m := range g.members {
		if !m.node.health.suspect.Load() && g.answeringRole(i) {
			return m
		}
	}
	return nil
}

// answeringRole reports whether member i may take a last-resort call of g:
// a read group following the cluster never sends one to a member that is
// (or was last seen as) a primary.
func (g *group) answeringRole(i int) bool {
	return g.roles != replicaRole || g.qualifies(i)
}

// noneAnswering is the error of a call to g when every member stopped
// answering: it names each with its last error.
func (g *group) noneAnswering() error {
	var b strings.Builder
	for i, m := range g.members {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "node %q stopped answering (%s)", m.node.name, m.node.health.describe())
	}
	return fmt.Errorf("%w in group %q: %s", ErrNoHealthyNode, g.name, b.String())
}

// pickOther chooses the usable member other than m with the fewest calls in
// flight for its weight (the first after m on a tie), or nil: the target of
// a hedge or of a read's retry. It takes no turn of the group's balancer, so
// that hedges and retries leave the first attempts' shares as configured
// (hedges that took round-robin turns sent three quarters and more of the
// first attempts to the slow replica they were hedging against).
func (g *group) pickOther(m *member) *member {
	var best *member
	var bestLoad int64
	k := len(g.members)
	start := slices.Index(g.members, m) + 1 // 0 when m is no member
	for j := range k {
		i := (start + j) % k
		c := g.members[i]
		if c == m || !g.usable(i) {
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

// Backend is what a node runs routed calls on. *pgxpool.Pool implements it,
// and so does pgxmock's pool; routingtest's fakes use it to test routing
// without a database. A node given as a Backend has no pgxpool: Acquire
// fails with ErrNoPool, and it is never probed (always up).
type Backend interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
	CopyFrom(ctx context.Context, tableName pgx.Identifier, columnNames []string, rowSrc pgx.CopyFromSource) (int64, error)
	BeginTx(ctx context.Context, txOptions pgx.TxOptions) (pgx.Tx, error)
	Ping(ctx context.Context) error
}

var _ Backend = (*pgxpool.Pool)(nil)
