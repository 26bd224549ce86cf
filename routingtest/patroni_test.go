package routingtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

func TestPatroniOptionsFill(t *testing.T) {
	cases := []struct {
		name string
		in   PatroniOptions
		want string // "" for valid; else part of the error
	}{
		{"zero value", PatroniOptions{}, ""},
		{"shortest accepted", PatroniOptions{TTL: 5 * time.Second, LoopWait: time.Second, RetryTimeout: 2 * time.Second}, ""},
		{"longer", PatroniOptions{TTL: 30 * time.Second, LoopWait: 10 * time.Second, RetryTimeout: 10 * time.Second}, ""},
		{"retry_timeout 1s never elects", PatroniOptions{TTL: 3 * time.Second, LoopWait: time.Second, RetryTimeout: time.Second}, "below 2s"},
		{"loop_wait + 2*retry_timeout > ttl", PatroniOptions{TTL: 4 * time.Second, LoopWait: time.Second, RetryTimeout: 2 * time.Second}, "exceeds TTL"},
		{"fractional seconds", PatroniOptions{TTL: 5500 * time.Millisecond}, "whole seconds"},
		{"one member", PatroniOptions{Members: 1}, "at least 2"},
		{"a member left stopped", PatroniOptions{Members: 4, Stopped: []string{"member4"}}, ""},
		{"member1 left stopped", PatroniOptions{Stopped: []string{"member1"}}, "member1 bootstraps"},
		{"no such member left stopped", PatroniOptions{Stopped: []string{"member4"}}, "want member2 to member3"},
		{"a stopped member not named so", PatroniOptions{Stopped: []string{"node2"}}, "want member2"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := c.in
			err := o.fill()
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("fill: %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("fill: %v; want an error containing %q", err, c.want)
			}
			if c.want == "" && (o.Members < 2 || o.LoopWait+2*o.RetryTimeout > o.TTL) {
				t.Fatalf("fill gave %+v", o)
			}
		})
	}
	o := PatroniOptions{}
	if err := o.fill(); err != nil || o.Members != 3 || o.TTL != 5*time.Second || o.LoopWait != time.Second || o.RetryTimeout != 2*time.Second {
		t.Fatalf("defaults: %+v, %v", o, err)
	}
}

// serverPort asks the server that answers conn for its port.
func serverPort(ctx context.Context, t *testing.T, conn *pgx.Conn) int {
	t.Helper()
	var port int
	if err := conn.QueryRow(ctx, "SELECT inet_server_port()").Scan(&port); err != nil {
		t.Fatalf("inet_server_port: %v", err)
	}
	return port
}

func connectMember(ctx context.Context, t *testing.T, m *PatroniMember) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(ctx, m.ConnString())
	if err != nil {
		t.Fatalf("connect to %s: %v", m, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	if got := serverPort(ctx, t, conn); got != m.Port() {
		t.Fatalf("connected to %s but port %d answered", m, got)
	}
	return conn
}

// inRecovery asks m whether it is in recovery (a replica).
func inRecovery(ctx context.Context, t *testing.T, m *PatroniMember) bool {
	t.Helper()
	conn := connectMember(ctx, t, m)
	var rec bool
	if err := conn.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&rec); err != nil {
		t.Fatalf("%s: pg_is_in_recovery: %v", m, err)
	}
	return rec
}

// writeOn inserts v into t_patroni on m, proving m answered and is primary.
func writeOn(ctx context.Context, m *PatroniMember, v string) error {
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	conn, err := pgx.Connect(cctx, m.ConnString()+"&connect_timeout=2")
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	var port int
	var rec bool
	if err := conn.QueryRow(cctx, "INSERT INTO t_patroni (v) VALUES ($1) RETURNING inet_server_port(), pg_is_in_recovery()", v).Scan(&port, &rec); err != nil {
		return err
	}
	if port != m.Port() || rec {
		return fmt.Errorf("the insert ran on port %d (in recovery: %v), not on %s as a primary", port, rec, m)
	}
	return nil
}

