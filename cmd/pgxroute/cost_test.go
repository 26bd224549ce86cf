//go:build unix

package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
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

	// cpu is the process's user and system CPU time so far: the servers
	// are other processes, so this is the client's own work.
	cpu := func() time.Duration {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			t.Fatal(err)
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	type result struct{ rate, cpuPerCall float64 } // calls/s, ns of client CPU per call
	run := func(on bool) result {
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
		start, cpu0 := time.Now(), cpu()
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
		if stop != nil {
			stop() // the last collections belong to the round
		}
		elapsed, used := time.Since(start), cpu()-cpu0
		cancel()
		return result{float64(n.Load()) / elapsed.Seconds(), float64(used.Nanoseconds()) / float64(n.Load())}
	}
	run(false) // warm the pools
	var ratios, cpuRatios []float64
	for i := range rounds {
		var off, on result
		if i%2 == 0 { // A B, then B A
			off, on = run(false), run(true)
		} else {
			on, off = run(true), run(false)
		}
		ratios = append(ratios, on.rate/off.rate)
		cpuRatios = append(cpuRatios, on.cpuPerCall/off.cpuPerCall)
		t.Logf("pair %2d: off %8.0f calls/s %6.0f ns CPU/call, on %8.0f calls/s %6.0f ns CPU/call, throughput on/off %.4f, CPU/call on/off %.4f",
			i+1, off.rate, off.cpuPerCall, on.rate, on.cpuPerCall, on.rate/off.rate, on.cpuPerCall/off.cpuPerCall)
	}
	med, lo, hi := median(ratios)
	t.Logf("throughput: median on/off over %d pairs %.4f (%+.2f%%); range %.4f..%.4f", rounds, med, (med-1)*100, lo, hi)
	med, lo, hi = median(cpuRatios)
	t.Logf("client CPU per call: median on/off over %d pairs %.4f (%+.2f%%); range %.4f..%.4f", rounds, med, (med-1)*100, lo, hi)
}

// median returns the median, minimum and maximum of xs (sorting it).
func median(xs []float64) (med, lo, hi float64) {
	slices.Sort(xs)
	med = xs[len(xs)/2]
	if len(xs)%2 == 0 {
		med = (xs[len(xs)/2-1] + xs[len(xs)/2]) / 2
	}
	return med, xs[0], xs[len(xs)-1]
}
