package pgxroute

import (
	"context"
	"errors"
	"net"
	"reflect"
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
// dropped too (and the pool reset), so no later call picks one.
//
// This costs nothing per call: pgx gets the socket the dialer returned
// (a *net.TCPConn), not a wrapper, so no Read or Write of a call passes
// through the router. The set keeps the socket itself and learns that pgx
// closed it by asking the socket (a closed socket's SyscallConn Control
// fails); it forgets the closed ones whenever it dials a new one, so it
// holds at most the pool's open sockets and the one being dialed. A
// connection that is no syscall.Conn (a user's DialFunc may return
// anything) is wrapped instead, and taken out of the set by its Close.

// connSet holds the open sockets of one node's pool.
type connSet struct {
	mu    sync.Mutex
	conns map[net.Conn]struct{} // sockets as dialed, or *trackedConn wrappers
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
		if !socketLike(c) {
			c = &trackedConn{Conn: c, set: s}
		}
		s.add(c)
		if refuse() {
			s.remove(c)
			c.Close()
			return nil, errNotAnswering
		}
		return c, nil
	}
}

// socketLike reports whether c can be tracked as it is: a comparable
// syscall.Conn, whose closing the set can see.
func socketLike(c net.Conn) bool {
	_, ok := c.(syscall.Conn)
	return ok && reflect.TypeOf(c).Comparable()
}

// closedSocket reports whether the socket c was closed.
func closedSocket(c syscall.Conn) bool {
	rc, err := c.SyscallConn()
	if err != nil {
		return true
	}
	return rc.Control(func(uintptr) {}) != nil
}

// add keeps c in the set, and forgets the sockets closed since the last
// dial.
func (s *connSet) add(c net.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conns == nil {
		s.conns = map[net.Conn]struct{}{}
	}
	for k := range s.conns {
		if sc, ok := k.(syscall.Conn); ok && !isTracked(k) && closedSocket(sc) {
			delete(s.conns, k)
		}
	}
	s.conns[c] = struct{}{}
}

// isTracked reports whether c is a wrapper (which leaves the set itself).
func isTracked(c net.Conn) bool {
	_, ok := c.(*trackedConn)
	return ok
}

func (s *connSet) remove(c net.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// errNotAnswering is the dial error of a node the router knows hangs: a
// connection error, so that a read runs again on another node.
var errNotAnswering = &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("pgxroute: the node stopped answering (suspect): not dialed")}

// closeAll closes every open socket of the set and reports how many were
// open.
func (s *connSet) closeAll() int {
	s.mu.Lock()
	conns := make([]net.Conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
		if !isTracked(c) {
			delete(s.conns, c) // closed below; a wrapper leaves by its Close
		}
	}
	s.mu.Unlock()
	closed := 0
	for _, c := range conns {
		if c.Close() == nil {
			closed++
		}
	}
	return closed
}

// len returns how many sockets the set holds (closed ones not yet
// forgotten included).
func (s *connSet) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// trackedConn is a connection that is no socket (see socketLike); closing
// it takes it out of its set.
type trackedConn struct {
	net.Conn
	set  *connSet
	once sync.Once
}

// Close closes the connection.
func (c *trackedConn) Close() error {
	c.once.Do(func() { c.set.remove(c) })
	return c.Conn.Close()
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
