package main

import (
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	pgxrouteotel "github.com/pgxroute/pgxroute/otel"
	pgxrouteprom "github.com/pgxroute/pgxroute/prometheus"
	"github.com/pgxroute/pgxroute/routingtest"
)

// TestDemoMetrics runs the demo's kill scenario with -http on a free
// loopback port and scrapes /metrics while it runs: the calls are counted,
// and after the kill the endpoint shows replica1 down and ejected. When the
// build has the status page (status_mount.go), / serves it. The demo runs
// with the live view of a terminal: the table is redrawn in place (cursor
// up, erase), the router's events show above it, and no line is wider than
// 100 columns.
func TestDemoMetrics(t *testing.T) {
	routingtest.SkipWithoutPostgres(t, "")
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out syncBuffer
	type result struct {
		sum *demoSummary
		err error
	}
	done := make(chan result, 1)
	go func() {
		sum, err := runDemo(ctx, demoOptions{Scenarios: []string{"kill"}, Phase: 2 * time.Second, Workers: 4, Pause: 5 * time.Millisecond, HTTP: "127.0.0.1:0", TTY: true}, &out)
		done <- result{sum, err}
	}()
	addrRE := regexp.MustCompile(`Metrics: curl http://(127\.0\.0\.1:\d+)/metrics`)
	var url string
	for deadline := time.Now().Add(2 * time.Minute); url == "" && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if m := addrRE.FindStringSubmatch(out.String()); m != nil {
			url = "http://" + m[1] + "/metrics"
		}
	}
	if url == "" {
		cancel()
		t.Fatalf("no metrics address in the output:\n%s", out.String())
	}
	if strings.Contains(out.String(), "Status page: http://") {
		resp, err := http.Get(strings.TrimSuffix(url, "metrics"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("the status page answers %s", resp.Status)
		}
	}
	scrape := func() string {
		resp, err := http.Get(url)
		if err != nil {
			return ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	wants := []*regexp.Regexp{
		regexp.MustCompile(`pgxroute_node_state\{node="replica1",state="down"\} 1\n`),
		// Once at least: a loaded machine may also eject it before the kill.
		regexp.MustCompile(`pgxroute_node_ejections_total\{node="replica1"\} [1-9]`),
		regexp.MustCompile(`pgxroute_calls_total\{group="read",node="replica2",reason="read"\} [1-9]`),
		regexp.MustCompile(`pgxroute_calls_total\{group="default",node="primary",reason="sticky"\} [1-9]`),
	}
	var text string
	seen := false
	var r result
	ended := false
	// Scrape while the demo runs (it ends within the context's deadline).
	for !seen && !ended {
		select {
		case r = <-done:
			ended = true
			continue
		case <-time.After(100 * time.Millisecond):
		}
		text = scrape()
		seen = true
		for _, w := range wants {
			seen = seen && w.MatchString(text)
		}
	}
	if !ended {
		r = <-done
	}
	if r.err != nil {
		t.Fatal(r.err)
	}
	if !seen {
		t.Fatalf("the scrapes never showed %v; last scrape:\n%s\noutput:\n%s", wants, text, out.String())
	}
	if len(r.sum.Scenarios) != 1 || r.sum.Scenarios[0].Ejections["replica1"] == 0 {
		t.Errorf("summaries %+v: want kill, replica1 ejected", r.sum.Scenarios)
	}
	if got := scrape(); got != "" {
		t.Errorf("the endpoint still answers after the demo ended")
	}

	// The terminal's live view: each redraw moves up over the table it
	// drew (a status line, the header and three nodes) and erases it.
	text = out.String()
	if n := strings.Count(text, "\r\x1b[5A\x1b[J"); n < 2 {
		t.Errorf("%d redraws of the 5-line table in place, want some; output:\n%s", n, strings.ReplaceAll(text, "\x1b", `\e`))
	}
	for _, want := range []string{"NODE", "ROLE", "STATE", "LAG", "CALLS/S", "IN FLIGHT", "P99",
		">>> kill replica1 (SIGKILL)", "router: replica1 ejected", "router: replica1 re-admitted", "Summary of kill"} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	t.Logf("widest line: %d columns", checkWidth(t, text))
}

// TestMetricsAllocateNothingPerCall: with the OpenTelemetry metrics and the
// Prometheus collector registered over a pool, a routed call allocates as
// much as without them (they read Stat on collection only).
func TestMetricsAllocateNothingPerCall(t *testing.T) {
	f := routingtest.NewFake(t, routingtest.FakeOptions{})
	ctx := context.Background()
	call := func() { _, _ = f.Pool.Exec(ctx, "SELECT 1") }
	f.Pool.Exec(ctx, "SELECT 1")
	before := testing.AllocsPerRun(200, call)
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	defer mp.Shutdown(ctx)
	if _, err := pgxrouteotel.NewMetrics(f.Pool, pgxrouteotel.WithMeterProvider(mp)); err != nil {
		t.Fatal(err)
	}
	prometheus.NewRegistry().MustRegister(pgxrouteprom.NewCollector(f.Pool, nil))
	after := testing.AllocsPerRun(200, call)
	if after != before {
		t.Errorf("a routed call allocates %v times with the metrics on, %v without", after, before)
	}
	t.Logf("allocations per routed Exec on a fake: %v without, %v with the metrics", before, after)
}
