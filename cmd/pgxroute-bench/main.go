// Command pgxroute-bench is a load generator that measures pgxroute's
// RoutedPool side by side with what it competes against: raw pgxpool (the
// limit), pgpool-II (a proxy) and gorm with dbresolver.
//
// Every target runs the same workload with the same number of workers, the
// same pool sizes and the same servers, for a fixed duration, in rounds whose
// order alternates (ABBA) so that the machine's drift cancels. Per target it
// reports throughput, p50 and p99 latency, and the transactions each server
// counted in pg_stat_database; then the goal ratios. By default it starts a
// local cluster (a primary and two streaming replicas) with routingtest, and
// pgpool-II in front of it; -primary and -replica use given servers instead.
//
//	go run . -workload all -rounds 4 -duration 4s -workers 8 -json out.json -svg ../../docs/benchmarks.svg
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/pgxroute/pgxroute/routingtest"
)

// targetSpec names a target and opens it.
type targetSpec struct {
	name string
	desc string
	open func(ctx context.Context, s servers, conns int) (target, error)
}

type options struct {
	workloads []workload
	targets   []targetSpec
	workers   int
	duration  time.Duration
	warmup    time.Duration
	rounds    int
	rows      int64
	health    bool
	seed      uint64
}

type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "pgxroute-bench:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		workloadFlag = flag.String("workload", "all", "workloads: all, or a comma list of point, mixed, batch, rotx")
		targetsFlag  = flag.String("targets", "all", "targets: all, or a comma list of "+strings.Join(targetNames(), ", "))
		workers      = flag.Int("workers", 8, "concurrent workers; also every pool's size (per server)")
		duration     = flag.Duration("duration", 5*time.Second, "measured time per target per round")
		warmup       = flag.Duration("warmup", time.Second, "unmeasured warm-up per target per round")
		rounds       = flag.Int("rounds", 4, "rounds; odd rounds run the targets in reverse order (ABBA)")
		rows         = flag.Int64("rows", 100_000, "rows of the benchmark table")
		primary      = flag.String("primary", "", "primary's connection string (default: start a local cluster)")
		pgpoolBin    = flag.String("pgpool-bin", "", "pgpool binary (default: PATH, then /usr/sbin/pgpool)")
		health       = flag.Bool("health", true, "RoutedPool health checks on (the default configuration)")
		jsonOut      = flag.String("json", "", "write the results as JSON to this file")
		svgOut       = flag.String("svg", "", "write a bar chart of the throughput to this SVG file")
		seed         = flag.Uint64("seed", 1, "seed of the workers' key choice")
		verbose      = flag.Bool("v", false, "show the servers' and pgpool's output")
		pgpoolMode   = flag.String("pgpool-mode", "", "pgx default_query_exec_mode for the pgpool target (default: pgx's, cache_statement)")
		fromJSON     = flag.String("from-json", "", "run nothing: print the tables and draw -svg from an earlier -json file")
		cpuProfile   = flag.String("cpuprofile", "", "write the tool's CPU profile of the measured runs to this file")
		cost         = flag.Bool("cost", false, "measure only the cost of routing: raw pgxpool against RoutedPool on the same servers, pools kept open, paired ABBA rounds of -duration (-rounds: 10 or more)")
		percall      = flag.Bool("percall", false, "measure the client CPU per call of each target in a process of its own (-rounds rounds of -calls calls per kind)")
		percallChild = flag.Bool("percall-child", false, "internal: one -percall process")
		percallT     = flag.String("percall-targets", "raw,disabled,routed", "-percall targets: a comma list of "+strings.Join(percallTargets, ", "))
		percallTgt   = flag.String("target", "", "internal: the -percall-child target")
		calls        = flag.Int64("calls", 200_000, "-percall: calls per kind per process")
		kindsFlag    = flag.String("kinds", "", "-percall: a comma list of call kinds (default all: QueryRow, Query, Exec, Batch10)")
		pinFlag      = flag.String("pin", "", "CLIENT/SERVER: run this tool on the CPUs CLIENT and the local cluster's servers on SERVER (taskset CPU lists, like 0/1; needs the local cluster)")
		profileDir   = flag.String("profile-dir", "", "-percall: write each target's CPU profile per kind (first round) to this directory")
		clientProcs  = flag.Int("client-procs", 0, "set GOMAXPROCS of this tool and of its -percall children to N (0: Go's default, or the GOMAXPROCS environment variable, which the children inherit too)")
		replicas     stringList
	)
	flag.Var(&replicas, "replica", "a replica's connection string (repeat; needs -primary)")
	flag.Parse()

	if *clientProcs < 0 {
		return errors.New("-client-procs must not be negative")
	}
	if *clientProcs > 0 {
		runtime.GOMAXPROCS(*clientProcs)
	}
	if *fromJSON != "" {
		return render(*fromJSON, *svgOut)
	}
	routedHealth = *health
	opts := options{workers: *workers, duration: *duration, warmup: *warmup, rounds: *rounds, rows: *rows, health: *health, seed: *seed}
	var err error
	if opts.workloads, err = pickWorkloads(*workloadFlag); err != nil {
		return err
	}
	if opts.targets, err = pickTargets(*targetsFlag); err != nil {
		return err
	}
	if opts.workers < 1 || opts.rounds < 1 || opts.duration <= 0 || opts.rows < batchSize {
		return errors.New("-workers, -rounds, -duration must be positive and -rows at least 10")
	}
	if *primary == "" && len(replicas) > 0 {
		return errors.New("-replica needs -primary")
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var logw io.Writer = io.Discard
	if *verbose {
		logw = os.Stderr
	}

	var kinds []string
	if *kindsFlag != "" {
		kinds = strings.Split(*kindsFlag, ",")
	}
	if *percallChild {
		return runPercallChild(ctx, os.Stdout, *percallTgt, *primary, opts.workers, *calls, kinds, *profileDir)
	}
	s := servers{primary: *primary, replicas: replicas}
	if s.primary == "" {
		fmt.Fprintln(os.Stderr, "starting a local cluster: a primary and two replicas")
		c, err := routingtest.StartCluster(ctx, routingtest.ClusterOptions{Log: logw})
		if err != nil {
			return err
		}
		defer c.Close()
		s.primary = c.Primary().ConnString()
		for _, r := range c.Replicas() {
			s.replicas = append(s.replicas, r.ConnString())
		}
		if *pinFlag != "" {
			if err := pin(*pinFlag, "postgres"); err != nil {
				return err
			}
		}
	} else if *pinFlag != "" {
		return errors.New("-pin needs the local cluster (no -primary)")
	}
	if *percall {
		return runPercall(ctx, os.Stdout, s, strings.Split(*percallT, ","), opts.workers, opts.rounds, *calls, kinds, *profileDir, *clientProcs)
	}
	if *cost {
		return runCost(ctx, os.Stdout, s, opts.workers, opts.rounds, opts.duration)
	}
	fmt.Fprintf(os.Stderr, "creating %d rows on the primary\n", opts.rows)
	if err := setupData(ctx, s, int(opts.rows)); err != nil {
		return err
	}

	rep := &report{
		Machine: machine(ctx, s),
		Command: strings.Join(os.Args, " "),
		Workers: opts.workers, Duration: opts.duration.String(), Warmup: opts.warmup.String(),
		Rounds: opts.rounds, Rows: opts.rows, Health: opts.health,
		Nodes: nodeNames(s),
	}
	for _, t := range opts.targets {
		rep.Targets = append(rep.Targets, targetInfo{Name: t.name, Desc: t.desc})
	}

	if slices.ContainsFunc(opts.targets, func(t targetSpec) bool { return t.name == "pgpool" }) {
		bin, err := findPgpool(*pgpoolBin)
		if err != nil {
			return err
		}
		p, err := startPgpool(ctx, bin, s, opts.workers+4, logw)
		if err != nil {
			return err
		}
		defer p.stop()
		rep.Machine.Pgpool = p.version
		url := p.url()
		if *pgpoolMode != "" {
			url += "&default_query_exec_mode=" + *pgpoolMode
		}
		for i, t := range opts.targets {
			if t.name == "pgpool" {
				opts.targets[i].open = func(ctx context.Context, _ servers, conns int) (target, error) {
					return openPgxToPgpool(ctx, url, conns)
				}
			}
		}
	}

	rt, err := roundTrip(ctx, s.primary, 5000)
	if err != nil {
		return fmt.Errorf("round trip: %w", err)
	}
	rep.RoundTripNs = float64(rt.Nanoseconds())
	if slices.ContainsFunc(opts.targets, func(t targetSpec) bool { return strings.HasPrefix(t.name, "routed") }) {
		rep.Decision, err = measureDecision(ctx, s)
		if err != nil {
			return fmt.Errorf("routing decision: %w", err)
		}
	}

	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	start := time.Now()
	for _, wl := range opts.workloads {
		wr, err := runWorkload(ctx, s, opts, wl)
		if err != nil {
			return err
		}
		rep.Workloads = append(rep.Workloads, wr)
		printWorkload(os.Stdout, rep, wr)
	}
	rep.Elapsed = time.Since(start).Round(time.Second).String()
	rep.Goals = goals(rep)
	printGoals(os.Stdout, rep)

	if *jsonOut != "" {
		if err := writeJSON(*jsonOut, rep); err != nil {
			return err
		}
	}
	if *svgOut != "" {
		if err := writeSVG(*svgOut, rep); err != nil {
			return err
		}
	}
	return nil
}

