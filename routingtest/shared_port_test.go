package routingtest_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/pgxroute/pgxroute/routingtest"
)

// whoAnswers is what a node's server says of itself.
type whoAnswers struct {
	Addr       string
	Port       int
	InRecovery bool
}

// askWho asks the server at connString for its address, port and recovery
// state.
func askWho(t *testing.T, connString string) whoAnswers {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, connString)
	if err != nil {
		t.Fatalf("connect %s: %v", connString, err)
	}
	defer conn.Close(context.Background())
	var w whoAnswers
	// Through a Unix socket inet_server_addr() is NULL: the address is ''.
	if err := conn.QueryRow(ctx, "SELECT coalesce(host(inet_server_addr()), ''), current_setting('port')::int, pg_is_in_recovery()").Scan(&w.Addr, &w.Port, &w.InRecovery); err != nil {
		t.Fatalf("%s: %v", connString, err)
	}
	return w
}

// TestClusterSharedPort starts a SharedPort cluster (a primary and two
// replicas) and checks, asking each server, that every node listens on its
// own loopback address and all on one port, that ConnString and
// SocketConnString reach the node they belong to, that the replicas stream
// from the primary's address, that what works by port alone refuses
// (Blackhole, NodeAt, ServedBy) while NodeAtHost finds each node, and that a
// Switchover (Stop, Promote, Repoint, Rejoin with pg_rewind, which must not
// fall back to a base backup: every connection the harness makes between
// nodes) leaves a working cluster.
func TestClusterSharedPort(t *testing.T) {
	var logs routingtest.SyncBuffer
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the servers' log:\n%s", logs.String())
		}
	})
	c := routingtest.NewCluster(t, routingtest.ClusterOptions{SharedPort: true, Log: &logs})
	ctx := context.Background()
	nodes := c.Nodes()
	primary := c.Primary()
	port := primary.Port()

	tests := []struct {
		node *routingtest.Node
		host string
	}{
		{nodes[0], "127.0.0.2"},
		{nodes[1], "127.0.0.3"},
		{nodes[2], "127.0.0.4"},
	}
	for _, tc := range tests {
		n := tc.node
		if n.Host() != tc.host || n.Port() != port {
			t.Errorf("%s listens on %s:%d, want %s:%d", n.Name(), n.Host(), n.Port(), tc.host, port)
		}
		if !strings.Contains(n.ConnString(), "@"+tc.host+":") || !strings.Contains(n.String(), tc.host) {
			t.Errorf("%s: ConnString %q, String %q: want its address %s", n.Name(), n.ConnString(), n.String(), tc.host)
		}
		want := whoAnswers{Addr: tc.host, Port: port, InRecovery: n != primary}
		if diff := cmp.Diff(want, askWho(t, n.ConnString())); diff != "" {
			t.Errorf("%s: the server ConnString reached (-want +got):\n%s", n.Name(), diff)
		}
		want.Addr = ""
		if diff := cmp.Diff(want, askWho(t, n.SocketConnString())); diff != "" {
			t.Errorf("%s: the server SocketConnString reached (-want +got):\n%s", n.Name(), diff)
		}
		if got := c.NodeAtHost(tc.host); got != n {
			t.Errorf("NodeAtHost(%s) = %v, want %s", tc.host, got, n.Name())
		}
	}
	if got := c.NodeAtHost("127.0.0.1"); got != nil {
		t.Errorf("NodeAtHost(127.0.0.1) = %v, want nil", got)
	}
	if got := c.NodeAt(port); got != nil {
		t.Errorf("NodeAt(%d) = %v on a SharedPort cluster, want nil", port, got)
	}
	if msg := fatalOf(t, func(tb testing.TB) {
		routingtest.ServedBy(tb, ctx, c, connect(t, primary), "SELECT inet_server_port()")
	}); !strings.Contains(msg, routingtest.ErrSharedPort.Error()) || !strings.Contains(msg, "NodeAtHost") {
		t.Errorf("ServedBy on a SharedPort cluster: Fatalf(%q), want ErrSharedPort's message and NodeAtHost", msg)
	}
	if err := c.Blackhole(nodes[1]); !errors.Is(err, routingtest.ErrSharedPort) {
		t.Errorf("Blackhole on a SharedPort cluster: %v, want ErrSharedPort", err)
	}
	if nodes[1].Blackholed() {
		t.Error("Blackholed after a refused Blackhole")
	}

	// Replication connects to the primary's address: both replicas stream
	// and replay.
	var streaming []string
	if err := connect(t, primary).QueryRow(ctx,
		"SELECT coalesce(array_agg(application_name ORDER BY application_name), '{}') FROM pg_stat_replication WHERE state = 'streaming'").Scan(&streaming); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"replica1", "replica2"}, streaming); diff != "" {
		t.Errorf("replicas streaming from the primary (-want +got):\n%s", diff)
	}
	exec1(t, primary, "CREATE TABLE items (id int PRIMARY KEY)")
	exec1(t, primary, "INSERT INTO items VALUES (1)")
	if err := c.WaitReplay(ctx); err != nil {
		t.Fatal(err)
	}
	for _, r := range c.Replicas() {
		if !hasRow(t, r, 1) {
			t.Errorf("%s lacks the row after WaitReplay", r.Name())
		}
	}

	// A switchover moves the primary to replica1 on 127.0.0.3.
	to := nodes[1]
	if err := c.Switchover(ctx, to); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(logs.String(), "pg_rewind failed") {
		t.Error("the switchover's Rejoin fell back to a new base backup: pg_rewind failed")
	}
	exec1(t, to, "INSERT INTO items VALUES (2)")
	if err := c.WaitReplay(ctx); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		want := whoAnswers{Addr: n.Host(), Port: port, InRecovery: n != to}
		if diff := cmp.Diff(want, askWho(t, n.ConnString())); diff != "" {
			t.Errorf("after the switchover, %s (-want +got):\n%s", n.Name(), diff)
		}
		if !hasRow(t, n, 2) {
			t.Errorf("after the switchover, %s lacks the new primary's row", n.Name())
		}
		if n != to && n.Upstream() != to {
			t.Errorf("after the switchover, %s streams from %v, want %s", n.Name(), n.Upstream(), to.Name())
		}
	}
}
