package pgxroute

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgxroute/pgxroute/balancer"
	"github.com/pgxroute/pgxroute/stickiness"
)

// Strategy is how a group balances calls over its nodes.
type Strategy = balancer.Strategy

// The strategies.
const (
	// RoundRobin is smooth weighted round-robin: over every run of calls as
	// long as the summed weights, each node takes exactly its weight,
	// interleaved. It is the zero value.
	RoundRobin = balancer.RoundRobin
	// Random picks a node at random in proportion to its weight.
	Random = balancer.Random
	// LeastBusy makes two weighted random picks and takes the node with fewer
	// calls in flight.
	LeastBusy = balancer.LeastBusy
)

// Stickiness is the consistency mode: what a scope's reads do after the scope
// wrote. The zero value is StickyScope. See docs/consistency.md.
type Stickiness = stickiness.Mode

// The consistency modes. StickyFor makes a fourth.
const (
	// StickyScope sends every read of a scope to the default group once the
	// scope wrote, until the scope ends or ResetStickiness. The zero value.
	StickyScope = stickiness.Sticky
	// NoStickiness remembers no write: a read right after a write may go to
	// a replica that has not replayed it yet.
	NoStickiness = stickiness.Off
	// ReadYourWrites lets a replica serve a scope's reads as soon as it is
	// known to have replayed the scope's writes (by WAL position), and sends
	// them to the default group until then. The positions come from the
	// health probes: with Health.Disabled none is ever known, and a scope's
	// reads stay on the default group after its first write.
	ReadYourWrites = stickiness.ReadYourWrites
)

// StickyFor returns the mode that sends a scope's reads to the default group
// for d after each of its writes. d must be positive.
func StickyFor(d time.Duration) Stickiness { return stickiness.For(d) }

// The names of the two groups every configuration has unless it renames them.
const (
	DefaultGroupName = "default"
	ReadGroupName    = "read"
)

// Node is one server in a bind group. Give exactly one of ConnString,
// PoolConfig, Pool and Backend.
type Node struct {
	// Name names the node in Route, Stat, errors and logs. Empty: a name
	// derived from its connection that no other node has: "host:port", or
	// "host:port/database" when another node shares the host and port, or
	// "host:port/database#2"... when that is taken too.
	Name string
	// ConnString is a pgx connection string (URL or key=value).
	ConnString string
	// PoolConfig gives full control of the node's pool. The router creates
	// the pool from a copy and closes it.
	PoolConfig *pgxpool.Config
	// Pool is an existing pool that the router uses but does not close.
	Pool *pgxpool.Pool
	// Backend runs the node's calls instead of a pgxpool: for fakes in unit
	// tests (see routingtest.NewFake). The router does not close it and
	// never probes it. Name is required with it.
	Backend Backend
	// Weight is the node's share of its group's calls relative to the other
	// nodes. 0 means 1.
	Weight int
	// NoReads keeps a member of the replication cluster out of the read
	// group's calls while it is a replica (Patroni's noloadbalance tag, a
	// replica kept for backups or analytics): it still becomes the primary
	// when a probe sees it promoted. It means nothing for other bind groups.
	NoReads bool
}

// Discoverer reports the members of the replication cluster: the nodes of
// the default and read groups (see Config.Discovery). The packages
// discovery/patroni and discovery/dns are two. Discover must return the
// members in a stable order, the first guess of the primary first (roles
// still come from the router's probes), and an error rather than an empty
// list: the router keeps the members it has when Discover fails.
type Discoverer interface {
	Discover(ctx context.Context) ([]Node, error)
}

