package pgxroute

import (
	"context"
	"errors"
	"net"
	"time"

	"github.com/pgxroute/pgxroute/stickiness"
)

// A node's health.
//
// What routing reads about a node (up, suspect, down, lagging, its role,
// timeline and positions) is a nodeState inside the published snapshot
// (cluster.go). A node's state changes only by nextNodeState, a pure
// function of the previous state, one outcome (a probe answered, a probe
// failed, a routed call's connection failed) and the settings, which returns
// the new state and what to do about it (events to report, calls to
// interrupt, a probe to ask for). The probers (probe.go) and the routed
// calls (call.go) hand their outcomes to the publisher, which applies them
// one at a time.

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
	// StateJoining: the node was added while the pool ran (SetGroup,
	// Discovery) and has not answered a probe yet: it takes no calls until
	// it does.
	StateJoining
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
	case StateJoining:
		return "joining"
	}
	return "unknown"
}

// role is what a node is in the replication cluster: what its last probe
// saw, or, for a member not probed yet, the configuration's guess. As what a
// group requires of its members (group.onlyRole), roleUnknown means none.
type role uint8

const (
	roleUnknown role = iota
	rolePrimary
	roleReplica
)

// String names the role as Stat and HealthEvent do.
func (r role) String() string {
	switch r {
	case rolePrimary:
		return "primary"
	case roleReplica:
		return "replica"
	}
	return "unknown"
}

// roleOf is the role a probe saw.
func roleOf(r *probeResult) role {
	switch {
	case r == nil:
		return roleUnknown
	case r.recovery:
		return roleReplica
	}
	return rolePrimary
}

// probeResult is what one answered probe saw. It is immutable once
// published.
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

// nodeState is everything routing knows of one node, as of one snapshot.
// It is a value: a new snapshot holds a new one.
type nodeState struct {
	down    bool // ejected: probes or a call's connection failed
	suspect bool // a probe went unanswered past Health.Timeout
	lagging bool // a replica beyond the lag limits (cluster.go sets it)
	stale   bool // a member that reports being a primary on a lower timeline than the cluster's
	// joining: added while the pool ran and not probed yet: it takes no
	// calls until a probe answers.
	joining bool
	// role is what routing takes the node for: its last probe's role, or
	// for a member not probed yet the configuration's guess.
	role  role
	probe *probeResult // the last answered probe; nil before the first
	// lagBytes is a replica's WAL distance to the primary (cluster.go).
	lagBytes int64
	// roleMismatch: with static roles, a default-group node in recovery or
	// a read-group node that is not.
	roleMismatch bool
	// failures and successes count probes in a row, for ejection and
	// re-admission.
	failures, successes int
	// interrupted: the node's calls were interrupted since it went down
	// (at most once per outage).
	interrupted bool
	// downAt is, for a node a call's failure ejected, the number of the
	// last probe started then: a probe that started before the ejection
	// (and answered before the server went) re-admits nothing, and the
	// prober's connection opened before it is dropped (probe.go): a server
	// that serves its old sessions may refuse new ones.
	downAt    uint64
	lastErr   string // redacted
	lastErrAt time.Time
}

// up reports whether the node takes calls: neither down nor suspect, nor
// joining.
func (s *nodeState) up() bool { return !s.down && !s.suspect && !s.joining }

// state is the node's state as Stat reports it.
func (s *nodeState) state() NodeState {
	switch {
	case s.joining:
		return StateJoining
	case s.suspect:
		return StateSuspect
	case s.down:
		return StateDown
	case s.lagging:
		return StateLagging
	}
	return StateUp
}

// position returns the WAL position the node is known to have (replayed, or
// inserted on a primary), or 0.
func (s *nodeState) position() uint64 {
	if s.probe != nil {
		return s.probe.lsn
	}
	return 0
}

// describe is the node's state and, when it has one, its last error, as an
// error message names a node: "suspect: read tcp ...: i/o timeout".
func (s *nodeState) describe() string {
	d := s.state().String()
	if s.lastErr != "" {
		d += ": " + s.lastErr
	}
	return d
}

// outcomeKind is what happened to a node.
type outcomeKind uint8

const (
	probeAnswered outcomeKind = iota
	probeFailed
	callFailed // a routed call's connection failed (the passive signal)
)

// outcome is one thing that happened to a node, as nextNodeState takes it.
type outcome struct {
	kind  outcomeKind
	probe *probeResult // probeAnswered's
	err   error        // probeFailed's and callFailed's
	// probesStarted is, for callFailed, the number of the node's probes
	// started by then (publisher.apply sets it).
	probesStarted uint64
	at            time.Time
}

// healthRules are the settings nextNodeState applies.
type healthRules struct {
	failuresToEject    int
	successesToReadmit int
	// ejectOnCall: a call's connection failure ejects the node (health
	// checks are on: a prober will re-admit it).
	ejectOnCall bool
	// expect is the role the configuration gives the node when roles are
	// static (roleUnknown: none, or roles follow the cluster).
	expect role
}

