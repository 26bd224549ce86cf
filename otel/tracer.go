package otel

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/pgxroute/pgxroute"
)

// Tracer is a pgxroute.RouteTracer that starts a client span per attempt of
// a routed call, named "route <group>", carrying the route's attributes
// (never its SQL). The node's own query span (otelpgx's) is its child.
// It is a pgxroute.HealthTracer too: it counts the pool's health events
// (ejections, re-admissions, lag, role and primary changes, nodes added,
// removed and drained, discovery failures) in the counter
// pgxroute.health.events. Set it as Config.Tracer; it is safe for
// concurrent use.
type Tracer struct {
	tracer trace.Tracer
	attrs  []attribute.KeyValue
	events metric.Int64Counter
}

var (
	_ pgxroute.RouteTracer  = (*Tracer)(nil)
	_ pgxroute.HealthTracer = (*Tracer)(nil)
)

// HealthEventKey is the kind of a health event: "ejected", "readmitted",
// "lagging", "caught_up", "role_changed", "primary_changed", "suspect",
// "split_brain", "answering", "role_mismatch", "node_added",
// "node_removed", "node_drained", "discovery_failed", "node_joined"
// (pgxroute.HealthEventKind.String).
const HealthEventKey = attribute.Key("pgxroute.health.event")

// NewTracer returns a Tracer using a tracer of the provider
// (WithTracerProvider) and, for the health events, a meter of the meter
// provider (WithMeterProvider); the defaults are the global ones.
func NewTracer(opts ...Option) *Tracer {
	o := newOptions(opts)
	events, err := o.mp.Meter(ScopeName).Int64Counter("pgxroute.health.events", metric.WithUnit("{event}"),
		metric.WithDescription("Health events of the pool's nodes, by node and kind (ejected, readmitted, lagging, caught_up, role_changed, primary_changed, suspect, split_brain, answering, role_mismatch, node_added, node_removed, node_drained, discovery_failed, node_joined)."))
	if err != nil {
		otel.Handle(fmt.Errorf("pgxroute/otel: instrument pgxroute.health.events: %w", err))
	}
	return &Tracer{tracer: o.tp.Tracer(ScopeName), attrs: o.attrs, events: events}
}

// TraceHealth implements pgxroute.HealthTracer: it counts the event.
func (t *Tracer) TraceHealth(ctx context.Context, ev pgxroute.HealthEvent) {
	if t.events == nil {
		return
	}
	attrs := make([]attribute.KeyValue, 0, 3+len(t.attrs))
	attrs = append(attrs, semconv.DBSystemNamePostgreSQL, NodeKey.String(ev.Node), HealthEventKey.String(ev.Kind.String()))
	attrs = append(attrs, t.attrs...)
	t.events.Add(ctx, 1, metric.WithAttributes(attrs...))
}

// TraceRouteStart implements pgxroute.RouteTracer: it starts the attempt's
// span when the caller's context is sampled (a span recording, or none).
func (t *Tracer) TraceRouteStart(ctx context.Context, data pgxroute.TraceRouteStartData) context.Context {
	attrs := make([]attribute.KeyValue, 0, 5+len(t.attrs))
	attrs = routeAttrs(attrs, data.Route)
	attrs = append(attrs, AttemptKey.Int(data.Attempt))
	attrs = append(attrs, t.attrs...)
	ctx, _ = t.tracer.Start(ctx, "route "+data.Route.Group,
		trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
	return ctx
}

// TraceRouteEnd implements pgxroute.RouteTracer: it ends the attempt's span,
// with the error and whether the call runs again.
func (t *Tracer) TraceRouteEnd(ctx context.Context, data pgxroute.TraceRouteEndData) {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		span.End()
		return
	}
	span.SetAttributes(RerunKey.Bool(data.Rerun))
	if data.Err != nil {
		span.RecordError(data.Err)
		span.SetStatus(codes.Error, data.Err.Error())
	}
	span.End()
}

// QueryTracer wraps a node's pgx tracer (otelpgx.NewTracer(), say) so that
// the spans it starts carry the route of the routed call they belong to:
// after each of its Trace*Start methods, the span of the returned context
// gets pgxroute.group, pgxroute.node, pgxroute.reason and
// pgxroute.statement.kind, read with pgxroute.RouteFromContext (the router
// puts the route there when Config.Tracer is set). Set it per node in
// Config.ConfigurePool:
//
//	cfg.ConfigurePool = func(group, node string, pc *pgxpool.Config) {
//		pc.ConnConfig.Tracer = pgxrouteotel.QueryTracer(otelpgx.NewTracer())
//	}
//
// The wrapper has every optional tracer interface of pgx and pgxpool
// (batch, copy, prepare, connect, acquire) and passes each to inner when
// inner has it.
func QueryTracer(inner pgx.QueryTracer) pgx.QueryTracer {
	return &queryTracer{inner: inner}
}

