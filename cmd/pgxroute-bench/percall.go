package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgxroute/pgxroute"
	"github.com/pgxroute/pgxroute/internal/costbench"
)

// Client CPU per call (-percall): a measurement of the cost of routing that
// a shared machine does not blur. Each target runs in a process of its own
// (this program again, with -percall-child), which opens that one target,
// fills its pool, warms it up and then makes a fixed number of calls of each
// kind; it reports the process's CPU time (getrusage: user and system, every
// goroutine of the process: the pool's, the router's probes, the GC) and its
// allocations per call. The driver runs the targets in rotating order,
// -rounds times, and reports per call kind each target's median CPU per
// call and its ratio to raw's of the same round. Other processes on the
// machine lengthen a call's wall time, not the client's CPU time per call.

// percallTargets are the targets of -percall, by name. Besides raw, routed
// and disabled, the diagnostic targets take pgxroute's pool settings apart:
// raw-wrapped is raw pgxpool whose sockets are wrapped in a net.Conn of
// their own (as the tracking of interrupt.go did), raw-tcp raw pgxpool with
// the router's socket options (keepalive 5s/1s/3, TCP_USER_TIMEOUT 10s), and
// the -nohealth variants the router without its probes.
var percallTargets = []string{"raw", "raw-wrapped", "raw-tcp", "disabled", "disabled-nohealth", "routed", "routed-nohealth"}

// percallResult is one kind's measurement in one child.
type percallResult struct {
	Target string  `json:"target"`
	Kind   string  `json:"kind"`
	Calls  int64   `json:"calls"`
	CPUNs  int64   `json:"cpu_ns"`
	UserNs int64   `json:"user_ns"`
	Secs   float64 `json:"secs"`
	Allocs uint64  `json:"allocs"`
	Bytes  uint64  `json:"bytes"`
	Procs  int     `json:"procs"` // GOMAXPROCS during the calls
	GCs    uint32  `json:"gcs"`   // GC cycles during the calls
	GCNs   int64   `json:"gc_ns"` // the runtime's estimate of the GC's CPU time during the calls
}

// gcCPU returns the runtime's estimate of the CPU time the GC used so far
// (runtime/metrics, updated at each cycle), in nanoseconds.
func gcCPU() int64 {
	s := []metrics.Sample{{Name: "/cpu/classes/gc/total:cpu-seconds"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindFloat64 {
		return 0
	}
	return int64(s[0].Value.Float64() * 1e9)
}

// percallOpen opens target name over the primary with pools of conns.
func percallOpen(ctx context.Context, name, primary string, conns int) (costbench.Querier, func(), error) {
	rawWith := func(dial func(*pgxpool.Config)) (costbench.Querier, func(), error) {
		pc, err := pgxpool.ParseConfig(primary)
		if err != nil {
			return nil, nil, err
		}
		pc.MaxConns, pc.MinConns = int32(conns), int32(conns)
		if dial != nil {
			dial(pc)
		}
		p, err := pgxpool.NewWithConfig(ctx, pc)
		if err != nil {
			return nil, nil, err
		}
		return p, p.Close, fillPool(ctx, p, conns)
	}
	routedWith := func(cfg pgxroute.Config) (costbench.Querier, func(), error) {
		cfg.Primary = primary
		cfg.ConfigurePool = func(_, _ string, pc *pgxpool.Config) { pc.MaxConns, pc.MinConns = int32(conns), int32(conns) }
		p, err := pgxroute.New(ctx, cfg)
		if err != nil {
			return nil, nil, err
		}
		return p, p.Close, fillRouted(ctx, p, conns)
	}
	switch name {
	case "raw":
		return rawWith(nil)
	case "raw-wrapped":
		return rawWith(func(pc *pgxpool.Config) {
			d := &net.Dialer{KeepAlive: 5 * time.Minute}
			pc.ConnConfig.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
				c, err := d.DialContext(ctx, network, addr)
				if err != nil {
					return nil, err
				}
				return &wrappedConn{Conn: c}, nil
			}
		})
	case "raw-tcp":
		return rawWith(func(pc *pgxpool.Config) {
			d := &net.Dialer{
				KeepAliveConfig: net.KeepAliveConfig{Enable: true, Idle: 5 * time.Second, Interval: time.Second, Count: 3},
				Control: func(network, _ string, c syscall.RawConn) error {
					var serr error
					err := c.Control(func(fd uintptr) {
						serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, 0x12 /* TCP_USER_TIMEOUT */, 10000)
					})
					return errors.Join(err, serr)
				},
			}
			pc.ConnConfig.DialFunc = d.DialContext
		})
	case "disabled":
		return routedWith(pgxroute.Config{Disabled: true})
	case "disabled-nohealth":
		return routedWith(pgxroute.Config{Disabled: true, Health: pgxroute.HealthConfig{Disabled: true}})
	case "routed":
		return routedWith(pgxroute.Config{})
	case "routed-nohealth":
		return routedWith(pgxroute.Config{Health: pgxroute.HealthConfig{Disabled: true}})
	}
	return nil, nil, fmt.Errorf("unknown -percall target %q (have %s)", name, strings.Join(percallTargets, ", "))
}

