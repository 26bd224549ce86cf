package otel_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/pgxroute/pgxroute"
	"github.com/pgxroute/pgxroute/internal/obstest"
	pgxrouteotel "github.com/pgxroute/pgxroute/otel"
	"github.com/pgxroute/pgxroute/routingtest"
)

// The server attributes, dropped where a test compares text that must not
// depend on the ports the harness picked.
var serverKeys = []attribute.Key{"server.address", "server.port"}

// TestMetricsFailover: with the SDK's ManualReader on a real cluster, the
// primary killed and replica1 promoted: pgxroute.primary.changes goes from 0
// to 1, pgxroute.member.primary from primary to replica1, replica1's
// timeline from 1 to 2; the write that found the primary dead counts once
// on it and once on replica1 under reason failover; the Tracer counts the
// primary's ejection, the primary lost and replica1 becoming it, and its
// spans show the attempt that failed and the one sent again; and the
// node-level instruments carry each node's server.address and server.port.
func TestMetricsFailover(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	tracer := pgxrouteotel.NewTracer(pgxrouteotel.WithMeterProvider(mp), pgxrouteotel.WithTracerProvider(tp))
	c, pool := obstest.NewFailoverPool(t, func(cfg *pgxroute.Config) { cfg.Tracer = tracer })
	if _, err := pgxrouteotel.NewMetrics(pool, pgxrouteotel.WithMeterProvider(mp)); err != nil {
		t.Fatal(err)
	}
	expect := func(when, name, want string) metricdata.Metrics {
		t.Helper()
		got, md := points(t, reader, name, serverKeys...)
		if got != want {
			t.Errorf("%s %s:\n%s\nwant:\n%s", name, when, got, want)
		}
		return md
	}

	md := expect("before", "pgxroute.primary.changes", "db.system.name=postgresql 0")
	if sum, ok := md.Data.(metricdata.Sum[int64]); !ok || !sum.IsMonotonic || md.Unit != "{change}" {
		t.Errorf("pgxroute.primary.changes is %T in %q, want a monotonic sum in {change}", md.Data, md.Unit)
	}
	md = expect("before", "pgxroute.member.primary", `db.system.name=postgresql,pgxroute.node=primary 1
db.system.name=postgresql,pgxroute.node=replica1 0`)
	if _, ok := md.Data.(metricdata.Gauge[int64]); !ok || md.Unit != "1" {
		t.Errorf("pgxroute.member.primary is %T in %q, want a gauge in 1", md.Data, md.Unit)
	}
	expect("before", "pgxroute.member.timeline", `db.system.name=postgresql,pgxroute.node=primary 1
db.system.name=postgresql,pgxroute.node=replica1 1`)
	if absent(t, reader, "pgxroute.primary.last_change") != true {
		t.Errorf("pgxroute.primary.last_change observed before any primary change")
	}

	ports := map[string]int{"primary": c.Primary().Port(), "replica1": c.Replicas()[0].Port()} // before the harness swaps them
	start := time.Now()
	obstest.Failover(t, c, pool)
	if st := pool.Stat(); st.Primary != "replica1" {
		t.Fatalf("Stat.Primary = %q after the write ran on replica1", st.Primary)
	}

	expect("after", "pgxroute.primary.changes", "db.system.name=postgresql 1")
	expect("after", "pgxroute.member.primary", `db.system.name=postgresql,pgxroute.node=primary 0
db.system.name=postgresql,pgxroute.node=replica1 1`)
	expect("after", "pgxroute.member.timeline", `db.system.name=postgresql,pgxroute.node=primary 1
db.system.name=postgresql,pgxroute.node=replica1 2`)
	expect("after", "pgxroute.member.stale_primary", `db.system.name=postgresql,pgxroute.node=primary 0
db.system.name=postgresql,pgxroute.node=replica1 0`)
	expect("after", "pgxroute.member.split_brain", `db.system.name=postgresql,pgxroute.node=primary 0
db.system.name=postgresql,pgxroute.node=replica1 0`)
	// The write: its attempt on the dead primary, then the same call on
	// replica1 as a failover. Nothing else was routed.
	expect("after", "pgxroute.calls", `db.system.name=postgresql,pgxroute.group=default,pgxroute.node=primary,pgxroute.reason=write_no_scope 1
db.system.name=postgresql,pgxroute.group=default,pgxroute.node=replica1,pgxroute.reason=failover 1`)
	expect("after", "pgxroute.node.ejections", `db.system.name=postgresql,pgxroute.node=primary 1
db.system.name=postgresql,pgxroute.node=replica1 0`)
	expect("after", "pgxroute.node.role", `db.system.name=postgresql,pgxroute.node=primary,pgxroute.node.role=primary 1
db.system.name=postgresql,pgxroute.node=primary,pgxroute.node.role=replica 0
db.system.name=postgresql,pgxroute.node=primary,pgxroute.node.role=unknown 0
db.system.name=postgresql,pgxroute.node=replica1,pgxroute.node.role=primary 1
db.system.name=postgresql,pgxroute.node=replica1,pgxroute.node.role=replica 0
db.system.name=postgresql,pgxroute.node=replica1,pgxroute.node.role=unknown 0`)
	// The Tracer's health events: the primary ejected by the write's failed
	// connection, the primary lost (no node: none is known), replica1 seen
	// as a primary by its probe and made the primary.
	expect("after", "pgxroute.health.events", `db.system.name=postgresql,pgxroute.health.event=ejected,pgxroute.node=primary 1
db.system.name=postgresql,pgxroute.health.event=primary_changed,pgxroute.node= 1
db.system.name=postgresql,pgxroute.health.event=primary_changed,pgxroute.node=replica1 1
db.system.name=postgresql,pgxroute.health.event=role_changed,pgxroute.node=replica1 1`)

	// The write's two route spans: its attempt on the dead primary (status
	// Error, rerun), then the one on replica1 with reason failover.
	var spans []string
	for _, sp := range rec.Ended() {
		a := attrs(sp)
		spans = append(spans, fmt.Sprintf("%s node=%s reason=%s attempt=%d rerun=%v error=%v", sp.Name(),
			a[pgxrouteotel.NodeKey].AsString(), a[pgxrouteotel.ReasonKey].AsString(), a[pgxrouteotel.AttemptKey].AsInt64(),
			a[pgxrouteotel.RerunKey].AsBool(), sp.Status().Code == codes.Error))
	}
	if got, want := strings.Join(spans, "\n"), `route default node=primary reason=write_no_scope attempt=0 rerun=true error=true
route default node=replica1 reason=failover attempt=1 rerun=false error=false`; got != want {
		t.Errorf("route spans:\n%s\nwant:\n%s", got, want)
	}

	st := pool.Stat()
	got, md := points(t, reader, "pgxroute.primary.last_change")
	if want := fmt.Sprintf("db.system.name=postgresql %v", float64(st.LastPrimaryChange.UnixNano())/1e9); got != want || md.Unit != "s" {
		t.Errorf("pgxroute.primary.last_change = %s (%s), want %s (s)", got, md.Unit, want)
	}
	if st.LastPrimaryChange.Before(start) || st.LastPrimaryChange.After(time.Now()) {
		t.Errorf("Stat.LastPrimaryChange %v is not within the test", st.LastPrimaryChange)
	}

	// server.address and server.port: each node's own, on the node-level
	// instruments.
	for _, name := range []string{"pgxroute.member.primary", "pgxroute.node.ejections", "pgxroute.node.calls.in_flight", "pgxroute.node.state"} {
		got, _ := points(t, reader, name)
		for _, line := range strings.Split(got, "\n") {
			node := attrOf(line, "pgxroute.node")
			want := fmt.Sprintf("server.address=127.0.0.1,server.port=%d", ports[node])
			if !strings.Contains(line, want) {
				t.Errorf("%s: %q lacks %s", name, line, want)
			}
		}
	}
	got, _ = points(t, reader, "pgxroute.calls")
	if want := fmt.Sprintf("pgxroute.reason=failover,server.address=127.0.0.1,server.port=%d 1", ports["replica1"]); !strings.Contains(got, want) {
		t.Errorf("pgxroute.calls:\n%s\nlacks %s", got, want)
	}
}

