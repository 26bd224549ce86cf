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
	// StateKey is a node's state: "up", "lagging", "down", "suspect" or
	// "joining" (pgxroute.NodeState.String).
	StateKey = attribute.Key("pgxroute.node.state")
	// RoleKey is what the last probe saw of a node: "primary", "replica" or
	// "unknown".
	RoleKey = attribute.Key("pgxroute.node.role")
)

// ReasonName returns the reason's snake-case name ("read_no_scope",
// "misroute"), the value of ReasonKey; "unknown" for a value that is not a
// reason. It is pgxroute.Reason.Name.
func ReasonName(r pgxroute.Reason) string {
	return r.Name()
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