// Config configures a RoutedPool. The zero value of every field but the nodes
// is a sensible default.
type Config struct {
	// Primary is the connection string of the primary, put first in the
	// default group.
	Primary string
	// Replicas are put in the read group, after any read-group nodes of
	// Groups.
	Replicas []Node
	// Groups maps bind group names to their nodes. It may be mixed with
	// Primary and Replicas. A read group listed with no node is kept (its
	// reads go to the default group) for SetGroup to fill later.
	Groups map[string][]Node
	// DefaultGroup names the group of writes, locking reads, sticky reads
	// and fallbacks. Empty means "default".
	DefaultGroup string
	// ReadGroup names the group of reads. Empty means "read".
	ReadGroup string
	// Strategy balances every group's calls over its nodes.
	Strategy Strategy
	// Seed, when non-zero, makes Random and LeastBusy repeatable (for tests).
	Seed uint64
	// Stickiness is the consistency mode after a write (zero: StickyScope).
	Stickiness Stickiness
	// ForgetUnscopedWrites turns the pool's own scope off. By default a call
	// whose context carries no scope belongs to the pool's scope: after an
	// unscoped write, unscoped reads go to a replica only once it is known
	// to have replayed that write (by WAL position, as ReadYourWrites does
	// for a scope), and to the default group until then; so code that never
	// heard of scopes reads its own writes. Set, unscoped calls remember
	// nothing (a read right after a write may be stale). NoStickiness turns
	// the pool's scope off too. See docs/consistency.md.
	ForgetUnscopedWrites bool
	// Disabled sends everything to the default group's first node.
	Disabled bool
	// Discovery, when set, reports the members of the replication cluster
	// while the pool runs: the default and read groups then hold what it
	// last returned (the first member in the default group, the others in
	// the read group, as Primary and Replicas would), and Primary,
	// Replicas, Groups[DefaultGroup] and Groups[ReadGroup], when given, are
	// only the start (without them New asks the discoverer once, and fails
	// with its error). It is asked every DiscoveryInterval, and sooner when
	// the primary is lost or a member is ejected; a failing discoverer
	// keeps the members it gave last (the failure is logged, counted and
	// shown in Stat). See docs/membership.md.
	Discovery Discoverer
	// DiscoveryInterval is the time between two Discover calls, each one
	// jittered by up to a fifth either way so that many application
	// instances do not ask at the same moment. Zero: 30s. The calls asked
	// for by a lost primary or an ejected member come after a random delay
	// of up to a tenth of it (at most 5s), and at most once per tenth of it.
	DiscoveryInterval time.Duration
	// DrainTimeout bounds how long a node removed from its groups (SetGroup,
	// Discovery) keeps its pool for the calls, transactions and acquired
	// connections that were running on it: when they are all done its pool
	// closes at once; past DrainTimeout its remaining connections are
	// closed, and their calls fail with an error that wraps ErrNodeRemoved.
	// Zero: 30s. Negative: close at once.
	DrainTimeout time.Duration
	// StaticRoles keeps the roles the configuration gives: writes go to the
	// default group's nodes and reads to the read group's whatever the
	// probes see (a mismatch is only reported, in Stat and the log). By
	// default the nodes of the default and read groups are the members of
	// one replication cluster and their roles are what the probes see: the
	// configuration is only the first guess (the default group's first node
	// is the primary), writes go to the member that is primary now, reads to
	// those that are replicas now, and a failover or switchover is followed
	// without a restart (see docs/health.md). Other bind groups always keep
	// their configured nodes. Roles are static also when health checks are
	// off or a member is given as a Backend (it is never probed).
	StaticRoles bool
	// ConnectTimeout bounds the connection attempts of the pools the router
	// creates whose connection string sets no connect_timeout, so that a
	// call to a dead node fails within it. Zero: 5s. Negative: no bound.
	ConnectTimeout time.Duration
	// TCP configures the sockets of the pools the router creates: short TCP
	// keepalives and, on Linux, TCP_USER_TIMEOUT, so that a dead network
	// path is found by the kernel too. See TCPConfig.
	TCP TCPConfig
	// ConfigurePool is called for each pool the router creates, with its
	// group and node name, to set pool sizes, tracers and hooks. A node in
	// several groups has one pool: it is called once, with its first group.
	ConfigurePool func(group, node string, cfg *pgxpool.Config)
	// WriteFunctions are extra functions with side effects: a read that calls
	// one goes to the default group (see package classify).
	WriteFunctions []string
	// ClassifyCacheSize bounds the cache of classified statements; 0 means
	// a default, negative turns the cache off.
	ClassifyCacheSize int
	// Health configures health checks, lag limits and failover.
	Health HealthConfig
	// HedgeAfter turns hedged reads on: a read sent to a replica by its kind
	// that has not produced its first row after HedgeAfter is sent as well
	// to another usable replica, and the first to answer wins (see
	// docs/health.md). Never for writes, locking or sticky reads,
	// transactions, batches, explicit bind groups or Acquire. Zero: off.
	// (It moved here from HealthConfig; the API may still change before v1.)
	HedgeAfter time.Duration
	// NoHealthyRead is what a read does when no node of the read group is
	// healthy: FallbackToPrimary (the zero value) or FailRead.
	NoHealthyRead NoHealthyReadPolicy
	// OnRoute, when set, is called with the route of every attempt (a
	// call's first, a retry, a re-run, a hedge), through an adapter that is
	// a RouteTracer beside Config.Tracer. Keep it
	// cheap: it runs on the caller's goroutine.
	OnRoute func(ctx context.Context, r Route)
	// Tracer, when set, traces every attempt of every routed call (start and
	// end, with its error and whether it runs again), and, if it implements
	// HealthTracer, every health event. See RouteTracer and MultiTracer.
	// Nil: no tracing and no cost.
	Tracer RouteTracer
	// Logger receives every health event (ejections, re-admissions,
	// suspicions, lag, role and primary changes, split brains), through an
	// adapter that is a HealthTracer beside Config.Tracer. Nil: none.
	Logger *slog.Logger
}

