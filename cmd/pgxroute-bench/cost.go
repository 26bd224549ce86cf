package main

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgxroute/pgxroute"
)

// The cost of routing (-cost): the same calls on a raw *pgxpool.Pool and on
// a RoutedPool over the same server, pools of the same size kept open for
// the whole run, the same workers, in paired rounds of a fixed duration
// whose order alternates ABBA (A B, B A, A B, ...). Each pair's ratio is
// B's throughput over A's in the same pair of rounds; the result is the
// median of those ratios and their range. Client CPU per call is the
// process's getrusage time over each round's calls.

// costQuerier is what the cost workloads call.
type costQuerier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

const costSQL = "SELECT $1::int + 1"

// costKinds are the calls measured, by name.
var costKinds = []struct {
	name string
	run  func(ctx context.Context, q costQuerier, i int) error
}{
	{"QueryRow", func(ctx context.Context, q costQuerier, i int) error {
		var v int
		return q.QueryRow(ctx, costSQL, i).Scan(&v)
	}},
	{"Query", func(ctx context.Context, q costQuerier, i int) error {
		rows, _ := q.Query(ctx, costSQL, i)
		for rows.Next() {
		}
		rows.Close()
		return rows.Err()
	}},
	{"Exec", func(ctx context.Context, q costQuerier, i int) error {
		_, err := q.Exec(ctx, costSQL, i)
		return err
	}},
	{"Batch10", func(ctx context.Context, q costQuerier, i int) error {
		var b pgx.Batch
		for j := range 10 {
			b.Queue(costSQL, i+j)
		}
		return q.SendBatch(ctx, &b).Close()
	}},
}

// costPair alternates calls over two pools by hand.
type costPair struct {
	pools [2]*pgxpool.Pool
	n     atomic.Uint64
}

func (p *costPair) next() *pgxpool.Pool { return p.pools[p.n.Add(1)&1] }
func (p *costPair) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return p.next().QueryRow(ctx, sql, args...)
}
func (p *costPair) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	return p.next().Query(ctx, sql, args...)
}
func (p *costPair) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	return p.next().Exec(ctx, sql, args...)
}
func (p *costPair) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	return p.next().SendBatch(ctx, b)
}

// costRound is one round of one target.
type costRound struct {
	ops   int64
	secs  float64
	cpuNs int64
	errs  int64
	first error
}

func processCPU() int64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// costMeasure runs one kind on q with workers goroutines for d.
func costMeasure(ctx context.Context, q costQuerier, run func(context.Context, costQuerier, int) error, workers int, d time.Duration) costRound {
	var ops, errs atomic.Int64
	var first atomic.Value
	var stop atomic.Bool
	var wg sync.WaitGroup
	cpu0, t0 := processCPU(), time.Now()
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
	r := costRound{ops: ops.Load(), secs: time.Since(t0).Seconds(), cpuNs: processCPU() - cpu0, errs: errs.Load()}
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
	targets := map[string]costQuerier{}
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
	pr := &costPair{}
	for i := range pr.pools {
		if pr.pools[i], err = openRaw(s.replicas[i]); err != nil {
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
	for _, k := range costKinds {
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
					m := costMeasure(ctx, targets[name], k.run, workers, d)
					if m.errs > 0 {
						return fmt.Errorf("%s %s: %d errors, first: %v", k.name, name, m.errs, m.first)
					}
					got[name] = m
				}
				a, b := got[c.a], got[c.b]
				ratios = append(ratios, (float64(b.ops)/b.secs)/(float64(a.ops)/a.secs))
				ca, cb := float64(a.cpuNs)/float64(a.ops), float64(b.cpuNs)/float64(b.ops)
				cpuA, cpuB = append(cpuA, ca), append(cpuB, cb)
				cpuRatios = append(cpuRatios, cb/ca)
			}
			med, lo, hi := medianRange(ratios)
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
			cm, _, _ := medianRange(cpuRatios)
			am, _, _ := medianRange(cpuA)
			bm, _, _ := medianRange(cpuB)
			fmt.Fprintf(w, "| %s | %s | %.3f | %.3f – %.3f | %d of %d | ≥ %.2f | %s | %s, %s | %.3f |\n",
				k.name, c.name, med, lo, hi, below, rounds, c.want, res, fmtDur(time.Duration(am)), fmtDur(time.Duration(bm)), cm)
		}
	}
	return nil
}

// medianRange returns the median, least and greatest of v.
func medianRange(v []float64) (med, lo, hi float64) {
	if len(v) == 0 {
		return 0, 0, 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	med = s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return med, s[0], s[len(s)-1]
}
