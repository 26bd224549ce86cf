package routingtest_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgxroute/pgxroute/routingtest"
)

func connect(t testing.TB, n *routingtest.Node) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), n.ConnString())
	if err != nil {
		t.Fatalf("connect %s: %v", n.Name(), err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func exec1(t testing.TB, n *routingtest.Node, sql string, args ...any) {
	t.Helper()
	conn := connect(t, n)
	if _, err := conn.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %s: %v", n.Name(), sql, err)
	}
}

// hasRow reports whether node n has the row id in table t.
func hasRow(t testing.TB, n *routingtest.Node, id int) bool {
	t.Helper()
	conn := connect(t, n)
	var found bool
	if err := conn.QueryRow(context.Background(), "SELECT EXISTS (SELECT 1 FROM items WHERE id = $1)", id).Scan(&found); err != nil {
		t.Fatalf("%s: %v", n.Name(), err)
	}
	return found
}

func inRecovery(t testing.TB, n *routingtest.Node) bool {
	t.Helper()
	var rec bool
	if err := connect(t, n).QueryRow(context.Background(), "SELECT pg_is_in_recovery()").Scan(&rec); err != nil {
		t.Fatalf("%s: %v", n.Name(), err)
	}
	return rec
}

func TestClusterReplicates(t *testing.T) {
	start := time.Now()
	c := routingtest.NewCluster(t, routingtest.ClusterOptions{})
	t.Logf("primary and 2 replicas up and streaming in %v", time.Since(start).Round(time.Millisecond))

	if got := len(c.Replicas()); got != 2 {
		t.Fatalf("default cluster has %d replicas, want 2", got)
	}
	if inRecovery(t, c.Primary()) {
		t.Fatal("primary is in recovery")
	}
	exec1(t, c.Primary(), "CREATE TABLE items (id int PRIMARY KEY)")
	exec1(t, c.Primary(), "INSERT INTO items VALUES (1)")
	ctx := context.Background()
	if err := c.WaitReplay(ctx); err != nil {
		t.Fatal(err)
	}
	ports := map[int]string{c.Primary().Port(): "primary"}
	for _, r := range c.Replicas() {
		if !inRecovery(t, r) {
			t.Errorf("%s is not in recovery", r.Name())
		}
		if !hasRow(t, r, 1) {
			t.Errorf("%s lacks the row after WaitReplay", r.Name())
		}
		// Each node is its own server: the port the server reports is its own.
		var port int
		if err := connect(t, r).QueryRow(ctx, "SELECT current_setting('port')::int").Scan(&port); err != nil {
			t.Fatal(err)
		}
		if port != r.Port() {
			t.Errorf("%s answers on port %d, want %d", r.Name(), port, r.Port())
		}
		if prev, dup := ports[port]; dup {
			t.Errorf("%s and %s share port %d", prev, r.Name(), port)
		}
		ports[port] = r.Name()
		// A replica refuses writes.
		_, err := connect(t, r).Exec(ctx, "INSERT INTO items VALUES (2)")
		if err == nil || !strings.Contains(err.Error(), "25006") {
			t.Errorf("%s accepted a write or failed otherwise: %v", r.Name(), err)
		}
	}
	if !strings.HasPrefix(c.Primary().ConnString(), "postgres://") {
		t.Errorf("ConnString %q is not a postgres:// URL", c.Primary().ConnString())
	}
}

func TestClusterApplyDelay(t *testing.T) {
	const delay = 500 * time.Millisecond
	c := routingtest.NewCluster(t, routingtest.ClusterOptions{Replicas: 1, ApplyDelay: []time.Duration{delay}})
	exec1(t, c.Primary(), "CREATE TABLE items (id int PRIMARY KEY)")
	if err := c.WaitReplay(context.Background()); err != nil {
		t.Fatal(err)
	}
	lagging := c.Replicas()[0]
	exec1(t, c.Primary(), "INSERT INTO items VALUES (7)")
	written := time.Now()
	// Checked well within the delay: the replica received the commit but must not apply it yet.
	seenEarly := hasRow(t, lagging, 7)
	checkedAfter := time.Since(written)
	if checkedAfter < delay && seenEarly {
		t.Fatalf("replica with %v apply delay showed the row %v after the commit", delay, checkedAfter)
	}
	if err := c.WaitReplay(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !hasRow(t, lagging, 7) {
		t.Fatal("replica does not show the row after the delay")
	}
	t.Logf("row visible on the delayed replica %v after the commit", time.Since(written).Round(time.Millisecond))
}

func TestClusterKillAndStartReplica(t *testing.T) {
	c := routingtest.NewCluster(t, routingtest.ClusterOptions{Replicas: 1})
	ctx := context.Background()
	r := c.Replicas()[0]
	exec1(t, c.Primary(), "CREATE TABLE items (id int PRIMARY KEY)")
	pid := r.PID()
	if err := c.Kill(r); err != nil {
		t.Fatal(err)
	}
	if r.Running() || routingtest.ProcessAlive(pid) {
		t.Fatalf("replica still running after Kill (pid %d)", pid)
	}
	// Written while the replica is down.
	exec1(t, c.Primary(), "INSERT INTO items SELECT generate_series(1, 1000)")
	if err := c.Start(ctx, r); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitReplay(ctx); err != nil {
		t.Fatal(err)
	}
	if !hasRow(t, r, 1000) {
		t.Fatal("restarted replica did not catch up")
	}
	exec1(t, c.Primary(), "INSERT INTO items VALUES (1001)")
	if err := c.WaitReplay(ctx); err != nil {
		t.Fatal(err)
	}
	if !hasRow(t, r, 1001) {
		t.Fatal("restarted replica does not stream new writes")
	}
	var streaming int
	if err := connect(t, c.Primary()).QueryRow(ctx, "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'").Scan(&streaming); err != nil {
		t.Fatal(err)
	}
	if streaming != 1 {
		t.Fatalf("%d streaming replicas after restart, want 1", streaming)
	}
}

func TestClusterStopAndStartPrimary(t *testing.T) {
	c := routingtest.NewCluster(t, routingtest.ClusterOptions{Replicas: 1})
	ctx := context.Background()
	exec1(t, c.Primary(), "CREATE TABLE items (id int PRIMARY KEY)")
	exec1(t, c.Primary(), "INSERT INTO items VALUES (1)")
	if err := c.WaitReplay(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(c.Primary()); err != nil {
		t.Fatal(err)
	}
	if _, err := pgx.Connect(ctx, c.Primary().ConnString()); err == nil {
		t.Fatal("stopped primary accepts connections")
	}
	if !hasRow(t, c.Replicas()[0], 1) {
		t.Fatal("replica does not serve reads while the primary is down")
	}
	if err := c.Start(ctx, c.Primary()); err != nil {
		t.Fatal(err)
	}
	exec1(t, c.Primary(), "INSERT INTO items VALUES (3)")
	if err := c.WaitReplay(ctx); err != nil {
		t.Fatal(err)
	}
	if !hasRow(t, c.Replicas()[0], 3) {
		t.Fatal("replica did not resume streaming after the primary restarted")
	}
}

func TestClusterPromote(t *testing.T) {
	c := routingtest.NewCluster(t, routingtest.ClusterOptions{Replicas: 1})
	ctx := context.Background()
	r := c.Replicas()[0]
	exec1(t, c.Primary(), "CREATE TABLE items (id int PRIMARY KEY)")
	if err := c.WaitReplay(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Promote(ctx, r); err != nil {
		t.Fatal(err)
	}
	if inRecovery(t, r) {
		t.Fatal("promoted replica is still in recovery")
	}
	exec1(t, r, "INSERT INTO items VALUES (42)")
	if !hasRow(t, r, 42) {
		t.Fatal("promoted replica lost its write")
	}
}

// serverPIDs returns every postmaster of c and their children.
func serverPIDs(t *testing.T, c *routingtest.Cluster) []int {
	t.Helper()
	var pids []int
	for _, n := range c.Nodes() {
		pid := n.PID()
		if pid == 0 {
			t.Fatalf("%s is not running", n.Name())
		}
		pids = append(pids, pid)
		kids, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
		if err != nil {
			t.Fatalf("children of %s: %v", n.Name(), err)
		}
		for _, f := range strings.Fields(string(kids)) {
			k, _ := strconv.Atoi(f)
			pids = append(pids, k)
		}
	}
	return pids
}

func TestClusterCloseLeavesNothing(t *testing.T) {
	routingtest.SkipWithoutPostgres(t, "")
	c, err := routingtest.StartCluster(context.Background(), routingtest.ClusterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pids := serverPIDs(t, c)
	if len(pids) < 3+3 { // three postmasters, each with children
		t.Fatalf("found only %d server processes: %v", len(pids), pids)
	}
	dir := c.Dir()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	for _, pid := range pids {
		if routingtest.ProcessAlive(pid) {
			t.Errorf("process %d of the cluster is alive after Close", pid)
		}
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("cluster folder %s still there after Close: %v", dir, err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestClusterDiesWithHarness runs this test binary again as a subprocess that
// starts a cluster, prints its process ids and folder, and then dies: by a
// panic in the test (cleanups run) or by a panic in another goroutine, as a
// test timeout does (no cleanup runs). Every server process must be gone
// afterwards; the folder is removed by Close or, after the hard death, by
// the next StartCluster.
func TestClusterDiesWithHarness(t *testing.T) {
	routingtest.SkipWithoutPostgres(t, "")
	for _, mode := range []string{"test-panic", "goroutine-panic"} {
		t.Run(mode, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestHelperDyingHarness$", "-test.v")
			cmd.Env = append(os.Environ(), "PGXROUTE_DYING_HARNESS="+mode)
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			cmd.Stderr = cmd.Stdout
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			var pids []int
			var dir string
			var transcript strings.Builder
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				line := sc.Text()
				transcript.WriteString(line + "\n")
				if rest, ok := strings.CutPrefix(line, "PIDS "); ok {
					for _, f := range strings.Fields(rest) {
						p, _ := strconv.Atoi(f)
						pids = append(pids, p)
					}
				}
				if rest, ok := strings.CutPrefix(line, "DIR "); ok {
					dir = rest
				}
			}
			if err := cmd.Wait(); err == nil {
				t.Fatalf("subprocess did not die:\n%s", transcript.String())
			}
			if len(pids) < 6 || dir == "" {
				t.Fatalf("subprocess did not report its cluster:\n%s", transcript.String())
			}
			// The servers get SIGKILL the moment the harness dies; their
			// children follow as soon as they see their postmaster gone.
			deadline := time.Now().Add(30 * time.Second)
			for _, pid := range pids {
				for routingtest.ProcessAlive(pid) && time.Now().Before(deadline) {
					time.Sleep(10 * time.Millisecond)
				}
				if routingtest.ProcessAlive(pid) {
					t.Errorf("server process %d outlived its harness", pid)
				}
			}
			if mode == "goroutine-panic" {
				if _, err := os.Stat(filepath.Join(dir, "primary")); err != nil {
					t.Fatalf("expected the folder of the hard-killed harness to remain until reaped: %v", err)
				}
				// The next cluster reaps it.
				routingtest.NewCluster(t, routingtest.ClusterOptions{Replicas: routingtest.NoReplicas})
			}
			if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("cluster folder %s remains: %v", dir, err)
			}
		})
	}
}

// TestHelperDyingHarness is run only as a subprocess by TestClusterDiesWithHarness.
func TestHelperDyingHarness(t *testing.T) {
	mode := os.Getenv("PGXROUTE_DYING_HARNESS")
	if mode == "" {
		t.Skip("subprocess helper")
	}
	c := routingtest.NewCluster(t, routingtest.ClusterOptions{})
	pids := serverPIDs(t, c)
	// A PgBouncer, when installed, must die with the harness too.
	if _, err := routingtest.FindPgBouncer(""); err == nil {
		b := c.NewPgBouncer(t, routingtest.PgBouncerOptions{Databases: []routingtest.PgBouncerDatabase{{Name: "app", Node: c.Primary()}}})
		pids = append(pids, b.PID())
	}
	fmt.Printf("DIR %s\nPIDS %s\n", c.Dir(), strings.Trim(fmt.Sprint(pids), "[]"))
	switch mode {
	case "test-panic":
		panic("the test panics")
	case "goroutine-panic":
		done := make(chan struct{})
		go func() {
			defer close(done)
			panic("a goroutine panics, as a test timeout does")
		}()
		<-done
	}
}

func TestFindBinDirErrors(t *testing.T) {
	_, err := routingtest.FindBinDir(t.TempDir())
	if !errors.Is(err, routingtest.ErrNoServer) {
		t.Fatalf("FindBinDir(empty folder) = %v, want ErrNoServer", err)
	}
	if !strings.Contains(err.Error(), "initdb") {
		t.Errorf("error does not say what is missing: %v", err)
	}
	_, err = routingtest.StartCluster(context.Background(), routingtest.ClusterOptions{BinDir: t.TempDir()})
	if !errors.Is(err, routingtest.ErrNoServer) {
		t.Fatalf("StartCluster with a bad BinDir = %v, want ErrNoServer", err)
	}
	if !strings.Contains(routingtest.ErrNoServer.Error(), "apt-get install") {
		t.Error("ErrNoServer does not say what to install")
	}
}

func BenchmarkStartCluster(b *testing.B) {
	routingtest.SkipWithoutPostgres(b, "")
	for b.Loop() {
		c, err := routingtest.StartCluster(context.Background(), routingtest.ClusterOptions{})
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := c.Close(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}