type queryTracer struct {
	inner pgx.QueryTracer
}

var (
	_ pgx.QueryTracer       = (*queryTracer)(nil)
	_ pgx.BatchTracer       = (*queryTracer)(nil)
	_ pgx.CopyFromTracer    = (*queryTracer)(nil)
	_ pgx.PrepareTracer     = (*queryTracer)(nil)
	_ pgx.ConnectTracer     = (*queryTracer)(nil)
	_ pgxpool.AcquireTracer = (*queryTracer)(nil)
)

// label puts the route of ctx on the span of ctx, when it records.
func label(ctx context.Context) {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	r, ok := pgxroute.RouteFromContext(ctx)
	if !ok {
		return
	}
	var buf [4]attribute.KeyValue
	span.SetAttributes(routeAttrs(buf[:0], r)...)
}

func (q *queryTracer) TraceQueryStart(ctx context.Context, conn *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	ctx = q.inner.TraceQueryStart(ctx, conn, data)
	label(ctx)
	return ctx
}

func (q *queryTracer) TraceQueryEnd(ctx context.Context, conn *pgx.Conn, data pgx.TraceQueryEndData) {
	q.inner.TraceQueryEnd(ctx, conn, data)
}

func (q *queryTracer) TraceBatchStart(ctx context.Context, conn *pgx.Conn, data pgx.TraceBatchStartData) context.Context {
	if t, ok := q.inner.(pgx.BatchTracer); ok {
		ctx = t.TraceBatchStart(ctx, conn, data)
		label(ctx)
	}
	return ctx
}

func (q *queryTracer) TraceBatchQuery(ctx context.Context, conn *pgx.Conn, data pgx.TraceBatchQueryData) {
	if t, ok := q.inner.(pgx.BatchTracer); ok {
		t.TraceBatchQuery(ctx, conn, data)
	}
}

func (q *queryTracer) TraceBatchEnd(ctx context.Context, conn *pgx.Conn, data pgx.TraceBatchEndData) {
	if t, ok := q.inner.(pgx.BatchTracer); ok {
		t.TraceBatchEnd(ctx, conn, data)
	}
}

func (q *queryTracer) TraceCopyFromStart(ctx context.Context, conn *pgx.Conn, data pgx.TraceCopyFromStartData) context.Context {
	if t, ok := q.inner.(pgx.CopyFromTracer); ok {
		ctx = t.TraceCopyFromStart(ctx, conn, data)
		label(ctx)
	}
	return ctx
}

func (q *queryTracer) TraceCopyFromEnd(ctx context.Context, conn *pgx.Conn, data pgx.TraceCopyFromEndData) {
	if t, ok := q.inner.(pgx.CopyFromTracer); ok {
		t.TraceCopyFromEnd(ctx, conn, data)
	}
}

func (q *queryTracer) TracePrepareStart(ctx context.Context, conn *pgx.Conn, data pgx.TracePrepareStartData) context.Context {
	if t, ok := q.inner.(pgx.PrepareTracer); ok {
		ctx = t.TracePrepareStart(ctx, conn, data)
		label(ctx)
	}
	return ctx
}

func (q *queryTracer) TracePrepareEnd(ctx context.Context, conn *pgx.Conn, data pgx.TracePrepareEndData) {
	if t, ok := q.inner.(pgx.PrepareTracer); ok {
		t.TracePrepareEnd(ctx, conn, data)
	}
}

func (q *queryTracer) TraceConnectStart(ctx context.Context, data pgx.TraceConnectStartData) context.Context {
	if t, ok := q.inner.(pgx.ConnectTracer); ok {
		ctx = t.TraceConnectStart(ctx, data)
	}
	return ctx
}

func (q *queryTracer) TraceConnectEnd(ctx context.Context, data pgx.TraceConnectEndData) {
	if t, ok := q.inner.(pgx.ConnectTracer); ok {
		t.TraceConnectEnd(ctx, data)
	}
}

func (q *queryTracer) TraceAcquireStart(ctx context.Context, pool *pgxpool.Pool, data pgxpool.TraceAcquireStartData) context.Context {
	if t, ok := q.inner.(pgxpool.AcquireTracer); ok {
		ctx = t.TraceAcquireStart(ctx, pool, data)
		label(ctx)
	}
	return ctx
}

func (q *queryTracer) TraceAcquireEnd(ctx context.Context, pool *pgxpool.Pool, data pgxpool.TraceAcquireEndData) {
	if t, ok := q.inner.(pgxpool.AcquireTracer); ok {
		t.TraceAcquireEnd(ctx, pool, data)
	}
}
