package main

import (
	"context"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// workload is one kind of operation; an op is the unit of throughput.
type workload struct {
	name string
	desc string
	op   func(ctx context.Context, t target, rng *rand.Rand, rows int64) error
}

var workloads = []workload{
	{"point", "point select by primary key", func(ctx context.Context, t target, rng *rand.Rand, rows int64) error {
		return t.point(ctx, rng.Int64N(rows)+1)
	}},
	{"mixed", "90% point selects, 10% single-row updates", func(ctx context.Context, t target, rng *rand.Rand, rows int64) error {
		id := rng.Int64N(rows) + 1
		if rng.IntN(10) == 0 {
			return t.write(ctx, id)
		}
		return t.point(ctx, id)
	}},
	{"batch", "a batch of 10 point selects", func(ctx context.Context, t target, rng *rand.Rand, rows int64) error {
		var ids [batchSize]int64
		for i := range ids {
			ids[i] = rng.Int64N(rows) + 1
		}
		return t.batch(ctx, &ids)
	}},
	{"rotx", "read-only transaction of 3 point selects", func(ctx context.Context, t target, rng *rand.Rand, rows int64) error {
		var ids [txReads]int64
		for i := range ids {
			ids[i] = rng.Int64N(rows) + 1
		}
		return t.rotx(ctx, &ids)
	}},
}

// measurement is what one run of one target measured.
type measurement struct {
	ops      int64
	errs     int64
	firstErr error
	secs     float64
	h        *hist
}

const (
	phaseWarm = iota
	phaseMeasure
	phaseStop
)

// measure runs wl on t with the given workers: warm first, unrecorded, then
// dur recorded. An operation counts when it started and ended inside the
// recorded window.
func measure(ctx context.Context, t target, wl workload, workers int, warm, dur time.Duration, rows int64, seed uint64) measurement {
	var (
		phase atomic.Int32
		wg    sync.WaitGroup
		mu    sync.Mutex
		m     = measurement{h: &hist{}}
	)
	hists := make([]hist, workers)
	ops := make([]int64, workers)
	errs := make([]int64, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(w)))
			h := &hists[w]
			for {
				ph := phase.Load()
				if ph == phaseStop {
					return
				}
				t0 := time.Now()
				err := wl.op(ctx, t, rng, rows)
				d := time.Since(t0)
				if err != nil {
					errs[w]++
					mu.Lock()
					if m.firstErr == nil {
						m.firstErr = err
					}
					mu.Unlock()
					if ctx.Err() != nil {
						return
					}
					continue
				}
				if ph == phaseMeasure && phase.Load() == phaseMeasure {
					h.record(d)
					ops[w]++
				}
			}
		}()
	}
	sleep(ctx, warm)
	phase.Store(phaseMeasure)
	start := time.Now()
	sleep(ctx, dur)
	phase.Store(phaseStop)
	m.secs = time.Since(start).Seconds()
	wg.Wait()
	for w := range workers {
		m.h.merge(&hists[w])
		m.ops += ops[w]
		m.errs += errs[w]
	}
	return m
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
