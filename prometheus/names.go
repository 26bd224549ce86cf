package prometheus

import "github.com/pgxroute/pgxroute"

// reasonNames are the snake-case names of the reasons, the values of the
// reason label: bounded and stable (Reason.String is for people). They are
// the OpenTelemetry adapter's pgxroute.reason values too.
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

// ReasonName returns the value of the reason label for r ("read_no_scope",
// "misroute"); "unknown" for a reason this package does not know.
func ReasonName(r pgxroute.Reason) string {
	if s, ok := reasonNames[r]; ok {
		return s
	}
	return "unknown"
}
