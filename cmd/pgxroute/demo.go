package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgxroute/pgxroute"
	"github.com/pgxroute/pgxroute/routingtest"
)

const demoAbout = `
Demo starts a local PostgreSQL primary and two streaming replicas (it needs
only the PostgreSQL server binaries), and runs a mixed workload through a
pgxroute.RoutedPool: each worker loops over units of work (scopes); one in ten
writes a row and reads it back (a sticky read, served by the primary), the
others read rows by id from the replicas. Every read asks the server which
port answered it (inet_server_port()), so the table and the summary show who
served the reads by the servers' own account (SERVED), next to the router's
count. Half-way through, replica1 is killed (SIGKILL): reads carry on on
replica2. The servers and their files are removed at the end, also on Ctrl-C.`

// demoOptions configures runDemo.
type demoOptions struct {
	Duration time.Duration
	Workers  int
	Kill     bool // kill replica1 half-way
	Restart  bool // start it again at three quarters
	TTY      bool // redraw the table in place
	Interval time.Duration
	// Metrics, when set, is the address (host:port) where the demo serves
	// its pool's Prometheus metrics at /metrics while it runs.
	Metrics string
}

// demoSummary is the outcome of a demo run.
type demoSummary struct {
	Elapsed      time.Duration
	StartTime    time.Duration // to start the servers
	Reads        int64         // point reads and sticky reads that succeeded
	ReadsFailed  int64
	Writes       int64
	WritesFailed int64
	StickyReads  int64
	StickyStale  int64 // sticky reads that did not find their scope's row
	Retries      int64 // routed calls retried on another node
	FirstError   string
	Served       map[string]int64 // node name -> reads it reported serving
	Nodes        []nodeRow
	Ejections    map[string]int64
	Readmissions map[string]int64
	Killed       string
	KilledAt     time.Duration
	RestartedAt  time.Duration
	Interrupted  bool
}

// demoSeedRows is the number of rows the point reads choose from.
const demoSeedRows = 10000

func runDemoCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o := demoOptions{}
	fs := newFlagSet("demo", "[-duration 8s] [-workers 8] [-kill=true] [-restart=true] [-plain] [-metrics 127.0.0.1:9187]", demoAbout, stdout)
	fs.DurationVar(&o.Duration, "duration", 8*time.Second, "how long the workload runs")
	fs.IntVar(&o.Workers, "workers", 8, "concurrent workers")
	fs.BoolVar(&o.Kill, "kill", true, "kill replica1 half-way through")
	fs.BoolVar(&o.Restart, "restart", true, "start the killed replica again at three quarters")
	plain := fs.Bool("plain", false, "print plain lines even on a terminal")
	fs.StringVar(&o.Metrics, "metrics", "", "serve the pool's Prometheus metrics at http://`host:port`/metrics while the demo runs")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	if o.Duration <= 0 || o.Workers <= 0 {
		return usagef("-duration and -workers must be positive")
	}
	if f, ok := stdout.(*os.File); ok && !*plain {
		o.TTY = isTerminal(f)
	}
	_, err = runDemo(ctx, o, stdout)
	return err
}

// demoCounters are the workload's own counts.
type demoCounters struct {
	reads, readsFailed, writes, writesFailed, sticky, stickyStale atomic.Int64
	served                                                        map[int]*atomic.Int64 // by port
	mu                                                            sync.Mutex
	firstErr                                                      string
}

func (dc *demoCounters) fail(err error) {
	dc.mu.Lock()
	if dc.firstErr == "" {
		dc.firstErr = redact(err.Error())
	}
	dc.mu.Unlock()
}

