package prometheus_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pgxroute/pgxroute"
	"github.com/pgxroute/pgxroute/internal/obstest"
	pgxrouteprom "github.com/pgxroute/pgxroute/prometheus"
)

// The expected text of the deterministic metrics after obstest.RunSequence.
const wantAfterSequence = `
# HELP pgxroute_calls_total Routed calls (attempts) by bind group, node and routing reason.
# TYPE pgxroute_calls_total counter
pgxroute_calls_total{group="default",node="primary",reason="sticky"} 1
pgxroute_calls_total{group="default",node="primary",reason="write"} 1
pgxroute_calls_total{group="default",node="primary",reason="write_no_scope"} 2
pgxroute_calls_total{group="read",node="replica1",reason="read_no_scope"} 2
pgxroute_calls_total{group="read",node="replica2",reason="read_no_scope"} 4
# HELP pgxroute_node_ejections_total Times the node was marked down (probes failed, or a call's connection failed).
# TYPE pgxroute_node_ejections_total counter
pgxroute_node_ejections_total{node="primary"} 0
pgxroute_node_ejections_total{node="replica1"} 1
pgxroute_node_ejections_total{node="replica2"} 0
# HELP pgxroute_node_state 1 for the node's current state (up, lagging, down, suspect, joining), 0 for the others.
# TYPE pgxroute_node_state gauge
pgxroute_node_state{node="primary",state="down"} 0
pgxroute_node_state{node="primary",state="joining"} 0
pgxroute_node_state{node="primary",state="lagging"} 0
pgxroute_node_state{node="primary",state="suspect"} 0
pgxroute_node_state{node="primary",state="up"} 1
pgxroute_node_state{node="replica1",state="down"} 1
pgxroute_node_state{node="replica1",state="joining"} 0
pgxroute_node_state{node="replica1",state="lagging"} 0
pgxroute_node_state{node="replica1",state="suspect"} 0
pgxroute_node_state{node="replica1",state="up"} 0
pgxroute_node_state{node="replica2",state="down"} 0
pgxroute_node_state{node="replica2",state="joining"} 0
pgxroute_node_state{node="replica2",state="lagging"} 0
pgxroute_node_state{node="replica2",state="suspect"} 0
pgxroute_node_state{node="replica2",state="up"} 1
# HELP pgxroute_node_in_flight_calls Routed calls running on the node, in any group.
# TYPE pgxroute_node_in_flight_calls gauge
pgxroute_node_in_flight_calls{node="primary"} 0
pgxroute_node_in_flight_calls{node="replica1"} 0
pgxroute_node_in_flight_calls{node="replica2"} 0
`

// membershipMetrics are the membership and discovery metrics.
var membershipMetrics = []string{"pgxroute_membership_added_total", "pgxroute_membership_removed_total",
	"pgxroute_membership_drained_total", "pgxroute_membership_drain_timeouts_total", "pgxroute_membership_draining_nodes",
	"pgxroute_discovery_calls_total", "pgxroute_discovery_failures_total", "pgxroute_discovery_members",
	"pgxroute_discovery_last_success_timestamp_seconds"}

// wantNoMembershipChange is their text on a pool without Config.Discovery
// whose groups did not change.
const wantNoMembershipChange = `
# HELP pgxroute_membership_added_total Nodes added to a bind group while the pool ran (SetGroup, Discovery).
# TYPE pgxroute_membership_added_total counter
pgxroute_membership_added_total 0
# HELP pgxroute_membership_drain_timeouts_total Removed nodes whose remaining calls DrainTimeout cut short (their calls failed with ErrNodeRemoved).
# TYPE pgxroute_membership_drain_timeouts_total counter
pgxroute_membership_drain_timeouts_total 0
# HELP pgxroute_membership_drained_total Removed nodes whose pools closed once their calls ended or DrainTimeout ran out.
# TYPE pgxroute_membership_drained_total counter
pgxroute_membership_drained_total 0
# HELP pgxroute_membership_draining_nodes Nodes removed from every group whose calls, transactions or acquired connections still run.
# TYPE pgxroute_membership_draining_nodes gauge
pgxroute_membership_draining_nodes 0
# HELP pgxroute_membership_removed_total Nodes removed from a bind group while the pool ran (SetGroup, Discovery).
# TYPE pgxroute_membership_removed_total counter
pgxroute_membership_removed_total 0
`

