package routingtest

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"
)

// NewPatroni starts a Patroni cluster for a test or benchmark (see
// StartPatroni) and registers its Close with tb.Cleanup. Without the
// binaries it needs (patroni, patronictl, etcd, PostgreSQL's server
// binaries) it skips the test with one line saying what to install, or fails
// it when PGXROUTE_REQUIRE_PG=1. When opts.Log is nil the processes' output
// is kept and its end printed if the test fails.
func NewPatroni(tb testing.TB, opts PatroniOptions) *Patroni {
	tb.Helper()
	SkipWithoutPatroni(tb, opts.BinDir)
	var logs *SyncBuffer
	if opts.Log == nil {
		logs = &SyncBuffer{}
		opts.Log = logs
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p, err := StartPatroni(ctx, opts)
	if err != nil {
		if logs != nil {
			tb.Logf("routingtest: end of the Patroni cluster's log:\n%s", lastLines(logs.String(), 60))
		}
		tb.Fatalf("routingtest: start Patroni: %v", err)
	}
	tb.Cleanup(func() {
		if err := p.Close(); err != nil {
			tb.Errorf("routingtest: close Patroni: %v", err)
		}
		if logs != nil && tb.Failed() {
			tb.Logf("routingtest: end of the Patroni cluster's log:\n%s", lastLines(logs.String(), 60))
		}
	})
	return p
}

// SkipWithoutPatroni skips tb, with one line saying what to install, when
// patroni, patronictl, etcd or PostgreSQL's server binaries are missing, or
// fails it when PGXROUTE_REQUIRE_PG=1.
func SkipWithoutPatroni(tb testing.TB, binDir string) {
	tb.Helper()
	SkipWithoutPostgres(tb, binDir)
	_, _, _, err := findPatroniBinaries()
	if err == nil {
		return
	}
	if os.Getenv(RequirePGEnv) == "1" {
		tb.Fatalf("%v (%s=1)", err, RequirePGEnv)
	}
	if errors.Is(err, ErrNoPatroni) {
		tb.Skip(err.Error())
	}
	tb.Fatal(err)
}
