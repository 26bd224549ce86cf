package main

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgxroute/pgxroute"
	"github.com/pgxroute/pgxroute/internal/costbench"
)

// The cost of routing (-cost): the same calls on a raw *pgxpool.Pool and on
// a RoutedPool over the same server, pools of the same size kept open for
// the whole run, the same workers, in paired rounds of a fixed duration
// whose order alternates ABBA (A B, B A, A B, ...). Each pair's ratio is
// B's throughput over A's in the same pair of rounds; the result is the
// median of those ratios and their range. Client CPU per call is the
// process's getrusage time over each round's calls.

// costRound is one round of one target.
type costRound struct {
	ops   int64
	secs  float64
	cpuNs int64
	errs  int64
	first error
}

// costMeasure runs one kind on q with workers goroutines for d.
func costMeasure(ctx context.Context, q costbench.Querier, run func(context.Context, costbench.Querier, int) error, workers int, d time.Duration) costRound {
	var ops, errs atomic.Int64
	var first atomic.Value
	var stop atomic.Bool
	var wg sync.WaitGroup
	cpu0, t0 := costbench.ProcessCPU(), time.Now()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w << 24; !stop.Load(); i++ {
				if err := run(ctx, q, i&0xffffff); err != nil {
					errs.Add(1)
					first.CompareAndSwap(nil, err)
					continue
				}
				ops.Add(1)
			}
		}()
	}
	time.Sleep(d)
	stop.Store(true)
	wg.Wait()
	r := costRound{ops: ops.Load(), secs: time.Since(t0).Seconds(), cpuNs: costbench.ProcessCPU() - cpu0, errs: errs.Load()}
	if e, ok := first.Load().(error); ok {
		r.first = e
	}
	return r
}

// costComparison is one ratio to measure: b against a.
type costComparison struct {
	name string
	a, b string
	want float64
}

// runCost measures the cost of routing and prints its tables to w.
func runCost(ctx context.Context, w io.Writer, s servers, workers, rounds int, d time.Duration) error {
	if len(s.replicas) < 2 {
		return fmt.Errorf("-cost needs two replicas")
	}
	poolCfg := func(conn string) (*pgxpool.Config, error) {
		pc, err := pgxpool.ParseConfig(conn)
		if err != nil {
			return nil, err
		}
		pc.MaxConns, pc.MinConns = int32(workers), int32(workers)
		return pc, nil
	}
	targets := map[string]costbench.Querier{}
	var closers []func()
	defer func() {
		for _, c := range closers {
			c()
		}
	}()
	openRaw := func(conn string) (*pgxpool.Pool, error) {
		pc, err := poolCfg(conn)
		if err != nil {
			return nil, err
		}
		p, err := pgxpool.NewWithConfig(ctx, pc)
		if err != nil {
			return nil, err
		}
		closers = append(closers, p.Close)
		return p, fillPool(ctx, p, workers)
	}
	openRouted := func(cfg pgxroute.Config) (*pgxroute.RoutedPool, error) {
		cfg.ConfigurePool = func(_, _ string, pc *pgxpool.Config) { pc.MaxConns, pc.MinConns = int32(workers), int32(workers) }
		p, err := pgxroute.New(ctx, cfg)
		if err != nil {
			return nil, err
		}
		closers = append(closers, p.Close)
		return p, fillRouted(ctx, p, workers)
	}
	raw, err := openRaw(s.primary)
	if err != nil {
		return err
	}
	targets["raw"] = raw
	if targets["routed"], err = openRouted(pgxroute.Config{Primary: s.primary}); err != nil {
		return err
	}
	if targets["disabled"], err = openRouted(pgxroute.Config{Primary: s.primary, Disabled: true}); err != nil {
		return err
	}
	pr := &costbench.Pair{}
	for i := range pr.Pools {
		if pr.Pools[i], err = openRaw(s.replicas[i]); err != nil {
			return err
		}
	}
	targets["pair-raw"] = pr
	if targets["pair-routed"], err = openRouted(pgxroute.Config{Primary: s.primary, Replicas: []pgxroute.Node{
		{Name: "replica1", ConnString: s.replicas[0]}, {Name: "replica2", ConnString: s.replicas[1]}}}); err != nil {
		return err
	}
	comps := []costComparison{
		{"routed / raw", "raw", "routed", 0.97},
		{"disabled / raw", "raw", "disabled", 0.99},
		{"pair-routed / pair-raw", "pair-raw", "pair-routed", 0.97},
	}
	fmt.Fprintf(w, "\n### Cost of routing\n\n%d workers, pools of %d, %d paired rounds of %s (ABBA), pools open for the whole run, GOMAXPROCS %d.\n\n", workers, workers, rounds, d, runtime.GOMAXPROCS(0))
	fmt.Fprintln(w, "| call | comparison | median throughput ratio | per-round range | rounds below goal | goal | result | client CPU per call (A, B) | CPU ratio |")
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|---|---:|---:|")
	for _, k := range costbench.Kinds {
		for _, c := range comps {
			var ratios, cpuRatios []float64
			var cpuA, cpuB []float64
			for r := range rounds {
				order := []string{c.a, c.b}
				if r%2 == 1 {
					order = []string{c.b, c.a}
				}
				got := map[string]costRound{}
				for _, name := range order {
					if ctx.Err() != nil {
						return ctx.Err()
					}
					m := costMeasure(ctx, targets[name], k.Run, workers, d)
					if m.errs > 0 {
						return fmt.Errorf("%s %s: %d errors, first: %v", k.Name, name, m.errs, m.first)
					}
					got[name] = m
				}
				a, b := got[c.a], got[c.b]
				ratios = append(ratios, (float64(b.ops)/b.secs)/(float64(a.ops)/a.secs))
				ca, cb := float64(a.cpuNs)/float64(a.ops), float64(b.cpuNs)/float64(b.ops)
				cpuA, cpuB = append(cpuA, ca), append(cpuB, cb)
				cpuRatios = append(cpuRatios, cb/ca)
			}
			med, lo, hi := costbench.MedianRange(ratios)
			below := 0
			for _, r := range ratios {
				if r < c.want {
					below++
				}
			}
			res := "MISS"
			if med >= c.want {
				res = "PASS"
			}
			cm, _, _ := costbench.MedianRange(cpuRatios)
			am, _, _ := costbench.MedianRange(cpuA)
			bm, _, _ := costbench.MedianRange(cpuB)
			fmt.Fprintf(w, "| %s | %s | %.3f | %.3f – %.3f | %d of %d | ≥ %.2f | %s | %s, %s | %.3f |\n",
				k.Name, c.name, med, lo, hi, below, rounds, c.want, res, fmtDur(time.Duration(am)), fmtDur(time.Duration(bm)), cm)
		}
	}
	return nil
}
