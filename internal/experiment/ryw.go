// Package experiment runs the read-your-writes experiment: many scopes
// each write a row and read it back at once and over the next second, under
// each consistency mode, on a real primary and replicas. It counts the reads
// that did not see their own scope's write (stale), asking the server that
// answered, and which servers answered.
package experiment

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgxroute/pgxroute"
	"github.com/pgxroute/pgxroute/routingtest"
)

// Options configures Run.
type Options struct {
	// Duration of each mode's run. Default 5s.
	Duration time.Duration
	// Workers run scopes concurrently. Default 16.
	Workers int
	// FollowUps is the number of reads after the first, spread over
	// FollowUpSpan. Defaults 4 and 1s.
	FollowUps    int
	FollowUpSpan time.Duration
	// Modes to run. Default: NoStickiness, StickyScope, StickyFor(1s),
	// ReadYourWrites.
	Modes []pgxroute.Stickiness
	// Progress, when set, receives a line per mode.
	Progress io.Writer
}

// Result is one mode's figures.
type Result struct {
	Mode          pgxroute.Stickiness
	Scopes        int64
	Writes        int64
	Reads         int64
	Stale         int64 // reads that did not see the scope's own write
	StaleFirst    int64 // of which the read right after the write
	ReplicaReads  int64 // reads a replica answered
	ByNode        map[string]int64
	Duration      time.Duration
	Errors        int64
	FirstErr      string
	WriteLatency  time.Duration // mean
	ReplicaShare  float64
	ThroughputOps float64 // reads and writes per second
}

// Schema creates the experiment's table on the primary; run WaitReplay after.
const Schema = `CREATE TABLE IF NOT EXISTS ryw_rows (id bigint PRIMARY KEY, scope int NOT NULL)`

