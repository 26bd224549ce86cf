package otel_test

import (
	"context"
	"testing"
	"time"

	"github.com/exaring/otelpgx"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/pgxroute/pgxroute"
	"github.com/pgxroute/pgxroute/internal/obstest"
	pgxrouteotel "github.com/pgxroute/pgxroute/otel"
)

func attrs(s sdktrace.ReadOnlySpan) map[attribute.Key]attribute.Value {
	m := map[attribute.Key]attribute.Value{}
	for _, kv := range s.Attributes() {
		m[kv.Key] = kv.Value
	}
	return m
}

// newTraced returns a pool whose Config.Tracer is the route tracer and whose
// nodes trace their queries with otelpgx wrapped by QueryTracer, all into
// one in-memory span recorder.
func newTraced(t *testing.T, health pgxroute.HealthConfig) (*tracetest.SpanRecorder, func() []sdktrace.ReadOnlySpan, *pgxroute.RoutedPool, map[string]int, func(int) error) {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	c, pool := obstest.NewRouted(t, func(cfg *pgxroute.Config) {
		cfg.Health = health
		cfg.Tracer = pgxrouteotel.NewTracer(pgxrouteotel.WithTracerProvider(tp))
		cfg.ConfigurePool = func(group, node string, pc *pgxpool.Config) {
			pc.ConnConfig.Tracer = pgxrouteotel.QueryTracer(otelpgx.NewTracer(otelpgx.WithTracerProvider(tp)))
		}
	})
	return rec, rec.Ended, pool, nodePorts(c), func(i int) error { return c.Kill(c.Replicas()[i]) }
}

func TestTracerOtelpgxSpansCarryTheRoute(t *testing.T) {
	_, ended, pool, ports, _ := newTraced(t, pgxroute.HealthConfig{Interval: time.Hour})
	ctx := context.Background()
	type want struct{ group, node, reason, kind string }
	calls := []struct {
		ctx  context.Context
		sql  string
		want want
	}{
		{ctx, obstest.ReadSQL + " AS first", want{"read", "replica1", "read_no_scope", "read"}},
		{ctx, obstest.ReadSQL + " AS second", want{"read", "replica2", "read_no_scope", "read"}},
		{pgxroute.WithReplica(ctx), obstest.ReadSQL + " AS third", want{"read", "replica1", "replica", "read"}},
		{ctx, "CREATE TABLE IF NOT EXISTS obs_trace (id int)", want{"default", "primary", "write_no_scope", "write"}},
		{ctx, "SELECT inet_server_port() FROM (SELECT 1) s FOR UPDATE", want{"default", "primary", "locking_read", "locking_read"}},
	}
	for _, c := range calls {
		if _, err := pool.Exec(c.ctx, c.sql); err != nil {
			t.Fatalf("%s: %v", c.sql, err)
		}
	}

	spans := ended()
	byID := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range spans {
		byID[s.SpanContext().SpanID().String()] = s
	}
	found := 0
	for _, c := range calls {
		var q sdktrace.ReadOnlySpan
		for _, s := range spans {
			if a := attrs(s); a["db.query.text"].AsString() == c.sql {
				q = s
			}
		}
		if q == nil {
			t.Errorf("no otelpgx span for %q", c.sql)
			continue
		}
		found++
		a := attrs(q)
		for k, v := range map[attribute.Key]string{
			pgxrouteotel.GroupKey: c.want.group, pgxrouteotel.NodeKey: c.want.node,
			pgxrouteotel.ReasonKey: c.want.reason, pgxrouteotel.StatementKindKey: c.want.kind,
		} {
			if got := a[k].AsString(); got != v {
				t.Errorf("%q: query span %s = %q, want %q", c.sql, k, got, v)
			}
		}
		if got := a["server.port"].AsInt64(); int(got) != ports[c.want.node] {
			t.Errorf("%q: query span server.port %d, want %d (%s)", c.sql, got, ports[c.want.node], c.want.node)
		}
		if _, ok := a["db.query.text"]; !ok {
			t.Errorf("%q: no db.query.text", c.sql)
		}
		parent, ok := byID[q.Parent().SpanID().String()]
		if !ok || parent.Name() != "route "+c.want.group {
			t.Errorf("%q: query span's parent is %v, want the route span", c.sql, parent)
			continue
		}
		pa := attrs(parent)
		if pa[pgxrouteotel.NodeKey].AsString() != c.want.node || pa[pgxrouteotel.AttemptKey].AsInt64() != 0 || pa[pgxrouteotel.RerunKey].AsBool() {
			t.Errorf("%q: route span attributes %v", c.sql, pa)
		}
		if _, leak := pa["db.query.text"]; leak {
			t.Errorf("the route span carries the SQL")
		}
	}
	if found != len(calls) {
		t.Fatalf("found %d query spans of %d calls", found, len(calls))
	}
}