func TestCollectorKnownSequence(t *testing.T) {
	c, pool := obstest.NewRouted(t, nil)
	col := pgxrouteprom.NewCollector(pool, nil)
	// Before any call: every node up, no call counted.
	if err := testutil.CollectAndCompare(col, strings.NewReader(`
# HELP pgxroute_node_state 1 for the node's current state (up, lagging, down, suspect, joining), 0 for the others.
# TYPE pgxroute_node_state gauge
pgxroute_node_state{node="primary",state="down"} 0
pgxroute_node_state{node="primary",state="joining"} 0
pgxroute_node_state{node="primary",state="lagging"} 0
pgxroute_node_state{node="primary",state="suspect"} 0
pgxroute_node_state{node="primary",state="up"} 1
pgxroute_node_state{node="replica1",state="down"} 0
pgxroute_node_state{node="replica1",state="joining"} 0
pgxroute_node_state{node="replica1",state="lagging"} 0
pgxroute_node_state{node="replica1",state="suspect"} 0
pgxroute_node_state{node="replica1",state="up"} 1
pgxroute_node_state{node="replica2",state="down"} 0
pgxroute_node_state{node="replica2",state="joining"} 0
pgxroute_node_state{node="replica2",state="lagging"} 0
pgxroute_node_state{node="replica2",state="suspect"} 0
pgxroute_node_state{node="replica2",state="up"} 1
`), "pgxroute_node_state", "pgxroute_calls_total"); err != nil {
		t.Fatal(err)
	}
	obstest.RunSequence(t, c, pool, true)
	if err := testutil.CollectAndCompare(col, strings.NewReader(wantAfterSequence),
		"pgxroute_calls_total", "pgxroute_node_ejections_total", "pgxroute_node_state", "pgxroute_node_in_flight_calls"); err != nil {
		t.Fatal(err)
	}
	// Roles, as probed: replica2 is a replica, the primary a primary.
	if err := testutil.CollectAndCompare(col, strings.NewReader(`
# HELP pgxroute_node_role 1 for the role the node's last probe saw (primary, replica, unknown), 0 for the others.
# TYPE pgxroute_node_role gauge
pgxroute_node_role{node="primary",role="primary"} 1
pgxroute_node_role{node="primary",role="replica"} 0
pgxroute_node_role{node="primary",role="unknown"} 0
pgxroute_node_role{node="replica1",role="primary"} 0
pgxroute_node_role{node="replica1",role="replica"} 1
pgxroute_node_role{node="replica1",role="unknown"} 0
pgxroute_node_role{node="replica2",role="primary"} 0
pgxroute_node_role{node="replica2",role="replica"} 1
pgxroute_node_role{node="replica2",role="unknown"} 0
`), "pgxroute_node_role"); err != nil {
		t.Fatal(err)
	}
	// No membership change, nothing draining; no discovery metrics without
	// Config.Discovery.
	if err := testutil.CollectAndCompare(col, strings.NewReader(wantNoMembershipChange), membershipMetrics...); err != nil {
		t.Fatal(err)
	}
	checkWithPromtool(t, col, `pgxroute_pool_connections{node="primary",state="idle"}`, `pgxroute_pool_acquire_seconds_total{node="replica2"}`,
		`pgxroute_node_replay_lag_seconds{node="replica2"}`, `pgxroute_primary_changes_total 0`, `pgxroute_member_primary{node="primary"} 1`)
}

// checkWithPromtool scrapes the collector over HTTP, checks that the text
// has each of wants, and runs `promtool check metrics` on it: it skips without promtool, unless
// PGXROUTE_REQUIRE_PG=1 (CI, whose .ci/install.d/prometheus.sh installs it).
func checkWithPromtool(t *testing.T, col prometheus.Collector, wants ...string) {
	t.Helper()
	text := scrape(t, col)
	for _, want := range wants {
		if !strings.Contains(text, want) {
			t.Errorf("scrape lacks %s:\n%s", want, text)
		}
	}
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("PGXROUTE_REQUIRE_PG") == "1" {
			t.Fatal("promtool is missing (install Debian's prometheus package: .ci/install.d/prometheus.sh)")
		}
		t.Skip("promtool is missing: install Debian's prometheus package (.ci/install.d/prometheus.sh) to lint the scrape")
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(text)
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) != 0 {
		t.Fatalf("promtool check metrics: %v\n%s\nscraped:\n%s", err, out, text)
	}
}

// scrape serves the collector with promhttp on loopback and GETs the text.
func scrape(t *testing.T, col prometheus.Collector) string {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(col)
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.HTTPErrorOnError}))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: %s\n%s", resp.Status, body)
	}
	return string(body)
}

// TestCollectorRace collects while 64 goroutines route calls (run with
// -race): every collection succeeds and the final count is exact.
func TestCollectorRace(t *testing.T) {
	_, pool := obstest.NewRouted(t, nil)
	col := pgxrouteprom.NewCollector(pool, nil)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(col)
	ctx := context.Background()
	const workers, calls = 64, 20
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Go(func() {
			for range calls {
				var port int
				if err := pool.QueryRow(ctx, "SELECT inet_server_port()").Scan(&port); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	collections := 0
	for running := true; running && collections < 10000; collections++ {
		select {
		case <-done:
			running = false
		default:
		}
		if _, err := reg.Gather(); err != nil {
			t.Fatalf("gather %d: %v", collections, err)
		}
	}
	<-done
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	var total float64
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "pgxroute_calls_total" {
			for _, m := range mf.GetMetric() {
				total += m.GetCounter().GetValue()
			}
		}
	}
	if total != workers*calls {
		t.Fatalf("pgxroute_calls_total sums to %v after %d collections, want %d", total, collections, workers*calls)
	}
	t.Logf("%d collections while %d goroutines made %d calls", collections, workers, workers*calls)
}

func TestReasonNames(t *testing.T) {
	seen := map[string]pgxroute.Reason{}
	for _, r := range pgxroute.Reasons() {
		n := pgxrouteprom.ReasonName(r)
		if n == "unknown" {
			t.Errorf("reason %d (%s) has no label value", r, r)
		}
		if o, dup := seen[n]; dup {
			t.Errorf("reasons %s and %s are both labelled %s", o, r, n)
		}
		seen[n] = r
	}
}
