package main

import (
	"bytes"
	"context"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pgxroute/pgxroute/routingtest"
)

// ansiRE matches the escape sequences the live view writes.
var ansiRE = regexp.MustCompile(`\x1b\[[0-9;]*[A-Za-z]`)

// checkWidth fails the test for every line of out wider than maxWidth
// columns once the ANSI escapes are removed, and returns the widest.
func checkWidth(t *testing.T, out string) int {
	t.Helper()
	widest := 0
	for _, line := range strings.Split(ansiRE.ReplaceAllString(out, ""), "\n") {
		line = strings.TrimPrefix(line, "\r")
		w := columns(line)
		widest = max(widest, w)
		if w > maxWidth {
			t.Errorf("line of %d columns (over %d): %q", w, maxWidth, line)
		}
	}
	return widest
}

// columns is the width of line on a terminal: tabs move to the next
// multiple of 8.
func columns(line string) int {
	w := 0
	for _, r := range line {
		if r == '\t' {
			w = (w/8 + 1) * 8
		} else {
			w++
		}
	}
	return w
}

// sum adds up m.
func sum(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

// TestDemoScenarios runs every scenario in turn (-scenario all, short
// phases) on the harness cluster, printing plain lines as in CI, and checks
// each summary against what the servers answered: every read and write is
// counted by the port its server reported, no read or write fails when a
// replica is killed or frozen, the victim is ejected (or suspected) and
// re-admitted, and after a failover or a switchover writes resume on the
// new primary, which says itself that it is the primary; a sticky read
// misses its own write only when another server answered it than the one
// that took the write (a failover's lost write), never in a switchover.
func TestDemoScenarios(t *testing.T) {
	routingtest.SkipWithoutPostgres(t, "")
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	var out syncBuffer
	o := demoOptions{Scenarios: demoScenarioNames, Phase: time.Second, Workers: 4, Pause: 5 * time.Millisecond, HedgeAfter: 50 * time.Millisecond}
	res, err := runDemo(ctx, o, &out)
	t.Logf("demo output:\n%s", out.String())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range res.Scenarios {
		names = append(names, s.Name)
	}
	if diff := cmp.Diff(demoScenarioNames, names); diff != "" {
		t.Fatalf("scenarios run (-want +got):\n%s", diff)
	}
	for _, s := range res.Scenarios {
		t.Run(s.Name, func(t *testing.T) {
			// Every success is counted by a server's own answer.
			if s.Reads == 0 || s.Writes == 0 || s.StickyReads == 0 {
				t.Errorf("reads %d, writes %d, sticky reads %d: want some of each", s.Reads, s.Writes, s.StickyReads)
			}
			if sum(s.ReadsBy) != s.Reads || sum(s.WritesBy) != s.Writes || s.OtherPort != 0 {
				t.Errorf("reads %d answered by %v, writes %d by %v, %d by no node: every answer should name a node",
					s.Reads, s.ReadsBy, s.Writes, s.WritesBy, s.OtherPort)
			}
			if s.WritesBy[s.PrimaryBefore] == 0 {
				t.Errorf("%s acknowledged no write before the fault: %v", s.PrimaryBefore, s.WritesBy)
			}
			// A write that was never sent waits for a primary and runs:
			// only writes caught on a failing server may fail, as
			// outcome unknown.
			if s.WritesNeverSent != 0 {
				t.Errorf("%d writes failed that were never sent (first error: %s)", s.WritesNeverSent, s.FirstError)
			}
			if s.Err != "" {
				t.Errorf("the scenario failed: %s", s.Err)
			}
			roles := map[string]int{}
			for _, r := range s.ServerRoles {
				roles[r]++
			}
			if diff := cmp.Diff(map[string]int{"primary": 1, "replica": 2}, roles); diff != "" {
				t.Errorf("servers' roles at the end %v (-want +got):\n%s", s.ServerRoles, diff)
			}
			switch s.Name {
			case "kill", "freeze":
				victim := "replica1"
				if s.Name == "freeze" {
					victim = "replica2"
				}
				if s.ReadsFailed != 0 || s.WritesUnknown != 0 || s.StickyStale != 0 {
					t.Errorf("failed reads %d, writes of unknown outcome %d, stale sticky reads %d: want 0 (first error: %s)",
						s.ReadsFailed, s.WritesUnknown, s.StickyStale, s.FirstError)
				}
				if s.NewPrimary != "" || s.ServerRoles["primary"] != "primary" {
					t.Errorf("new primary %q, roles %v: the primary should not move", s.NewPrimary, s.ServerRoles)
				}
				if s.ReadsBy[victim] == 0 {
					t.Errorf("%s served no read: %v", victim, s.ReadsBy)
				}
				avoided := "ejected"
				if s.Name == "freeze" {
					avoided = "suspect"
				}
				ev := s.Events[victim]
				if !slices.Contains(ev, avoided) || !slices.Contains(ev, "readmitted") {
					t.Errorf("%s's events %v, want %s and readmitted", victim, ev, avoided)
				}
				if s.Readmissions[victim] == 0 {
					t.Errorf("%s never re-admitted by Stat's count: %v", victim, s.Readmissions)
				}
			case "members":
				victim := "replica2"
				if s.ReadsFailed != 0 || s.WritesUnknown != 0 || s.StickyStale != 0 {
					t.Errorf("failed reads %d, writes of unknown outcome %d, stale sticky reads %d: want 0 (first error: %s)",
						s.ReadsFailed, s.WritesUnknown, s.StickyStale, s.FirstError)
				}
				if s.NewPrimary != "" || s.ServerRoles["primary"] != "primary" {
					t.Errorf("new primary %q, roles %v: the primary should not move", s.NewPrimary, s.ServerRoles)
				}
				if s.ReadsBy[victim] == 0 || s.ReadsBy["replica1"] == 0 {
					t.Errorf("reads by server %v: both replicas should serve some", s.ReadsBy)
				}
				ev := s.Events[victim]
				for _, want := range []string{"node_removed", "node_drained", "node_added", "node_joined"} {
					if !slices.Contains(ev, want) {
						t.Errorf("%s's events %v, want %s", victim, ev, want)
					}
				}
			case "failover", "switchover":
				if s.NewPrimary == "" || s.NewPrimary == s.PrimaryBefore {
					t.Fatalf("new primary %q, before %q", s.NewPrimary, s.PrimaryBefore)
				}
				if s.ServerRoles[s.NewPrimary] != "primary" || s.ServerRoles[s.PrimaryBefore] != "replica" {
					t.Errorf("servers' roles %v: want %s primary and %s replica", s.ServerRoles, s.NewPrimary, s.PrimaryBefore)
				}
				if s.WritesBy[s.NewPrimary] == 0 || s.FirstWrite <= 0 {
					t.Errorf("the new primary %s acknowledged %d writes, the first %v after the fault: writes should resume on it",
						s.NewPrimary, s.WritesBy[s.NewPrimary], s.FirstWrite)
				}
				// A read-back that missed its write was answered by another
				// server than the write (the row died with the old primary):
				// never after a clean switchover.
				if s.StickyStale != s.StaleElsewhere || (s.Name == "switchover" && s.StickyStale != 0) {
					t.Errorf("%d sticky reads missed their write, %d of them answered by another server than the write",
						s.StickyStale, s.StaleElsewhere)
				}
				if !slices.Contains(s.Events[s.NewPrimary], "primary_changed") {
					t.Errorf("no primary_changed event for %s: %v", s.NewPrimary, s.Events)
				}
				if s.Ejections[s.PrimaryBefore] == 0 {
					t.Errorf("the old primary %s was never ejected: %v", s.PrimaryBefore, s.Ejections)
				}
			}
		})
	}
	// Not a terminal: plain lines, no ANSI escapes, none wider than 100.
	text := out.String()
	if strings.Contains(text, "\x1b[") {
		t.Error("ANSI escapes in non-terminal output")
	}
	t.Logf("widest line: %d columns", checkWidth(t, text))
	if !regexp.MustCompile(`(?m)^kill \d+\.\ds reads \d+ writes \d+ failed 0 \| primary\*:up`).MatchString(text) {
		t.Error("output lacks a progress line (kill N.Ns reads N writes N failed 0 | primary*:up ...)")
	}
	for _, want := range []string{"Summary of kill", "Summary of freeze", "Summary of failover", "Summary of switchover",
		">>> kill replica1 (SIGKILL)", "router: replica1 ejected", "router: writes go to replica1 now (was primary)",
		"All 5 scenarios", "Servers stopped"} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q", want)
		}
	}
}