// TestTracerRetrySpans kills a replica the router still thinks is up: the
// read sent to it fails, its route span ends with the error and rerun set,
// and the retry's span (attempt 1, reason retry) has the query span on
// replica2's port.
func TestTracerRetrySpans(t *testing.T) {
	_, ended, pool, ports, kill := newTraced(t, pgxroute.HealthConfig{Interval: time.Hour})
	ctx := context.Background()
	var port int
	for range 2 { // warm both replicas' pools
		if err := pool.QueryRow(ctx, obstest.ReadSQL).Scan(&port); err != nil {
			t.Fatal(err)
		}
	}
	if err := kill(0); err != nil {
		t.Fatal(err)
	}
	if err := pool.QueryRow(ctx, obstest.ReadSQL).Scan(&port); err != nil {
		t.Fatal(err)
	}
	if port != ports["replica2"] {
		t.Fatalf("the retried read ran on port %d, want replica2's %d", port, ports["replica2"])
	}
	var first, retry sdktrace.ReadOnlySpan
	for _, s := range ended() {
		if len(s.Name()) < 6 || s.Name()[:6] != "route " {
			continue
		}
		a := attrs(s)
		switch {
		case a[pgxrouteotel.AttemptKey].AsInt64() == 0 && a[pgxrouteotel.RerunKey].AsBool():
			first = s
		case a[pgxrouteotel.AttemptKey].AsInt64() == 1:
			retry = s
		}
	}
	if first == nil || retry == nil {
		t.Fatalf("route spans: failed first attempt %v, retry %v", first, retry)
	}
	if a := attrs(first); a[pgxrouteotel.NodeKey].AsString() != "replica1" || first.Status().Code != codes.Error {
		t.Errorf("first attempt: %v, status %v", a, first.Status())
	}
	if a := attrs(retry); a[pgxrouteotel.NodeKey].AsString() != "replica2" || a[pgxrouteotel.ReasonKey].AsString() != "retry" || a[pgxrouteotel.RerunKey].AsBool() || retry.Status().Code == codes.Error {
		t.Errorf("retry: %v, status %v", a, retry.Status())
	}
	var onReplica2 bool
	for _, s := range ended() {
		if s.Parent().SpanID() == retry.SpanContext().SpanID() && attrs(s)["server.port"].AsInt64() == int64(ports["replica2"]) &&
			attrs(s)[pgxrouteotel.ReasonKey].AsString() == "retry" {
			onReplica2 = true
		}
	}
	if !onReplica2 {
		t.Errorf("no otelpgx span under the retry's route span on replica2's port")
	}
}

// TestQueryTracerWithoutRouteTracer: without Config.Tracer the router puts
// no route in the context, and the wrapped tracer adds nothing (otelpgx's
// span still records, under the caller's span).
func TestQueryTracerWithoutRouteTracer(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	_, pool := obstest.NewRouted(t, func(cfg *pgxroute.Config) {
		cfg.Health = pgxroute.HealthConfig{Interval: time.Hour}
		cfg.ConfigurePool = func(group, node string, pc *pgxpool.Config) {
			pc.ConnConfig.Tracer = pgxrouteotel.QueryTracer(otelpgx.NewTracer(otelpgx.WithTracerProvider(tp)))
		}
	})
	ctx, parent := tp.Tracer("test").Start(context.Background(), "request")
	if _, err := pool.Exec(ctx, obstest.ReadSQL); err != nil {
		t.Fatal(err)
	}
	parent.End()
	var q sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		if attrs(s)["db.query.text"].AsString() == obstest.ReadSQL {
			q = s
		}
	}
	if q == nil {
		t.Fatal("no otelpgx span")
	}
	if _, ok := attrs(q)[pgxrouteotel.NodeKey]; ok {
		t.Errorf("route attributes without Config.Tracer: %v", attrs(q))
	}
}
