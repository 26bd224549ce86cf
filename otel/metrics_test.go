package otel_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/pgxroute/pgxroute"
	"github.com/pgxroute/pgxroute/internal/obstest"
	pgxrouteotel "github.com/pgxroute/pgxroute/otel"
	"github.com/pgxroute/pgxroute/routingtest"
)

// points collects once and returns every data point of the named instrument
// as "attr=value,... value" lines, sorted; dropping the attributes in drop.
func points(t *testing.T, r sdkmetric.Reader, name string, drop ...attribute.Key) (string, metricdata.Metrics) {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	line := func(set attribute.Set, v any) string {
		var parts []string
		for _, kv := range set.ToSlice() {
			if !contains(drop, kv.Key) {
				parts = append(parts, string(kv.Key)+"="+kv.Value.String())
			}
		}
		return strings.Join(parts, ",") + " " + fmt.Sprint(v)
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			var lines []string
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					lines = append(lines, line(p.Attributes, p.Value))
				}
			case metricdata.Gauge[int64]:
				for _, p := range d.DataPoints {
					lines = append(lines, line(p.Attributes, p.Value))
				}
			case metricdata.Sum[float64]:
				for _, p := range d.DataPoints {
					lines = append(lines, line(p.Attributes, p.Value))
				}
			case metricdata.Gauge[float64]:
				for _, p := range d.DataPoints {
					lines = append(lines, line(p.Attributes, p.Value))
				}
			default:
				t.Fatalf("%s: unexpected data %T", name, m.Data)
			}
			return sortedLines(lines), m
		}
	}
	t.Fatalf("no instrument %s collected", name)
	return "", metricdata.Metrics{}
}

func contains(keys []attribute.Key, k attribute.Key) bool {
	for _, x := range keys {
		if x == k {
			return true
		}
	}
	return false
}

