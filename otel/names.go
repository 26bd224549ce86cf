package otel

import (
	"strings"

	"go.opentelemetry.io/otel/attribute"

	"github.com/pgxroute/pgxroute"
	"github.com/pgxroute/pgxroute/classify"
)

// The attribute keys of ours (the others come from the semantic conventions).
const (
	// GroupKey is the bind group of a call.
	GroupKey = attribute.Key("pgxroute.group")
	// NodeKey is the node's name in the configuration.
	NodeKey = attribute.Key("pgxroute.node")
	// ReasonKey is the routing rule that decided, in snake case (ReasonName).
	ReasonKey = attribute.Key("pgxroute.reason")
	// StatementKindKey is what the classifier said of the statement: "read",
	// "write" or "locking_read".
	StatementKindKey = attribute.Key("pgxroute.statement.kind")
	// AttemptKey is 0 for a call's first attempt, 1 for its retry or re-run.
	AttemptKey = attribute.Key("pgxroute.attempt")
	// RerunKey is true on an attempt's span when the call ran again after it.
	RerunKey = attribute.Key("pgxroute.rerun")
	// StateKey is a node's state: "up", "lagging" or "down".
	StateKey = attribute.Key("pgxroute.node.state")
	// RoleKey is what the last probe saw of a node: "primary", "replica" or
	// "unknown".
	RoleKey = attribute.Key("pgxroute.node.role")
)

// reasonNames are the snake-case names of the reasons, bounded and stable:
// fit for an attribute or label value (Reason.String is for people).
var reasonNames = map[pgxroute.Reason]string{
	pgxroute.ReasonWrite:          "write",
	pgxroute.ReasonWriteNoScope:   "write_no_scope",
	pgxroute.ReasonLockingRead:    "locking_read",
	pgxroute.ReasonSticky:         "sticky",
	pgxroute.ReasonRead:           "read",
	pgxroute.ReasonReadNoScope:    "read_no_scope",
	pgxroute.ReasonNoReadGroup:    "no_read_group",
	pgxroute.ReasonFallback:       "fallback",
	pgxroute.ReasonReadLagging:    "read_lagging",
	pgxroute.ReasonCaughtUp:       "caught_up",
	pgxroute.ReasonReplicasBehind: "replicas_behind",
	pgxroute.ReasonBindGroup:      "bind_group",
	pgxroute.ReasonPrimary:        "primary",
	pgxroute.ReasonReplica:        "replica",
	pgxroute.ReasonDisabled:       "disabled",
	pgxroute.ReasonTransaction:    "transaction",
	pgxroute.ReasonAcquire:        "acquire",
	pgxroute.ReasonRetry:          "retry",
	pgxroute.ReasonMisroute:       "misroute",
}

// ReasonName returns the reason's snake-case name ("read_no_scope",
// "misroute"), the value of ReasonKey; "unknown" for a reason this package
// does not know.
func ReasonName(r pgxroute.Reason) string {
	if s, ok := reasonNames[r]; ok {
		return s
	}
	return "unknown"
}

// kindName returns the statement kind in snake case.
func kindName(k classify.Kind) string {
	return strings.ReplaceAll(k.String(), " ", "_")
}

// routeAttrs appends the route's attributes (never its SQL) to dst.
func routeAttrs(dst []attribute.KeyValue, r pgxroute.Route) []attribute.KeyValue {
	return append(dst,
		GroupKey.String(r.Group),
		NodeKey.String(r.Node),
		ReasonKey.String(ReasonName(r.Reason)),
		StatementKindKey.String(kindName(r.Statement.Kind)),
	)
}
