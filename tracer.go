package pgxroute

import (
	"context"
	"log/slog"
	"time"
)

// RouteTracer traces routed calls, in the manner of pgx's QueryTracer. Set
// it as Config.Tracer. A value that also implements HealthTracer receives
// the health events too (found by type assertion, as pgxpool finds
// AcquireTracer).
//
// Every attempt of a call is one start and one end: a read retried on
// another node, a read re-run on the default group after a replica refused
// it (25006), or a call sent again to a new primary starts again with
// ReasonRetry, ReasonMisroute or ReasonFailover after an end whose Rerun is
// true. A hedged read's second attempt starts with ReasonHedge while the
// first still runs; the one that loses ends with its own error or, when it
// was cancelled, an error that wraps context.Canceled. Both methods must be
// safe for concurrent use (a hedge's loser ends on a goroutine of its own);
// keep them cheap.
type RouteTracer interface {
	// TraceRouteStart is called when a routed call starts on its node. The
	// context it returns is the one the call runs with on the node (and the
	// one TraceRouteEnd gets), so that a span started here is the parent of
	// the node's own query span. That context carries the route too:
	// RouteFromContext reads it, also in the node's pgx tracers.
	TraceRouteStart(ctx context.Context, data TraceRouteStartData) context.Context
	// TraceRouteEnd is called when the attempt ends: for Exec, CopyFrom,
	// Begin and Acquire when the node answered; for Query and QueryRow when
	// the rows are closed; for SendBatch when the batch is closed; for a
	// transaction when it commits or rolls back.
	TraceRouteEnd(ctx context.Context, data TraceRouteEndData)
}

// TraceRouteStartData is what TraceRouteStart is told.
type TraceRouteStartData struct {
	// Route is where the attempt goes and why (SQL included, when the call
	// has one: a tracer that exports it should mind its size and secrecy).
	Route Route
	// Attempt numbers the call's attempts from 0 in the order they start: a
	// hedge, a retry and a re-run each take the next number.
	Attempt int
}

// TraceRouteEndData is what TraceRouteEnd is told.
type TraceRouteEndData struct {
	// Route is the route of the attempt (the one TraceRouteStart got).
	Route Route
	// Attempt is the attempt's number, as at its start.
	Attempt int
	// Err is the attempt's error, nil when it succeeded.
	Err error
	// Rerun is true when the call runs again after this failed attempt:
	// another start follows, with ReasonRetry or ReasonMisroute.
	Rerun bool
}

// HealthTracer receives the health events of a RoutedPool's nodes: a value
// set as Config.Tracer that implements it gets them. TraceHealth runs on a
// prober's goroutine (or, for a passive ejection, on the goroutine of the
// call that failed); it must be safe for concurrent use and not block.
type HealthTracer interface {
	TraceHealth(ctx context.Context, ev HealthEvent)
}

// HealthEventKind names a health event.
type HealthEventKind uint8

// The health events.
const (
	// EventEjected: the node was marked down (probes failed, or a call's
	// connection failed).
	EventEjected HealthEventKind = iota
	// EventReadmitted: a down node takes calls again.
	EventReadmitted
	// EventLagging: a replica lags beyond the limits and takes no reads.
	EventLagging
	// EventCaughtUp: a lagging replica is within the limits again.
	EventCaughtUp
	// EventRoleChanged: a probe saw the node in another role than before
	// ("primary" or "replica").
	EventRoleChanged
	// EventPrimaryChanged: the member the router sends writes to changed
	// (Node is the new primary, "" when none is known; Previous the old).
	EventPrimaryChanged
	// EventSuspect: a probe of the node is unanswered past Health.Timeout;
	// new calls avoid it while it stays so.
	EventSuspect
	// EventSplitBrain: two members report being a primary.
	EventSplitBrain
	// EventAnswering: a suspect node answered a probe again.
	EventAnswering
	// EventRoleMismatch: with static roles, a probe saw a default-group
	// node in recovery or a read-group node not in recovery.
	EventRoleMismatch
	// EventNodeAdded: SetGroup or Discovery added the node to a group (a
	// new node takes calls after its first answered probe). Group names
	// the group.
	EventNodeAdded
	// EventNodeRemoved: SetGroup or Discovery removed the node from a
	// group; once in no group it takes no new call and drains.
	EventNodeRemoved
	// EventNodeDrained: a removed node's pool closed: every call on it
	// ended, or DrainTimeout ran out (Detail says which).
	EventNodeDrained
	// EventDiscoveryFailed: Config.Discovery's Discover failed, or returned
	// a list SetGroup refused; the members stay as they were.
	EventDiscoveryFailed
	// EventNodeJoined: a node added while the pool ran answered its first
	// probe: it takes calls from now on.
	EventNodeJoined
)