func TestDemoInterrupted(t *testing.T) {
	routingtest.SkipWithoutPostgres(t, "")
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// Cancel as Ctrl-C would, one second into the first scenario.
	var out syncBuffer
	go func() {
		for deadline := time.Now().Add(2 * time.Minute); !strings.Contains(out.String(), "=== kill") && time.Now().Before(deadline); {
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(time.Second)
		cancel()
	}()
	start := time.Now()
	res, err := runDemo(ctx, demoOptions{Scenarios: demoScenarioNames, Phase: time.Minute, Workers: 2, Pause: 5 * time.Millisecond}, &out)
	if err == nil || err.Error() != "interrupted" {
		t.Fatalf("err = %v, want interrupted", err)
	}
	if time.Since(start) > 2*time.Minute || res == nil || !res.Interrupted || len(res.Scenarios) != 1 ||
		!res.Scenarios[0].Interrupted || res.Scenarios[0].ReadsFailed != 0 || res.Scenarios[0].Reads == 0 {
		t.Errorf("summary %+v", res)
	}
	if !strings.Contains(out.String(), "Summary of kill (interrupted)") || !strings.Contains(out.String(), "Servers stopped") {
		t.Errorf("output:\n%s", out.String())
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestNoServerBinaries(t *testing.T) {
	t.Setenv("PGXROUTE_PG_BIN", t.TempDir())
	for _, cmd := range []string{"demo", "consistency"} {
		code, _, errOut := runCmd(t, cmd)
		if code != 1 || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "install") {
			t.Errorf("%s without binaries: exit %d, stderr %q; want 1 and one line saying what to install", cmd, code, errOut)
		}
	}
}

// TestDemoFlags: bad flag values are usage errors (exit 2) that say what is
// wrong, before any server starts.
func TestDemoFlags(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"-scenario", "explode"}, `unknown scenario "explode": want kill, freeze, members, failover, switchover or all`},
		{[]string{"-phase", "0s"}, "-phase and -workers must be positive"},
		{[]string{"-workers", "-1"}, "-phase and -workers must be positive"},
		{[]string{"-hedge", "-1ms"}, "-hedge not negative"},
		{[]string{"extra"}, `unexpected argument "extra"`},
	}
	for _, tt := range tests {
		code, _, errOut := runCmd(t, append([]string{"demo"}, tt.args...)...)
		if code != 2 || !strings.Contains(errOut, tt.want) {
			t.Errorf("demo %v: exit %d, stderr %q; want 2 and %q", tt.args, code, errOut, tt.want)
		}
	}
	code, out, _ := runCmd(t, "demo", "-h")
	if code != 0 || !strings.Contains(out, "-scenario") || !strings.Contains(out, "-http") {
		t.Errorf("demo -h: exit %d, output:\n%s", code, out)
	}
	checkWidth(t, out)
}