// wrappedConn is a socket under a wrapper of its own, as a dialer that
// tracks its sockets would return.
type wrappedConn struct {
	net.Conn
	once sync.Once
}

func (c *wrappedConn) Close() error {
	c.once.Do(func() {})
	return c.Conn.Close()
}

// runPercallChild measures one target and writes a JSON line per kind to w.
func runPercallChild(ctx context.Context, w io.Writer, target, primary string, workers int, calls int64, kinds []string, profileDir string) error {
	q, closeFn, err := percallOpen(ctx, target, primary, workers)
	if closeFn != nil {
		defer closeFn()
	}
	if err != nil {
		return fmt.Errorf("%s: %w", target, err)
	}
	enc := json.NewEncoder(w)
	for _, k := range costbench.Kinds {
		if len(kinds) > 0 && !slices.Contains(kinds, k.Name) {
			continue
		}
		if _, err := percallRun(ctx, q, k.Run, workers, max(calls/10, 100)); err != nil {
			return fmt.Errorf("%s %s warm-up: %w", target, k.Name, err)
		}
		runtime.GC()
		var prof *os.File
		if profileDir != "" {
			if prof, err = os.Create(filepath.Join(profileDir, target+"-"+k.Name+".pprof")); err != nil {
				return err
			}
			if err := pprof.StartCPUProfile(prof); err != nil {
				return err
			}
		}
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		cpu0, user0, gc0, t0 := costbench.ProcessCPU(), userCPU(), gcCPU(), time.Now()
		n, err := percallRun(ctx, q, k.Run, workers, calls)
		cpu, user, secs := costbench.ProcessCPU()-cpu0, userCPU()-user0, time.Since(t0).Seconds()
		runtime.ReadMemStats(&m1)
		gcNs := gcCPU() - gc0
		if prof != nil {
			pprof.StopCPUProfile()
			prof.Close()
		}
		if err != nil {
			return fmt.Errorf("%s %s: %w", target, k.Name, err)
		}
		if err := enc.Encode(percallResult{Target: target, Kind: k.Name, Calls: n, CPUNs: cpu, UserNs: user, Secs: secs,
			Allocs: m1.Mallocs - m0.Mallocs, Bytes: m1.TotalAlloc - m0.TotalAlloc, Procs: runtime.GOMAXPROCS(0),
			GCs: m1.NumGC - m0.NumGC, GCNs: gcNs}); err != nil {
			return err
		}
	}
	return nil
}