// waitRow waits until m has replayed the row v, asking m itself.
func waitRow(ctx context.Context, t *testing.T, m *PatroniMember, v string) {
	t.Helper()
	conn := connectMember(ctx, t, m)
	for i := 0; ; i++ {
		var n, port int
		err := conn.QueryRow(ctx, "SELECT count(*), inet_server_port() FROM t_patroni WHERE v = $1", v).Scan(&n, &port)
		var pgErr *pgconn.PgError
		switch {
		case errors.As(err, &pgErr) && pgErr.Code == "42P01":
			// The CREATE TABLE is not replayed yet.
			port = m.Port()
		case err != nil:
			t.Fatalf("%s: %v", m, err)
		}
		if port != m.Port() {
			t.Fatalf("asked %s, port %d answered", m, port)
		}
		if n == 1 {
			return
		}
		if i == 1000 || ctx.Err() != nil {
			t.Fatalf("%s did not replay the row %q", m, v)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// firstWrite tries an INSERT on every member but skip every 20 ms until one
// accepts it (for a minute at most), and returns that member.
func firstWrite(ctx context.Context, t *testing.T, p *Patroni, skip *PatroniMember, v string) *PatroniMember {
	t.Helper()
	var last error
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		for _, m := range p.Members() {
			if m == skip || !m.Running() {
				continue
			}
			if last = writeOn(ctx, m, v); last == nil {
				return m
			}
		}
		if ctx.Err() != nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no member accepted a write: %v", last)
	return nil
}

func waitStreaming(ctx context.Context, t *testing.T, p *Patroni) {
	t.Helper()
	if err := p.WaitStreaming(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestPatroni runs one real Patroni cluster through replication, a host
// death of the leader (failover, then the old leader's rejoin) and a
// switchover, logging how long each took.
func TestPatroni(t *testing.T) {
	p := NewPatroni(t, PatroniOptions{})
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	ttl, loopWait, retry := p.Settings()
	t.Logf("Patroni ttl=%v loop_wait=%v retry_timeout=%v", ttl, loopWait, retry)

	leader, err := p.Leader(ctx)
	if err != nil || leader == nil {
		t.Fatalf("Leader: %v, %v", leader, err)
	}

	if !t.Run("replication", func(t *testing.T) {
		if leader != p.Member("member1") {
			t.Fatalf("leader is %v, want member1 (it bootstrapped)", leader)
		}
		states, err := p.ClusterState(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(states) != 3 {
			t.Fatalf("GET /cluster lists %d members: %+v", len(states), states)
		}
		for _, s := range states {
			m := p.Member(s.Name)
			if m == nil || s.Port != m.Port() || s.State != "running" {
				t.Fatalf("GET /cluster: %+v", s)
			}
			if want := m == leader; inRecovery(ctx, t, m) == want {
				t.Fatalf("%s: in recovery %v, but Patroni's role is %s", m, !want, s.Role)
			}
		}
		conn := connectMember(ctx, t, leader)
		if _, err := conn.Exec(ctx, "CREATE TABLE t_patroni (v text PRIMARY KEY)"); err != nil {
			t.Fatal(err)
		}
		if err := writeOn(ctx, leader, "first"); err != nil {
			t.Fatal(err)
		}
		for _, m := range p.Members() {
			if m != leader {
				waitRow(ctx, t, m, "first")
			}
		}
	}) {
		return
	}

	if !t.Run("failover", func(t *testing.T) {
		old := leader
		start := time.Now()
		if err := p.KillMember(old); err != nil {
			t.Fatal(err)
		}
		if old.Running() || old.PostgresPID() != 0 {
			t.Fatalf("%s survived KillMember", old)
		}
		// Watch Patroni's view and the servers' at the same time.
		dcs := make(chan time.Duration, 1)
		go func() {
			defer close(dcs)
			for i := 0; i < 6000 && ctx.Err() == nil; i++ {
				if l, err := p.Leader(ctx); err == nil && l != nil && l != old {
					dcs <- time.Since(start)
					return
				}
				time.Sleep(10 * time.Millisecond)
			}
		}()
		writer := firstWrite(ctx, t, p, old, "after-failover")
		wrote := time.Since(start)
		newLeader, err := p.WaitLeader(ctx, old.Name())
		if err != nil {
			t.Fatal(err)
		}
		if newLeader != writer {
			t.Fatalf("%s accepted the write but Patroni's leader is %s", writer, newLeader)
		}
		if inRecovery(ctx, t, newLeader) {
			t.Fatalf("new leader %s is in recovery", newLeader)
		}
		t.Logf("failover: kill of %s -> Patroni leader %s after %v; first write accepted after %v", old.Name(), newLeader.Name(), <-dcs, wrote)
		leader = newLeader

		start = time.Now()
		if err := p.StartMember(ctx, old); err != nil {
			t.Fatal(err)
		}
		t.Logf("rejoin: StartMember(%s) -> streaming from %s after %v", old.Name(), leader.Name(), time.Since(start))
		waitStreaming(ctx, t, p)
		if !inRecovery(ctx, t, old) {
			t.Fatalf("%s rejoined but is not in recovery", old)
		}
		if l, _ := p.Leader(ctx); l != leader {
			t.Fatalf("leader is %v after the rejoin, want %s", l, leader)
		}
		if err := writeOn(ctx, leader, "after-rejoin"); err != nil {
			t.Fatal(err)
		}
		waitRow(ctx, t, old, "after-failover")
		waitRow(ctx, t, old, "after-rejoin")
	}) {
		return
	}

	t.Run("switchover", func(t *testing.T) {
		old := leader
		var candidate *PatroniMember
		for _, m := range p.Members() {
			if m != old {
				candidate = m // the last replica: not the default pick
			}
		}
		start := time.Now()
		got, err := p.Switchover(ctx, candidate)
		if err != nil {
			t.Fatal(err)
		}
		switched := time.Since(start)
		if got != candidate {
			t.Fatalf("Switchover made %s the leader, want %s", got, candidate)
		}
		if err := writeOn(ctx, candidate, "after-switchover"); err != nil {
			t.Fatal(err)
		}
		waitStreaming(ctx, t, p)
		t.Logf("switchover %s -> %s: patronictl done and the candidate accepts writes after %v; all streaming after %v", old.Name(), candidate.Name(), switched, time.Since(start))
		if !inRecovery(ctx, t, old) {
			t.Fatalf("old leader %s is not in recovery after the switchover", old)
		}
		for _, m := range p.Members() {
			if m != candidate {
				waitRow(ctx, t, m, "after-switchover")
			}
		}
		leader = candidate
	})
}

// TestPatroniCloseRemovesEverything checks that Close leaves no process and no
// file behind.
func TestPatroniCloseRemovesEverything(t *testing.T) {
	SkipWithoutPatroni(t, "")
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	p, err := StartPatroni(ctx, PatroniOptions{Members: 2})
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, m := range p.Members() {
		pids = append(pids, m.PatroniPID(), m.PostgresPID())
	}
	pids = append(pids, p.etcd.cmd.Process.Pid, p.watcher.Process.Pid)
	for _, pid := range pids {
		if pid == 0 || !ProcessAlive(pid) {
			t.Fatalf("a process of the cluster is not running: %v", pids)
		}
	}
	dir := p.Dir()
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	for _, pid := range pids {
		if ProcessAlive(pid) {
			t.Errorf("process %d survived Close", pid)
		}
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s survived Close: %v", dir, err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "*")); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
}