// TestTableWidth renders the live table, the plain line and a summary with
// the widest values they can get (long node names, numbers in the
// billions, every state, an error message of 300 characters): no line is
// wider than 100 columns, and the long error wraps instead of being cut.
func TestTableWidth(t *testing.T) {
	rows := []nodeRow{
		{Name: "primary", Role: "primary", State: "up", Primary: true, CallsPerSec: 123456, InFlight: 1234, P99: 1234567 * time.Microsecond},
		{Name: "replica1", Role: "replica", State: "suspect", Lag: 59*time.Minute + 999*time.Millisecond, LagBytes: 123456789012, CallsPerSec: 99999, InFlight: 99, P99: 29*time.Second + 123*time.Millisecond},
		{Name: "replica2", Role: "unknown", State: "down"},
	}
	f := frame{Scenario: "switchover", Elapsed: 9999 * time.Second, Reads: 9_999_999_999, ReadsFailed: 9_999_999, Writes: 999_999_999, WritesFailed: 99_999, Rows: rows}
	var b strings.Builder
	l := newLive(&b, true)
	l.Frame(f)
	l.Event(strings.Repeat("event ", 40))
	f.Primary = "replica1"
	l.Frame(f)
	b.WriteString(plainLine(f) + "\n")
	long := strings.Repeat("a long error message, ", 14)
	s := &scenarioSummary{Name: "switchover", About: "the primary role moved cleanly from replica1 to primary",
		Reads: 9_999_999_999, ReadsFailed: 99_999, Writes: 999_999_999, WritesNeverSent: 9_999, WritesUnknown: 9_999,
		StickyReads: 999_999_999, SlowestRead: 29 * time.Second, NewPrimary: "primary", FirstWrite: 12345 * time.Millisecond,
		ReadsBy:     map[string]int64{"primary": 999_999_999, "replica1": 999_999_999, "replica2": 999_999_999},
		WritesBy:    map[string]int64{"primary": 999_999_999, "replica1": 999_999_999, "replica2": 999_999_999},
		ServerRoles: map[string]string{"primary": "primary", "replica1": "replica", "replica2": "down"},
		Ejections:   map[string]int64{"primary": 999, "replica1": 999, "replica2": 999},
		FirstError:  long, Err: long, Interrupted: true, Elapsed: time.Hour}
	b.WriteString(s.String())
	checkWidth(t, b.String())
	if !strings.Contains(strings.Join(strings.Fields(s.String()), " "), strings.TrimSpace(long)) {
		t.Errorf("the summary cuts the first error:\n%s", s.String())
	}
	t.Logf("rendered:\n%s", ansiRE.ReplaceAllString(b.String(), ""))
}

