package pgxroute

import (
	"context"
	"errors"
	"net"
	"sync"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
)

// Interrupting the calls on a node that stopped answering.
//
// The router dials every connection of the pools it creates through the
// node's connSet, which keeps the open sockets. When the prober gives up on
// the node (a probe unanswered past Health.Timeout, or FailuresToEject
// failed probes), interrupt closes every one of them: a call waiting on a
// frozen server or a dead network path fails at once with a connection
// error, a read among them runs again on another node (the retry rules of
// route.go), and the rest fail with ErrInterrupted. Idle connections are
// dropped too (and the pool reset), so no later call picks one. This costs
// nothing per call: the sockets are tracked when dialed and closed.

// connSet holds the open sockets of one node's pool.
type connSet struct {
	mu    sync.Mutex
	conns map[*trackedConn]struct{}
}

// track wraps dial so that the sockets it opens are kept in s. While
// refuse reports true (the node stopped answering), it dials nothing: a
// call waiting in the pool for a connection of a hung node fails at once
// (and a read runs again elsewhere) instead of waiting for the connect
// timeout. A socket whose dial raced with refuse turning true is closed.
func (s *connSet) track(dial pgconn.DialFunc, refuse func() bool) pgconn.DialFunc {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		if refuse() {
			return nil, errNotAnswering
		}
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		tc := &trackedConn{Conn: c, set: s}
		s.mu.Lock()
		if s.conns == nil {
			s.conns = map[*trackedConn]struct{}{}
		}
		s.conns[tc] = struct{}{}
		s.mu.Unlock()
		if refuse() {
			tc.Close()
			return nil, errNotAnswering
		}
		return tc, nil
	}
}

// errNotAnswering is the dial error of a node the router knows hangs: a
// connection error, so that a read runs again on another node.
var errNotAnswering = &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("pgxroute: the node stopped answering (suspect): not dialed")}

// closeAll closes every open socket of the set and reports how many.
func (s *connSet) closeAll() int {
	s.mu.Lock()
	conns := make([]*trackedConn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
	return len(conns)
}

// trackedConn is a socket of a node's pool; closing it takes it out of its
// set.
type trackedConn struct {
	net.Conn
	set  *connSet
	once sync.Once
}

// Close closes the socket.
func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.set.mu.Lock()
		delete(c.set.conns, c)
		c.set.mu.Unlock()
	})
	return c.Conn.Close()
}

// SyscallConn reaches the socket under the wrapper (for its options).
func (c *trackedConn) SyscallConn() (syscall.RawConn, error) {
	if sc, ok := c.Conn.(syscall.Conn); ok {
		return sc.SyscallConn()
	}
	return nil, syscall.EINVAL
}

// interrupt closes every connection of n: the calls in flight on it fail at
// once, and its pool forgets its idle connections. The calls that started
// before see the node's interruption count changed (see wrapErr).
func (n *node) interrupt() int {
	n.interrupts.Add(1)
	closed := n.conns.closeAll()
	if n.pool != nil {
		n.pool.Reset()
	}
	return closed
}
