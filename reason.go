package pgxroute

import (
	"strconv"
)

// Reason says why a call went where it went.
type Reason uint8

// The reasons, by the rule that decided (see docs/routing.md for the
// precedence).
const (
	// ReasonWrite: a write (anything classify does not prove read-only) goes
	// to the default group, and the scope turns sticky.
	ReasonWrite Reason = iota
	// ReasonWriteNoScope: a write without a scope in the context: it goes to
	// the default group, and the pool's own scope remembers its position
	// (unless Config.ForgetUnscopedWrites or NoStickiness).
	ReasonWriteNoScope
	// ReasonLockingRead: SELECT ... FOR UPDATE/SHARE goes to the default
	// group; the scope does not turn sticky.
	ReasonLockingRead
	// ReasonSticky: a read of a scope that wrote goes to the default group.
	ReasonSticky
	// ReasonRead: a read goes to the read group.
	ReasonRead
	// ReasonReadNoScope: a read without a scope in the context goes to the
	// read group: a replica known to have replayed the pool's unscoped
	// writes (or any, with the pool's scope off).
	ReasonReadNoScope
	// ReasonNoReadGroup: a read goes to the default group because the read
	// group has no node.
	ReasonNoReadGroup
	// ReasonFallback: a read goes to the default group because no read node
	// is healthy (FallbackToPrimary).
	ReasonFallback
	// ReasonReadLagging: every read node lags beyond the limits; the read
	// goes to the default group (FallbackToPrimary), or to a lagging node
	// rather than fail (FailRead): none is ejected for lag alone.
	ReasonReadLagging
	// ReasonCaughtUp: ReadYourWrites: the read goes to a replica known to
	// have replayed the scope's writes.
	ReasonCaughtUp
	// ReasonReplicasBehind: ReadYourWrites: no replica is known to have
	// replayed the scope's writes yet, so the read goes to the default group.
	ReasonReplicasBehind
	// ReasonBindGroup: WithBindGroup chose the group.
	ReasonBindGroup
	// ReasonPrimary: WithPrimary chose the default group.
	ReasonPrimary
	// ReasonReplica: WithReplica chose the read group.
	ReasonReplica
	// ReasonDisabled: Config.Disabled sends everything to the default
	// group's first node.
	ReasonDisabled
	// ReasonTransaction: a read-write transaction goes to the default group.
	ReasonTransaction
	// ReasonAcquire: Acquire without a bind group takes a default group
	// connection.
	ReasonAcquire
	// ReasonRetry: a read whose connection failed (before it was sent, or
	// while it ran but before it returned a row) was retried on another node.
	ReasonRetry
	// ReasonMisroute: a replica refused a read as a write (SQLSTATE 25006);
	// it ran again on the default group, and the statement is now known as a
	// write.
	ReasonMisroute
	// ReasonFailover: a call for the primary that provably never reached a
	// server (its connection failed before it was sent), or that a member
	// refused because it had just turned replica (SQLSTATE 25006), was sent
	// again to the member that is primary now.
	ReasonFailover
	// ReasonHedge: a read whose first row was late (Config.HedgeAfter)
	// was sent as well to this node; when it won, the call's route names it.
	ReasonHedge
	// ReasonUnscopedBehind: a read without a scope goes to the default group
	// because no replica is known yet to have replayed the pool's last
	// unscoped write (see Config.ForgetUnscopedWrites).
	ReasonUnscopedBehind

	numReasons
)

var reasonNames = [numReasons]string{
	ReasonWrite:          "write",
	ReasonWriteNoScope:   "write (no scope: the pool's scope remembers it)",
	ReasonLockingRead:    "locking read",
	ReasonSticky:         "sticky: the scope wrote",
	ReasonRead:           "read",
	ReasonReadNoScope:    "read (no scope)",
	ReasonNoReadGroup:    "read, but the read group is empty",
	ReasonFallback:       "read, but no read node is healthy",
	ReasonReadLagging:    "read, but every read node lags",
	ReasonCaughtUp:       "read-your-writes: replica caught up",
	ReasonReplicasBehind: "read-your-writes: replicas behind",
	ReasonBindGroup:      "bind group from context",
	ReasonPrimary:        "WithPrimary",
	ReasonReplica:        "WithReplica",
	ReasonDisabled:       "routing disabled",
	ReasonTransaction:    "read-write transaction",
	ReasonAcquire:        "acquire",
	ReasonRetry:          "retried after a connection failure",
	ReasonMisroute:       "replica refused a write (25006)",
	ReasonFailover:       "sent again to the new primary",
	ReasonHedge:          "hedged read: its first row was late elsewhere",
	ReasonUnscopedBehind: "read (no scope): replicas behind the pool's writes",
}

// reasonLabels are the snake-case names of the reasons: bounded and stable,
// fit for a metric label or an attribute value (String is for people).
var reasonLabels = [numReasons]string{
	ReasonWrite:          "write",
	ReasonWriteNoScope:   "write_no_scope",
	ReasonLockingRead:    "locking_read",
	ReasonSticky:         "sticky",
	ReasonRead:           "read",
	ReasonReadNoScope:    "read_no_scope",
	ReasonNoReadGroup:    "no_read_group",
	ReasonFallback:       "fallback",
	ReasonReadLagging:    "read_lagging",
	ReasonCaughtUp:       "caught_up",
	ReasonReplicasBehind: "replicas_behind",
	ReasonBindGroup:      "bind_group",
	ReasonPrimary:        "primary",
	ReasonReplica:        "replica",
	ReasonDisabled:       "disabled",
	ReasonTransaction:    "transaction",
	ReasonAcquire:        "acquire",
	ReasonRetry:          "retry",
	ReasonMisroute:       "misroute",
	ReasonFailover:       "failover",
	ReasonHedge:          "hedge",
	ReasonUnscopedBehind: "unscoped_behind",
}

// Name returns the reason's snake-case name ("read_no_scope", "misroute"),
// bounded and stable, for metric labels and span attributes; "unknown" for
// a value that is not a reason.
func (r Reason) Name() string {
	if r < numReasons {
		return reasonLabels[r]
	}
	return "unknown"
}

// String returns a short human description.
func (r Reason) String() string {
	if r < numReasons {
		return reasonNames[r]
	}
	return "Reason(" + strconv.Itoa(int(r)) + ")"
}

// Reasons returns every reason, in order (for metrics and Stat tables).
func Reasons() []Reason {
	out := make([]Reason, numReasons)
	for i := range out {
		out[i] = Reason(i)
	}
	return out
}