var healthEventNames = [...]string{
	EventEjected:         "ejected",
	EventReadmitted:      "readmitted",
	EventLagging:         "lagging",
	EventCaughtUp:        "caught_up",
	EventRoleChanged:     "role_changed",
	EventPrimaryChanged:  "primary_changed",
	EventSuspect:         "suspect",
	EventSplitBrain:      "split_brain",
	EventAnswering:       "answering",
	EventRoleMismatch:    "role_mismatch",
	EventNodeAdded:       "node_added",
	EventNodeRemoved:     "node_removed",
	EventNodeDrained:     "node_drained",
	EventDiscoveryFailed: "discovery_failed",
	EventNodeJoined:      "node_joined",
}

// String names the event kind in snake case ("ejected", "primary_changed"),
// fit for a metric label.
func (k HealthEventKind) String() string {
	if int(k) < len(healthEventNames) {
		return healthEventNames[k]
	}
	return "unknown"
}

// HealthEvent is one change of a node's health, role, or of the primary.
type HealthEvent struct {
	Kind HealthEventKind
	// Node is the node the event is about (for EventPrimaryChanged, the new
	// primary, "" when none is known).
	Node string
	// Group is, for EventNodeAdded and EventNodeRemoved, the group.
	Group string
	// Previous is, for EventPrimaryChanged, the former primary, and for
	// EventSplitBrain the other member that reports being a primary.
	Previous string
	// State is the node's state after the event.
	State NodeState
	// Role is what the node's last probe saw: "primary", "replica" or
	// "unknown".
	Role string
	// Err is the error behind an ejection or a suspicion, without passwords.
	Err string
	// Detail says, for people, what made it happen ("probes failed", "a
	// call's connection failed").
	Detail string
	// Lag and LagBytes are, for EventLagging, the replica's replay delay and
	// WAL distance to the primary.
	Lag      time.Duration
	LagBytes int64
	// At is when the router saw the event.
	At time.Time
}

// multiTracer fans events out to several tracers.
type multiTracer []RouteTracer

// MultiTracer returns a tracer that passes every event to each of ts in
// order (nil ones are skipped): the context one start returns is given to
// the next. HealthTracers among ts get the health events.
func MultiTracer(ts ...RouteTracer) RouteTracer {
	var out multiTracer
	for _, t := range ts {
		if t != nil {
			out = append(out, t)
		}
	}
	return out
}

// TraceRouteStart implements RouteTracer.
func (m multiTracer) TraceRouteStart(ctx context.Context, data TraceRouteStartData) context.Context {
	for _, t := range m {
		ctx = t.TraceRouteStart(ctx, data)
	}
	return ctx
}

// TraceRouteEnd implements RouteTracer.
func (m multiTracer) TraceRouteEnd(ctx context.Context, data TraceRouteEndData) {
	for _, t := range m {
		t.TraceRouteEnd(ctx, data)
	}
}

// TraceHealth implements HealthTracer.
func (m multiTracer) TraceHealth(ctx context.Context, ev HealthEvent) {
	for _, t := range m {
		if h, ok := t.(HealthTracer); ok {
			h.TraceHealth(ctx, ev)
		}
	}
}

