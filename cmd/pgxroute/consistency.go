package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/pgxroute/pgxroute/internal/experiment"
	"github.com/pgxroute/pgxroute/routingtest"
)

const consistencyAbout = `
Consistency runs the read-your-writes experiment on a local primary and two
replicas, the second applying WAL 200 ms late. Under each consistency mode
(off, sticky-scope, sticky-for(1s), read-your-writes) many scopes write a row
and read it back at once and over the next second; the table counts the
reads that did not see their own scope's write (stale), as the answering
server saw it, and which servers answered. Progress goes to stderr, the table
to stdout. The servers and their files are removed at the end, also on
Ctrl-C.`

func runConsistency(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("consistency", "[-duration 5s] [-workers 16]", consistencyAbout, stdout)
	duration := fs.Duration("duration", 5*time.Second, "how long each mode runs")
	workers := fs.Int("workers", 16, "concurrent scopes")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	if *duration <= 0 || *workers <= 0 {
		return usagef("-duration and -workers must be positive")
	}
	if _, err := routingtest.FindBinDir(""); err != nil {
		return err // its message says what to install
	}
	fmt.Fprintln(stderr, "Starting a primary and two replicas (replica2 applies WAL 200 ms late)...")
	t0 := time.Now()
	c, err := experiment.StartCluster(ctx, nil)
	if err != nil {
		if errors.Is(err, routingtest.ErrNoServer) || errors.Is(err, routingtest.ErrNoUnprivilegedUser) {
			return err // its message says what to install or create
		}
		return fmt.Errorf("start the cluster: %w", err)
	}
	defer c.Close()
	fmt.Fprintf(stderr, "Servers started in %s; running each mode for %s with %d workers...\n",
		time.Since(t0).Round(10*time.Millisecond), *duration, *workers)
	results, err := experiment.Run(ctx, c, experiment.Options{Duration: *duration, Workers: *workers, Progress: stderr})
	if len(results) > 0 {
		experiment.WriteTable(stdout, results)
	}
	if ctx.Err() != nil {
		return errors.New("interrupted")
	}
	if err != nil {
		return err
	}
	if cerr := c.Close(); cerr != nil {
		return fmt.Errorf("close the cluster: %w", cerr)
	}
	return nil
}
