package pgxroute_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgxroute/pgxroute"
	"github.com/pgxroute/pgxroute/routingtest"
)

// The pool's own scope: calls whose context carries no scope read their
// own writes by default (Config.ForgetUnscopedWrites).

// lateCluster is a cluster whose replica1 applies WAL 2 s late and whose
// replica2 replays at once.
func lateCluster(t *testing.T) *routingtest.Cluster {
	return ownCluster(t, routingtest.ClusterOptions{ApplyDelay: []time.Duration{2 * time.Second, 0}})
}

// unscopedWrite writes row id without a scope through one of the write
// paths.
func unscopedWrite(ctx context.Context, pool *pgxroute.RoutedPool, path string, id int64) error {
	switch path {
	case "QueryRow":
		var got int64
		return pool.QueryRow(ctx, "INSERT INTO items (id) VALUES ($1) RETURNING id", id).Scan(&got)
	case "Exec":
		_, err := pool.Exec(ctx, "INSERT INTO items (id) VALUES ($1)", id)
		return err
	case "transaction":
		return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, "INSERT INTO items (id) VALUES ($1)", id)
			return err
		})
	case "batch":
		b := &pgx.Batch{}
		b.Queue("INSERT INTO items (id) VALUES ($1)", id)
		return pool.SendBatch(ctx, b).Close()
	case "CopyFrom":
		_, err := pool.CopyFrom(ctx, pgx.Identifier{"items"}, []string{"id"}, pgx.CopyFromRows([][]any{{id}}))
		return err
	}
	return fmt.Errorf("no write path %q", path)
}

var writePaths = []string{"QueryRow", "Exec", "transaction", "batch", "CopyFrom"}

// readBack reads row id without a scope and reports whether it was found
// and which port answered.
func readBack(ctx context.Context, pool *pgxroute.RoutedPool, id int64) (found bool, port int, err error) {
	err = pool.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM items WHERE id = $1), inet_server_port()", id).Scan(&found, &port)
	return found, port, err
}

// TestUnscopedReadYourWrites: with the default configuration and a replica
// 2 s late beside a fast one, 8 goroutines write without a scope through
// every write path and read the row back without a scope at once and 5,
// 10, 20 and 40 ms later: no read is stale. Reads with no write before them
// all go to the replicas, and after the writes stop unscoped reads are back
// on a replica once it has replayed the last write.
func TestUnscopedReadYourWrites(t *testing.T) {
	c := lateCluster(t)
	ctx := context.Background()
	pool := newPool(t, c, pgxroute.Config{})
	ports := map[int]string{}
	for _, n := range c.Nodes() {
		ports[n.Port()] = n.Name()
	}

	// No write yet: every unscoped read on a replica.
	for range 40 {
		_, port, err := readBack(ctx, pool, -1)
		if err != nil {
			t.Fatal(err)
		}
		if ports[port] == c.Primary().Name() {
			t.Fatalf("an unscoped read with no write before it ran on the primary")
		}
	}

	delays := []time.Duration{0, 5 * time.Millisecond, 10 * time.Millisecond, 20 * time.Millisecond, 40 * time.Millisecond}
	var stale, reads atomic.Int64
	var mu sync.Mutex
	served := map[string]map[string]int{} // delay -> node -> reads
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for round := range 2 {
				for _, path := range writePaths {
					id := nextID()
					if err := unscopedWrite(ctx, pool, path, id); err != nil {
						t.Errorf("worker %d %s write: %v", w, path, err)
						return
					}
					start := time.Now()
					for _, d := range delays {
						time.Sleep(time.Until(start.Add(d)))
						found, port, err := readBack(ctx, pool, id)
						if err != nil {
							t.Errorf("worker %d round %d %s read: %v", w, round, path, err)
							return
						}
						reads.Add(1)
						if !found {
							stale.Add(1)
							t.Errorf("stale read: %s's row %d not found %v after the write, on %s", path, id, d, ports[port])
						}
						mu.Lock()
						k := d.String()
						if served[k] == nil {
							served[k] = map[string]int{}
						}
						served[k][ports[port]]++
						mu.Unlock()
					}
				}
			}
		}()
	}
	wg.Wait()
	t.Logf("FIGURES %d unscoped reads after unscoped writes, %d stale; served by delay after the write: %v", reads.Load(), stale.Load(), served)

	// After the writes stop: back on a replica (the fast one) once it has
	// replayed the last write.
	id := nextID()
	if err := unscopedWrite(ctx, pool, "Exec", id); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var onReplica time.Duration
	routingtest.WaitFor(t, "an unscoped read on a replica after the last write", func() bool {
		found, port, err := readBack(ctx, pool, id)
		if err != nil {
			t.Fatal(err)
		}
		if !found {
			t.Fatalf("stale read of the last write on %s", ports[port])
		}
		if ports[port] != c.Primary().Name() {
			onReplica = time.Since(start)
			return true
		}
		return false
	})
	t.Logf("FIGURES after the last unscoped write, first unscoped read on a replica %v later", onReplica.Round(100*time.Microsecond))
	st := nodeStat(pool, pgxroute.DefaultGroupName, primaryName(c))
	if st.Calls[pgxroute.ReasonUnscopedBehind] == 0 {
		t.Errorf("no unscoped read was counted as sent to the primary for the replicas being behind: %v", st.Calls)
	}
}