// runDemo runs the demo, printing to out, and returns its summary. It
// removes the cluster before it returns.
func runDemo(ctx context.Context, o demoOptions, out io.Writer) (*demoSummary, error) {
	if o.Interval <= 0 {
		o.Interval = time.Second
		if o.TTY {
			o.Interval = 250 * time.Millisecond
		}
	}
	if bin, err := routingtest.FindBinDir(""); err == nil {
		fmt.Fprintf(out, "Starting a primary and two replicas (PostgreSQL binaries in %s)...\n", bin)
	}
	t0 := time.Now()
	c, err := routingtest.StartCluster(ctx, routingtest.ClusterOptions{})
	if err != nil {
		if errors.Is(err, routingtest.ErrNoServer) || errors.Is(err, routingtest.ErrNoUnprivilegedUser) {
			return nil, err // its message says what to install or create
		}
		return nil, fmt.Errorf("start the cluster: %w", err)
	}
	closed := false
	closeCluster := func() {
		if !closed {
			closed = true
			if err := c.Close(); err != nil {
				fmt.Fprintf(out, "warning: closing the cluster: %v\n", err)
			}
		}
	}
	defer closeCluster()
	sum := &demoSummary{StartTime: time.Since(t0), Served: map[string]int64{}, Ejections: map[string]int64{}, Readmissions: map[string]int64{}}
	fmt.Fprintf(out, "Servers started in %s:", sum.StartTime.Round(10*time.Millisecond))
	names := map[int]string{}
	for _, n := range c.Nodes() {
		names[n.Port()] = n.Name()
		fmt.Fprintf(out, " %s 127.0.0.1:%d", n.Name(), n.Port())
	}
	fmt.Fprintln(out)

	if err := demoSchema(ctx, c); err != nil {
		return nil, err
	}
	cfg := pgxroute.Config{
		Groups: map[string][]pgxroute.Node{
			pgxroute.DefaultGroupName: {{Name: c.Primary().Name(), ConnString: c.Primary().ConnString()}},
		},
		Health: pgxroute.HealthConfig{Interval: 200 * time.Millisecond, Timeout: time.Second},
	}
	for _, r := range c.Replicas() {
		cfg.Replicas = append(cfg.Replicas, pgxroute.Node{Name: r.Name(), ConnString: r.ConnString()})
	}
	pool, err := pgxroute.New(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	if o.Metrics != "" {
		addr, stopMetrics, err := serveMetrics(o.Metrics, pool)
		if err != nil {
			return nil, err
		}
		defer stopMetrics()
		fmt.Fprintf(out, "Metrics: curl http://%s/metrics\n", addr)
	}
	fmt.Fprintf(out, "Workload: %d workers for %s, strategy %s, stickiness %s; one scope in ten writes then reads its row back\n",
		o.Workers, o.Duration, cfg.Strategy, cfg.Stickiness)

	dc := &demoCounters{served: map[int]*atomic.Int64{}}
	for port := range names {
		dc.served[port] = new(atomic.Int64)
	}
	view := newLive(out, o.TTY)
	wctx, stop := context.WithTimeout(ctx, o.Duration)
	defer stop()
	start := time.Now()
	snapshot := func() frame {
		return demoFrame(pool.Stat(), dc, names, time.Since(start))
	}

	var wg sync.WaitGroup
	for i := range o.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			demoWorker(wctx, pool, dc, i)
		}()
	}
	var bg sync.WaitGroup
	if o.Kill && len(c.Replicas()) > 0 {
		victim := c.Replicas()[0]
		bg.Add(1)
		go func() {
			defer bg.Done()
			if !sleepCtx(wctx, o.Duration/2) {
				return
			}
			if err := c.Kill(victim); err != nil {
				view.Event("kill %s: %v", victim.Name(), err)
				return
			}
			sum.Killed, sum.KilledAt = victim.Name(), time.Since(start)
			view.Event(">>> %s killed (SIGKILL) at %.1fs: reads carry on on the other replica", victim.Name(), sum.KilledAt.Seconds())
			if !o.Restart || !sleepCtx(wctx, o.Duration/4) {
				return
			}
			if err := c.Start(wctx, victim); err != nil {
				if wctx.Err() == nil {
					view.Event("restart %s: %v", victim.Name(), err)
				}
				return
			}
			sum.RestartedAt = time.Since(start)
			view.Event(">>> %s started again at %.1fs: the health checks re-admit it", victim.Name(), sum.RestartedAt.Seconds())
		}()
	}
	bg.Add(1)
	go func() {
		defer bg.Done()
		tick := time.NewTicker(o.Interval)
		defer tick.Stop()
		for {
			select {
			case <-wctx.Done():
				return
			case <-tick.C:
				view.Frame(snapshot())
			}
		}
	}()
	wg.Wait()
	bg.Wait()
	sum.Elapsed = time.Since(start)
	last := snapshot()
	view.Frame(last)
	sum.Interrupted = ctx.Err() != nil

	sum.Reads, sum.ReadsFailed = dc.reads.Load(), dc.readsFailed.Load()
	sum.Writes, sum.WritesFailed = dc.writes.Load(), dc.writesFailed.Load()
	sum.StickyReads, sum.StickyStale = dc.sticky.Load(), dc.stickyStale.Load()
	sum.FirstError = dc.firstErr
	sum.Nodes = last.Rows
	for port, n := range dc.served {
		sum.Served[names[port]] = n.Load()
	}
	for _, g := range pool.Stat().Groups {
		for _, n := range g.Nodes {
			sum.Retries += n.Calls[pgxroute.ReasonRetry]
			sum.Ejections[n.Name] = max(sum.Ejections[n.Name], n.Ejections)
			sum.Readmissions[n.Name] = max(sum.Readmissions[n.Name], n.Readmissions)
		}
	}
	printSummary(out, sum, o, cfg)

	pool.Close()
	t1 := time.Now()
	closeCluster()
	fmt.Fprintf(out, "Servers stopped and their files removed in %s.\n", time.Since(t1).Round(10*time.Millisecond))
	if sum.Interrupted {
		return sum, errors.New("interrupted")
	}
	return sum, nil
}