// StartCluster starts the experiment's cluster: a primary and two replicas,
// the second with a 200 ms apply delay, and creates the table.
func StartCluster(ctx context.Context, log io.Writer) (*routingtest.Cluster, error) {
	c, err := routingtest.StartCluster(ctx, routingtest.ClusterOptions{
		ApplyDelay: []time.Duration{0, 200 * time.Millisecond},
		Log:        log,
	})
	if err != nil {
		return nil, err
	}
	conn, err := pgx.Connect(ctx, c.Primary().ConnString())
	if err != nil {
		c.Close()
		return nil, err
	}
	_, err = conn.Exec(ctx, Schema)
	conn.Close(ctx)
	if err == nil {
		err = c.WaitReplay(ctx)
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// Run runs every mode of opts, one after the other, against cluster c.
func Run(ctx context.Context, c *routingtest.Cluster, opts Options) ([]Result, error) {
	if opts.Duration <= 0 {
		opts.Duration = 5 * time.Second
	}
	if opts.Workers <= 0 {
		opts.Workers = 16
	}
	if opts.FollowUps <= 0 {
		opts.FollowUps = 4
	}
	if opts.FollowUpSpan <= 0 {
		opts.FollowUpSpan = time.Second
	}
	if len(opts.Modes) == 0 {
		opts.Modes = []pgxroute.Stickiness{pgxroute.NoStickiness, pgxroute.StickyScope, pgxroute.StickyFor(time.Second), pgxroute.ReadYourWrites}
	}
	names := map[int]string{}
	for _, n := range c.Nodes() {
		names[n.Port()] = n.Name()
	}
	var results []Result
	var nextID atomic.Int64
	nextID.Store(time.Now().UnixNano())
	for _, mode := range opts.Modes {
		r, err := runMode(ctx, c, opts, mode, names, &nextID)
		if err != nil {
			return results, err
		}
		if opts.Progress != nil {
			fmt.Fprintf(opts.Progress, "%-20s stale %d of %d reads, replica share %.1f%%, %.0f ops/s\n",
				mode, r.Stale, r.Reads, 100*r.ReplicaShare, r.ThroughputOps)
		}
		results = append(results, r)
	}
	return results, nil
}

func runMode(ctx context.Context, c *routingtest.Cluster, opts Options, mode pgxroute.Stickiness, names map[int]string, nextID *atomic.Int64) (Result, error) {
	cfg := pgxroute.Config{
		Primary:    c.Primary().ConnString(),
		Stickiness: mode,
		ConfigurePool: func(_, _ string, pc *pgxpool.Config) {
			pc.MaxConns = int32(opts.Workers)
		},
	}
	for _, r := range c.Replicas() {
		cfg.Replicas = append(cfg.Replicas, pgxroute.Node{Name: r.Name(), ConnString: r.ConnString()})
	}
	pool, err := pgxroute.New(ctx, cfg)
	if err != nil {
		return Result{}, err
	}
	defer pool.Close()
	// Warm every node's pool (a connection per worker, so that no write
	// pays for a new connection) and let the first probes land.
	var warm sync.WaitGroup
	warmErr := make(chan error, 2*opts.Workers)
	for i := 0; i < opts.Workers; i++ {
		for _, wctx := range []context.Context{ctx, pgxroute.WithPrimary(ctx)} {
			warm.Add(1)
			go func() {
				defer warm.Done()
				tx, err := pool.BeginTx(wctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
				if err == nil {
					time.Sleep(50 * time.Millisecond) // hold it, so the others open their own
					err = tx.Rollback(wctx)
				}
				if err != nil {
					warmErr <- err
				}
			}()
		}
	}
	warm.Wait()
	close(warmErr)
	if err := <-warmErr; err != nil {
		return Result{}, err
	}
	time.Sleep(200 * time.Millisecond)

	res := Result{Mode: mode, ByNode: map[string]int64{}}
	var mu sync.Mutex
	var writeNanos atomic.Int64
	deadline := time.Now().Add(opts.Duration)
	start := time.Now()
	var wg sync.WaitGroup
	gap := opts.FollowUpSpan / time.Duration(opts.FollowUps)
	for w := 0; w < opts.Workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := Result{ByNode: map[string]int64{}}
			read := func(ctx context.Context, id int64, first bool) {
				var port int
				var seen bool
				err := pool.QueryRow(ctx, "SELECT inet_server_port(), EXISTS (SELECT 1 FROM ryw_rows WHERE id = $1)", id).Scan(&port, &seen)
				if err != nil {
					local.Errors++
					if local.FirstErr == "" {
						local.FirstErr = err.Error()
					}
					return
				}
				local.Reads++
				node := names[port]
				local.ByNode[node]++
				if node != c.Primary().Name() {
					local.ReplicaReads++
				}
				if !seen {
					local.Stale++
					if first {
						local.StaleFirst++
					}
				}
			}
			for time.Now().Before(deadline) {
				ctx := pgxroute.WithScope(ctx)
				id := nextID.Add(1)
				t0 := time.Now()
				if _, err := pool.Exec(ctx, "INSERT INTO ryw_rows (id, scope) VALUES ($1, 1)", id); err != nil {
					local.Errors++
					if local.FirstErr == "" {
						local.FirstErr = err.Error()
					}
					continue
				}
				writeNanos.Add(int64(time.Since(t0)))
				local.Writes++
				local.Scopes++
				read(ctx, id, true)
				for i := 0; i < opts.FollowUps; i++ {
					time.Sleep(gap)
					read(ctx, id, false)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			res.Scopes += local.Scopes
			res.Writes += local.Writes
			res.Reads += local.Reads
			res.Stale += local.Stale
			res.StaleFirst += local.StaleFirst
			res.ReplicaReads += local.ReplicaReads
			res.Errors += local.Errors
			if res.FirstErr == "" {
				res.FirstErr = local.FirstErr
			}
			for k, v := range local.ByNode {
				res.ByNode[k] += v
			}
		}()
	}
	wg.Wait()
	res.Duration = time.Since(start)
	if res.Writes > 0 {
		res.WriteLatency = time.Duration(writeNanos.Load() / res.Writes)
	}
	if res.Reads > 0 {
		res.ReplicaShare = float64(res.ReplicaReads) / float64(res.Reads)
	}
	res.ThroughputOps = float64(res.Reads+res.Writes) / res.Duration.Seconds()
	return res, nil
}

// WriteTable prints the results as a table.
func WriteTable(w io.Writer, results []Result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "mode\tscopes\treads\tstale\tstale first read\treplica share\tprimary\treplica1\treplica2\tops/s\tmean write\terrors\t")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%.1f%%\t%d\t%d\t%d\t%.0f\t%v\t%d\t\n",
			r.Mode, r.Scopes, r.Reads, r.Stale, r.StaleFirst, 100*r.ReplicaShare,
			r.ByNode["primary"], r.ByNode["replica1"], r.ByNode["replica2"], r.ThroughputOps, r.WriteLatency.Round(time.Microsecond), r.Errors)
	}
	tw.Flush()
}
