package pgxroute

import (
	"context"
	"errors"
	"net"
	"testing"
)

// loopbackListener accepts connections on 127.0.0.1 until the test ends.
func loopbackListener(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
		}
	}()
	return ln
}

// TestConnSetKeepsTheSocket: pgx gets the socket itself (no wrapper on its
// reads and writes), the set forgets a socket pgx closed at the next dial,
// and closeAll closes the open ones and counts them.
func TestConnSetKeepsTheSocket(t *testing.T) {
	ln := loopbackListener(t)
	var s connSet
	var d net.Dialer
	dial := s.track(d.DialContext, func() bool { return false })
	ctx := context.Background()
	a, err := dial(ctx, "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := a.(*net.TCPConn); !ok {
		t.Fatalf("dialed a %T, want the *net.TCPConn itself", a)
	}
	b, err := dial(ctx, "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if n := s.len(); n != 2 {
		t.Fatalf("the set holds %d sockets, want 2", n)
	}
	a.Close() // as pgx closes a connection: not through the set
	c, err := dial(ctx, "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if n := s.len(); n != 2 {
		t.Fatalf("after a closed and c dialed the set holds %d sockets, want 2 (b and c)", n)
	}
	if n := s.closeAll(); n != 2 {
		t.Fatalf("closeAll closed %d sockets, want 2", n)
	}
	for _, x := range []net.Conn{b, c} {
		if _, err := x.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("write after closeAll: %v, want net.ErrClosed", err)
		}
	}
	if n := s.len(); n != 0 {
		t.Fatalf("after closeAll the set holds %d sockets, want 0", n)
	}
}

// pipeConn is a connection that is no socket.
type pipeConn struct{ net.Conn }

// TestConnSetWrapsOtherConns: a connection that is no syscall.Conn is
// wrapped, leaves the set when closed, and closeAll closes it.
func TestConnSetWrapsOtherConns(t *testing.T) {
	var s connSet
	var peers []net.Conn
	t.Cleanup(func() {
		for _, p := range peers {
			p.Close()
		}
	})
	dial := s.track(func(context.Context, string, string) (net.Conn, error) {
		c, p := net.Pipe()
		peers = append(peers, p)
		return pipeConn{c}, nil
	}, func() bool { return false })
	ctx := context.Background()
	a, err := dial(ctx, "tcp", "x")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := a.(*trackedConn); !ok {
		t.Fatalf("dialed a %T, want a *trackedConn", a)
	}
	b, err := dial(ctx, "tcp", "x")
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
	if n := s.len(); n != 1 {
		t.Fatalf("after a closed the set holds %d, want 1", n)
	}
	if n := s.closeAll(); n != 1 {
		t.Fatalf("closeAll closed %d, want 1", n)
	}
	if _, err := b.Write([]byte("x")); err == nil {
		t.Fatal("write after closeAll succeeded")
	}
}

// TestConnSetRefuses: while refuse reports true nothing is dialed, and the
// error is a connection error.
func TestConnSetRefuses(t *testing.T) {
	var s connSet
	dialed := 0
	dial := s.track(func(context.Context, string, string) (net.Conn, error) {
		dialed++
		return nil, errors.New("unexpected")
	}, func() bool { return true })
	_, err := dial(context.Background(), "tcp", "x")
	var op *net.OpError
	if !errors.As(err, &op) || dialed != 0 {
		t.Fatalf("dial: %v after %d dials, want a *net.OpError and no dial", err, dialed)
	}
}