// demoSchema creates the demo's table on the primary, fills it and waits
// until the replicas have it.
func demoSchema(ctx context.Context, c *routingtest.Cluster) error {
	conn, err := pgx.Connect(ctx, c.Primary().ConnString())
	if err != nil {
		return fmt.Errorf("connect to the primary: %w", err)
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, `CREATE TABLE demo_items (id bigserial PRIMARY KEY, note text NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
INSERT INTO demo_items (note) SELECT 'seed ' || g FROM generate_series(1, `+fmt.Sprint(demoSeedRows)+`) AS g`)
	if err != nil {
		return fmt.Errorf("create the demo table: %w", err)
	}
	return c.WaitReplay(ctx)
}

// The demo's statements. Each read returns the port of the server that ran it.
const (
	demoInsert = `INSERT INTO demo_items (note) VALUES ($1) RETURNING id`
	demoSelect = `SELECT note, inet_server_port() FROM demo_items WHERE id = $1`
)

// demoWorker runs scopes until ctx ends.
func demoWorker(ctx context.Context, pool *pgxroute.RoutedPool, dc *demoCounters, worker int) {
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(worker)))
	for n := 0; ctx.Err() == nil; n++ {
		sctx := pgxroute.WithScope(ctx)
		if rng.IntN(10) == 0 {
			note := fmt.Sprintf("worker %d write %d", worker, n)
			var id int64
			if err := pool.QueryRow(sctx, demoInsert, note).Scan(&id); err != nil {
				if ctx.Err() == nil {
					dc.writesFailed.Add(1)
					dc.fail(err)
				}
				continue
			}
			dc.writes.Add(1)
			got, ok := demoRead(ctx, sctx, pool, dc, id)
			if ok {
				dc.sticky.Add(1)
				if got != note {
					dc.stickyStale.Add(1)
				}
			}
			continue
		}
		for range 1 + rng.IntN(3) {
			demoRead(ctx, sctx, pool, dc, 1+rng.Int64N(demoSeedRows))
		}
	}
}

// demoRead reads row id and counts the read by the port that served it. A
// missing row is not a failure: it returns "" (a stale sticky read).
func demoRead(ctx, sctx context.Context, pool *pgxroute.RoutedPool, dc *demoCounters, id int64) (string, bool) {
	var note string
	var port int
	err := pool.QueryRow(sctx, demoSelect, id).Scan(&note, &port)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		dc.reads.Add(1)
		return "", true
	case err != nil:
		if ctx.Err() == nil {
			dc.readsFailed.Add(1)
			dc.fail(err)
		}
		return "", false
	}
	dc.reads.Add(1)
	if c := dc.served[port]; c != nil {
		c.Add(1)
	}
	return note, true
}

