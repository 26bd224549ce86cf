package otel_test

import (
	"context"
	"fmt"
	"log"

	"github.com/exaring/otelpgx"
	"github.com/jackc/pgx/v5/pgxpool"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/pgxroute/pgxroute"
	pgxrouteotel "github.com/pgxroute/pgxroute/otel"
	"github.com/pgxroute/pgxroute/routingtest"
)

// Wiring both halves in an application: the route tracer as Config.Tracer,
// otelpgx on every node (wrapped, so that its query spans carry the route)
// through ConfigurePool, and the metrics over the pool. The providers are
// the application's (here, SDK ones with no exporter).
func Example() {
	tp := sdktrace.NewTracerProvider()
	mp := sdkmetric.NewMeterProvider()
	cfg := pgxroute.Config{
		Primary:  "postgres://app@db-primary:5432/app",
		Replicas: []pgxroute.Node{{ConnString: "postgres://app@db-replica:5432/app"}},
		Tracer:   pgxrouteotel.NewTracer(pgxrouteotel.WithTracerProvider(tp)),
		ConfigurePool: func(group, node string, pc *pgxpool.Config) {
			pc.ConnConfig.Tracer = pgxrouteotel.QueryTracer(otelpgx.NewTracer(otelpgx.WithTracerProvider(tp)))
		},
	}
	pool, err := pgxroute.New(context.Background(), cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	if _, err := pgxrouteotel.NewMetrics(pool, pgxrouteotel.WithMeterProvider(mp)); err != nil {
		log.Fatal(err)
	}
}

// The metrics of a fake pool (routingtest: no database), read with the SDK's
// manual reader: routed calls by group, node and reason.
func ExampleNewMetrics() {
	ctx := context.Background()
	f, err := routingtest.StartFake(ctx, routingtest.FakeOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(ctx)
	if _, err := pgxrouteotel.NewMetrics(f.Pool, pgxrouteotel.WithMeterProvider(mp)); err != nil {
		log.Fatal(err)
	}

	sctx := pgxroute.WithScope(ctx)
	f.Pool.Exec(sctx, "SELECT name FROM users WHERE id = 1")
	f.Pool.Exec(sctx, "SELECT name FROM users WHERE id = 2")
	f.Pool.Exec(sctx, "UPDATE users SET name = 'bob' WHERE id = 1")
	f.Pool.Exec(sctx, "SELECT name FROM users WHERE id = 1")

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		log.Fatal(err)
	}
	var lines []string
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != "pgxroute.calls" {
				continue
			}
			for _, p := range m.Data.(metricdata.Sum[int64]).DataPoints {
				g, _ := p.Attributes.Value(pgxrouteotel.GroupKey)
				n, _ := p.Attributes.Value(pgxrouteotel.NodeKey)
				r, _ := p.Attributes.Value(pgxrouteotel.ReasonKey)
				lines = append(lines, fmt.Sprintf("%s %s/%s %s: %d", m.Name, g.AsString(), n.AsString(), r.AsString(), p.Value))
			}
		}
	}
	fmt.Println(sortedLines(lines))
	// Output:
	// pgxroute.calls default/primary sticky: 1
	// pgxroute.calls default/primary write: 1
	// pgxroute.calls read/replica1 read: 1
	// pgxroute.calls read/replica2 read: 1
}
