package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"
)

type report struct {
	Machine     machineInfo      `json:"machine"`
	Command     string           `json:"command"`
	Workers     int              `json:"workers"`
	Duration    string           `json:"duration"`
	Warmup      string           `json:"warmup"`
	Rounds      int              `json:"rounds"`
	Rows        int64            `json:"rows"`
	Health      bool             `json:"routed_health_checks"`
	Nodes       []string         `json:"nodes"`
	Targets     []targetInfo     `json:"targets"`
	RoundTripNs float64          `json:"round_trip_ns"`
	Decision    *decisionInfo    `json:"routing_decision,omitempty"`
	Workloads   []workloadResult `json:"workloads"`
	Goals       []goal           `json:"goals"`
	Elapsed     string           `json:"elapsed"`
}

type machineInfo struct {
	CPUs      int    `json:"cpus"`
	CPU       string `json:"cpu"`
	GoVersion string `json:"go"`
	Postgres  string `json:"postgres"`
	Pgpool    string `json:"pgpool,omitempty"`
}

type targetInfo struct {
	Name string `json:"name"`
	Desc string `json:"description"`
}

// decisionInfo is the time of one RoutedPool.Route call.
type decisionInfo struct {
	ReadNs  float64 `json:"read_ns"`
	WriteNs float64 `json:"write_ns"`
}

type workloadResult struct {
	Name    string         `json:"name"`
	Desc    string         `json:"description"`
	Results []targetResult `json:"results"`
}

type targetResult struct {
	Target     string    `json:"target"`
	Ops        int64     `json:"ops"`
	Seconds    float64   `json:"seconds"`
	OpsPerSec  float64   `json:"ops_per_sec"`
	RoundOps   []float64 `json:"ops_per_sec_by_round"`
	P50us      float64   `json:"p50_us"`
	P99us      float64   `json:"p99_us"`
	Errors     int64     `json:"errors"`
	FirstError string    `json:"first_error,omitempty"`
	// NodeXacts is each server's pg_stat_database transaction delta over
	// the target's runs (warm-up included), in the order of report.Nodes.
	NodeXacts []int64 `json:"node_xacts"`
}

type targetAgg struct {
	ops, errs int64
	secs      float64
	h         *hist
	xacts     []int64
	rounds    []float64
	firstErr  string
}

func (a *targetAgg) add(m measurement, before, after []int64) {
	a.ops += m.ops
	a.errs += m.errs
	a.secs += m.secs
	a.h.merge(m.h)
	for i := range a.xacts {
		a.xacts[i] += after[i] - before[i]
	}
	a.rounds = append(a.rounds, float64(m.ops)/m.secs)
}

func (a *targetAgg) result(name string) targetResult {
	return targetResult{
		Target: name, Ops: a.ops, Seconds: a.secs, OpsPerSec: float64(a.ops) / a.secs, RoundOps: a.rounds,
		P50us: us(a.h.quantile(0.5)), P99us: us(a.h.quantile(0.99)),
		Errors: a.errs, FirstError: a.firstErr, NodeXacts: a.xacts,
	}
}

func us(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }

func fmtDur(d time.Duration) string {
	switch {
	case d >= 10*time.Millisecond:
		return fmt.Sprintf("%.1fms", float64(d)/1e6)
	case d >= time.Millisecond:
		return fmt.Sprintf("%.2fms", float64(d)/1e6)
	default:
		return fmt.Sprintf("%.0fµs", float64(d)/1e3)
	}
}

func fmtUs(v float64) string { return fmtDur(time.Duration(v * 1e3)) }

func (w *workloadResult) get(target string) *targetResult {
	for i := range w.Results {
		if w.Results[i].Target == target {
			return &w.Results[i]
		}
	}
	return nil
}

// spread is half the range of the per-round throughputs, relative to their
// mean.
func spread(v []float64) float64 {
	if len(v) < 2 {
		return 0
	}
	lo, hi, sum := slices.Min(v), slices.Max(v), 0.0
	for _, x := range v {
		sum += x
	}
	return (hi - lo) / 2 / (sum / float64(len(v)))
}

func printWorkload(w io.Writer, rep *report, wr workloadResult) {
	fmt.Fprintf(w, "\n### %s: %s\n\n", wr.Name, wr.Desc)
	fmt.Fprintf(w, "| target | ops/s | ± rounds | p50 | p99 | vs raw-primary | vs raw-pair | server transactions: %s |\n", strings.Join(rep.Nodes, " / "))
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---|")
	base, pair := wr.get("raw-primary"), wr.get("raw-pair")
	for _, r := range wr.Results {
		ratio := func(b *targetResult) string {
			if b == nil || b.OpsPerSec == 0 {
				return "–"
			}
			return fmt.Sprintf("%.3f", r.OpsPerSec/b.OpsPerSec)
		}
		var total int64
		for _, x := range r.NodeXacts {
			total += x
		}
		var parts []string
		for _, x := range r.NodeXacts {
			share := 0.0
			if total > 0 {
				share = 100 * float64(x) / float64(total)
			}
			parts = append(parts, fmt.Sprintf("%s (%.0f%%)", kilo(float64(x)), share))
		}
		name := r.Target
		if r.Errors > 0 {
			name += fmt.Sprintf(" (%d errors)", r.Errors)
		}
		fmt.Fprintf(w, "| %s | %.0f | %.1f%% | %s | %s | %s | %s | %s |\n", name, r.OpsPerSec, 100*spread(r.RoundOps),
			fmtUs(r.P50us), fmtUs(r.P99us), ratio(base), ratio(pair), strings.Join(parts, " / "))
	}
}

func kilo(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e4:
		return fmt.Sprintf("%.0fk", v/1e3)
	case v >= 1e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	default:
		return fmt.Sprintf("%.0f", v)
	}
}

