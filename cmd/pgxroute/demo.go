package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgxroute/pgxroute"
	"github.com/pgxroute/pgxroute/routingtest"
)

const demoAbout = `
Demo starts a local PostgreSQL primary and two streaming replicas (it needs
only the PostgreSQL server binaries) and runs a mixed workload through a
pgxroute.RoutedPool while it does to the servers what happens to them in
production:

  kill        a replica is killed (SIGKILL), then started again
  freeze      a replica is frozen (SIGSTOP: its sockets stay open, nothing
              answers), then thawed
  failover    the primary is killed, a replica promoted, the other one
              repointed at it, and the old primary rejoined as a replica
  switchover  the primary role moves cleanly to a replica (stop, promote,
              repoint, rejoin), as an operator does for maintenance
  all         each of them in turn (the default; about a minute)

Each worker loops over units of work (scopes): one in ten writes a row and
reads it back (a sticky read, served by the primary), the others read rows by
id from the replicas. Every read and write asks the server that ran it who it
is (inet_server_port()): each scenario's summary counts the calls by the
servers' own answers, failed writes split into never sent and outcome
unknown, the time from the fault to the first write the new primary
acknowledged, the slowest read, and the router's ejections and readmissions.

On a terminal a table of the nodes is redrawn in place, with the router's
health events above it; otherwise (a pipe, CI) one plain line a second. The
servers and their files are removed at the end, also on Ctrl-C.`

// demoScenarioNames are the -scenario values besides "all", in the order
// "all" runs them.
var demoScenarioNames = []string{"kill", "freeze", "members", "failover", "switchover"}

// demoOptions configures runDemo.
type demoOptions struct {
	// Scenarios to run, in order (names of demoScenarioNames).
	Scenarios []string
	// Phase is the length of each phase of a scenario: the load before the
	// fault, the fault, the load after the recovery.
	Phase   time.Duration
	Workers int
	// Pause is how long each worker waits between two units of work (0:
	// none, as fast as the servers answer); the tests pause to leave the
	// shared machine's CPU to the other tests.
	Pause time.Duration
	// HedgeAfter is the pool's Health.HedgeAfter (0: no hedged reads).
	HedgeAfter time.Duration
	TTY        bool // redraw the table in place
	Interval   time.Duration
	// HTTP, when set, is the address (host:port) where the demo serves its
	// pool's Prometheus metrics at /metrics, and its status page at / when
	// this build has one (see status_mount.go), while it runs.
	HTTP string
}

// demoSummary is the outcome of a demo run: one summary per scenario.
type demoSummary struct {
	StartTime   time.Duration // to start the servers
	Scenarios   []*scenarioSummary
	Interrupted bool
}

func runDemoCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o := demoOptions{}
	fs := newFlagSet("demo", "[-scenario all] [-phase 3s] [-workers 8] [-hedge 50ms] [-plain] [-http ADDR]", demoAbout, stdout)
	scenario := fs.String("scenario", "all", "the scenario to run: "+strings.Join(demoScenarioNames, ", ")+" or all")
	fs.DurationVar(&o.Phase, "phase", 3*time.Second, "each phase of a scenario: the load before the fault, the fault, the load after")
	fs.IntVar(&o.Workers, "workers", 8, "concurrent workers")
	fs.DurationVar(&o.HedgeAfter, "hedge", 50*time.Millisecond, "hedge a read not answered after this long on the other replica (0: off)")
	plain := fs.Bool("plain", false, "print plain lines even on a terminal")
	fs.StringVar(&o.HTTP, "http", "", "serve the pool's metrics (/metrics) and status page (/) at `host:port`")
	fs.StringVar(&o.HTTP, "metrics", "", "the former name of -http `host:port`")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	switch {
	case *scenario == "all":
		o.Scenarios = demoScenarioNames
	case slices.Contains(demoScenarioNames, *scenario):
		o.Scenarios = []string{*scenario}
	default:
		return usagef("unknown scenario %q: want %s or all", *scenario, strings.Join(demoScenarioNames, ", "))
	}
	if o.Phase <= 0 || o.Workers <= 0 || o.HedgeAfter < 0 {
		return usagef("-phase and -workers must be positive, -hedge not negative")
	}
	if f, ok := stdout.(*os.File); ok && !*plain {
		o.TTY = isTerminal(f)
	}
	_, err = runDemo(ctx, o, stdout)
	return err
}