// demoFrame builds a frame of the live table from the router's statistics
// and the workload's counts.
func demoFrame(st *pgxroute.Stat, dc *demoCounters, names map[int]string, elapsed time.Duration) frame {
	f := frame{
		Elapsed: elapsed, Reads: dc.reads.Load(), ReadsFailed: dc.readsFailed.Load(),
		Writes: dc.writes.Load(), WritesFailed: dc.writesFailed.Load(), Sticky: dc.sticky.Load(),
	}
	served := map[string]int64{}
	for port, n := range dc.served {
		served[names[port]] = n.Load()
	}
	index := map[string]int{}
	for _, g := range st.Groups {
		for _, n := range g.Nodes {
			i, ok := index[n.Name]
			if !ok {
				i = len(f.Rows)
				index[n.Name] = i
				f.Rows = append(f.Rows, nodeRow{
					Name: n.Name, Group: g.Name, State: n.State.String(), Role: n.Role,
					Served: served[n.Name], InFlight: n.InFlight, Lag: n.Lag, LagBytes: n.LagBytes,
				})
			}
			r := &f.Rows[i]
			r.Reads += n.Calls[pgxroute.ReasonRead] + n.Calls[pgxroute.ReasonReadNoScope] + n.Calls[pgxroute.ReasonReadLagging] +
				n.Calls[pgxroute.ReasonCaughtUp] + n.Calls[pgxroute.ReasonRetry] + n.Calls[pgxroute.ReasonFallback] + n.Calls[pgxroute.ReasonNoReadGroup]
			r.Writes += n.Calls[pgxroute.ReasonWrite] + n.Calls[pgxroute.ReasonWriteNoScope] + n.Calls[pgxroute.ReasonTransaction]
			r.Sticky += n.Calls[pgxroute.ReasonSticky] + n.Calls[pgxroute.ReasonReplicasBehind]
		}
	}
	return f
}

// printSummary prints the end of the demo.
func printSummary(w io.Writer, s *demoSummary, o demoOptions, cfg pgxroute.Config) {
	secs := max(s.Elapsed.Seconds(), 0.001)
	fmt.Fprintln(w)
	title := "Summary"
	if s.Interrupted {
		title += " (interrupted)"
	}
	fmt.Fprintf(w, "%s: %.1fs, %d workers, strategy %s, stickiness %s\n", title, s.Elapsed.Seconds(), o.Workers, cfg.Strategy, cfg.Stickiness)
	fmt.Fprintf(w, "  reads          %8d  %8.0f/s   failed: %d\n", s.Reads, float64(s.Reads)/secs, s.ReadsFailed)
	fmt.Fprintf(w, "  writes         %8d  %8.0f/s   failed: %d\n", s.Writes, float64(s.Writes)/secs, s.WritesFailed)
	fmt.Fprintf(w, "  sticky reads   %8d             saw their own write: %d of %d\n", s.StickyReads, s.StickyReads-s.StickyStale, s.StickyReads)
	fmt.Fprintf(w, "  retried calls  %8d             (ran again on another node after a connection failure)\n", s.Retries)
	if s.Killed != "" {
		fmt.Fprintf(w, "  %s killed at %.1fs", s.Killed, s.KilledAt.Seconds())
		if s.RestartedAt > 0 {
			fmt.Fprintf(w, ", started again at %.1fs", s.RestartedAt.Seconds())
		}
		fmt.Fprintln(w)
	}
	if s.FirstError != "" {
		fmt.Fprintf(w, "  first error: %s\n", s.FirstError)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	nw := nameWidth(s.Nodes)
	fmt.Fprintf(tw, "  %-*s\tSTATE\tROUTED READS\tROUTED WRITES\tSTICKY READS\tSERVED (SERVER-REPORTED)\tEJECTIONS\tREADMISSIONS\t\n", nw, "NODE")
	for _, r := range s.Nodes {
		fmt.Fprintf(tw, "  %-*s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t\n", nw, r.Name, r.State, r.Reads, r.Writes, r.Sticky, s.Served[r.Name], s.Ejections[r.Name], s.Readmissions[r.Name])
	}
	tw.Flush()
	fmt.Fprintln(w, "  SERVED counts the reads each server said it answered (inet_server_port()).")
}

// sleepCtx sleeps for d and reports whether ctx is still live.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
