package otel_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/pgxroute/pgxroute"
	"github.com/pgxroute/pgxroute/internal/obstest"
	pgxrouteotel "github.com/pgxroute/pgxroute/otel"
	"github.com/pgxroute/pgxroute/routingtest"
)

// value returns the value of a cluster-level instrument (one data point,
// no node attribute).
func value(t *testing.T, r sdkmetric.Reader, name string) float64 {
	t.Helper()
	got, _ := points(t, r, name)
	f := strings.Fields(got)
	if len(f) != 2 || strings.Contains(got, "\n") {
		t.Fatalf("%s: %q, want one data point", name, got)
	}
	v, err := strconv.ParseFloat(f[1], 64)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return v
}

// TestMetricsMembership: SetGroup replaces the read group's replica that
// holds an open transaction (the server says which) by a node that listens
// nowhere: pgxroute.membership.added and .removed count 1 each (roles
// follow the cluster, so the default and read groups both list every
// member, but a member is counted once); .draining is 1
// while the transaction runs, the new node's pgxroute.node.state is
// joining (it has answered no probe), the removed node has no node series
// any more; the transaction commits, then .draining is 0 and .drained 1,
// with no drain timeout; the Tracer counts node_added, node_removed and
// node_drained once each, on their nodes.
func TestMetricsMembership(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	c, pool := obstest.NewRouted(t, func(cfg *pgxroute.Config) {
		cfg.DrainTimeout = time.Minute
		cfg.Tracer = pgxrouteotel.NewTracer(pgxrouteotel.WithMeterProvider(mp), pgxrouteotel.WithTracerProvider(noop.NewTracerProvider()))
	})
	if _, err := pgxrouteotel.NewMetrics(pool, pgxrouteotel.WithMeterProvider(mp)); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	tx, victim := obstest.ReplaceTxReplica(t, c, pool)

	for name, want := range map[string]float64{
		"pgxroute.membership.added": 1, "pgxroute.membership.removed": 1, "pgxroute.membership.draining": 1,
		"pgxroute.membership.drained": 0, "pgxroute.membership.drain_timeouts": 0,
	} {
		if got := value(t, reader, name); got != want {
			t.Errorf("%s while %s drains: %v, want %v", name, victim, got, want)
		}
	}
	got, md := points(t, reader, "pgxroute.membership.added")
	if sum, ok := md.Data.(metricdata.Sum[int64]); !ok || !sum.IsMonotonic || md.Unit != "{node}" {
		t.Errorf("pgxroute.membership.added is %T in %q (%s), want a monotonic sum in {node}", md.Data, md.Unit, got)
	}
	states, _ := points(t, reader, "pgxroute.node.state", serverKeys...)
	const joinerWant = `db.system.name=postgresql,pgxroute.node=joiner,pgxroute.node.state=down 0
db.system.name=postgresql,pgxroute.node=joiner,pgxroute.node.state=joining 1
db.system.name=postgresql,pgxroute.node=joiner,pgxroute.node.state=lagging 0
db.system.name=postgresql,pgxroute.node=joiner,pgxroute.node.state=suspect 0
db.system.name=postgresql,pgxroute.node=joiner,pgxroute.node.state=up 0`
	if !strings.Contains(states, joinerWant) {
		t.Errorf("pgxroute.node.state:\n%s\nwant it to contain:\n%s", states, joinerWant)
	}
	if strings.Contains(states, "pgxroute.node="+victim+",") {
		t.Errorf("pgxroute.node.state still has %s, removed from every group:\n%s", victim, states)
	}

	if err := tx.Commit(ctx); err != nil {
		t.Fatalf("commit on the draining node: %v", err)
	}
	routingtest.WaitFor(t, victim+" drained", func() bool { return pool.Stat().Membership.Drained == 1 })
	for name, want := range map[string]float64{"pgxroute.membership.draining": 0, "pgxroute.membership.drained": 1, "pgxroute.membership.drain_timeouts": 0} {
		if got := value(t, reader, name); got != want {
			t.Errorf("%s once drained: %v, want %v", name, got, want)
		}
	}
	events, _ := points(t, reader, "pgxroute.health.events")
	for _, want := range []string{
		"db.system.name=postgresql,pgxroute.health.event=node_added,pgxroute.node=joiner 1",
		"db.system.name=postgresql,pgxroute.health.event=node_removed,pgxroute.node=" + victim + " 1",
		"db.system.name=postgresql,pgxroute.health.event=node_drained,pgxroute.node=" + victim + " 1",
	} {
		if !strings.Contains(events, want) {
			t.Errorf("pgxroute.health.events:\n%s\nlacks %s", events, want)
		}
	}
}