// absent collects once and reports whether the named instrument has no data
// point.
func absent(t *testing.T, r sdkmetric.Reader, name string) bool {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name == name {
				if g, ok := m.Data.(metricdata.Gauge[float64]); ok && len(g.DataPoints) == 0 {
					return true
				}
				return false
			}
		}
	}
	return true
}

// attrOf returns the value of key in a line of points.
func attrOf(line, key string) string {
	for _, kv := range strings.Split(strings.Fields(line)[0], ",") {
		if k, v, ok := strings.Cut(kv, "="); ok && k == key {
			return v
		}
	}
	return ""
}

// TestMetricsBackendNodes: on a fake (nodes given as Backends, never
// probed, roles as configured), the node-level instruments carry no
// server.address or server.port, the configured primary is the member
// primary, no timeline is known and no primary change was seen.
func TestMetricsBackendNodes(t *testing.T) {
	f := routingtest.NewFake(t, routingtest.FakeOptions{})
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	if _, err := pgxrouteotel.NewMetrics(f.Pool, pgxrouteotel.WithMeterProvider(mp)); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{
		"pgxroute.member.primary": `db.system.name=postgresql,pgxroute.node=primary 1
db.system.name=postgresql,pgxroute.node=replica1 0
db.system.name=postgresql,pgxroute.node=replica2 0`,
		"pgxroute.member.timeline": `db.system.name=postgresql,pgxroute.node=primary 0
db.system.name=postgresql,pgxroute.node=replica1 0
db.system.name=postgresql,pgxroute.node=replica2 0`,
		"pgxroute.node.ejections": `db.system.name=postgresql,pgxroute.node=primary 0
db.system.name=postgresql,pgxroute.node=replica1 0
db.system.name=postgresql,pgxroute.node=replica2 0`,
		"pgxroute.node.hedges": `db.system.name=postgresql,pgxroute.node=primary 0
db.system.name=postgresql,pgxroute.node=replica1 0
db.system.name=postgresql,pgxroute.node=replica2 0`,
		"pgxroute.primary.changes": "db.system.name=postgresql 0",
	} {
		if got, _ := points(t, reader, name); got != want { // nothing dropped: no server.* may be there
			t.Errorf("%s:\n%s\nwant:\n%s", name, got, want)
		}
	}
}

