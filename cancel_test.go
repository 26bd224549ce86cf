package pgxroute_test

import (
	"context"
	"errors"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgxroute/pgxroute"
)

// TestCancelledCallKeepsItsNode: a call whose context is cancelled while pgx
// writes its statement fails with pgx's own i/o timeout (pgx breaks the
// write off by setting a deadline), which looks like a broken connection.
// It is the caller's doing, not the node's: the node is not ejected, and the
// next write runs on it. The server backend of the pool's one connection is
// stopped (SIGSTOP) so that the 32 MB argument cannot be written before the
// cancel.
func TestCancelledCallKeepsItsNode(t *testing.T) {
	c := sharedCluster(t)
	const name = "primary"
	pool := newPool(t, c, pgxroute.Config{
		Health:        fastHealth,
		Groups:        map[string][]pgxroute.Node{pgxroute.DefaultGroupName: {{Name: name, ConnString: c.Primary().ConnString()}}},
		ConfigurePool: func(_, _ string, pc *pgxpool.Config) { pc.MaxConns = 1 },
	})
	ctx := context.Background()
	const sql = "SELECT length($1::bytea)"
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pid := int(conn.Conn().PgConn().PID())
	// Prepared now, so that the call below only writes (Bind, Execute).
	_, err = conn.Exec(ctx, sql, []byte{1})
	conn.Release()
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	thawed := false
	thaw := func() {
		if !thawed {
			thawed = true
			if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
				t.Error(err)
			}
		}
	}
	defer thaw()

	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { _, err := pool.Exec(cctx, sql, make([]byte, 32<<20)); done <- err }()
	waitFor(t, "the call to start", func() bool { return nodeStat(pool, "default", name).InFlight == 1 })
	// A trigger, not an assertion: the write fills the socket's buffers and
	// blocks well within this.
	time.Sleep(200 * time.Millisecond)
	cancel()
	err = <-done
	thaw()
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("cancelled call: %v, want pgx's i/o timeout of a write broken off", err)
	}
	t.Logf("cancelled call: %v", err)
	if st := nodeStat(pool, "default", name); st.State != pgxroute.StateUp || st.Ejections != 0 {
		t.Errorf("after a cancelled call the node is %v with %d ejections (last error %q), want up with none", st.State, st.Ejections, st.LastError)
	}
	var n int
	if err := pool.QueryRow(ctx, "SELECT length($1::bytea)", []byte{1, 2}).Scan(&n); err != nil || n != 2 {
		t.Errorf("the next call: %d, %v", n, err)
	}
}
