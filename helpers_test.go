package pgxroute_test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/pgxroute/pgxroute"
	"github.com/pgxroute/pgxroute/routingtest"
)

// shared is one cluster (a primary and two replicas) for the tests that do
// not stop, kill or promote nodes. TestMain closes it.
var shared struct {
	once sync.Once
	c    *routingtest.Cluster
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.c != nil {
		shared.c.Close()
	}
	os.Exit(code)
}

// sharedCluster returns the shared cluster, starting it on first use.
func sharedCluster(t testing.TB) *routingtest.Cluster {
	t.Helper()
	routingtest.SkipWithoutPostgres(t, "")
	shared.once.Do(func() {
		shared.c, shared.err = routingtest.StartCluster(context.Background(), routingtest.ClusterOptions{})
		if shared.err == nil {
			shared.err = setupSchema(shared.c)
		}
	})
	if shared.err != nil {
		t.Fatalf("shared cluster: %v", shared.err)
	}
	return shared.c
}

// setupSchema creates the tables the tests use and waits until every replica
// has them.
func setupSchema(c *routingtest.Cluster) error {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, c.Primary().ConnString())
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, `
CREATE TABLE items (id bigint PRIMARY KEY, note text, port int DEFAULT inet_server_port());
CREATE TABLE marker (id int PRIMARY KEY);
INSERT INTO marker VALUES (1);
CREATE SEQUENCE seq;
CREATE TABLE counter (n int NOT NULL);
INSERT INTO counter VALUES (0);
CREATE FUNCTION bump_counter() RETURNS int LANGUAGE sql AS 'UPDATE counter SET n = n + 1 RETURNING n';`)
	if err != nil {
		return err
	}
	return c.WaitReplay(ctx)
}

// ids hands out unique row ids across tests.
var ids atomic.Int64

func nextID() int64 { return ids.Add(1) }

// nodeNames maps each server's port to its cluster name.
func nodeNames(c *routingtest.Cluster) map[int]string {
	m := map[int]string{}
	for _, n := range c.Nodes() {
		m[n.Port()] = n.Name()
	}
	return m
}

// newPool makes a RoutedPool over the cluster: the primary and both
// replicas, with cfg's other settings, closed at the end of the test.
func newPool(t testing.TB, c *routingtest.Cluster, cfg pgxroute.Config) *pgxroute.RoutedPool {
	t.Helper()
	if cfg.Primary == "" && cfg.Groups == nil {
		cfg.Primary = c.Primary().ConnString()
	}
	if cfg.Replicas == nil && cfg.Groups == nil {
		for _, r := range c.Replicas() {
			cfg.Replicas = append(cfg.Replicas, pgxroute.Node{Name: r.Name(), ConnString: r.ConnString()})
		}
	}
	p, err := pgxroute.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// primaryName is the name a RoutedPool gives the cluster's primary when the
// config does not name it: its host and port.
func primaryName(c *routingtest.Cluster) string {
	return fmt.Sprintf("127.0.0.1:%d", c.Primary().Port())
}