// TestMetricsSplitBrain: the primary killed and both replicas promoted, each
// to timeline 2: two members report being a primary on the same, highest,
// timeline, so none is the primary. pgxroute.member.split_brain is 1 for
// both, pgxroute.member.primary 0 for every member, and the timelines are
// 1, 2, 2. (Whether the router saw one of them as the primary for a moment
// before the other was promoted depends on timing, so the primary changes
// are not asserted here.)
func TestMetricsSplitBrain(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	c, pool := obstest.NewRouted(t, nil)
	if _, err := pgxrouteotel.NewMetrics(pool, pgxrouteotel.WithMeterProvider(mp)); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	r1, r2 := c.Replicas()[0], c.Replicas()[1]
	// Every member probed before the kill, so that the primary's last
	// timeline is known (1), not the 0 of a member never probed.
	routingtest.WaitFor(t, "every member probed on timeline 1", func() bool {
		for _, m := range pool.Stat().Members {
			if m.Timeline != 1 {
				return false
			}
		}
		return true
	})
	if err := c.Kill(c.Primary()); err != nil {
		t.Fatal(err)
	}
	for _, r := range []*routingtest.Node{r1, r2} {
		if err := c.Promote(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	routingtest.WaitFor(t, "the split brain seen", func() bool {
		st := pool.Stat()
		return len(st.SplitBrain) == 2 && st.Primary == ""
	})
	for name, want := range map[string]string{
		"pgxroute.member.split_brain": `db.system.name=postgresql,pgxroute.node=primary 0
db.system.name=postgresql,pgxroute.node=replica1 1
db.system.name=postgresql,pgxroute.node=replica2 1`,
		"pgxroute.member.primary": `db.system.name=postgresql,pgxroute.node=primary 0
db.system.name=postgresql,pgxroute.node=replica1 0
db.system.name=postgresql,pgxroute.node=replica2 0`,
		"pgxroute.member.stale_primary": `db.system.name=postgresql,pgxroute.node=primary 0
db.system.name=postgresql,pgxroute.node=replica1 0
db.system.name=postgresql,pgxroute.node=replica2 0`,
		"pgxroute.member.timeline": `db.system.name=postgresql,pgxroute.node=primary 1
db.system.name=postgresql,pgxroute.node=replica1 2
db.system.name=postgresql,pgxroute.node=replica2 2`,
	} {
		if got, _ := points(t, reader, name, serverKeys...); got != want {
			t.Errorf("%s:\n%s\nwant:\n%s", name, got, want)
		}
	}
}
