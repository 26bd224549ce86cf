package routingtest_test

import (
	"context"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgxroute/pgxroute/routingtest"
)

// rulesFor returns the iptables rules (INPUT and OUTPUT) that mention port.
func rulesFor(t *testing.T, port int) []string {
	t.Helper()
	var rules []string
	for _, chain := range []string{"INPUT", "OUTPUT"} {
		out, err := exec.Command("iptables", "-w", "5", "-S", chain).CombinedOutput()
		if err != nil {
			t.Fatalf("iptables -S %s: %v: %s", chain, err, out)
		}
		for _, l := range strings.Split(string(out), "\n") {
			if strings.Contains(l, "port "+strconv.Itoa(port)+" ") {
				rules = append(rules, l)
			}
		}
	}
	return rules
}

func TestBlackhole(t *testing.T) {
	routingtest.SkipWithoutIptables(t)
	c := routingtest.NewCluster(t, routingtest.ClusterOptions{Replicas: 1})
	ctx := context.Background()
	p, r := c.Primary(), c.Replicas()[0]
	exec1(t, p, "CREATE TABLE items (id int PRIMARY KEY)")
	if err := c.WaitReplay(ctx); err != nil {
		t.Fatal(err)
	}
	idle, pending, probe := connect(t, r), connect(t, r), connect(t, r)

	if err := c.Blackhole(r); err != nil {
		t.Fatal(err)
	}
	if !r.Blackholed() {
		t.Fatal("Blackholed() is false after Blackhole")
	}
	if got := rulesFor(t, r.Port()); len(got) != 4 {
		t.Fatalf("%d iptables rules for port %d, want 4: %q", len(got), r.Port(), got)
	}
	answer := waitAnswer(pending)
	assertHangs(t, r, probe, 500*time.Millisecond)
	select {
	case err := <-answer:
		t.Fatalf("a query without a deadline answered on a blackholed node: %v", err)
	default:
	}

	// The replica's WAL receiver connects to the primary's port, which is
	// not blackholed: the primary takes writes, and the replica keeps
	// streaming and replaying them (the primary sees its replay position
	// pass the write).
	primary := connect(t, p)
	if _, err := primary.Exec(ctx, "INSERT INTO items VALUES (1)"); err != nil {
		t.Fatalf("primary while a replica is blackholed: %v", err)
	}
	var replayed bool
	for i := 0; i < 300 && !replayed; i++ {
		if err := primary.QueryRow(ctx, `SELECT replay_lsn >= pg_current_wal_lsn() FROM pg_stat_replication
			WHERE application_name = $1 AND state = 'streaming'`, r.Name()).Scan(&replayed); err != nil {
			t.Fatalf("pg_stat_replication: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !replayed {
		t.Fatal("the blackholed replica stopped replaying the primary's writes")
	}

	if err := c.Unblackhole(r); err != nil {
		t.Fatal(err)
	}
	if got := rulesFor(t, r.Port()); len(got) != 0 {
		t.Fatalf("iptables rules left after Unblackhole: %q", got)
	}
	select {
	case err := <-answer:
		if err != nil {
			t.Fatalf("the stalled query failed after Unblackhole: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the stalled query did not answer within 30s of Unblackhole")
	}
	if !hasRow(t, r, 1) {
		t.Error("replica lacks the row written while it was blackholed")
	}
	var port int
	if err := idle.QueryRow(ctx, "SELECT inet_server_port()").Scan(&port); err != nil || port != r.Port() {
		t.Errorf("connection opened before the blackhole: port %d, %v", port, err)
	}

	// Close removes rules still in place.
	if err := c.Blackhole(r); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if got := rulesFor(t, r.Port()); len(got) != 0 {
		t.Fatalf("iptables rules left after Close: %q", got)
	}
}

// TestBlackholeStaleRules: rules tagged by a harness process that is gone
// are removed by CleanStaleBlackholes; those of living processes stay.
func TestBlackholeStaleRules(t *testing.T) {
	routingtest.SkipWithoutIptables(t)
	// A process that has exited: its pid is free.
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	const port = "1" // tcpmux: nothing listens there
	rule := func(op, pid string) error {
		return exec.Command("iptables", "-w", "5", op, "INPUT", "-i", "lo", "-p", "tcp", "--dport", port,
			"-m", "comment", "--comment", "pgxroute-"+pid+"-"+port, "-j", "DROP").Run()
	}
	alive := strconv.Itoa(1) // init never dies
	for _, pid := range []string{strconv.Itoa(dead.Process.Pid), alive} {
		if err := rule("-I", pid); err != nil {
			t.Fatalf("iptables: %v", err)
		}
	}
	t.Cleanup(func() {
		for i := 0; i < 5 && rule("-D", alive) == nil; i++ {
		}
		for i := 0; i < 5 && rule("-D", strconv.Itoa(dead.Process.Pid)) == nil; i++ {
		}
	})
	if err := routingtest.CleanStaleBlackholes(); err != nil {
		t.Fatal(err)
	}
	got := rulesFor(t, 1)
	if len(got) != 1 || !strings.Contains(got[0], "pgxroute-1-1") {
		t.Fatalf("rules after CleanStaleBlackholes: %q, want only the living process's", got)
	}
}

// TestBlackholePrimary: blackholing the primary's port stalls replication
// (the WAL receivers connect to that port) until Unblackhole; the primary,
// reached through its Unix socket, keeps taking writes meanwhile.
func TestBlackholePrimary(t *testing.T) {
	routingtest.SkipWithoutIptables(t)
	c := routingtest.NewCluster(t, routingtest.ClusterOptions{Replicas: 1})
	ctx := context.Background()
	p, r := c.Primary(), c.Replicas()[0]
	exec1(t, p, "CREATE TABLE items (id int PRIMARY KEY)")
	if err := c.WaitReplay(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Blackhole(p); err != nil {
		t.Fatal(err)
	}
	sock, err := pgx.Connect(ctx, p.SocketConnString())
	if err != nil {
		t.Fatalf("primary's Unix socket while its port is blackholed: %v", err)
	}
	defer sock.Close(ctx)
	if _, err := sock.Exec(ctx, "INSERT INTO items VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	// Checked after a wait: while the port is blackholed the row cannot
	// reach the replica.
	time.Sleep(time.Second)
	if hasRow(t, r, 1) {
		t.Fatal("the replica replayed a write of a primary whose port is blackholed")
	}
	if err := c.Unblackhole(p); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	start := time.Now()
	if err := c.WaitReplay(wctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("replica replayed the write %v after Unblackhole", time.Since(start).Round(time.Millisecond))
}
