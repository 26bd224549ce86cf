package otel_test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/pgxroute/pgxroute/internal/costbench"
	pgxrouteotel "github.com/pgxroute/pgxroute/otel"
	"github.com/pgxroute/pgxroute/routingtest"
)

// TestMetricsCostOnFake measures, on a fake (no server, no network: the
// router's and the adapter's own work alone), a routed QueryRow with the
// metrics off and on (registered, and collected every 100 ms while the
// calls run), in A B / B A pairs, and logs the median ratio of the time per
// call. It asserts nothing about time (the figure goes to
// docs/observability.md): it runs only with PGXROUTE_COST=1
// (PGXROUTE_COST_ROUNDS sets the pairs, default 20).
func TestMetricsCostOnFake(t *testing.T) {
	if os.Getenv("PGXROUTE_COST") != "1" {
		t.Skip("set PGXROUTE_COST=1 to measure the metrics' cost per call on a fake (about 40 s)")
	}
	rounds := 20
	if v := os.Getenv("PGXROUTE_COST_ROUNDS"); v != "" {
		if _, err := fmt.Sscan(v, &rounds); err != nil || rounds < 1 || rounds > 200 {
			t.Fatalf("PGXROUTE_COST_ROUNDS=%q: want 1 to 200", v)
		}
	}
	f := routingtest.NewFake(t, routingtest.FakeOptions{})
	ctx := context.Background()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(ctx) })

	// cpu is the process's user and system CPU time so far, which
	// contention from other processes distorts less than wall time.
	cpu := func() time.Duration {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			t.Fatal(err)
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	type result struct{ wall, cpu float64 } // ns per call
	run := func(on bool) result {
		if on {
			m, err := pgxrouteotel.NewMetrics(f.Pool, pgxrouteotel.WithMeterProvider(mp))
			if err != nil {
				t.Fatal(err)
			}
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
					}
				}
			})
			defer func() {
				close(done)
				wg.Wait()
				if err := m.Unregister(); err != nil {
					t.Error(err)
				}
			}()
		}
		cpu0 := cpu()
		r := testing.Benchmark(func(b *testing.B) {
			var one int
			for b.Loop() {
				_ = f.Pool.QueryRow(ctx, "SELECT 1").Scan(&one) // the fake answers no row
				f.Reset()
			}
		})
		used := cpu() - cpu0 // testing.Benchmark's own sizing runs included, in both arms
		return result{float64(r.T.Nanoseconds()) / float64(r.N), float64(used.Nanoseconds()) / float64(r.N)}
	}
	run(false) // warm up
	var ratios, cpuRatios []float64
	for i := range rounds {
		var off, on result
		if i%2 == 0 {
			off, on = run(false), run(true)
		} else {
			on, off = run(true), run(false)
		}
		ratios = append(ratios, on.wall/off.wall)
		cpuRatios = append(cpuRatios, on.cpu/off.cpu)
		t.Logf("pair %2d: off %7.0f ns/call (CPU %7.0f), on %7.0f ns/call (CPU %7.0f), on/off %.4f (CPU %.4f)",
			i+1, off.wall, off.cpu, on.wall, on.cpu, on.wall/off.wall, on.cpu/off.cpu)
	}
	load, _ := os.ReadFile("/proc/loadavg")
	med, lo, hi := costbench.MedianRange(ratios)
	t.Logf("time per routed QueryRow on a fake, metrics on/off: median over %d pairs %.4f (%+.2f%%), range %.4f..%.4f", rounds, med, (med-1)*100, lo, hi)
	med, lo, hi = costbench.MedianRange(cpuRatios)
	t.Logf("CPU per routed QueryRow on a fake, metrics on/off: median over %d pairs %.4f (%+.2f%%), range %.4f..%.4f; load average %s", rounds, med, (med-1)*100, lo, hi, load)
}
