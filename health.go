package pgxroute

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgxroute/pgxroute/internal/probe"
	"github.com/pgxroute/pgxroute/stickiness"
)

// probeResult is what one successful probe saw.
type probeResult struct {
	seq      uint64 // the probe's number: it started after every probe with a lower one
	recovery bool
	lsn      uint64 // insert position on a primary, replayed position on a replica
	timeline uint32 // a primary's WAL timeline; a replica's received one (0: unknown)
	lag      time.Duration
	origin   *stickiness.Origin // on a primary: its system and timeline
	// noPosition: the server did not tell its WAL position; lsn is 0 and
	// read-your-writes cannot use this probe.
	noPosition bool
}

// NodeState is a node's health as Stat reports it.
type NodeState uint8

const (
	// StateUp: the node takes calls.
	StateUp NodeState = iota
	// StateLagging: the replica lags beyond MaxReplicaLag or
	// MaxReplicaLagBytes and takes no reads (unless every replica does).
	StateLagging
	// StateDown: probes or calls failed; the node takes no calls until it is
	// re-admitted.
	StateDown
	// StateSuspect: the node's last probe went unanswered past
	// Health.Timeout (it hangs, or its network path is dead): it takes no
	// calls, not even as a last resort, until a probe answers. After
	// FailuresToEject failed probes it is also ejected (Ejections counts
	// it), and then needs SuccessesToReadmit answered probes to come back.
	StateSuspect
)

// String names the state.
func (s NodeState) String() string {
	switch s {
	case StateUp:
		return "up"
	case StateLagging:
		return "lagging"
	case StateDown:
		return "down"
	case StateSuspect:
		return "suspect"
	}
	return "unknown"
}

// nodeHealth is the health of one node, written by its prober and by the
// passive signals of routed calls, read lock-free by the router.
type nodeHealth struct {
	down    atomic.Bool
	suspect atomic.Bool // a probe went unanswered past Health.Timeout
	lagging atomic.Bool

	started atomic.Uint64               // number of the last probe started
	last    atomic.Pointer[probeResult] // last successful probe
	kick    chan struct{}               // asks the prober for an early probe

	fails, successes atomic.Int32 // in a row
	ejections        atomic.Int64
	readmissions     atomic.Int64
	retries          atomic.Int64
	lagBytes         atomic.Int64
	roleMismatch     atomic.Bool
	role             atomic.Uint32 // a nodeRole: what the last probe saw

	mu      sync.Mutex
	lastErr string // redacted
	lastAt  time.Time
}

// up reports whether the node takes calls: neither down nor suspect.
func (h *nodeHealth) up() bool { return !h.down.Load() && !h.suspect.Load() }

func (h *nodeHealth) state() NodeState {
	switch {
	case h.suspect.Load():
		return StateSuspect
	case h.down.Load():
		return StateDown
	case h.lagging.Load():
		return StateLagging
	}
	return StateUp
}

// replayed returns the WAL position the node is known to have (replayed, or
// written if it is a primary), or 0.
func (h *nodeHealth) replayed() uint64 {
	if r := h.last.Load(); r != nil {
		return r.lsn
	}
	return 0
}

// lastError returns the node's last error, redacted, and its time.
func (h *nodeHealth) lastError() (string, time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.lastErr, h.lastAt
}

// describe is the node's state and, when it has one, its last error, as an
// error message names a node: "suspect: read tcp ...: i/o timeout".
func (h *nodeHealth) describe() string {
	s := h.state().String()
	if last, _ := h.lastError(); last != "" {
		s += ": " + last
	}
	return s
}

func (h *nodeHealth) setErr(err error) {
	h.mu.Lock()
	h.lastErr, h.lastAt = redactedError(err), time.Now()
	h.mu.Unlock()
}

// requestProbe asks the prober for a probe as soon as its minimum gap allows.
func (h *nodeHealth) requestProbe() {
	if h.kick == nil {
		return
	}
	select {
	case h.kick <- struct{}{}:
	default:
	}
}

// healthChecker runs one prober per node and publishes the cluster view.
type healthChecker struct {
	p      *RoutedPool
	cfg    HealthConfig
	log    *slog.Logger
	cancel context.CancelFunc
	wg     sync.WaitGroup
	roles  map[*node]expectedRole
	tracer HealthTracer // nil: none
	// dynamic: routing follows the roles the probes see (see cluster.go).
	dynamic bool
	viewMu  sync.Mutex // serialises publishView
}

