package main

import (
	"strings"
	"testing"

	"github.com/pgxroute/pgxroute/routingtest"
)

func TestConsistency(t *testing.T) {
	routingtest.SkipWithoutPostgres(t, "")
	t.Parallel()
	code, out, errOut := runCmd(t, "consistency", "-duration", "500ms", "-workers", "4")
	t.Logf("stdout:\n%s\nstderr:\n%s", out, errOut)
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	rows := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n")[1:] {
		f := strings.Fields(line)
		rows[f[0]] = f
	}
	for _, mode := range []string{"off", "sticky-scope", "sticky-for(1s)", "read-your-writes"} {
		f, ok := rows[mode]
		if !ok {
			t.Errorf("no row for mode %s", mode)
			continue
		}
		if f[2] == "0" {
			t.Errorf("%s: no reads", mode)
		}
		// Columns: mode scopes reads stale ... errors (last). Off and
		// sticky-for may miss a write (the latter when a replica lags beyond
		// its window on a loaded machine); the other two never do.
		if (mode == "sticky-scope" || mode == "read-your-writes") && f[3] != "0" {
			t.Errorf("%s: %s stale reads, want 0", mode, f[3])
		}
		if f[len(f)-1] != "0" {
			t.Errorf("%s: %s errors", mode, f[len(f)-1])
		}
	}
}