// combineTracers returns the tracers a pool reports through, each event by
// one path: the route tracer gets every attempt (OnRoute's adapter, then
// Config.Tracer), the health tracer every health event (the pool's own
// listeners in own, such as the status page's event log, the Logger's
// adapter, then Config.Tracer when it is a HealthTracer). The route tracer
// is nil when nothing listens, so that a pool without one pays nothing per
// call.
func combineTracers(cfg Config, own ...HealthTracer) (RouteTracer, HealthTracer) {
	var route multiTracer
	if cfg.OnRoute != nil {
		route = append(route, onRouteTracer(cfg.OnRoute))
	}
	if cfg.Tracer != nil {
		route = append(route, cfg.Tracer)
	}
	health := append([]HealthTracer(nil), own...)
	if cfg.Logger != nil {
		health = append(health, logTracer{cfg.Logger})
	}
	if h, ok := cfg.Tracer.(HealthTracer); ok {
		health = append(health, h)
	}
	var rt RouteTracer
	switch len(route) {
	case 0:
	case 1:
		rt = route[0]
	default:
		rt = route
	}
	var ht HealthTracer
	switch len(health) {
	case 0:
	case 1:
		ht = health[0]
	default:
		ht = healthTracers(health)
	}
	return rt, ht
}

// onRouteTracer adapts Config.OnRoute to a RouteTracer: it is called at
// every attempt's start.
type onRouteTracer func(context.Context, Route)

// TraceRouteStart implements RouteTracer.
func (f onRouteTracer) TraceRouteStart(ctx context.Context, data TraceRouteStartData) context.Context {
	f(ctx, data.Route)
	return ctx
}

// TraceRouteEnd implements RouteTracer.
func (onRouteTracer) TraceRouteEnd(context.Context, TraceRouteEndData) {}

// healthTracers passes health events to each of several tracers.
type healthTracers []HealthTracer

// TraceHealth implements HealthTracer.
func (hs healthTracers) TraceHealth(ctx context.Context, ev HealthEvent) {
	for _, h := range hs {
		h.TraceHealth(ctx, ev)
	}
}

// logTracer adapts Config.Logger to a HealthTracer, as pgx's tracelog adapts
// a logger to a QueryTracer: a split brain is logged at error level,
// ejections, suspicions, lag, role changes and the loss or change of the
// primary at warn level, the rest at info level.
type logTracer struct{ log *slog.Logger }

// TraceHealth implements HealthTracer.
func (l logTracer) TraceHealth(ctx context.Context, ev HealthEvent) {
	level := slog.LevelInfo
	switch ev.Kind {
	case EventSplitBrain:
		level = slog.LevelError
	case EventEjected, EventSuspect, EventLagging, EventRoleChanged, EventRoleMismatch, EventPrimaryChanged, EventDiscoveryFailed:
		level = slog.LevelWarn
	}
	attrs := []slog.Attr{slog.String("event", ev.Kind.String())}
	aboutNode := ev.Kind != EventPrimaryChanged && ev.Kind != EventDiscoveryFailed
	if ev.Node != "" || aboutNode {
		attrs = append(attrs, slog.String("node", ev.Node))
	}
	if ev.Group != "" {
		attrs = append(attrs, slog.String("group", ev.Group))
	}
	if ev.Previous != "" {
		attrs = append(attrs, slog.String("previous", ev.Previous))
	}
	if aboutNode && ev.Kind != EventNodeRemoved && ev.Kind != EventNodeDrained {
		attrs = append(attrs, slog.String("state", ev.State.String()), slog.String("role", ev.Role))
	}
	if ev.Kind == EventLagging {
		attrs = append(attrs, slog.Duration("lag", ev.Lag), slog.Int64("lag_bytes", ev.LagBytes))
	}
	if ev.Err != "" {
		attrs = append(attrs, slog.String("error", ev.Err))
	}
	msg := "pgxroute: " + ev.Kind.String()
	if ev.Detail != "" {
		msg += ": " + ev.Detail
	}
	l.log.LogAttrs(ctx, level, msg, attrs...)
}