type expectedRole uint8

const (
	rolePrimary expectedRole = 1 << iota // in the default group
	roleReplica                          // in the read group
)

// minProbeGap bounds how often a requested probe may follow the previous one.
const minProbeGap = 2 * time.Millisecond

func newHealthChecker(p *RoutedPool, cfg Config, dynamic bool) *healthChecker {
	h := &healthChecker{p: p, cfg: cfg.Health.withDefaults(), log: cfg.Logger, roles: map[*node]expectedRole{}, dynamic: dynamic}
	h.tracer, _ = cfg.Tracer.(HealthTracer)
	for _, m := range p.def.members {
		h.roles[m.node] |= rolePrimary
	}
	if p.read != nil {
		for _, m := range p.read.members {
			h.roles[m.node] |= roleReplica
		}
	}
	if cfg.Health.Disabled || cfg.Disabled {
		return h
	}

	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	for _, n := range p.nodes {
		if n.pool == nil {
			continue // a Backend: always up
		}
		n.health.kick = make(chan struct{}, 1)
		h.wg.Add(1)
		go h.run(ctx, n)
	}
	return h
}

func (h *healthChecker) stop() {
	if h.cancel != nil {
		h.cancel()
		h.wg.Wait()
	}
}

// run probes n every interval, and sooner when asked, on a connection of
// its own.
func (h *healthChecker) run(ctx context.Context, n *node) {
	defer h.wg.Done()
	var conn *pgx.Conn
	var sysid uint64
	defer func() {
		if conn != nil {
			conn.Close(context.Background())
		}
	}()
	tick := time.NewTimer(h.cfg.Interval)
	defer tick.Stop()
	watch := time.NewTicker(stallWatch)
	defer watch.Stop()
	var st stall
	for {
		var err error
		conn, err = h.probe(ctx, n, conn, &sysid)
		if ctx.Err() != nil {
			return
		}
		h.observe(n, err)
		tick.Reset(h.interval())
	wait:
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				break wait
			case <-watch.C:
				if st.stalled(n) {
					break wait // calls wait and none ends: probe now
				}
			case <-n.health.kick:
				select {
				case <-ctx.Done():
					return
				case <-time.After(minProbeGap):
				}
				break wait
			}
		}
	}
}

// interval is the time to the next regular probe: Interval, or
// FailoverInterval while the cluster has no known primary.
func (h *healthChecker) interval() time.Duration {
	if h.dynamic && h.p.cluster.Load().primary < 0 {
		return h.cfg.FailoverInterval
	}
	return h.cfg.Interval
}

// stallWatch is how often a prober looks for stalled calls between probes.
const stallWatch = 25 * time.Millisecond

// stall watches a node between two probes: calls in flight while none ended
// for two looks in a row (50-75 ms) is the sign of a node that hangs, and
// starts a probe at once rather than at the next interval, so that a node
// that froze while serving calls is suspect about one Health.Timeout later.
// It fires once per quiet spell: a long query alone on a node costs one
// early probe, not one every look.
type stall struct {
	ended uint64
	quiet int
	fired bool
}

func (s *stall) stalled(n *node) bool {
	ended := n.ended.Load()
	if ended != s.ended || n.inFlight() == 0 {
		s.ended, s.quiet, s.fired = ended, 0, false
		return false
	}
	s.quiet++
	if s.quiet < 2 || s.fired {
		return false
	}
	s.fired = true
	return true
}

