package prometheus_test

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	pgxrouteprom "github.com/pgxroute/pgxroute/prometheus"
	"github.com/pgxroute/pgxroute/routingtest"
)

// BenchmarkGather is the cost of one scrape's collection (Gather, without
// the text encoding) of a pool of three nodes (a fake: no pgxpool
// statistics).
func BenchmarkGather(b *testing.B) {
	f := routingtest.NewFake(b, routingtest.FakeOptions{})
	ctx := context.Background()
	for range 100 {
		f.Pool.Exec(ctx, "SELECT 1")
		f.Pool.Exec(ctx, "UPDATE t SET a = 1")
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(pgxrouteprom.NewCollector(f.Pool, nil))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := reg.Gather(); err != nil {
			b.Fatal(err)
		}
	}
}
