package otel_test

import (
	"context"
	"testing"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/pgxroute/pgxroute"
	pgxrouteotel "github.com/pgxroute/pgxroute/otel"
	"github.com/pgxroute/pgxroute/routingtest"
)

// BenchmarkCollect is the cost of one collection of the metrics of a pool of
// three nodes (a fake: no pgxpool statistics).
func BenchmarkCollect(b *testing.B) {
	f := routingtest.NewFake(b, routingtest.FakeOptions{})
	ctx := context.Background()
	for range 100 {
		f.Pool.Exec(ctx, "SELECT 1")
		f.Pool.Exec(ctx, "UPDATE t SET a = 1")
	}
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(ctx)
	if _, err := pgxrouteotel.NewMetrics(f.Pool, pgxrouteotel.WithMeterProvider(mp)); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		var rm metricdata.ResourceMetrics
		if err := reader.Collect(ctx, &rm); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRouteTracer is a routed Exec on a fake with the route tracer on
// (an SDK provider sampling every span, no exporter), with it on a no-op
// provider, and without it: the difference is the tracer's cost per call.
func BenchmarkRouteTracer(b *testing.B) {
	for _, bc := range []struct {
		name   string
		tracer func() pgxroute.RouteTracer
	}{
		{"off", func() pgxroute.RouteTracer { return nil }},
		{"noop-provider", func() pgxroute.RouteTracer {
			return pgxrouteotel.NewTracer(pgxrouteotel.WithTracerProvider(noop.NewTracerProvider()))
		}},
		{"sdk-sampled", func() pgxroute.RouteTracer {
			return pgxrouteotel.NewTracer(pgxrouteotel.WithTracerProvider(sdktrace.NewTracerProvider()))
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			f := routingtest.NewFake(b, routingtest.FakeOptions{Config: func(c *pgxroute.Config) { c.Tracer = bc.tracer() }})
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				f.Pool.Exec(ctx, "SELECT 1")
				f.Reset()
			}
		})
	}
}