// runWorkload runs every target for every round, in ABBA order.
func runWorkload(ctx context.Context, s servers, opts options, wl workload) (workloadResult, error) {
	wr := workloadResult{Name: wl.name, Desc: wl.desc}
	ns := s.nodes()
	aggs := make(map[string]*targetAgg, len(opts.targets))
	for _, t := range opts.targets {
		aggs[t.name] = &targetAgg{h: &hist{}, xacts: make([]int64, len(ns))}
	}
	for round := range opts.rounds {
		order := slices.Clone(opts.targets)
		if round%2 == 1 {
			slices.Reverse(order)
		}
		for _, t := range order {
			if ctx.Err() != nil {
				return wr, ctx.Err()
			}
			before, err := xacts(ctx, ns)
			if err != nil {
				return wr, err
			}
			tg, err := t.open(ctx, s, opts.workers)
			if err != nil {
				return wr, fmt.Errorf("%s: %w", t.name, err)
			}
			m := measure(ctx, tg, wl, opts.workers, opts.warmup, opts.duration, opts.rows, opts.seed+uint64(round))
			tg.close()
			if err := waitGone(ctx, ns); err != nil {
				return wr, err
			}
			after, err := xacts(ctx, ns)
			if err != nil {
				return wr, err
			}
			a := aggs[t.name]
			a.add(m, before, after)
			fmt.Fprintf(os.Stderr, "%-6s round %d %-14s %9.0f ops/s  p50 %-8s p99 %-8s errors %d\n",
				wl.name, round+1, t.name, float64(m.ops)/m.secs, fmtDur(m.h.quantile(0.5)), fmtDur(m.h.quantile(0.99)), m.errs)
			if m.firstErr != nil && a.firstErr == "" {
				a.firstErr = m.firstErr.Error()
				fmt.Fprintf(os.Stderr, "    first error: %v\n", m.firstErr)
			}
		}
	}
	for _, t := range opts.targets {
		wr.Results = append(wr.Results, aggs[t.name].result(t.name))
	}
	return wr, nil
}

