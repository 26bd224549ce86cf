package pgxroute_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgxroute/pgxroute"
	"github.com/pgxroute/pgxroute/routingtest"
)

// TestCancelledCallKeepsItsNode: a call whose context is cancelled while pgx
// writes its statement fails; pgx v5.7 reports it as its own i/o timeout
// (pgx breaks the write off by setting a deadline), which looks like a
// broken connection. It is the caller's doing, not the node's: the node is
// not ejected, and the next call runs on it. The server backend of the
// pool's one open connection is stopped (SIGSTOP), and the argument is
// larger than the two sockets' buffers can hold (unwritable), so that the
// write stalls and cannot end before the cancel; the next call gets a
// new connection (MaxConns 2).
func TestCancelledCallKeepsItsNode(t *testing.T) {
	c := sharedCluster(t)
	const name = "primary"
	logs := &routingtest.SyncBuffer{}
	pool := newPool(t, c, pgxroute.Config{
		Health:        fastHealth,
		Logger:        slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Groups:        map[string][]pgxroute.Node{pgxroute.DefaultGroupName: {{Name: name, ConnString: c.Primary().ConnString()}}},
		ConfigurePool: func(_, _ string, pc *pgxpool.Config) { pc.MaxConns = 2 },
	})
	ctx := context.Background()
	const sql = "SELECT length($1::bytea)"
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pid := int(conn.Conn().PgConn().PID())
	local := conn.Conn().PgConn().Conn().LocalAddr().(*net.TCPAddr).Port
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
	go func() { _, err := pool.Exec(cctx, sql, make([]byte, unwritable(t))); done <- err }()
	// The write stalls once the socket holds data that the stopped
	// backend's full buffer does not take; it cannot end.
	var early error
	ended := false
	routingtest.WaitFor(t, "the call's write to stall", func() bool {
		select {
		case early = <-done:
			ended = true
			return true
		default:
		}
		return sendQueue(t, local) > 0
	})
	if ended {
		st := nodeStat(pool, "default", name)
		t.Fatalf("the call ended before its write stalled: %v; node %v, %d ejections, last error %q; the pool's log:\n%s", early, st.State, st.Ejections, st.LastError, logs)
	}
	cancel()
	err = <-done
	// The backend waits for the rest of the argument, and newer pgx versions
	// drain the broken connection until the server closes it: end the
	// backend (as pg_terminate_backend does), then let it run.
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Error(err)
	}
	thaw()
	// pgx up to v5.7 reports the write broken off as its i/o timeout,
	// newer ones as the context's error.
	var ne net.Error
	if !errors.Is(err, context.Canceled) && (!errors.As(err, &ne) || !ne.Timeout()) {
		t.Fatalf("cancelled call: %v, want the context's error or pgx's i/o timeout of a write broken off", err)
	}
	t.Logf("cancelled call: %v", err)
	if st := nodeStat(pool, "default", name); st.State != pgxroute.StateUp || st.Ejections != 0 {
		t.Errorf("after a cancelled call the node is %v with %d ejections (last error %q), want up with none", st.State, st.Ejections, st.LastError)
	}
	var n int
	if err := pool.QueryRow(ctx, sql, []byte{1, 2}).Scan(&n); err != nil || n != 2 {
		t.Errorf("the next call: %d, %v", n, err)
	}
}

// unwritable returns a size of data that one write cannot hand to the
// kernel while the receiver reads nothing: more than the largest send and
// receive buffers TCP may grow to (tcp_wmem and tcp_rmem's maxima; the
// receive buffer alone may reach 32 MB), with 8 MB to spare.
func unwritable(t *testing.T) int {
	t.Helper()
	size := 8 << 20
	for _, f := range []string{"/proc/sys/net/ipv4/tcp_wmem", "/proc/sys/net/ipv4/tcp_rmem"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		v := strings.Fields(string(b))
		max, err := strconv.Atoi(v[len(v)-1])
		if err != nil {
			t.Fatalf("%s: %q: %v", f, b, err)
		}
		size += max
	}
	return size
}

// sendQueue returns the bytes queued in the send buffer of the IPv4 TCP
// socket whose local port is port, from /proc/net/tcp (0 when there is none).
func sendQueue(t *testing.T, port int) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf(":%04X", port)
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		// sl local_address rem_address st tx_queue:rx_queue ...
		if len(f) < 5 || !strings.HasSuffix(f[1], want) {
			continue
		}
		tx, _, _ := strings.Cut(f[4], ":")
		n, err := strconv.ParseInt(tx, 16, 64)
		if err != nil {
			t.Fatalf("/proc/net/tcp: %q: %v", line, err)
		}
		return n
	}
	return 0
}