// percallRun makes calls calls of run on q from workers goroutines.
func percallRun(ctx context.Context, q costbench.Querier, run func(context.Context, costbench.Querier, int) error, workers int, calls int64) (int64, error) {
	var next atomic.Int64
	var first atomic.Value
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > calls || first.Load() != nil {
					return
				}
				if err := run(ctx, q, int(i&0xffffff)); err != nil {
					first.CompareAndSwap(nil, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if e, ok := first.Load().(error); ok {
		return 0, e
	}
	return calls, nil
}

// runPercall runs every target in a child process per round, in rotating
// order, and prints the table of CPU per call to w.
func runPercall(ctx context.Context, w io.Writer, s servers, targets []string, workers, rounds int, calls int64, kinds []string, profileDir string, procs int) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	// results[kind][target] has one measurement per round.
	results := map[string]map[string][]percallResult{}
	for r := range rounds {
		order := slices.Clone(targets)
		// Rotate, and reverse every other round: each target runs early and
		// late alike.
		k := r % len(order)
		order = append(order[k:], order[:k]...)
		if r%2 == 1 {
			slices.Reverse(order)
		}
		for _, t := range order {
			args := []string{"-percall-child", "-target", t, "-primary", s.primary,
				"-workers", strconv.Itoa(workers), "-calls", strconv.FormatInt(calls, 10)}
			if len(kinds) > 0 {
				args = append(args, "-kinds", strings.Join(kinds, ","))
			}
			if procs > 0 {
				args = append(args, "-client-procs", strconv.Itoa(procs))
			}
			if profileDir != "" && r == 0 {
				args = append(args, "-profile-dir", profileDir)
			}
			cmd := exec.CommandContext(ctx, self, args...)
			cmd.Stderr = os.Stderr
			out, err := cmd.StdoutPipe()
			if err != nil {
				return err
			}
			if err := cmd.Start(); err != nil {
				return err
			}
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				var res percallResult
				if err := json.Unmarshal(sc.Bytes(), &res); err != nil {
					return fmt.Errorf("child %s: %q: %w", t, sc.Text(), err)
				}
				if results[res.Kind] == nil {
					results[res.Kind] = map[string][]percallResult{}
				}
				results[res.Kind][t] = append(results[res.Kind][t], res)
				fmt.Fprintf(os.Stderr, "round %d %-18s %-8s %8.0f ns CPU/call (user %6.0f) %6.1f allocs/call %6.0f calls/s GOMAXPROCS %d\n", r+1, t, res.Kind,
					float64(res.CPUNs)/float64(res.Calls), float64(res.UserNs)/float64(res.Calls), float64(res.Allocs)/float64(res.Calls),
					float64(res.Calls)/res.Secs, res.Procs)
			}
			if err := cmd.Wait(); err != nil {
				return fmt.Errorf("child %s: %w", t, err)
			}
		}
	}
	fmt.Fprintf(w, "\n### Client CPU per call\n\n%d workers, pools of %d, %d calls per kind per process, %d rounds (one process per target per round, rotating order); CPU is the process's getrusage user+system time over the calls; children's GOMAXPROCS %s.\n\n", workers, workers, calls, rounds, childProcs(results))
	fmt.Fprintln(w, "| call | target | CPU per call: median (range) | ratio to raw: median of rounds (range) | 95% interval of the median ratio | allocs/call | bytes/call | GC cycles per 10 000 calls | GC CPU per call |")
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|---:|---:|---:|")
	for _, k := range costbench.Kinds {
		byT := results[k.Name]
		if byT == nil {
			continue
		}
		for _, t := range targets {
			rs := byT[t]
			if len(rs) == 0 {
				continue
			}
			var per, ratios []float64
			var allocs, bytes, gcs, gcNs float64
			for i, res := range rs {
				v := float64(res.CPUNs) / float64(res.Calls)
				per = append(per, v)
				if raw := byT["raw"]; i < len(raw) {
					ratios = append(ratios, v/(float64(raw[i].CPUNs)/float64(raw[i].Calls)))
				}
				allocs += float64(res.Allocs) / float64(res.Calls)
				bytes += float64(res.Bytes) / float64(res.Calls)
				gcs += float64(res.GCs) * 1e4 / float64(res.Calls)
				gcNs += float64(res.GCNs) / float64(res.Calls)
			}
			pm, plo, phi := costbench.MedianRange(per)
			rm, rlo, rhi := costbench.MedianRange(ratios)
			blo, bhi := bootstrapMedian(ratios)
			nr := float64(len(rs))
			fmt.Fprintf(w, "| %s | %s | %.2f µs (%.2f – %.2f) | %.3f (%.3f – %.3f) | %.3f – %.3f | %.1f | %.0f | %.1f | %.0f ns |\n", k.Name, t,
				pm/1e3, plo/1e3, phi/1e3, rm, rlo, rhi, blo, bhi, allocs/nr, bytes/nr, gcs/nr, gcNs/nr)
		}
	}
	return nil
}

// bootstrapMedian returns the 95% bootstrap interval of the median of v
// (10 000 resamples, a fixed seed: the same rounds give the same interval).
func bootstrapMedian(v []float64) (lo, hi float64) {
	if len(v) == 0 {
		return 0, 0
	}
	rng := rand.New(rand.NewPCG(1, 2))
	const n = 10000
	meds := make([]float64, n)
	s := make([]float64, len(v))
	for i := range meds {
		for j := range s {
			s[j] = v[rng.IntN(len(v))]
		}
		meds[i], _, _ = costbench.MedianRange(s)
	}
	slices.Sort(meds)
	return meds[n*25/1000], meds[n*975/1000-1]
}

// childProcs lists the GOMAXPROCS values the children reported.
func childProcs(results map[string]map[string][]percallResult) string {
	var ps []int
	for _, byT := range results {
		for _, rs := range byT {
			for _, r := range rs {
				if !slices.Contains(ps, r.Procs) {
					ps = append(ps, r.Procs)
				}
			}
		}
	}
	slices.Sort(ps)
	return strings.Trim(fmt.Sprint(ps), "[]")
}

// userCPU returns the user CPU time this process used so far, in
// nanoseconds.
func userCPU() int64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return ru.Utime.Nano()
}
