package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/pgxroute/pgxroute"
	pgxrouteotel "github.com/pgxroute/pgxroute/otel"
	pgxrouteprom "github.com/pgxroute/pgxroute/prometheus"
	"github.com/pgxroute/pgxroute/routingtest"
)

// TestObservabilityCost measures routed QueryRow throughput on a local
// cluster with the OpenTelemetry metrics and the Prometheus collector on
// (registered, and both collected every 100 ms: far more often than a
// scrape) against the same pool with them off, in ABBA-ordered paired
// rounds. It reports; it asserts nothing about time. Run it with
// PGXROUTE_COST=1 (and -v): it is skipped otherwise, to keep the suite short.
func TestObservabilityCost(t *testing.T) {
	if os.Getenv("PGXROUTE_COST") != "1" {
		t.Skip("set PGXROUTE_COST=1 to measure the cost of the metrics adapters (about 30 s)")
	}
	rounds := 12
	if v := os.Getenv("PGXROUTE_COST_ROUNDS"); v != "" {
		fmt.Sscan(v, &rounds)
	}
	const roundTime = time.Second
	const workers = 8
	c := routingtest.NewCluster(t, routingtest.ClusterOptions{Replicas: 2})
	ctx := context.Background()
	cfg := pgxroute.Config{Primary: c.Primary().ConnString()}
	for _, r := range c.Replicas() {
		cfg.Replicas = append(cfg.Replicas, pgxroute.Node{ConnString: r.ConnString()})
	}
	pool, err := pgxroute.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()

	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(ctx)
	reg := prometheus.NewRegistry()

	run := func(on bool) float64 {
		var stop func()
		if on {
			m, err := pgxrouteotel.NewMetrics(pool, pgxrouteotel.WithMeterProvider(mp))
			if err != nil {
				t.Fatal(err)
			}
			col := pgxrouteprom.NewCollector(pool, nil)
			reg.MustRegister(col)
			done := make(chan struct{})
			var wg sync.WaitGroup
			wg.Go(func() {
				tick := time.NewTicker(100 * time.Millisecond)
				defer tick.Stop()
				for {
					select {
					case <-done:
						return
					case <-tick.C:
						var rm metricdata.ResourceMetrics
						if err := reader.Collect(ctx, &rm); err != nil {
							t.Error(err)
						}
						if _, err := reg.Gather(); err != nil {
							t.Error(err)
						}
					}
				}
			})
			stop = func() {
				close(done)
				wg.Wait()
				_ = m.Unregister()
				reg.Unregister(col)
			}
		}
		var n atomic.Int64
		rctx, cancel := context.WithTimeout(ctx, roundTime)
		var wg sync.WaitGroup
		start := time.Now()
		for range workers {
			wg.Go(func() {
				var one int
				for rctx.Err() == nil {
					if err := pool.QueryRow(rctx, "SELECT 1").Scan(&one); err == nil {
						n.Add(1)
					}
				}
			})
		}
		wg.Wait()
		elapsed := time.Since(start)
		cancel()
		if stop != nil {
			stop()
		}
		return float64(n.Load()) / elapsed.Seconds()
	}
	run(false) // warm the pools
	var ratios []float64
	for i := range rounds {
		var off, on float64
		if i%2 == 0 { // A B, then B A
			off, on = run(false), run(true)
		} else {
			on, off = run(true), run(false)
		}
		ratios = append(ratios, on/off)
		t.Logf("pair %2d: off %8.0f calls/s, on %8.0f calls/s, on/off %.4f", i+1, off, on, on/off)
	}
	slices.Sort(ratios)
	med := ratios[len(ratios)/2]
	if len(ratios)%2 == 0 {
		med = (ratios[len(ratios)/2-1] + ratios[len(ratios)/2]) / 2
	}
	t.Logf("median on/off over %d pairs: %.4f (%+.2f%%); range %.4f..%.4f", rounds, med, (med-1)*100, ratios[0], ratios[len(ratios)-1])
}

// TestMetricsAllocateNothingPerCall: with the OpenTelemetry metrics and the
// Prometheus collector registered over a pool, a routed call allocates as
// much as without them (they read Stat on collection only).
func TestMetricsAllocateNothingPerCall(t *testing.T) {
	f := routingtest.NewFake(t, routingtest.FakeOptions{})
	ctx := context.Background()
	call := func() { _, _ = f.Pool.Exec(ctx, "SELECT 1") }
	f.Pool.Exec(ctx, "SELECT 1")
	before := testing.AllocsPerRun(200, call)
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	defer mp.Shutdown(ctx)
	if _, err := pgxrouteotel.NewMetrics(f.Pool, pgxrouteotel.WithMeterProvider(mp)); err != nil {
		t.Fatal(err)
	}
	prometheus.NewRegistry().MustRegister(pgxrouteprom.NewCollector(f.Pool, nil))
	after := testing.AllocsPerRun(200, call)
	if after != before {
		t.Errorf("a routed call allocates %v times with the metrics on, %v without", after, before)
	}
	t.Logf("allocations per routed Exec on a fake: %v without, %v with the metrics", before, after)
}