// demoRun is the state of one run of the demo.
type demoRun struct {
	o      demoOptions
	c      *routingtest.Cluster
	pool   *pgxroute.RoutedPool
	view   *live
	names  map[int]string // node name by port
	ports  map[string]int // port by node name
	events *eventTracer
	// start is the start of the current scenario (UnixNano), for the
	// events' times.
	start atomic.Int64
}

// runDemo runs the demo's scenarios, printing to out, and returns their
// summaries. It removes the cluster before it returns.
func runDemo(ctx context.Context, o demoOptions, out io.Writer) (*demoSummary, error) {
	if o.Interval <= 0 {
		o.Interval = time.Second
		if o.TTY {
			o.Interval = 500 * time.Millisecond
		}
	}
	view := newLive(out, o.TTY)
	if bin, err := routingtest.FindBinDir(""); err == nil {
		view.Text(fitWidth(fmt.Sprintf("Starting a primary and two replicas (PostgreSQL binaries in %s)...", bin)))
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
				view.Text(fitWidth(fmt.Sprintf("warning: closing the cluster: %v", redact(err.Error()))))
			}
		}
	}
	defer closeCluster()
	sum := &demoSummary{StartTime: time.Since(t0)}
	d := &demoRun{o: o, c: c, view: view, names: map[int]string{}, ports: map[string]int{}}
	line := fmt.Sprintf("Servers started in %s:", sum.StartTime.Round(10*time.Millisecond))
	for _, n := range c.Nodes() {
		d.names[n.Port()], d.ports[n.Name()] = n.Name(), n.Port()
		line += fmt.Sprintf(" %s :%d", n.Name(), n.Port())
	}
	view.Text(line)

	if err := demoSchema(ctx, c); err != nil {
		return nil, err
	}
	events := newEventTracer(256)
	cfg := pgxroute.Config{
		Groups: map[string][]pgxroute.Node{
			pgxroute.DefaultGroupName: {{Name: c.Primary().Name(), ConnString: c.Primary().ConnString()}},
		},
		Health:     pgxroute.HealthConfig{Interval: 200 * time.Millisecond},
		HedgeAfter: o.HedgeAfter,
		Tracer:     events,
	}
	for _, r := range c.Replicas() {
		cfg.Replicas = append(cfg.Replicas, pgxroute.Node{Name: r.Name(), ConnString: r.ConnString()})
	}
	pool, err := pgxroute.New(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	d.pool, d.events = pool, events
	if o.HTTP != "" {
		addr, status, stopHTTP, err := serveHTTP(o.HTTP, pool)
		if err != nil {
			return nil, err
		}
		defer stopHTTP()
		msg := fmt.Sprintf("Metrics: curl http://%s/metrics", addr)
		if status {
			msg += fmt.Sprintf("   Status page: http://%s/", addr)
		}
		view.Text(msg)
	}
	hedge := "off"
	if o.HedgeAfter > 0 {
		hedge = "after " + o.HedgeAfter.String()
	}
	view.Text(fitWidth(fmt.Sprintf("Workload: %d workers, one scope in ten writes a row and reads it back; hedged reads %s",
		o.Workers, hedge)))

	// The router's health events, printed as they come.
	var evWG sync.WaitGroup
	evWG.Add(1)
	go func() {
		defer evWG.Done()
		for ev := range events.C {
			view.Event(d.eventLine(ev))
		}
	}()
	defer func() {
		events.Close()
		evWG.Wait()
	}()

	for _, name := range o.Scenarios {
		s, err := d.runScenario(ctx, scenarioByName(name))
		if s != nil {
			sum.Scenarios = append(sum.Scenarios, s)
			view.Text("\n" + s.String())
		}
		if ctx.Err() != nil {
			sum.Interrupted = true
			break
		}
		if err != nil {
			return sum, err
		}
	}
	if len(sum.Scenarios) > 1 {
		view.Text(overallLine(sum.Scenarios))
	}
	if n := events.dropped.Load(); n > 0 {
		view.Text(fmt.Sprintf("(%d health events were not shown: the terminal fell behind)", n))
	}
	pool.Close()
	events.Close()
	evWG.Wait()
	t1 := time.Now()
	closeCluster()
	view.Text(fmt.Sprintf("Servers stopped and their files removed in %s.", time.Since(t1).Round(10*time.Millisecond)))
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

// eventTracer passes the pool's health events to a channel without
// blocking the router: when the channel is full the event is counted as
// dropped.
type eventTracer struct {
	C       chan pgxroute.HealthEvent
	mu      sync.Mutex
	closed  bool
	log     []pgxroute.HealthEvent // every event, in order
	dropped atomic.Int64
}

func newEventTracer(size int) *eventTracer {
	return &eventTracer{C: make(chan pgxroute.HealthEvent, size)}
}

// TraceRouteStart implements pgxroute.RouteTracer: the demo traces no call.
func (e *eventTracer) TraceRouteStart(ctx context.Context, _ pgxroute.TraceRouteStartData) context.Context {
	return ctx
}

// TraceRouteEnd implements pgxroute.RouteTracer.
func (e *eventTracer) TraceRouteEnd(context.Context, pgxroute.TraceRouteEndData) {}

// TraceHealth implements pgxroute.HealthTracer.
func (e *eventTracer) TraceHealth(_ context.Context, ev pgxroute.HealthEvent) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return
	}
	e.log = append(e.log, ev)
	select {
	case e.C <- ev:
	default:
		e.dropped.Add(1)
	}
}

