package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pgxroute/pgxroute"
)

// The demo's statements. Each one returns the port of the server that ran
// it (inet_server_port()): that is how the demo counts who answered.
const (
	demoInsert = `INSERT INTO demo_items (note) VALUES ($1) RETURNING id, inet_server_port()`
	// demoSelect always returns one row, also when the row is missing (a
	// stale sticky read): its note is then NULL.
	demoSelect = `SELECT (SELECT note FROM demo_items WHERE id = $1), inet_server_port()`
)

// demoSeedRows is the number of rows the point reads choose from.
const demoSeedRows = 10000

// Bounds of one call of the workload: no call waits forever, whatever the
// fault. A write may wait for a new primary up to the pool's
// FailoverTimeout (30 s), so it gets a little more.
const (
	readTimeout  = 30 * time.Second
	writeTimeout = 40 * time.Second
)

// portTally counts what one server answered, by its own account.
type portTally struct {
	reads, writes atomic.Int64

	mu         sync.Mutex
	window     []time.Duration // latencies of the calls answered since the last take
	firstWrite time.Time       // the first write it acknowledged in this tally
}

// tally is one scenario's count of the workload's calls. Every success is
// counted by the port the answering server reported; failures by the error.
type tally struct {
	reads, readsFailed                  atomic.Int64
	writes, writesNeverSent, writesUnkn atomic.Int64
	sticky, stickyStale                 atomic.Int64
	staleElsewhere                      atomic.Int64 // stale sticky reads another server answered than the write's
	slowestRead                         atomic.Int64 // nanoseconds
	ports                               map[int]*portTally
	otherPort                           atomic.Int64 // answers from a port that is no node (never expected)
	errMu                               sync.Mutex
	firstErr                            string
}

func newTally(ports []int) *tally {
	t := &tally{ports: map[int]*portTally{}}
	for _, p := range ports {
		t.ports[p] = &portTally{}
	}
	return t
}

// answered records a call that port answered after took.
func (t *tally) answered(port int, took time.Duration, write bool) {
	pt := t.ports[port]
	if pt == nil {
		t.otherPort.Add(1)
		return
	}
	if write {
		pt.writes.Add(1)
	} else {
		pt.reads.Add(1)
	}
	pt.mu.Lock()
	pt.window = append(pt.window, took)
	if write && pt.firstWrite.IsZero() {
		pt.firstWrite = time.Now()
	}
	pt.mu.Unlock()
}

// takeWindow returns the latencies port's server answered with since the
// last take, and forgets them.
func (t *tally) takeWindow(port int) []time.Duration {
	pt := t.ports[port]
	if pt == nil {
		return nil
	}
	pt.mu.Lock()
	w := pt.window
	pt.window = nil
	pt.mu.Unlock()
	return w
}

// firstWriteOn returns when port's server acknowledged its first write of
// this tally, or the zero time.
func (t *tally) firstWriteOn(port int) time.Time {
	pt := t.ports[port]
	if pt == nil {
		return time.Time{}
	}
	pt.mu.Lock()
	defer pt.mu.Unlock()
	return pt.firstWrite
}

func (t *tally) fail(err error) {
	t.errMu.Lock()
	if t.firstErr == "" {
		t.firstErr = redact(err.Error())
	}
	t.errMu.Unlock()
}

func (t *tally) firstError() string {
	t.errMu.Lock()
	defer t.errMu.Unlock()
	return t.firstErr
}

// runWorkers runs n workers on pool until ctx ends, counting into t; each
// waits pause between two units of work.
func runWorkers(ctx context.Context, pool *pgxroute.RoutedPool, t *tally, n int, pause time.Duration) *sync.WaitGroup {
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			demoWorker(ctx, pool, t, i, pause)
		}()
	}
	return &wg
}

// demoWorker runs units of work (scopes) until ctx ends: one in ten writes a
// row and reads it back in its scope (a sticky read, which the primary
// serves), the others read one to three rows by id (replica reads).
func demoWorker(ctx context.Context, pool *pgxroute.RoutedPool, t *tally, worker int, pause time.Duration) {
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(worker)))
	for n := 0; ctx.Err() == nil; n++ {
		if n > 0 && pause > 0 && !sleepCtx(ctx, pause) {
			return
		}
		sctx := pgxroute.WithScope(ctx)
		if rng.IntN(10) == 0 {
			note := fmt.Sprintf("worker %d write %d", worker, n)
			id, wport, ok := demoWrite(ctx, sctx, pool, t, note)
			if !ok {
				continue
			}
			got, rport, ok := demoRead(ctx, sctx, pool, t, id)
			if ok {
				t.sticky.Add(1)
				if got != note {
					t.stickyStale.Add(1)
					if rport != wport {
						t.staleElsewhere.Add(1)
					}
				}
			}
			continue
		}
		for range 1 + rng.IntN(3) {
			demoRead(ctx, sctx, pool, t, 1+rng.Int64N(demoSeedRows))
		}
	}
}

// demoWrite inserts a row and returns its id and the port of the server
// that acknowledged it. A failure is counted (unless ctx ended: the
// scenario is over) as never sent or outcome unknown.
func demoWrite(ctx, sctx context.Context, pool *pgxroute.RoutedPool, t *tally, note string) (int64, int, bool) {
	cctx, cancel := context.WithTimeout(sctx, writeTimeout)
	defer cancel()
	start := time.Now()
	var id int64
	var port int
	err := pool.QueryRow(cctx, demoInsert, note).Scan(&id, &port)
	took := time.Since(start)
	if err != nil {
		if ctx.Err() == nil {
			if errors.Is(err, pgxroute.ErrOutcomeUnknown) {
				t.writesUnkn.Add(1)
			} else {
				t.writesNeverSent.Add(1)
			}
			t.fail(err)
		}
		return 0, 0, false
	}
	t.writes.Add(1)
	t.answered(port, took, true)
	return id, port, true
}

// demoRead reads row id and returns its note ("" when the row is missing)
// and the port of the server that answered.
func demoRead(ctx, sctx context.Context, pool *pgxroute.RoutedPool, t *tally, id int64) (string, int, bool) {
	cctx, cancel := context.WithTimeout(sctx, readTimeout)
	defer cancel()
	start := time.Now()
	var note *string
	var port int
	err := pool.QueryRow(cctx, demoSelect, id).Scan(&note, &port)
	took := time.Since(start)
	if err != nil {
		if ctx.Err() == nil {
			t.readsFailed.Add(1)
			t.fail(err)
		}
		return "", 0, false
	}
	t.reads.Add(1)
	for {
		old := t.slowestRead.Load()
		if int64(took) <= old || t.slowestRead.CompareAndSwap(old, int64(took)) {
			break
		}
	}
	t.answered(port, took, false)
	if note == nil {
		return "", port, true
	}
	return *note, port, true
}

// p99 returns the 99th percentile of ds (nearest rank), 0 for none.
func p99(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (len(s)*99+99)/100 - 1
	return s[min(max(i, 0), len(s)-1)]
}
