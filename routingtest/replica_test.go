package routingtest_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgxroute/pgxroute"
	"github.com/pgxroute/pgxroute/routingtest"
)

func TestReplicaEmulationConfigs(t *testing.T) {
	const url = "postgres://app:secret@db.example:5433/app?sslmode=disable"
	pc, err := routingtest.ReadOnlyPoolConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	if got := pc.ConnConfig.RuntimeParams["default_transaction_read_only"]; got != "on" {
		t.Errorf("default_transaction_read_only = %q, want on", got)
	}
	if pc.ConnConfig.Host != "db.example" || pc.ConnConfig.Port != 5433 || pc.ConnConfig.Database != "app" {
		t.Errorf("connection settings lost: %+v", pc.ConnConfig)
	}

	nodes, err := routingtest.EmulatedReplicas(url, 3)
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range nodes {
		if want := "replica" + string(rune('1'+i)); n.Name != want || n.PoolConfig == nil {
			t.Errorf("node %d = %q (PoolConfig %v), want %q with a PoolConfig", i, n.Name, n.PoolConfig != nil, want)
		}
	}
	if nodes[0].PoolConfig == nodes[1].PoolConfig {
		t.Error("two emulated replicas share a pool configuration: the router would see one node")
	}
	if _, err := routingtest.EmulatedReplicas(url, 0); err == nil {
		t.Error("EmulatedReplicas(url, 0): no error")
	}

	cfg, err := routingtest.EmulatedConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	if d := cfg.Groups[pgxroute.DefaultGroupName]; len(d) != 1 || d[0].Name != "primary" || d[0].ConnString != url {
		t.Errorf("default group = %+v", d)
	}
	if len(cfg.Replicas) != 1 || cfg.Replicas[0].Name != "replica1" {
		t.Errorf("replicas = %+v", cfg.Replicas)
	}
	_, err = routingtest.EmulatedConfig("postgres://app:secret@db.example:notaport/app")
	if err == nil || strings.Contains(err.Error(), "secret") {
		t.Errorf("bad URL: error %v (it must not show the password)", err)
	}
	// The configuration is valid for New (which connects lazily).
	p, err := pgxroute.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	p.Close()
}

// TestReplicaEmulation runs against a real server: one primary, no replica.
func TestReplicaEmulation(t *testing.T) {
	c := routingtest.NewCluster(t, routingtest.ClusterOptions{Replicas: routingtest.NoReplicas})
	t.Run("RefusesWrites", func(t *testing.T) { testEmulationRefusesWrites(t, c) })
	t.Run("ReportsMisroutes", func(t *testing.T) { testEmulationReportsMisroutes(t, c) })
}

func testEmulationRefusesWrites(t *testing.T, c *routingtest.Cluster) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	var routes []pgxroute.Route
	p := routingtest.NewEmulatedPool(t, c.Primary().ConnString(), func(cfg *pgxroute.Config) {
		cfg.OnRoute = func(_ context.Context, r pgxroute.Route) { routes = append(routes, r) }
	})
	if _, err := p.Exec(ctx, "CREATE TABLE items (id int PRIMARY KEY, name text)"); err != nil {
		t.Fatal(err)
	}
	// A normal write goes to the primary and works.
	if _, err := p.Exec(ctx, "INSERT INTO items VALUES (1, 'one')"); err != nil {
		t.Fatalf("write routed to the primary: %v", err)
	}
	// A read goes to the read-only replica and works.
	var name string
	if err := p.QueryRow(ctx, "SELECT name FROM items WHERE id = 1").Scan(&name); err != nil || name != "one" {
		t.Fatalf("read: %q, %v", name, err)
	}
	if last := routes[len(routes)-1]; last.Node != "replica1" {
		t.Errorf("the read went to %v, want replica1", last)
	}
	// A write forced to the read group fails loudly, as on a standby.
	_, err := p.Exec(pgxroute.WithReplica(ctx), "INSERT INTO items VALUES (2, 'two')")
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "25006" {
		t.Fatalf("write on the emulated replica: %v, want SQLSTATE 25006", err)
	}
	var ne *pgxroute.NodeError
	if !errors.As(err, &ne) || ne.Node != "replica1" {
		t.Errorf("the error does not name replica1: %v", err)
	}
	if err := p.QueryRow(ctx, "SELECT count(*) FROM items").Scan(new(int)); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := p.QueryRow(pgxroute.WithPrimary(ctx), "SELECT count(*) FROM items").Scan(&n); err != nil || n != 1 {
		t.Errorf("rows on the primary: %d, %v; want 1", n, err)
	}
}

func testEmulationReportsMisroutes(t *testing.T, c *routingtest.Cluster) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	p := routingtest.NewEmulatedPool(t, c.Primary().ConnString(), nil)
	for _, sql := range []string{
		"CREATE TABLE counters (n int)",
		"INSERT INTO counters VALUES (0)",
		// A function with side effects that classify cannot know of.
		"CREATE FUNCTION bump() RETURNS int LANGUAGE sql AS 'UPDATE counters SET n = n + 1 RETURNING n'",
	} {
		if _, err := p.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}

	rec := &recordingTB{TB: t}
	q := routingtest.NewEmulatedPool(rec, c.Primary().ConnString(), nil)
	var n int
	if err := q.QueryRow(ctx, "SELECT bump()").Scan(&n); err != nil || n != 1 {
		t.Fatalf("SELECT bump(): %d, %v; want 1 (run again on the primary)", n, err)
	}
	if len(rec.errors) != 1 || !strings.Contains(rec.errors[0], "SELECT bump()") {
		t.Errorf("the misroute was not reported: %q", rec.errors)
	}

	// Declared as a write function, it goes to the primary at once.
	rec = &recordingTB{TB: t}
	q = routingtest.NewEmulatedPool(rec, c.Primary().ConnString(), func(cfg *pgxroute.Config) {
		cfg.WriteFunctions = []string{"bump"}
	})
	if err := q.QueryRow(ctx, "SELECT bump()").Scan(&n); err != nil || n != 2 {
		t.Fatalf("SELECT bump(): %d, %v; want 2", n, err)
	}
	if len(rec.errors) != 0 {
		t.Errorf("reported: %q", rec.errors)
	}
}

// recordingTB keeps the errors reported through it instead of failing.
type recordingTB struct {
	testing.TB
	errors []string
}

func (r *recordingTB) Errorf(format string, args ...any) {
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}
