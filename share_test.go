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
	replica := c.Replicas()[0]
	const readers, run = 16, 4 * time.Second
	var table strings.Builder
	fmt.Fprintf(&table, "| calls | writes/s | reads | on the replica | replica probes/s | stale |\n|---|---|---|---|---|---|\n")
	for _, scoped := range []bool{false, true} {
		for _, rate := range []int{10, 100, 1000} {
			cfg := pgxroute.Config{}
			if scoped {
				cfg.Stickiness = pgxroute.ReadYourWrites
			}
			pool := newPool(t, c, cfg)
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
					wctx := scopes[r]
					if _, err := pool.Exec(wctx, "INSERT INTO items (id) VALUES ($1)", id); err != nil {
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
			cancel()
			probes := nodeStat(pool, "read", replica.Name()).Probes - probes0
			kind := "unscoped"
			if scoped {
				kind = "scopes (ReadYourWrites)"
			}
			fmt.Fprintf(&table, "| %s | %d | %d | %.1f%% | %.0f | %d |\n", kind, rate, reads.Load(),
				100*float64(onReplica.Load())/float64(max(reads.Load(), 1)), float64(probes)/run.Seconds(), stale.Load())
			if stale.Load() != 0 {
				t.Errorf("%s at %d writes/s: %d stale reads", kind, rate, stale.Load())
			}
			pool.Close()
		}
	}
	t.Logf("FIGURES\n%s", table.String())
}