// TestUnscopedOff: ForgetUnscopedWrites and NoStickiness keep the pool's
// scope off (unscoped reads go to the replicas right after a write, and the
// late one serves stale rows); and a scope's reads are never sent to the
// primary by the pool's unscoped writes.
func TestUnscopedOff(t *testing.T) {
	c := lateCluster(t)
	ctx := context.Background()
	for _, tt := range []struct {
		name string
		cfg  pgxroute.Config
	}{
		{"ForgetUnscopedWrites", pgxroute.Config{ForgetUnscopedWrites: true}},
		{"NoStickiness", pgxroute.Config{Stickiness: pgxroute.NoStickiness}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			pool := newPool(t, c, tt.cfg)
			stale := 0
			for range 20 {
				id := nextID()
				if err := unscopedWrite(ctx, pool, "Exec", id); err != nil {
					t.Fatal(err)
				}
				found, port, err := readBack(ctx, pool, id)
				if err != nil {
					t.Fatal(err)
				}
				if port == c.Primary().Port() {
					t.Fatalf("an unscoped read after an unscoped write ran on the primary")
				}
				if !found {
					stale++
				}
			}
			t.Logf("FIGURES %s: %d of 20 reads right after a write stale", tt.name, stale)
			if stale == 0 {
				t.Errorf("no stale read with the late replica taking half the reads: the test cannot tell")
			}
			st := nodeStat(pool, pgxroute.DefaultGroupName, primaryName(c))
			if n := st.Calls[pgxroute.ReasonUnscopedBehind]; n != 0 {
				t.Errorf("%d unscoped reads sent to the primary for the pool's writes", n)
			}
		})
	}
	t.Run("scopes are their own unit of work", func(t *testing.T) {
		pool := newPool(t, c, pgxroute.Config{})
		if err := unscopedWrite(ctx, pool, "Exec", nextID()); err != nil {
			t.Fatal(err)
		}
		for range 10 {
			sctx := pgxroute.WithScope(ctx)
			_, port, err := readBack(sctx, pool, -1)
			if err != nil {
				t.Fatal(err)
			}
			if port == c.Primary().Port() {
				t.Fatalf("a scope's read went to the primary after the pool's unscoped write")
			}
		}
	})
}

// TestUnscopedAcrossFailover: the pool's position from the old primary's
// timeline neither allows a stale read nor strands unscoped reads on the new
// primary: it is replaced by the new primary's, and unscoped reads go back
// to the replica once it has replayed that.
func TestUnscopedAcrossFailover(t *testing.T) {
	c := ownCluster(t, routingtest.ClusterOptions{})
	ctx := context.Background()
	old, r1, r2 := c.Primary(), c.Replicas()[0], c.Replicas()[1]
	pool := failoverPool(t, c, pgxroute.Config{Health: fastHealth})
	for range 5 {
		if err := unscopedWrite(ctx, pool, "Exec", nextID()); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Kill(old); err != nil {
		t.Fatal(err)
	}
	if err := c.Promote(ctx, r1); err != nil {
		t.Fatal(err)
	}
	if err := c.Rejoin(ctx, r2, r1); err != nil {
		t.Fatal(err)
	}
	routingtest.WaitFor(t, "r1 the primary", func() bool { return pool.Stat().Primary == r1.Name() })
	// Unscoped reads are not stranded on r1: back on r2 once it has
	// replayed r1's position.
	routingtest.WaitFor(t, "an unscoped read on r2 after the failover", func() bool {
		return routingtest.ServedBy(t, ctx, c, pool, "SELECT inet_server_port()") == r2.Name()
	})
	// And a write on the new primary is read back without a stale read.
	for range 20 {
		id := nextID()
		if err := unscopedWrite(ctx, pool, "QueryRow", id); err != nil {
			t.Fatal(err)
		}
		found, port, err := readBack(ctx, pool, id)
		if err != nil {
			t.Fatal(err)
		}
		if !found {
			t.Fatalf("stale read after the failover on port %d", port)
		}
	}
}