func TestMetricsOnCluster(t *testing.T) {
	c, pool := obstest.NewRouted(t, nil)
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	m, err := pgxrouteotel.NewMetrics(pool, pgxrouteotel.WithMeterProvider(mp))
	if err != nil {
		t.Fatal(err)
	}

	const stateBefore = `db.system.name=postgresql,pgxroute.node=primary,pgxroute.node.state=down 0
db.system.name=postgresql,pgxroute.node=primary,pgxroute.node.state=joining 0
db.system.name=postgresql,pgxroute.node=primary,pgxroute.node.state=lagging 0
db.system.name=postgresql,pgxroute.node=primary,pgxroute.node.state=suspect 0
db.system.name=postgresql,pgxroute.node=primary,pgxroute.node.state=up 1
db.system.name=postgresql,pgxroute.node=replica1,pgxroute.node.state=down 0
db.system.name=postgresql,pgxroute.node=replica1,pgxroute.node.state=joining 0
db.system.name=postgresql,pgxroute.node=replica1,pgxroute.node.state=lagging 0
db.system.name=postgresql,pgxroute.node=replica1,pgxroute.node.state=suspect 0
db.system.name=postgresql,pgxroute.node=replica1,pgxroute.node.state=up 1
db.system.name=postgresql,pgxroute.node=replica2,pgxroute.node.state=down 0
db.system.name=postgresql,pgxroute.node=replica2,pgxroute.node.state=joining 0
db.system.name=postgresql,pgxroute.node=replica2,pgxroute.node.state=lagging 0
db.system.name=postgresql,pgxroute.node=replica2,pgxroute.node.state=suspect 0
db.system.name=postgresql,pgxroute.node=replica2,pgxroute.node.state=up 1`
	if got, _ := points(t, reader, "pgxroute.node.state", serverKeys...); got != stateBefore {
		t.Fatalf("pgxroute.node.state before:\n%s\nwant:\n%s", got, stateBefore)
	}

	obstest.RunSequence(t, c, pool, true)

	const callsWant = `db.system.name=postgresql,pgxroute.group=default,pgxroute.node=primary,pgxroute.reason=sticky 1
db.system.name=postgresql,pgxroute.group=default,pgxroute.node=primary,pgxroute.reason=write 1
db.system.name=postgresql,pgxroute.group=default,pgxroute.node=primary,pgxroute.reason=write_no_scope 2
db.system.name=postgresql,pgxroute.group=read,pgxroute.node=replica1,pgxroute.reason=read_no_scope 2
db.system.name=postgresql,pgxroute.group=read,pgxroute.node=replica2,pgxroute.reason=read_no_scope 4`
	got, md := points(t, reader, "pgxroute.calls", serverKeys...)
	if got != callsWant {
		t.Errorf("pgxroute.calls:\n%s\nwant:\n%s", got, callsWant)
	}
	if sum, ok := md.Data.(metricdata.Sum[int64]); !ok || !sum.IsMonotonic || sum.Temporality != metricdata.CumulativeTemporality || md.Unit != "{call}" {
		t.Errorf("pgxroute.calls is %T (unit %q), want a cumulative monotonic sum in {call}", md.Data, md.Unit)
	}

	const stateAfter = `db.system.name=postgresql,pgxroute.node=primary,pgxroute.node.state=down 0
db.system.name=postgresql,pgxroute.node=primary,pgxroute.node.state=joining 0
db.system.name=postgresql,pgxroute.node=primary,pgxroute.node.state=lagging 0
db.system.name=postgresql,pgxroute.node=primary,pgxroute.node.state=suspect 0
db.system.name=postgresql,pgxroute.node=primary,pgxroute.node.state=up 1
db.system.name=postgresql,pgxroute.node=replica1,pgxroute.node.state=down 1
db.system.name=postgresql,pgxroute.node=replica1,pgxroute.node.state=joining 0
db.system.name=postgresql,pgxroute.node=replica1,pgxroute.node.state=lagging 0
db.system.name=postgresql,pgxroute.node=replica1,pgxroute.node.state=suspect 0
db.system.name=postgresql,pgxroute.node=replica1,pgxroute.node.state=up 0
db.system.name=postgresql,pgxroute.node=replica2,pgxroute.node.state=down 0
db.system.name=postgresql,pgxroute.node=replica2,pgxroute.node.state=joining 0
db.system.name=postgresql,pgxroute.node=replica2,pgxroute.node.state=lagging 0
db.system.name=postgresql,pgxroute.node=replica2,pgxroute.node.state=suspect 0
db.system.name=postgresql,pgxroute.node=replica2,pgxroute.node.state=up 1`
	if got, _ := points(t, reader, "pgxroute.node.state", serverKeys...); got != stateAfter {
		t.Errorf("pgxroute.node.state after the kill:\n%s\nwant:\n%s", got, stateAfter)
	}
	const ejectionsWant = `db.system.name=postgresql,pgxroute.node=primary 0
db.system.name=postgresql,pgxroute.node=replica1 1
db.system.name=postgresql,pgxroute.node=replica2 0`
	if got, _ := points(t, reader, "pgxroute.node.ejections", serverKeys...); got != ejectionsWant {
		t.Errorf("pgxroute.node.ejections:\n%s\nwant:\n%s", got, ejectionsWant)
	}
	const inFlightWant = `db.system.name=postgresql,pgxroute.node=primary 0
db.system.name=postgresql,pgxroute.node=replica1 0
db.system.name=postgresql,pgxroute.node=replica2 0`
	if got, _ := points(t, reader, "pgxroute.node.calls.in_flight", serverKeys...); got != inFlightWant {
		t.Errorf("pgxroute.node.calls.in_flight:\n%s\nwant:\n%s", got, inFlightWant)
	}
	const roleWant = `db.system.name=postgresql,pgxroute.node=replica2,pgxroute.node.role=primary 0
db.system.name=postgresql,pgxroute.node=replica2,pgxroute.node.role=replica 1
db.system.name=postgresql,pgxroute.node=replica2,pgxroute.node.role=unknown 0`
	if got, _ := points(t, reader, "pgxroute.node.role", serverKeys...); !strings.Contains(got, roleWant) {
		t.Errorf("pgxroute.node.role:\n%s\nwant it to contain:\n%s", got, roleWant)
	}
	// pgxpool's statistics under the semantic conventions: one idle and one
	// used series per node, named by db.client.connection.pool.name.
	got, md = points(t, reader, "db.client.connection.count", "pgxroute.node", "server.address", "server.port")
	for _, n := range []string{"primary", "replica1", "replica2"} {
		for _, s := range []string{"idle", "used"} {
			if !strings.Contains(got, "db.client.connection.pool.name="+n+",db.client.connection.state="+s+",db.system.name=postgresql ") {
				t.Errorf("db.client.connection.count lacks %s/%s:\n%s", n, s, got)
			}
		}
	}
	if md.Unit != "{connection}" {
		t.Errorf("db.client.connection.count unit %q", md.Unit)
	}
	if got, _ := points(t, reader, "db.client.connection.max", "pgxroute.node", "server.address", "server.port"); !strings.Contains(got, "db.client.connection.pool.name=replica2,db.system.name=postgresql 4") {
		t.Errorf("db.client.connection.max:\n%s", got)
	}
	// The semantic conventions' server.address and server.port of each
	// node's pool, as it dials it.
	got, _ = points(t, reader, "db.client.connection.max", "pgxroute.node")
	for n, port := range nodePorts(c) {
		if want := fmt.Sprintf("db.client.connection.pool.name=%s,db.system.name=postgresql,server.address=127.0.0.1,server.port=%d ", n, port); !strings.Contains(got, want) {
			t.Errorf("db.client.connection.max:\n%s\nlacks %s", got, want)
		}
	}
	// No failover: no primary change; writes go to the configured primary.
	if got, _ := points(t, reader, "pgxroute.primary.changes"); got != "db.system.name=postgresql 0" {
		t.Errorf("pgxroute.primary.changes: %s, want 0", got)
	}
	const memberWant = `db.system.name=postgresql,pgxroute.node=primary 1
db.system.name=postgresql,pgxroute.node=replica1 0
db.system.name=postgresql,pgxroute.node=replica2 0`
	if got, _ := points(t, reader, "pgxroute.member.primary", serverKeys...); got != memberWant {
		t.Errorf("pgxroute.member.primary:\n%s\nwant:\n%s", got, memberWant)
	}
	// No membership change, nothing draining; no discovery instruments
	// without Config.Discovery.
	for _, name := range []string{"pgxroute.membership.added", "pgxroute.membership.removed", "pgxroute.membership.drained",
		"pgxroute.membership.drain_timeouts", "pgxroute.membership.draining"} {
		if got, _ := points(t, reader, name); got != "db.system.name=postgresql 0" {
			t.Errorf("%s: %s, want 0", name, got)
		}
	}
	for _, name := range []string{"pgxroute.discovery.calls", "pgxroute.discovery.failures", "pgxroute.discovery.members", "pgxroute.discovery.last_success"} {
		if !absent(t, reader, name) {
			t.Errorf("%s observed without Config.Discovery", name)
		}
	}
	if got, _ := points(t, reader, "pgxroute.pool.acquires", "pgxroute.node", "server.address", "server.port"); strings.Contains(got, "replica2,db.system.name=postgresql 0") {
		t.Errorf("pgxroute.pool.acquires shows no acquisition on replica2:\n%s", got)
	}

	if err := m.Unregister(); err != nil {
		t.Fatal(err)
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	for _, sm := range rm.ScopeMetrics {
		for _, mm := range sm.Metrics {
			if mm.Name == "pgxroute.calls" {
				t.Errorf("pgxroute.calls still observed after Unregister")
			}
		}
	}
}

func TestReasonNames(t *testing.T) {
	seen := map[string]pgxroute.Reason{}
	for _, r := range pgxroute.Reasons() {
		n := pgxrouteotel.ReasonName(r)
		if n == "unknown" {
			t.Errorf("reason %d (%s) has no name", r, r)
		}
		if o, dup := seen[n]; dup {
			t.Errorf("reasons %s and %s are both named %s", o, r, n)
		}
		seen[n] = r
	}
	if n := pgxrouteotel.ReasonName(pgxroute.Reason(200)); n != "unknown" {
		t.Errorf("ReasonName(200) = %q", n)
	}
}

// TestTracerCountsHealthEvents: the Tracer, set as Config.Tracer, receives
// the pool's health events (HealthTracer) and counts them: replica1 killed
// is one ejected event for replica1, and none for the others.
func TestTracerCountsHealthEvents(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	c, pool := obstest.NewRouted(t, func(cfg *pgxroute.Config) {
		cfg.Tracer = pgxrouteotel.NewTracer(pgxrouteotel.WithMeterProvider(mp), pgxrouteotel.WithTracerProvider(noop.NewTracerProvider()))
	})
	if err := c.Kill(c.Replicas()[0]); err != nil {
		t.Fatal(err)
	}
	routingtest.WaitState(t, pool, "replica1", pgxroute.StateDown)
	got, md := points(t, reader, "pgxroute.health.events")
	if !strings.Contains(got, "db.system.name=postgresql,pgxroute.health.event=ejected,pgxroute.node=replica1 1") {
		t.Errorf("pgxroute.health.events:\n%s\nwant replica1 ejected once", got)
	}
	if strings.Count(got, "event=ejected") != 1 {
		t.Errorf("ejections of other nodes:\n%s", got)
	}
	if md.Unit != "{event}" {
		t.Errorf("unit %q", md.Unit)
	}
}
