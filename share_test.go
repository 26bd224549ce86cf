package pgxroute_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pgxroute/pgxroute"
	"github.com/pgxroute/pgxroute/internal/costbench"
	"github.com/pgxroute/pgxroute/routingtest"
)

// TestUnscopedShareFigures measures, for docs/consistency.md, the share of
// reads that replicas serve and the replica's probes per second in a mixed
// workload: 16 readers as fast as they go, writes at 10, 100 and 1,000 per
// second, one replica that replays within milliseconds; once without
// scopes (the pool's own scope) and once with a scope per reader in
// ReadYourWrites mode (each write in a reader's scope, in turn). Every read
// asks the server that answered. It reports and asserts no speed: set
// PGXROUTE_FIGURES=1 to run it.
func TestUnscopedShareFigures(t *testing.T) {
	if os.Getenv("PGXROUTE_FIGURES") == "" {
		t.Skip("figures for the docs: set PGXROUTE_FIGURES=1")
	}
	c := ownCluster(t, routingtest.ClusterOptions{Replicas: 1})
	const run = 4 * time.Second
	var table strings.Builder
	fmt.Fprintf(&table, "| calls | writes/s | reads | on the replica | replica probes/s | stale |\n|---|---|---|---|---|---|\n")
	for _, scoped := range []bool{false, true} {
		for _, rate := range []int{10, 100, 1000} {
			cfg := pgxroute.Config{}
			if scoped {
				cfg.Stickiness = pgxroute.ReadYourWrites
			}
			pool := newPool(t, c, cfg)
			r := runShare(t, c, pool, scoped, rate, run)
			kind := "unscoped"
			if scoped {
				kind = "scopes (ReadYourWrites)"
			}
			fmt.Fprintf(&table, "| %s | %d | %d | %.1f%% | %.0f | %d |\n", kind, rate, r.reads,
				100*r.share(), float64(r.probes)/run.Seconds(), r.stale)
			if r.stale != 0 {
				t.Errorf("%s at %d writes/s: %d stale reads", kind, rate, r.stale)
			}
			pool.Close()
		}
	}
	t.Logf("FIGURES\n%s", table.String())
}

// TestCatchUpGapFigures compares, for docs/consistency.md, the share of
// unscoped reads the replica serves when an asked-for probe starts at once
// (what is left of minProbeGap since the last probe started: the default)
// and when it always waits the whole gap (before), in the workload of
// TestUnscopedShareFigures: ABBA rounds of 2 s per side on two pools of one
// process, over one cluster; the ratio is the median of the rounds'. It
// reports and asserts no speed: set PGXROUTE_FIGURES=1 to run it.
func TestCatchUpGapFigures(t *testing.T) {
	if os.Getenv("PGXROUTE_FIGURES") == "" {
		t.Skip("figures for the docs: set PGXROUTE_FIGURES=1")
	}
	c := ownCluster(t, routingtest.ClusterOptions{Replicas: 1})
	const rounds, run = 10, 2 * time.Second
	atOnce, full := newPool(t, c, pgxroute.Config{}), newPool(t, c, pgxroute.Config{})
	pgxroute.SetFullProbeGap(full, true)
	for _, rate := range []int{100, 1000} {
		var ratios, a, b []float64
		var probesA, probesB int64
		for k := range rounds {
			var ra, rb shareRun
			if k%2 == 0 { // ABBA: A B, then B A
				ra, rb = runShare(t, c, atOnce, false, rate, run), runShare(t, c, full, false, rate, run)
			} else {
				rb = runShare(t, c, full, false, rate, run)
				ra = runShare(t, c, atOnce, false, rate, run)
			}
			a, b = append(a, ra.share()), append(b, rb.share())
			ratios = append(ratios, ra.share()/max(rb.share(), 1e-9))
			probesA, probesB = probesA+ra.probes, probesB+rb.probes
			if ra.stale+rb.stale != 0 {
				t.Errorf("%d writes/s, round %d: %d and %d stale reads", rate, k, ra.stale, rb.stale)
			}
		}
		am, alo, ahi := costbench.MedianRange(a)
		bm, blo, bhi := costbench.MedianRange(b)
		ratio, _, _ := costbench.MedianRange(ratios)
		t.Logf("FIGURES %d writes/s, %d rounds of %v: on the replica at once %.1f%% (median; %.1f-%.1f), whole gap %.1f%% (%.1f-%.1f); ratio median %.2f; replica probes/s %.0f and %.0f",
			rate, rounds, run, 100*am, 100*alo, 100*ahi, 100*bm, 100*blo, 100*bhi,
			ratio, float64(probesA)/(rounds*run.Seconds()), float64(probesB)/(rounds*run.Seconds()))
	}
}

// shareRun is what one runShare measured.
type shareRun struct {
	reads, onReplica, stale, probes int64
}

// share is the share of the reads the replica served.
func (r shareRun) share() float64 { return float64(r.onReplica) / float64(max(r.reads, 1)) }

// runShare runs the workload of TestUnscopedShareFigures on pool for run: 16
// readers as fast as they go, each in a scope of its own when scoped, and
// writes at rate per second (unscoped, or in each reader's scope in turn);
// every read asks the server that answered and checks that it sees the
// last write its reader must see.
func runShare(t *testing.T, c *routingtest.Cluster, pool *pgxroute.RoutedPool, scoped bool, rate int, run time.Duration) shareRun {
	t.Helper()
	const readers = 16
	replica := c.Replicas()[0]
	scopes := make([]context.Context, readers)
	for i := range scopes {
		scopes[i] = context.Background()
		if scoped {
			scopes[i] = pgxroute.WithScope(context.Background())
		}
	}
	routingtest.WaitFor(t, "the first probes", func() bool { return nodeStat(pool, "read", replica.Name()).Position != "" })
	probes0 := nodeStat(pool, "read", replica.Name()).Probes
	var reads, onReplica, stale atomic.Int64
	var last [readers]atomic.Int64 // the id each reader's scope last wrote
	ctx, cancel := context.WithTimeout(context.Background(), run)
	defer cancel()
	var wg sync.WaitGroup
	for r := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				id := last[r].Load()
				var found bool
				var port int
				err := pool.QueryRow(scopes[r], "SELECT EXISTS (SELECT 1 FROM items WHERE id = $1), inet_server_port()", id).Scan(&found, &port)
				if err != nil {
					if ctx.Err() == nil {
						t.Errorf("read: %v", err)
					}
					return
				}
				reads.Add(1)
				if port == replica.Port() {
					onReplica.Add(1)
				}
				if id != 0 && !found {
					stale.Add(1)
				}
			}
		}()
	}
	wg.Add(1)
	go func() { // the writer: unscoped, or in each reader's scope in turn
		defer wg.Done()
		tick := time.NewTicker(time.Second / time.Duration(rate))
		defer tick.Stop()
		for k := 0; ctx.Err() == nil; k++ {
			<-tick.C
			id := nextID()
			r := k % readers
			if _, err := pool.Exec(scopes[r], "INSERT INTO items (id) VALUES ($1)", id); err != nil {
				if ctx.Err() == nil {
					t.Errorf("write: %v", err)
				}
				return
			}
			if scoped {
				last[r].Store(id) // reader r's scope wrote it: its reads must see it
			} else {
				for i := range last {
					last[i].Store(id) // unscoped: every unscoped reader must see it
				}
			}
		}
	}()
	wg.Wait()
	return shareRun{reads: reads.Load(), onReplica: onReplica.Load(), stale: stale.Load(),
		probes: nodeStat(pool, "read", replica.Name()).Probes - probes0}
}