func TestWrap(t *testing.T) {
	word := strings.Repeat("x", 150)
	tests := []struct {
		first, text string
		want        []string
	}{
		{"  err  ", "short", []string{"  err  short"}},
		{"", strings.Repeat("ab ", 40), []string{strings.TrimSpace(strings.Repeat("ab ", 33)), strings.TrimSpace(strings.Repeat("ab ", 7))}},
		{"> ", word, []string{"> " + word[:98], "  " + word[98:]}},
		{"> ", "", []string{"> "}},
	}
	for _, tt := range tests {
		got := strings.Split(wrap(tt.first, tt.text), "\n")
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("wrap(%q, %q) (-want +got):\n%s", tt.first, tt.text, diff)
		}
	}
}

func TestCommasAndP99(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", -1234567: "-1,234,567", 9_999_999_999: "9,999,999,999"} {
		if got := commas(n); got != want {
			t.Errorf("commas(%d) = %q, want %q", n, got, want)
		}
	}
	var ds []time.Duration
	for i := 100; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	tests := []struct {
		in   []time.Duration
		want time.Duration
	}{
		{nil, 0},
		{[]time.Duration{5}, 5},
		{ds, 99 * time.Millisecond},
		{append(slices.Clone(ds), time.Second), 100 * time.Millisecond},
	}
	for _, tt := range tests {
		if got := p99(tt.in); got != tt.want {
			t.Errorf("p99 of %d values = %v, want %v", len(tt.in), got, tt.want)
		}
	}
}
