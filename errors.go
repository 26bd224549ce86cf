package pgxroute

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgxroute/pgxroute/internal/pgtext"
)

// Errors callers test with errors.Is.
var (
	// ErrConfig is wrapped by every configuration error of New.
	ErrConfig = errors.New("pgxroute: bad config")
	// ErrUnknownGroup is returned for a bind group the configuration lacks.
	ErrUnknownGroup = errors.New("pgxroute: unknown bind group")
	// ErrNoHealthyNode is returned when a group has no node to take a call.
	ErrNoHealthyNode = errors.New("pgxroute: no healthy node")
	// ErrClosed is returned by calls on a closed RoutedPool.
	ErrClosed = errors.New("pgxroute: pool closed")
	// ErrNoPool is returned by Acquire on a node given as a Backend.
	ErrNoPool = errors.New("pgxroute: node has no pgxpool (a Backend)")
	// ErrInterrupted is wrapped by the error of a call whose node stopped
	// answering while it ran: the prober gave up on the node and closed its
	// connections. A write's outcome is then unknown: it may have been
	// applied.
	ErrInterrupted = errors.New("pgxroute: call interrupted: its node stopped answering and was ejected")
	// ErrBadToken is returned by WithToken for a token that is not one.
	ErrBadToken = errors.New("pgxroute: malformed read-your-writes token")
	// ErrNoPrimary is wrapped, with ErrNoHealthyNode, by the error of a call
	// that needed the primary (a write, a locking or sticky read, a
	// read-write transaction) while no member of the cluster was one, for
	// HealthConfig.FailoverTimeout or until its context ended. The error
	// names every member and what it was last seen as.
	ErrNoPrimary = errors.New("pgxroute: no primary")
	// ErrSplitBrain is wrapped, with ErrNoPrimary, when two members report
	// being the primary on the same timeline: the router does not guess.
	ErrSplitBrain = errors.New("pgxroute: split brain")
	// ErrOutcomeUnknown is wrapped by the error of a call with effects (a
	// write, a locking read, a batch or COPY with writes) whose connection
	// failed after the statement may have reached the server: it may or may
	// not have been applied, and the router does not send it again (a
	// transaction's statements and its commit are pgx's: their errors are
	// the node's own). A call that provably never reached a server is
	// not marked so: it is sent again to the primary (see Config).
	// ErrNodeRemoved is wrapped by the error of a call that was still
	// running on a node removed from its groups (SetGroup, Discovery) when
	// Config.DrainTimeout ran out and the node's connections were closed.
	ErrNodeRemoved    = errors.New("pgxroute: node removed: its drain timed out and its connections were closed")
	ErrOutcomeUnknown = errors.New("pgxroute: outcome unknown: the connection failed after the statement was sent")
)

// errNodeGone is the error of an attempt that found its node removed
// before it started: nothing was sent, and the call is routed again.
var errNodeGone = errors.New("pgxroute: the node was removed before the attempt started")

// errScannedTwice is the error of a QueryRow's Scan called again: pgx's
// Row is read by one Scan.
var errScannedTwice = errors.New("pgxroute: Scan called again on a QueryRow's row that was already scanned")

// NodeError is the error of a call that failed on a node: it names the group
// and node and wraps the node's error (a *pgconn.PgError carries the
// server's detail).
type NodeError struct {
	Group string
	Node  string
	Err   error
}

// Error implements error.
func (e *NodeError) Error() string {
	msg := e.Err.Error()
	if strings.Contains(msg, e.Node) {
		return fmt.Sprintf("pgxroute: group %q: %s", e.Group, msg)
	}
	return fmt.Sprintf("pgxroute: group %q node %q: %s", e.Group, e.Node, msg)
}

// Unwrap returns the node's error.
func (e *NodeError) Unwrap() error { return e.Err }

// isConnError reports whether err says the node (not the statement) failed:
// no connection, a broken one, a server shutting down or starting up, or a
// pooler in front of the node (PgBouncer) that lost its server: PgBouncer
// reports its own failures ("server conn crashed?", "server login has been
// failing", query_wait_timeout) as SQLSTATE 08P01.
func isConnError(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "57P01", "57P02", "57P03", "08000", "08003", "08006", "08001", "08004", "08P01":
			return true
		}
		return false
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	return errors.As(err, &ce) || errors.As(err, &ne) || pgconn.SafeToRetry(err) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed)
}

// neverSent reports whether err provably happened before anything of the
// call reached a server: pgconn says so (SafeToRetry), or no connection was
// ever made (a connect error, which also covers a dial the router refused).
func neverSent(err error) bool {
	var ce *pgconn.ConnectError
	return pgconn.SafeToRetry(err) || errors.As(err, &ce)
}

// isReadOnlyViolation reports whether err is SQLSTATE 25006
// (read_only_sql_transaction): a standby refused a write.
func isReadOnlyViolation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "25006"
}

// redactedError returns err's message without passwords.
func redactedError(err error) string {
	if err == nil {
		return ""
	}
	return pgtext.Redact(err.Error())
}