// probe runs one probe of n, connecting first when conn is nil. It returns
// the connection to reuse (nil after a failure).
func (h *healthChecker) probe(ctx context.Context, n *node, conn *pgx.Conn, sysid *uint64) (*pgx.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, h.cfg.Timeout)
	defer cancel()
	seq := n.health.started.Add(1)
	if conn == nil {
		cc := n.pool.Config().ConnConfig.Copy()
		cc.ConnectTimeout = h.cfg.Timeout
		cc.RuntimeParams["application_name"] = "pgxroute-probe"
		if n.dial != nil {
			cc.DialFunc = n.dial // probes dial a suspect node too: they re-admit it
		}
		var err error
		if conn, err = pgx.ConnectConfig(ctx, cc); err != nil {
			return nil, err
		}
		// The system identifier fences read-your-writes tokens; a role
		// without the right to read it leaves it unknown (0).
		var id int64
		if conn.QueryRow(ctx, "SELECT system_identifier FROM pg_control_system()", pgx.QueryExecModeSimpleProtocol).Scan(&id) == nil {
			*sysid = uint64(id)
		}
	}
	pr, err := probe.Run(ctx, conn)
	if err != nil {
		conn.Close(context.Background())
		return nil, err
	}
	r := probeResult{seq: seq, recovery: pr.Recovery, lsn: pr.LSN, timeline: pr.Timeline, lag: pr.Lag, noPosition: pr.NoPosition}
	if !r.recovery {
		o := stickiness.Origin{SystemID: *sysid, Timeline: r.timeline}
		if prev := n.health.last.Load(); prev != nil && prev.origin != nil && *prev.origin == o {
			r.origin = prev.origin
		} else {
			r.origin = &o
		}
	}
	n.health.last.Store(&r)
	return conn, nil
}

// observe applies the outcome of a probe of n to its state.
func (h *healthChecker) observe(n *node, err error) {
	hl := &n.health
	if err != nil {
		hl.setErr(err)
		hl.successes.Store(0)
		if isTimeout(err) && !hl.suspect.Swap(true) {
			// Unanswered past Health.Timeout: the node may hang without
			// closing its sockets. New calls avoid it, and the calls waiting
			// on it are interrupted now rather than at their deadlines.
			h.event(EventSuspect, n, err, slog.LevelWarn, "pgxroute: node suspect: a probe went unanswered; its calls are interrupted")
			n.interrupt()
			hl.requestProbe()
		}
		if hl.fails.Add(1) >= int32(h.cfg.FailuresToEject) {
			if h.eject(n, "probes failed", err) {
				n.interrupt() // the prober gave up: nothing waits on the node
			}
		}
		h.publishView()
		return
	}
	defer h.publishView()
	hl.fails.Store(0)
	if hl.suspect.Swap(false) {
		h.logf(slog.LevelInfo, "pgxroute: suspect node answered again", n)
	}
	if hl.down.Load() && hl.successes.Add(1) >= int32(h.cfg.SuccessesToReadmit) {
		hl.successes.Store(0)
		hl.down.Store(false)
		hl.readmissions.Add(1)
		h.event(EventReadmitted, n, nil, slog.LevelInfo, "pgxroute: node re-admitted")
	}
	r := hl.last.Load()
	role := roleOf(r)
	if prev := hl.role.Swap(uint32(role)); prev != uint32(role) && prev != uint32(roleUnknown) {
		h.event(EventRoleChanged, n, nil, slog.LevelWarn, "pgxroute: node changed role", slog.String("role", role.String()))
	}
	expect := h.roles[n]
	mismatch := !h.dynamic && ((expect == rolePrimary && r.recovery) || (expect == roleReplica && !r.recovery))
	if mismatch != hl.roleMismatch.Swap(mismatch) && mismatch {
		if r.recovery {
			h.logf(slog.LevelWarn, "pgxroute: node of the default group is in recovery (a replica)", n)
		} else {
			h.logf(slog.LevelWarn, "pgxroute: read node is not in recovery (a primary)", n)
		}
	}
	h.updateLag(n, r)
}

// updateLag sets n's lag and lagging flag.
func (h *healthChecker) updateLag(n *node, r *probeResult) {
	if !r.recovery {
		n.health.lagBytes.Store(0)
		n.health.lagging.Store(false)
		return
	}
	var bytes int64
	if prim := h.p.primary().health.last.Load(); prim != nil && !prim.recovery && prim.lsn > r.lsn {
		bytes = int64(prim.lsn - r.lsn)
	}
	n.health.lagBytes.Store(bytes)
	lagging := (h.cfg.MaxReplicaLag > 0 && r.lag > h.cfg.MaxReplicaLag) ||
		(h.cfg.MaxReplicaLagBytes > 0 && bytes > h.cfg.MaxReplicaLagBytes)
	if lagging != n.health.lagging.Swap(lagging) {
		if lagging {
			h.event(EventLagging, n, nil, slog.LevelWarn, "pgxroute: replica lags beyond the limits; it takes no reads", slog.Duration("lag", r.lag), slog.Int64("lag_bytes", bytes))
		} else {
			h.event(EventCaughtUp, n, nil, slog.LevelInfo, "pgxroute: replica caught up")
		}
	}
}