func pickWorkloads(v string) ([]workload, error) {
	if v == "all" {
		return workloads, nil
	}
	var out []workload
	for _, name := range strings.Split(v, ",") {
		i := slices.IndexFunc(workloads, func(w workload) bool { return w.name == strings.TrimSpace(name) })
		if i < 0 {
			return nil, fmt.Errorf("unknown workload %q", name)
		}
		out = append(out, workloads[i])
	}
	return out, nil
}

func allTargets() []targetSpec {
	return []targetSpec{
		{"raw-primary", "*pgxpool.Pool to the primary", openRawPrimary},
		{"routed-single", "RoutedPool with the primary alone (every call routed to it)", openRoutedSingle},
		{"raw-pair", "two *pgxpool.Pool to the replicas alternated by hand (writes: a pool to the primary)", openRawPair},
		{"routed", "RoutedPool: primary + 2 replicas, round-robin", openRouted},
		{"pgpool", "pgx to pgpool-II, load balancing over the replicas", nil},
		{"gorm", "gorm + dbresolver (replicas round-robin) over pgx stdlib", openGorm},
		{"raw-replica", "*pgxpool.Pool to replica1 (writes: a pool to the primary)", openRawReplica},
	}
}

func targetNames() []string {
	var names []string
	for _, t := range allTargets() {
		names = append(names, t.name)
	}
	return names
}

func pickTargets(v string) ([]targetSpec, error) {
	all := allTargets()
	if v == "all" {
		return all, nil
	}
	var out []targetSpec
	for _, name := range strings.Split(v, ",") {
		i := slices.IndexFunc(all, func(t targetSpec) bool { return t.name == strings.TrimSpace(name) })
		if i < 0 {
			return nil, fmt.Errorf("unknown target %q (have %s)", name, strings.Join(targetNames(), ", "))
		}
		out = append(out, all[i])
	}
	return out, nil
}

func nodeNames(s servers) []string {
	var out []string
	for _, n := range s.nodes() {
		out = append(out, n.name)
	}
	return out
}

// machine describes where the run happened.
func machine(ctx context.Context, s servers) machineInfo {
	m := machineInfo{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), Postgres: serverVersion(ctx, s.primary)}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	return m
}

// render prints the tables and goals of an earlier run and draws its chart.
func render(jsonPath, svgPath string) error {
	b, err := os.ReadFile(jsonPath)
	if err != nil {
		return err
	}
	rep := &report{}
	if err := json.Unmarshal(b, rep); err != nil {
		return fmt.Errorf("%s: %w", jsonPath, err)
	}
	for _, wr := range rep.Workloads {
		printWorkload(os.Stdout, rep, wr)
	}
	rep.Goals = goals(rep)
	printGoals(os.Stdout, rep)
	if svgPath != "" {
		return writeSVG(svgPath, rep)
	}
	return nil
}
