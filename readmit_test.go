package pgxroute_test

import (
	"context"
	"errors"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgxroute/pgxroute"
	"github.com/pgxroute/pgxroute/routingtest"
)

// TestReadmitNeedsNewConnection: a replica in a smart shutdown serves the
// sessions it has and refuses new ones (57P03). A call's failure there
// (its connection ended) ejects it; the prober's own session, opened before
// the ejection, would still answer, but re-admitting the node on it would
// send reads to a server that refuses the connections they need. The prober
// drops that session and must connect again, which the server refuses: the
// node stays down however many probes run, and is re-admitted by none.
func TestReadmitNeedsNewConnection(t *testing.T) {
	c := ownCluster(t, routingtest.ClusterOptions{})
	ctx := context.Background()
	r := c.Replicas()[0]
	pool := newPool(t, c, pgxroute.Config{Health: fastHealth})
	routingtest.WaitFor(t, r.Name()+" probed", func() bool { return nodeStat(pool, pgxroute.ReadGroupName, r.Name()).Role == "replica" })
	// The pool's connections to the replica, opened by reads.
	for range 8 {
		routingtest.ServedBy(t, ctx, c, pool, "SELECT inet_server_port()")
	}

	// A session of the test's own holds the shutdown back.
	hold, err := pgx.Connect(ctx, r.ConnString())
	if err != nil {
		t.Fatal(err)
	}
	defer hold.Close(ctx)
	if err := syscall.Kill(r.PID(), syscall.SIGTERM); err != nil { // smart shutdown
		t.Fatal(err)
	}
	routingtest.WaitFor(t, r.Name()+" to refuse new connections", func() bool {
		conn, err := pgx.Connect(ctx, r.ConnString())
		if err == nil {
			conn.Close(ctx)
			return false
		}
		var pe *pgconn.PgError
		return errors.As(err, &pe) && pe.Code == "57P03"
	})
	// End the pool's sessions there (not the prober's, not the test's).
	if _, err := hold.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() AND application_name <> 'pgxroute-probe'`); err != nil {
		t.Fatal(err)
	}
	var probers int
	if err := hold.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgxroute-probe'").Scan(&probers); err != nil || probers != 1 {
		t.Fatalf("the prober's sessions on %s: %d, %v; want 1", r.Name(), probers, err)
	}
	// Reads until one of them finds a connection ended, which ejects the
	// replica (the read itself runs again on the other replica).
	routingtest.WaitFor(t, r.Name()+" ejected by a call", func() bool {
		var port int
		if err := pool.QueryRow(ctx, "SELECT inet_server_port()").Scan(&port); err != nil {
			t.Fatalf("a read failed: %v", err)
		}
		return nodeStat(pool, pgxroute.ReadGroupName, r.Name()).Ejections > 0
	})
	st := nodeStat(pool, pgxroute.ReadGroupName, r.Name())
	probes := st.Probes
	routingtest.WaitFor(t, "six probes of "+r.Name()+" after its ejection", func() bool {
		return nodeStat(pool, pgxroute.ReadGroupName, r.Name()).Probes >= probes+6
	})
	st = nodeStat(pool, pgxroute.ReadGroupName, r.Name())
	t.Logf("%s after %d probes: %v, %d re-admissions, last error %q", r.Name(), st.Probes-probes, st.State, st.Readmissions, st.LastError)
	if st.State != pgxroute.StateDown || st.Readmissions != 0 {
		t.Errorf("%s, which refuses new connections, is %v with %d re-admissions; want down with none", r.Name(), st.State, st.Readmissions)
	}
	if err := hold.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgxroute-probe'").Scan(&probers); err != nil || probers != 0 {
		t.Errorf("the prober's sessions on %s once it was ejected: %d, %v; want 0 (its session from before the ejection closed)", r.Name(), probers, err)
	}
}