// eject marks n down and reports whether it was up.
func (h *healthChecker) eject(n *node, why string, err error) bool {
	if n.health.down.Swap(true) {
		return false
	}
	n.health.successes.Store(0)
	n.health.ejections.Add(1)
	h.event(EventEjected, n, err, slog.LevelWarn, "pgxroute: node ejected: "+why, slog.String("error", redactedError(err)))
	n.health.requestProbe()
	if n.ci >= 0 {
		h.publishView()
	}
	return true
}

// primaryEvent logs and traces a change of the member writes go to.
func (h *healthChecker) primaryEvent(now, prev string, msg string) {
	if h.log != nil {
		h.log.Warn(msg, slog.String("primary", now), slog.String("previous", prev))
	}
	if h.tracer != nil {
		h.tracer.TraceHealth(context.Background(), HealthEvent{Kind: EventPrimaryChanged, Node: now, Previous: prev, Role: "primary", At: time.Now()})
	}
}

// splitEvent logs, at error level, and traces a split brain: n reports
// being a primary beside other.
func (h *healthChecker) splitEvent(n, other *node, msg string) {
	if h.log != nil {
		h.log.Error(msg, slog.String("node", n.name), slog.String("other", other.name))
	}
	if h.tracer != nil {
		h.tracer.TraceHealth(context.Background(), HealthEvent{
			Kind: EventSplitBrain, Node: n.name, Previous: other.name, State: n.health.state(), Role: "primary", At: time.Now(),
		})
	}
}

// event logs a health event of n and passes it to the HealthTracer.
func (h *healthChecker) event(kind HealthEventKind, n *node, err error, level slog.Level, msg string, attrs ...any) {
	h.logf(level, msg, n, attrs...)
	if h.tracer == nil {
		return
	}
	h.tracer.TraceHealth(context.Background(), HealthEvent{
		Kind: kind, Node: n.name, State: n.health.state(), Role: nodeRole(n.health.role.Load()).String(),
		Err: redactedError(err), At: time.Now(),
	})
}

// nodeRole is what a probe saw a node as.
type nodeRole uint32

const (
	roleUnknown nodeRole = iota
	roleIsPrimary
	roleIsReplica
)

// String names the role as Stat and HealthEvent do.
func (r nodeRole) String() string {
	switch r {
	case roleIsPrimary:
		return "primary"
	case roleIsReplica:
		return "replica"
	}
	return "unknown"
}

func roleOf(r *probeResult) nodeRole {
	switch {
	case r == nil:
		return roleUnknown
	case r.recovery:
		return roleIsReplica
	}
	return roleIsPrimary
}

func (h *healthChecker) logf(level slog.Level, msg string, n *node, attrs ...any) {
	if h.log == nil {
		return
	}
	h.log.Log(context.Background(), level, msg, append([]any{slog.String("node", n.name)}, attrs...)...)
}

// passive learns from a failed routed call: a connection error marks its
// node down at once, without waiting for the next probe. ctx is the context
// the failed operation ran with: once it ended (the caller's deadline or
// cancellation, a hedge's loser cancelled), its error says nothing of the
// node, since pgx breaks off a write or read in progress with an i/o
// timeout of its own making. A node that hangs is the prober's to find
// (Health.Timeout, the stall watch).
func (p *RoutedPool) passive(ctx context.Context, d *decision, err error) {
	if err == nil || ctx.Err() != nil || !isConnError(err) {
		return
	}
	d.m.node.health.setErr(err)
	if p.health.cancel == nil {
		return // health checks off: nothing would re-admit the node
	}
	if p.health.eject(d.m.node, "a call's connection failed", err) && d.m.node.pool != nil {
		// The idle connections of a server that failed one are likely dead
		// too (a crash, a restart): drop them, so that no later call sends
		// a statement on one (and loses track of whether it ran).
		d.m.node.pool.Reset()
	}
}

// isTimeout reports whether err is a probe that went unanswered until its
// deadline (not a refused or broken connection).
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}