// TestMetricsDiscovery: with a discoverer that fails (the built-in Patroni
// one, its REST API on a port nothing listens on), pgxroute.discovery.calls
// and .failures grow (failures <= calls), .members is 0 and .last_success
// absent, and the Tracer counts discovery_failed on no node; reads still
// run. Once the discoverer answers (the cluster's own nodes), .members is 3
// and .last_success is the time of Stat's last success, and the
// membership is unchanged (same names and connection strings).
func TestMetricsDiscovery(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	var disc *obstest.SwitchDiscoverer
	c, pool := obstest.NewRouted(t, func(cfg *pgxroute.Config) {
		disc = obstest.NewSwitchDiscoverer(obstest.DeadPatroni(t, "Sw0rdf1sh-otel", cfg.Replicas[0].ConnString))
		cfg.Discovery = disc
		cfg.DiscoveryInterval = 200 * time.Millisecond
		cfg.Tracer = pgxrouteotel.NewTracer(pgxrouteotel.WithMeterProvider(mp), pgxrouteotel.WithTracerProvider(noop.NewTracerProvider()))
	})
	if _, err := pgxrouteotel.NewMetrics(pool, pgxrouteotel.WithMeterProvider(mp)); err != nil {
		t.Fatal(err)
	}
	routingtest.WaitFor(t, "two failed discoveries", func() bool {
		d := pool.Stat().Discovery
		return d != nil && d.Failures >= 2
	})
	// (Bounded retries: on a loaded machine a probe late for a moment may
	// send a read to the primary.)
	routingtest.WaitFor(t, "a read served by a replica while discovery fails", func() bool {
		return strings.HasPrefix(routingtest.ServedBy(t, context.Background(), c, pool, obstest.ReadSQL), "replica")
	})
	// Failures first: both only grow, and a call may fail between the two
	// collections.
	failures := value(t, reader, "pgxroute.discovery.failures")
	calls := value(t, reader, "pgxroute.discovery.calls")
	if failures < 2 || calls < failures {
		t.Errorf("pgxroute.discovery.calls %v, .failures %v: want 2 failures or more, and as many calls", calls, failures)
	}
	if got := value(t, reader, "pgxroute.discovery.members"); got != 0 {
		t.Errorf("pgxroute.discovery.members %v before a success, want 0", got)
	}
	if !absent(t, reader, "pgxroute.discovery.last_success") {
		t.Errorf("pgxroute.discovery.last_success observed before a success")
	}
	events, _ := points(t, reader, "pgxroute.health.events")
	if !strings.Contains(events, "db.system.name=postgresql,pgxroute.health.event=discovery_failed,pgxroute.node= ") {
		t.Errorf("pgxroute.health.events:\n%s\nlacks discovery_failed on no node", events)
	}

	disc.Set(obstest.ListDiscoverer(obstest.ClusterNodes(c)))
	routingtest.WaitFor(t, "a successful discovery", func() bool {
		d := pool.Stat().Discovery
		return d != nil && !d.LastSuccessAt.IsZero()
	})
	if got := value(t, reader, "pgxroute.discovery.members"); got != 3 {
		t.Errorf("pgxroute.discovery.members %v, want 3", got)
	}
	// The collection and Stat read the same time unless a call succeeded
	// in between: read Stat on both sides of the collection.
	before := pool.Stat().Discovery.LastSuccessAt
	last := value(t, reader, "pgxroute.discovery.last_success")
	after := pool.Stat().Discovery.LastSuccessAt
	if lo, hi := float64(before.UnixNano())/1e9, float64(after.UnixNano())/1e9; last < lo || last > hi {
		t.Errorf("pgxroute.discovery.last_success %v, want Stat's (%v .. %v)", last, lo, hi)
	}
	for _, name := range []string{"pgxroute.membership.added", "pgxroute.membership.removed"} {
		if got := value(t, reader, name); got != 0 {
			t.Errorf("%s %v, want 0: the discoverer gave the configured nodes", name, got)
		}
	}
}
