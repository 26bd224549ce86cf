package routingtest

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgxroute/pgxroute"
)

// WaitLimit is how long WaitFor and WaitState wait at most before they fail
// the test: a liveness bound that stops a broken build from hanging, not a
// speed assertion (a loaded machine may take many seconds to notice a
// failure).
const WaitLimit = 60 * time.Second

// waitPoll is how often WaitFor asks its condition again.
const waitPoll = 10 * time.Millisecond

// WaitFor polls cond every 10 ms until it holds and returns how long that
// took, which it also logs. When cond still does not hold after WaitLimit it
// fails tb with a message naming what (a phrase such as "the killed replica
// to be ejected").
func WaitFor(tb testing.TB, what string, cond func() bool) time.Duration {
	tb.Helper()
	start := time.Now()
	defer func() { tb.Logf("waited %v for %s", time.Since(start).Round(time.Millisecond), what) }()
	for !cond() {
		if time.Since(start) > WaitLimit {
			tb.Fatalf("gave up waiting for %s after %v", what, WaitLimit)
		}
		time.Sleep(waitPoll)
	}
	return time.Since(start)
}

// WaitState waits (as WaitFor does) until pool.Stat shows the node named node
// in state s in one of its groups.
func WaitState(tb testing.TB, pool *pgxroute.RoutedPool, node string, s pgxroute.NodeState) {
	tb.Helper()
	WaitFor(tb, "node "+node+" to be "+s.String(), func() bool {
		for _, g := range pool.Stat().Groups {
			if n, ok := g.Node(node); ok && n.State == s {
				return true
			}
		}
		return false
	})
}

// SyncBuffer is an io.Writer safe for concurrent use, for a log or a
// server's output that goroutines write while the test reads it with String.
// The zero value is ready to use.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p to the buffer.
func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what was written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// QueryRower is what answers a query with one row: a *pgxroute.RoutedPool, a
// pgx.Tx, a *pgx.Conn, a *pgxpool.Pool.
type QueryRower interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// NodeAt returns the cluster's node that listens on port, or nil when no node
// does. It returns nil on a ClusterOptions.SharedPort cluster, where every
// node listens on the same port: use NodeAtHost there.
func (c *Cluster) NodeAt(port int) *Node {
	if c.opts.SharedPort {
		return nil
	}
	for _, n := range c.Nodes() {
		if n.Port() == port {
			return n
		}
	}
	return nil
}

// NodeAtHost returns the node of a ClusterOptions.SharedPort cluster that
// listens on the address host (as the server reports it:
// host(inet_server_addr())), or nil when no node does. It returns nil on an
// ordinary cluster, whose nodes all listen on 127.0.0.1: use NodeAt there.
func (c *Cluster) NodeAtHost(host string) *Node {
	if !c.opts.SharedPort {
		return nil
	}
	for _, n := range c.Nodes() {
		if n.Host() == host {
			return n
		}
	}
	return nil
}

// ServedBy runs sql through q and returns the name (Node.Name: "primary",
// "replica1"...) of the cluster's node that answered, by the server's own
// account: sql must return one integer, the port of the server that ran it,
// such as "SELECT inet_server_port()" or "INSERT ... RETURNING
// inet_server_port()". It fails tb when the query fails or when the port is
// no node of c, and at once on a ClusterOptions.SharedPort cluster, whose
// nodes share their port (ask for host(inet_server_addr()) and use
// NodeAtHost there).
func ServedBy(tb testing.TB, ctx context.Context, c *Cluster, q QueryRower, sql string, args ...any) string {
	tb.Helper()
	if c.opts.SharedPort {
		tb.Fatalf("routingtest: ServedBy tells the nodes apart by port: %v; ask for host(inet_server_addr()) and use Cluster.NodeAtHost", ErrSharedPort)
	}
	var port int
	if err := q.QueryRow(ctx, sql, args...).Scan(&port); err != nil {
		tb.Fatalf("%s: %v", sql, err)
	}
	n := c.NodeAt(port)
	if n == nil {
		tb.Fatalf("%s: answered by port %d, no node of the cluster", sql, port)
	}
	return n.Name()
}

// ClosedPort returns a port of 127.0.0.1 that nothing listens on: one the
// kernel handed out a moment ago and that was closed at once (a node
// address that refuses connections).
func ClosedPort(tb testing.TB) int {
	tb.Helper()
	port, err := freePort()
	if err != nil {
		tb.Fatal(err)
	}
	return port
}
