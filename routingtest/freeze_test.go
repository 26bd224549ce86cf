package routingtest_test

import (
	"context"
	"errors"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgxroute/pgxroute/routingtest"
)

// procState returns the state letter of pid from /proc (T: stopped).
func procState(t *testing.T, pid int) byte {
	t.Helper()
	b, err := readProcStat(pid)
	if err != nil {
		t.Fatalf("state of %d: %v", pid, err)
	}
	return b
}

// waitAnswer runs SELECT inet_server_port() on conn with no deadline of its
// own and sends the result (or error) on the returned channel.
func waitAnswer(conn *pgx.Conn) <-chan error {
	done := make(chan error, 1)
	go func() {
		var port int
		done <- conn.QueryRow(context.Background(), "SELECT inet_server_port()").Scan(&port)
	}()
	return done
}

// hangs checks that sql on a fresh connection to n, and on conn, does not
// answer within d; it reports whether both hung.
func assertHangs(t *testing.T, n *routingtest.Node, conn *pgx.Conn, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var one int
	if err := conn.QueryRow(ctx, "SELECT 1").Scan(&one); !errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
		t.Errorf("%s: a query on an open connection answered (%v), want no answer before the deadline", n.Name(), err)
	}
	dctx, dcancel := context.WithTimeout(context.Background(), d)
	defer dcancel()
	c2, err := pgx.Connect(dctx, n.ConnString())
	if err == nil {
		c2.Close(context.Background())
		t.Errorf("%s: a new connection succeeded, want it to hang", n.Name())
	} else if ne := net.Error(nil); dctx.Err() == nil && !(errors.As(err, &ne) && ne.Timeout()) {
		// A dial bounded by the context's deadline may report its own i/o
		// timeout a moment before the context's timer fires: that is the
		// deadline too.
		t.Errorf("%s: a new connection failed before the deadline (%v), want it to hang", n.Name(), err)
	}
}

func TestFreezeThaw(t *testing.T) {
	c := routingtest.NewCluster(t, routingtest.ClusterOptions{Replicas: 1})
	r := c.Replicas()[0]
	idle := connect(t, r)    // open before the freeze, unused during it
	pending := connect(t, r) // sends a query while frozen
	probe := connect(t, r)   // a query with a deadline while frozen
	pid := r.PID()

	if err := c.Freeze(r); err != nil {
		t.Fatal(err)
	}
	if !r.Frozen() {
		t.Fatal("Frozen() is false after Freeze")
	}
	if s := procState(t, pid); s != 'T' {
		t.Fatalf("postmaster state %c after Freeze, want T (stopped)", s)
	}
	kids := childrenOf(t, pid)
	if len(kids) < 3 {
		t.Fatalf("frozen postmaster has %d children, want its backends and auxiliaries", len(kids))
	}
	for _, k := range kids {
		// Z: a backend that had exited, which the stopped postmaster
		// cannot reap.
		if s, err := readProcStat(k); err == nil && s != 'T' && s != 'Z' {
			t.Errorf("child %d state %c after Freeze, want T", k, s)
		}
	}
	answer := waitAnswer(pending)
	assertHangs(t, r, probe, 500*time.Millisecond)
	select {
	case err := <-answer:
		t.Fatalf("a query without a deadline answered on a frozen node: %v", err)
	default:
	}
	// The primary is not affected.
	var port int
	if err := connect(t, c.Primary()).QueryRow(context.Background(), "SELECT inet_server_port()").Scan(&port); err != nil || port != c.Primary().Port() {
		t.Fatalf("primary while the replica is frozen: port %d, %v", port, err)
	}

	if err := c.Thaw(r); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-answer:
		if err != nil {
			t.Fatalf("the pending query failed after Thaw: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the pending query did not answer within 30s of Thaw")
	}
	for name, conn := range map[string]*pgx.Conn{"idle": idle, "new": connect(t, r)} {
		if err := conn.QueryRow(context.Background(), "SELECT inet_server_port()").Scan(&port); err != nil || port != r.Port() {
			t.Errorf("%s connection after Thaw: port %d, %v", name, port, err)
		}
	}
	// Processes that exited since (the backends of the connections that
	// gave up) are gone; none of the others is still stopped.
	for _, k := range append(kids, pid) {
		if s, err := readProcStat(k); err == nil && s == 'T' {
			t.Errorf("process %d still stopped after Thaw", k)
		}
	}
}

// TestFreezeCleanup: a node left frozen is thawed and stopped by Close.
func TestFreezeCleanup(t *testing.T) {
	routingtest.SkipWithoutPostgres(t, "")
	c, err := routingtest.StartCluster(context.Background(), routingtest.ClusterOptions{Replicas: routingtest.NoReplicas})
	if err != nil {
		t.Fatal(err)
	}
	pid := c.Primary().PID()
	kids := childrenOf(t, pid)
	if err := c.Freeze(c.Primary()); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(60 * time.Second):
		syscall.Kill(pid, syscall.SIGKILL)
		t.Fatal("Close of a frozen cluster did not return within 60s")
	}
	for _, p := range append(kids, pid) {
		if routingtest.ProcessAlive(p) {
			t.Errorf("process %d alive after Close of a frozen node", p)
		}
	}
}