// goal is one of the targets, as a ratio measured in this run.
type goal struct {
	Goal     string  `json:"goal"`
	Workload string  `json:"workload,omitempty"`
	Measured float64 `json:"measured"`
	Want     string  `json:"want"`
	// Total is the ratio of the throughputs over the whole run; Measured
	// (which decides) is the median of the per-round ratios: the two
	// targets ran next to each other in each round, so a burst of load from
	// elsewhere on the machine skews one round, not the verdict.
	Total float64 `json:"total_ratio,omitempty"`
	// RoundMin and RoundMax are the ratio's range over the rounds.
	RoundMin float64 `json:"round_min,omitempty"`
	RoundMax float64 `json:"round_max,omitempty"`
	Pass     bool    `json:"pass"`
}

// roundRatios returns the median, least and greatest of a's throughput over
// b's, round by round.
func roundRatios(a, b *targetResult) (med, lo, hi float64) {
	var rs []float64
	for i := range min(len(a.RoundOps), len(b.RoundOps)) {
		if b.RoundOps[i] > 0 {
			rs = append(rs, a.RoundOps[i]/b.RoundOps[i])
		}
	}
	if len(rs) == 0 {
		return 0, 0, 0
	}
	slices.Sort(rs)
	med = rs[len(rs)/2]
	if len(rs)%2 == 0 {
		med = (rs[len(rs)/2-1] + rs[len(rs)/2]) / 2
	}
	return med, rs[0], rs[len(rs)-1]
}

func goals(rep *report) []goal {
	var out []goal
	ratio := func(name string, wr *workloadResult, a, b string, want float64, cmp string) {
		ra, rb := wr.get(a), wr.get(b)
		if ra == nil || rb == nil || rb.OpsPerSec == 0 {
			return
		}
		g := goal{Goal: name, Workload: wr.Name, Total: ra.OpsPerSec / rb.OpsPerSec}
		g.Measured, g.RoundMin, g.RoundMax = roundRatios(ra, rb)
		if cmp == ">" {
			g.Want, g.Pass = fmt.Sprintf("> %.2f", want), g.Measured > want
		} else {
			g.Want, g.Pass = fmt.Sprintf("≥ %.2f", want), g.Measured >= want
		}
		out = append(out, g)
	}
	for i := range rep.Workloads {
		wr := &rep.Workloads[i]
		ratio("cost of routing: routed-single / raw-primary", wr, "routed-single", "raw-primary", 0.97, ">=")
	}
	for i := range rep.Workloads {
		wr := &rep.Workloads[i]
		ratio("routed / raw-pair (same two replicas)", wr, "routed", "raw-pair", 0.97, ">=")
	}
	for i := range rep.Workloads {
		wr := &rep.Workloads[i]
		ratio("routed / pgpool throughput", wr, "routed", "pgpool", 3, ">=")
		if ra, rb := wr.get("routed"), wr.get("pgpool"); ra != nil && rb != nil && rb.P99us > 0 {
			g := goal{Goal: "routed p99 / pgpool p99", Workload: wr.Name, Measured: ra.P99us / rb.P99us, Want: "< 1.00"}
			g.Pass = g.Measured < 1
			out = append(out, g)
		}
	}
	for i := range rep.Workloads {
		wr := &rep.Workloads[i]
		if wr.Name == "point" {
			ratio("routed / gorm+dbresolver", wr, "routed", "gorm", 1.4, ">=")
		} else {
			ratio("routed / gorm+dbresolver", wr, "routed", "gorm", 1, ">")
		}
	}
	if rep.Decision != nil && rep.RoundTripNs > 0 {
		out = append(out, goal{
			Goal:     fmt.Sprintf("routing decision (%.0f ns) / loopback round trip (%s)", rep.Decision.ReadNs, fmtDur(time.Duration(rep.RoundTripNs))),
			Measured: rep.Decision.ReadNs / rep.RoundTripNs, Want: "< 0.01",
			Pass: rep.Decision.ReadNs/rep.RoundTripNs < 0.01,
		})
	}
	return out
}

func printGoals(w io.Writer, rep *report) {
	fmt.Fprintf(w, "\n### Goals\n\n")
	fmt.Fprintln(w, "| goal | workload | median of round ratios | whole-run ratio | per-round range | want | result |")
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|---|")
	for _, g := range rep.Goals {
		rng := "–"
		if g.RoundMax > 0 {
			rng = fmt.Sprintf("%.3f – %.3f", g.RoundMin, g.RoundMax)
		}
		res := "MISS"
		if g.Pass {
			res = "PASS"
		}
		wl := g.Workload
		if wl == "" {
			wl = "–"
		}
		meas := fmt.Sprintf("%.3f", g.Measured)
		if g.Measured < 0.01 {
			meas = fmt.Sprintf("%.5f", g.Measured)
		}
		total := "–"
		if g.Total > 0 {
			total = fmt.Sprintf("%.3f", g.Total)
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s |\n", g.Goal, wl, meas, total, rng, g.Want, res)
	}
	if rep.Decision != nil {
		fmt.Fprintf(w, "\nRouting decision (RoutedPool.Route): read %.0f ns, write %.0f ns; loopback round trip (median sequential point select): %s.\n",
			rep.Decision.ReadNs, rep.Decision.WriteNs, fmtDur(time.Duration(rep.RoundTripNs)))
	}
	fmt.Fprintf(w, "\n%d workers, %s measured + %s warm-up per target per round, %d rounds (ABBA), %d rows; run took %s.\n",
		rep.Workers, rep.Duration, rep.Warmup, rep.Rounds, rep.Rows, rep.Elapsed)
}

func writeJSON(path string, rep *report) error {
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