// NoHealthyReadPolicy is what a read does when the read group has no healthy
// node.
type NoHealthyReadPolicy uint8

const (
	// FallbackToPrimary sends the read to the default group. The zero value.
	FallbackToPrimary NoHealthyReadPolicy = iota
	// FailRead fails the read with ErrNoHealthyNode.
	FailRead
)

// HealthConfig configures the active probes, passive signals and lag limits.
// The zero value turns them on with the defaults documented on each field.
type HealthConfig struct {
	// Disabled turns probes and ejection off: every node is always up.
	Disabled bool
	// Interval between two probes of a node. Default 1s.
	Interval time.Duration
	// Timeout of one probe: its connection, when it must connect, gets
	// Timeout; its query fails, as unanswered, once the server has left it
	// unanswered for Timeout (counted from when it was written to the
	// socket, to any answer, read or not: a starved client is not taken for
	// a silent server), and in any case after twice Timeout. Default 1s.
	Timeout time.Duration
	// FailuresToEject is how many failed probes in a row mark a node down.
	// Default 2. A connection error of a routed call marks it down at once.
	FailuresToEject int
	// SuccessesToReadmit is how many good probes in a row bring a down node
	// back. Default 2.
	SuccessesToReadmit int
	// MaxReplicaLag is the replay delay beyond which a replica takes no
	// reads. Zero: 30s. Negative: no limit.
	MaxReplicaLag time.Duration
	// MaxReplicaLagBytes is the WAL distance to the primary beyond which a
	// replica takes no reads. Zero: no limit.
	MaxReplicaLagBytes int64
	// FailoverTimeout is how long a call that needs the primary (a write, a
	// locking or sticky read, a read-write transaction) waits for one while
	// no member is primary (a failover, a switchover, a split brain),
	// never past its context's deadline; then it fails with an error
	// wrapping ErrNoPrimary and ErrNoHealthyNode. Zero: 30s (about Patroni's
	// default ttl, and Aurora's and RDS's usual failover time). Negative: do
	// not wait.
	FailoverTimeout time.Duration
	// FailoverInterval is the probe interval of every member while no
	// member is primary: the primary's loss (a failed probe or call, or the
	// primary reporting recovery) starts a probe of every member at once,
	// then one every FailoverInterval until a primary answers, so that
	// writes reach a new primary within about one FailoverInterval of it
	// accepting writes. Its cost is one light query per member per interval
	// during a failover only. Zero: 100ms.
	FailoverInterval time.Duration
	// HedgeAfter is Config.HedgeAfter's former place.
	//
	// Deprecated: set Config.HedgeAfter (hedging is a policy of calls, not
	// of health checks). When both are set the larger is used.
	HedgeAfter time.Duration
}

