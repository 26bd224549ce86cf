package routingtest

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"
)

// RequirePGEnv is the environment variable that, set to 1, turns a missing
// PostgreSQL installation from a skipped test into a failed one (CI sets it).
const RequirePGEnv = "PGXROUTE_REQUIRE_PG"

// NewCluster starts a cluster for a test or benchmark and registers its Close
// with tb.Cleanup. Without server binaries it skips the test with one line
// saying what to install, or fails it when PGXROUTE_REQUIRE_PG=1. When
// opts.Log is nil the servers' output is kept and its end printed if the test
// fails.
func NewCluster(tb testing.TB, opts ClusterOptions) *Cluster {
	tb.Helper()
	SkipWithoutPostgres(tb, opts.BinDir)
	var logs *SyncBuffer
	if opts.Log == nil {
		logs = &SyncBuffer{}
		opts.Log = logs
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := StartCluster(ctx, opts)
	if err != nil {
		tb.Fatalf("routingtest: start cluster: %v", err)
	}
	tb.Cleanup(func() {
		if err := c.Close(); err != nil {
			tb.Errorf("routingtest: close cluster: %v", err)
		}
		if logs != nil && tb.Failed() {
			tb.Logf("routingtest: end of the servers' log:\n%s", lastLines(logs.String(), 40))
		}
	})
	return c
}

// SkipWithoutPostgres skips tb, with one line saying what to install, when no
// PostgreSQL server binaries are found (see FindBinDir), or fails it when
// PGXROUTE_REQUIRE_PG=1.
func SkipWithoutPostgres(tb testing.TB, binDir string) {
	tb.Helper()
	_, err := FindBinDir(binDir)
	if err == nil {
		_, err = serverAccount("")
	}
	if err == nil {
		return
	}
	if os.Getenv(RequirePGEnv) == "1" {
		tb.Fatalf("%v (%s=1)", err, RequirePGEnv)
	}
	if errors.Is(err, ErrNoServer) || errors.Is(err, ErrNoUnprivilegedUser) {
		tb.Skip(err.Error())
	}
	tb.Fatal(err)
}