// nodeEvent is one event a transition reports.
type nodeEvent struct {
	kind HealthEventKind
	why  string // for the log: what made it happen
	err  string // redacted
}

// transition is what to do after a node's state changed.
type transition struct {
	events []nodeEvent
	// interrupt: close the node's connections (it stopped answering: the
	// calls waiting on it fail now and reads run again elsewhere).
	interrupt bool
	// resetPool: drop the node's idle connections (a call's connection
	// failed: the others are likely dead too).
	resetPool bool
	// probeNow: ask the node's prober for a probe at once.
	probeNow bool
}

// nextNodeState is the health transition of a node: the state after s when
// o happens, under rules r, and what to do about it.
//
//   - A node added while the pool runs (joining) takes calls from its
//     first answered probe; until then a failed probe only records its
//     error.
//   - A probe that fails counts a failure (and resets the successes); one
//     unanswered past its timeout makes the node suspect at once (its calls
//     are interrupted); FailuresToEject failures in a row eject it (and
//     interrupt them). A node a call's failure ejected has its calls
//     interrupted at its first failed probe: that confirms the node, not
//     one connection, is gone.
//   - A probe that answers clears suspicion and the failures, counts a
//     success for a down node (SuccessesToReadmit re-admit it; not a probe
//     that started before a call's failure ejected it: a server that
//     answered it and shut down right after would be re-admitted), and
//     records the node's role and positions.
//   - A call whose connection failed ejects the node at once, when health
//     checks are on (otherwise nothing would re-admit it).
func nextNodeState(s nodeState, o outcome, r healthRules) (nodeState, transition) {
	var t transition
	switch o.kind {
	case probeFailed:
		s.lastErr, s.lastErrAt = redactedError(o.err), o.at
		s.successes = 0
		if s.joining {
			break // it takes no calls yet: nothing to eject or interrupt
		}
		if isTimeout(o.err) && !s.suspect {
			s.suspect = true
			t.events = append(t.events, nodeEvent{kind: EventSuspect, why: "a probe went unanswered; its calls are interrupted", err: s.lastErr})
			t.interrupt, t.probeNow = true, true
		}
		s.failures++
		if s.failures >= r.failuresToEject && !s.down {
			s.down = true
			t.events = append(t.events, nodeEvent{kind: EventEjected, why: "probes failed", err: s.lastErr})
			t.interrupt, t.probeNow = true, true // the prober gave up: nothing waits on the node
		}
		if s.down && !s.interrupted {
			// Down by a call's failure, and now a probe fails too: the
			// node is gone, not one connection of it. Its calls in flight
			// may wait for ever (a PgBouncer holds a query while its
			// server is gone, and answers nothing): interrupt them now,
			// once per outage.
			t.interrupt = true
		}
		if t.interrupt && s.down {
			s.interrupted = true
		}
	case callFailed:
		s.lastErr, s.lastErrAt = redactedError(o.err), o.at
		if r.ejectOnCall && !s.down {
			s.down, s.successes, s.downAt = true, 0, o.probesStarted
			t.events = append(t.events, nodeEvent{kind: EventEjected, why: "a call's connection failed", err: s.lastErr})
			t.resetPool, t.probeNow = true, true
		}
	case probeAnswered:
		s.failures = 0
		if s.joining { // an added node takes calls from its first answered probe
			s.joining = false
			t.events = append(t.events, nodeEvent{kind: EventNodeJoined, why: "a node added answered its first probe: it takes calls"})
		}
		if s.suspect {
			s.suspect = false
			t.events = append(t.events, nodeEvent{kind: EventAnswering, why: "a suspect node answered again"})
		}
		if s.down && o.probe.seq > s.downAt { // a probe from before the ejection says nothing of now
			if s.successes++; s.successes >= r.successesToReadmit {
				s.down, s.successes, s.interrupted, s.downAt = false, 0, false, 0
				t.events = append(t.events, nodeEvent{kind: EventReadmitted, why: "probes answered"})
			}
		}
		now := roleOf(o.probe)
		if s.probe != nil && roleOf(s.probe) != now {
			t.events = append(t.events, nodeEvent{kind: EventRoleChanged, why: "a probe saw the node as " + now.String()})
		}
		s.probe, s.role = o.probe, now
		mismatch := r.expect != roleUnknown && r.expect != now
		if mismatch && !s.roleMismatch {
			why := "a read-group node is not in recovery (a primary)"
			if r.expect == rolePrimary {
				why = "a default-group node is in recovery (a replica)"
			}
			t.events = append(t.events, nodeEvent{kind: EventRoleMismatch, why: why})
		}
		s.roleMismatch = mismatch
	}
	return s, t
}

// isTimeout reports whether err is a probe that went unanswered until its
// deadline (not a refused or broken connection).
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}