// since returns the events seen at t or later, by node.
func (e *eventTracer) since(t time.Time) map[string][]string {
	e.mu.Lock()
	defer e.mu.Unlock()
	m := map[string][]string{}
	for _, ev := range e.log {
		if !ev.At.Before(t) {
			m[ev.Node] = append(m[ev.Node], ev.Kind.String())
		}
	}
	return m
}

// Close closes C; later events are dropped. It is safe to call twice.
func (e *eventTracer) Close() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.closed {
		e.closed = true
		close(e.C)
	}
}

// eventLine renders a health event as one line of at most maxWidth
// columns, timed from the start of the current scenario.
func (d *demoRun) eventLine(ev pgxroute.HealthEvent) string {
	var msg string
	switch ev.Kind {
	case pgxroute.EventPrimaryChanged:
		switch {
		case ev.Node == "":
			msg = fmt.Sprintf("no primary known (was %s): writes wait for one", ev.Previous)
		case ev.Previous == "":
			msg = fmt.Sprintf("writes go to %s", ev.Node)
		default:
			msg = fmt.Sprintf("writes go to %s now (was %s)", ev.Node, ev.Previous)
		}
	case pgxroute.EventReadmitted:
		msg = fmt.Sprintf("%s re-admitted (%s)", ev.Node, ev.Role)
	case pgxroute.EventRoleChanged:
		msg = fmt.Sprintf("%s is a %s now", ev.Node, ev.Role)
	case pgxroute.EventSplitBrain:
		msg = fmt.Sprintf("split brain: %s and %s both report being a primary", ev.Node, ev.Previous)
	default:
		msg = fmt.Sprintf("%s %s", ev.Node, ev.Kind)
	}
	if ev.Err != "" {
		msg += ": " + redact(ev.Err)
	}
	return fitWidth(fmt.Sprintf("  %6s  router: %s", d.sinceStart(ev.At), msg))
}

// sinceStart formats t as seconds since the current scenario started.
func (d *demoRun) sinceStart(t time.Time) string {
	return fmt.Sprintf("%.1fs", t.Sub(time.Unix(0, d.start.Load())).Seconds())
}

// step prints one of the demo's own actions (a kill, a promotion) above the
// table.
func (d *demoRun) step(format string, args ...any) {
	d.view.Event(fitWidth(fmt.Sprintf("  %6s  >>> ", d.sinceStart(time.Now())) + fmt.Sprintf(format, args...)))
}

// serverRoles asks every running node whether it is in recovery, on a
// connection of its own: "primary", "replica", or "down".
func (d *demoRun) serverRoles(ctx context.Context) map[string]string {
	roles := map[string]string{}
	for _, n := range d.c.Nodes() {
		roles[n.Name()] = "down"
		if !n.Running() {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		conn, err := pgx.Connect(cctx, n.ConnString())
		if err == nil {
			var rec bool
			if err = conn.QueryRow(cctx, "SELECT pg_is_in_recovery()").Scan(&rec); err == nil {
				roles[n.Name()] = map[bool]string{false: "primary", true: "replica"}[rec]
			}
			conn.Close(context.Background())
		}
		cancel()
	}
	return roles
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