func (h HealthConfig) withDefaults() HealthConfig {
	if h.Interval <= 0 {
		h.Interval = time.Second
	}
	if h.Timeout <= 0 {
		h.Timeout = time.Second
	}
	if h.FailuresToEject <= 0 {
		h.FailuresToEject = 2
	}
	if h.SuccessesToReadmit <= 0 {
		h.SuccessesToReadmit = 2
	}
	if h.MaxReplicaLag == 0 {
		h.MaxReplicaLag = 30 * time.Second
	}
	if h.FailoverTimeout == 0 {
		h.FailoverTimeout = 30 * time.Second
	}
	if h.FailoverInterval <= 0 {
		h.FailoverInterval = 100 * time.Millisecond
	}
	return h
}

// groupSpec is one group of a normalised configuration.
type groupSpec struct {
	name  string
	nodes []nodeSpec
}

// nodeSpec is one node of a normalised configuration.
type nodeSpec struct {
	name    string
	derived bool   // the name was derived from the connection (Node.Name empty)
	db      string // the database, for a derived name
	key     string // identity of the node's pool: connection string or pool pointer
	cfg     *pgxpool.Config
	pool    *pgxpool.Pool
	backend Backend
	weight  int
	noReads bool
}

// normalise validates cfg and returns its groups, the default group first
// and the read group second (when it exists), the rest by name.
func (cfg *Config) normalise() ([]groupSpec, error) {
	def, read := cfg.DefaultGroup, cfg.ReadGroup
	if def == "" {
		def = DefaultGroupName
	}
	if read == "" {
		read = ReadGroupName
	}
	if def == read {
		return nil, fmt.Errorf("%w: DefaultGroup and ReadGroup are both %q", ErrConfig, def)
	}
	if err := cfg.Stickiness.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	if cfg.Strategy > LeastBusy {
		return nil, fmt.Errorf("%w: unknown Strategy %d", ErrConfig, cfg.Strategy)
	}
	if cfg.NoHealthyRead > FailRead {
		return nil, fmt.Errorf("%w: unknown NoHealthyRead %d", ErrConfig, cfg.NoHealthyRead)
	}
	nodes := map[string][]Node{}
	for name, ns := range cfg.Groups {
		if name == "" {
			return nil, fmt.Errorf("%w: a group has an empty name", ErrConfig)
		}
		nodes[name] = append([]Node(nil), ns...)
	}
	if cfg.Primary != "" {
		nodes[def] = append([]Node{{ConnString: cfg.Primary}}, nodes[def]...)
	}
	nodes[read] = append(nodes[read], cfg.Replicas...)
	if len(nodes[def]) == 0 {
		return nil, fmt.Errorf("%w: group %q has no node: set Primary or Groups[%q]", ErrConfig, def, def)
	}

	names := make([]string, 0, len(nodes))
	for name := range nodes {
		if name != def && name != read {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	order := append([]string{def, read}, names...)

	// Every node first, so that derived names can tell apart the nodes
	// that share a host and port.
	all := map[string][]nodeSpec{}
	for _, g := range order {
		for i, n := range nodes[g] {
			ns, err := n.normalise(g, i)
			if err != nil {
				return nil, err
			}
			all[g] = append(all[g], ns)
		}
	}
	nameDerived(order, all)

	byName := map[string]string{} // node name -> key
	var specs []groupSpec
	for _, g := range order {
		spec := groupSpec{name: g}
		seen := map[string]bool{}
		for _, ns := range all[g] {
			if key, ok := byName[ns.name]; ok && key != ns.key {
				return nil, fmt.Errorf("%w: group %q node %q: the name is used by another node", ErrConfig, g, ns.name)
			}
			if seen[ns.key] {
				return nil, fmt.Errorf("%w: group %q node %q: the node is listed twice in the group", ErrConfig, g, ns.name)
			}
			seen[ns.key] = true
			byName[ns.name] = ns.key
			spec.nodes = append(spec.nodes, ns)
		}
		if _, listed := cfg.Groups[read]; g == read && len(spec.nodes) == 0 && cfg.Discovery == nil && !listed {
			// No read group: reads go to the default group. A read group
			// listed empty (or Discovery) is kept, for SetGroup to fill.
			continue
		}
		specs = append(specs, spec)
	}
	return specs, nil
}

// nameDerived names the nodes whose Node.Name is empty so that distinct
// nodes never share a name: "host:port" when no other node has it, else
// "host:port/database", and when that is taken too (the same server and
// database with other parameters), "host:port/database#2", "#3"... in the
// order of the configuration. A name a user gave is never changed, and no
// derived name takes it.
func nameDerived(order []string, all map[string][]nodeSpec) {
	taken := map[string]string{} // name -> key, the names users gave
	bases := map[string]map[string]bool{}
	for _, g := range order {
		for _, ns := range all[g] {
			if !ns.derived {
				taken[ns.name] = ns.key
				continue
			}
			if bases[ns.name] == nil {
				bases[ns.name] = map[string]bool{}
			}
			bases[ns.name][ns.key] = true
		}
	}
	chosen := map[string]string{} // key -> derived name
	for _, g := range order {
		for i, ns := range all[g] {
			if !ns.derived {
				continue
			}
			if name, ok := chosen[ns.key]; ok {
				all[g][i].name = name
				continue
			}
			name := ns.name
			if _, user := taken[name]; user || len(bases[ns.name]) > 1 {
				name = ns.name + "/" + ns.db
			}
			for k := 2; ; k++ {
				if key, ok := taken[name]; !ok || key == ns.key {
					break
				}
				name = ns.name + "/" + ns.db + "#" + strconv.Itoa(k)
			}
			taken[name], chosen[ns.key] = ns.key, name
			all[g][i].name = name
		}
	}
}

// normalise validates one node of group g at index i.
func (n Node) normalise(g string, i int) (nodeSpec, error) {
	label := n.Name
	if label == "" {
		label = "#" + strconv.Itoa(i)
	}
	fail := func(format string, args ...any) (nodeSpec, error) {
		return nodeSpec{}, fmt.Errorf("%w: group %q node %q: %s", ErrConfig, g, label, fmt.Sprintf(format, args...))
	}
	if n.Weight < 0 {
		return fail("weight %d is negative", n.Weight)
	}
	if n.Weight > balancer.MaxWeight {
		return fail("weight %d is above %d", n.Weight, balancer.MaxWeight)
	}
	given := 0
	for _, set := range []bool{n.ConnString != "", n.PoolConfig != nil, n.Pool != nil, n.Backend != nil} {
		if set {
			given++
		}
	}
	if given != 1 {
		return fail("give exactly one of ConnString, PoolConfig, Pool and Backend")
	}
	spec := nodeSpec{name: n.Name, weight: max(n.Weight, 1), pool: n.Pool, backend: n.Backend, noReads: n.NoReads}
	switch {
	case n.ConnString != "":
		pc, err := pgxpool.ParseConfig(n.ConnString)
		if err != nil {
			return fail("unparsable connection string: %s", redactedError(err))
		}
		spec.cfg, spec.key = pc, "conn:"+n.ConnString
	case n.Backend != nil:
		if n.Name == "" {
			return fail("a Backend node needs a Name")
		}
		spec.key = fmt.Sprintf("backend:%p", n.Backend)
	case n.PoolConfig != nil:
		if n.PoolConfig.ConnConfig == nil {
			return fail("PoolConfig was not made by pgxpool.ParseConfig")
		}
		spec.cfg, spec.key = n.PoolConfig.Copy(), fmt.Sprintf("config:%p", n.PoolConfig)
	default:
		spec.key = fmt.Sprintf("pool:%p", n.Pool)
	}
	if spec.name == "" {
		var cc *pgx.ConnConfig
		if spec.cfg != nil {
			cc = spec.cfg.ConnConfig
		} else {
			cc = n.Pool.Config().ConnConfig
		}
		host, port := cc.Host, cc.Port
		spec.derived, spec.db = true, cc.Database
		spec.name = net.JoinHostPort(host, strconv.Itoa(int(port)))
		if strings.HasPrefix(host, "/") {
			spec.name = host + ":" + strconv.Itoa(int(port))
		}
	}
	return spec, nil
}
