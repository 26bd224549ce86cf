package main

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pgxroute/pgxroute/routingtest"
)

func TestDemo(t *testing.T) {
	routingtest.SkipWithoutPostgres(t, "")
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out bytes.Buffer
	sum, err := runDemo(ctx, demoOptions{Duration: 3 * time.Second, Workers: 4, Kill: true}, &out)
	t.Logf("demo output:\n%s", out.String())
	if err != nil {
		t.Fatal(err)
	}
	if sum.Reads == 0 || sum.Writes == 0 || sum.StickyReads == 0 {
		t.Errorf("reads %d, writes %d, sticky reads %d: want some of each", sum.Reads, sum.Writes, sum.StickyReads)
	}
	if sum.ReadsFailed != 0 || sum.WritesFailed != 0 {
		t.Errorf("failed reads %d, failed writes %d, want 0 (first error: %s)", sum.ReadsFailed, sum.WritesFailed, sum.FirstError)
	}
	if sum.StickyStale != 0 {
		t.Errorf("%d sticky reads missed their own write", sum.StickyStale)
	}
	for _, node := range []string{"primary", "replica1", "replica2"} {
		if sum.Served[node] == 0 {
			t.Errorf("%s served no read by its own account; served: %v", node, sum.Served)
		}
	}
	// The primary serves every sticky read (and point reads only when no
	// replica is healthy).
	if sum.Served["primary"] < sum.StickyReads {
		t.Errorf("primary served %d reads, want at least the %d sticky reads", sum.Served["primary"], sum.StickyReads)
	}
	if sum.Killed != "replica1" || sum.KilledAt <= 0 {
		t.Errorf("killed %q at %v, want replica1", sum.Killed, sum.KilledAt)
	}
	if sum.Served["replica2"] <= sum.Served["replica1"] {
		t.Errorf("replica2 served %d reads, replica1 %d: replica2 should carry the reads after the kill", sum.Served["replica2"], sum.Served["replica1"])
	}
	for _, r := range sum.Nodes {
		if r.Name == "replica1" && r.State != "down" {
			t.Errorf("replica1 state %q at the end, want down", r.State)
		}
	}
	if sum.Ejections["replica1"] == 0 {
		t.Errorf("replica1 was never ejected: %v", sum.Ejections)
	}
	// Not a terminal: plain, timestamped lines, no ANSI escapes.
	s := out.String()
	if strings.Contains(s, "\x1b[") {
		t.Error("ANSI escapes in non-terminal output")
	}
	// A progress line, whatever second it falls on under load.
	if !regexp.MustCompile(`t=\d+\.\ds reads=`).MatchString(s) {
		t.Error("output lacks a progress line (t=N.Ns reads=...)")
	}
	for _, want := range []string{"replica1 killed (SIGKILL)", "Summary:", "failed: 0", "Servers stopped"} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q", want)
		}
	}
}

func TestDemoInterrupted(t *testing.T) {
	routingtest.SkipWithoutPostgres(t, "")
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// Cancel as Ctrl-C would, one second into the workload.
	var out syncBuffer
	go func() {
		for !strings.Contains(out.String(), "Workload:") {
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(time.Second)
		cancel()
	}()
	start := time.Now()
	sum, err := runDemo(ctx, demoOptions{Duration: time.Minute, Workers: 2}, &out)
	if err == nil || err.Error() != "interrupted" {
		t.Fatalf("err = %v, want interrupted", err)
	}
	if time.Since(start) > 2*time.Minute || sum == nil || !sum.Interrupted || sum.ReadsFailed != 0 {
		t.Errorf("summary %+v", sum)
	}
	if !strings.Contains(out.String(), "Summary (interrupted)") || !strings.Contains(out.String(), "Servers stopped") {
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
