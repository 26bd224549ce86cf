// Command pgxroute shows, explains and checks pgxroute's routing of pgx calls
// between a PostgreSQL primary and its read replicas.
//
// Usage:
//
//	pgxroute <command> [flags] [arguments]
//
// The commands:
//
//	demo         Starts a local primary and two streaming replicas (from the
//	             PostgreSQL server binaries; nothing else to set up), runs a
//	             mixed workload of reads, writes and sticky reads through a
//	             RoutedPool, and does to the servers what happens in
//	             production: -scenario kill (a replica killed and started
//	             again), freeze (a replica frozen with SIGSTOP, then thawed),
//	             members (a replica taken out of the read group with
//	             SetGroup, drained, then put back), failover (the primary killed, a replica promoted, the other
//	             repointed, the old primary rejoined as a replica),
//	             switchover, or all (the default: each in turn, about a
//	             minute). Each scenario ends with a summary counted from the
//	             servers' own answers (inet_server_port): reads and writes
//	             done and failed (never sent, outcome unknown), the time from
//	             the fault to the first write on the new primary, the slowest
//	             read, ejections and readmissions. On a terminal a table of
//	             the nodes is redrawn in place with the router's health
//	             events above it; plain lines otherwise. Nothing is wider
//	             than 100 columns. It removes its servers and files when it
//	             ends, also on Ctrl-C.
//	             Flags: -scenario all -phase 3s -workers 8 -hedge 50ms -plain
//	             -http 127.0.0.1:9187 (serve the pool's Prometheus metrics at
//	             /metrics, and its status page at / when built with one,
//	             while the demo runs).
//
//	explain      Prints how a statement is classified (write, read, locking
//	             read, and why) and the route a configuration would give it:
//	             the bind group, the node and the reason. It connects to
//	             nothing. Without --config or --primary it uses an embedded
//	             default (a primary and two replicas).
//	             pgxroute explain [--config FILE | --primary URL --replica URL...]
//	             [--group NAME | --primary-ctx | --replica-ctx] [--sticky] [--no-scope] 'SQL'
//
//	check        Connects to every node of a deployment and reports its
//	             reachability, role (and the role its group expects), WAL
//	             position, replay lag in time and in bytes behind the primary,
//	             round trip time and server version. Passwords are never
//	             printed. It exits 1 when a node is unreachable or in the
//	             wrong role.
//	             pgxroute check [--config FILE | --primary URL --replica URL...] [--timeout 3s]
//
//	consistency  Runs the read-your-writes experiment on a local cluster
//	             (two replicas, one of them applying WAL 200 ms late): under
//	             each consistency mode, many scopes write a row and read it
//	             back, and the table counts the reads that missed their own
//	             scope's write.
//	             pgxroute consistency [-duration 5s] [-workers 16]
//
// The configuration file of explain and check is JSON:
//
//	{
//	  "primary": "postgres://app@db1:5432/app",
//	  "replicas": [{"name": "replica-1", "conn_string": "postgres://app@db2:5432/app", "weight": 1}],
//	  "groups": {"analytics": [{"name": "olap", "conn_string": "postgres://app@db3:5432/app"}]},
//	  "default_group": "default",
//	  "read_group": "read",
//	  "strategy": "round-robin",
//	  "stickiness": "sticky-scope",
//	  "write_functions": ["audit.log_event"]
//	}
//
// strategy is round-robin, random or least-busy; stickiness is sticky-scope,
// off, read-your-writes or sticky-for:DURATION (such as sticky-for:1s).
//
// Every command takes -h. Exit codes: 0 success, 1 failure, 2 usage error.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// command is one subcommand.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"demo", "run a routed workload on a local cluster through kill, freeze, members, failover, switchover", runDemoCommand},
		{"explain", "show a statement's classification and the route a config picks for it", runExplain},
		{"check", "report the reachability, role and lag of a deployment's nodes", runCheck},
		{"consistency", "run the read-your-writes experiment under each consistency mode", runConsistency},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// usageError is a mistake in the command line: exit code 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// errSilent is a failure already reported on the output: exit code 1
// without another message.
var errSilent = errors.New("failed")

// run runs the command line args and returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		mainUsage(stderr)
		return 2
	}
	name := args[0]
	switch name {
	case "-h", "-help", "--help", "help":
		mainUsage(stdout)
		return 0
	}
	for _, c := range commands() {
		if c.name != name {
			continue
		}
		err := c.run(ctx, args[1:], stdout, stderr)
		var ue *usageError
		switch {
		case err == nil:
			return 0
		case errors.Is(err, flag.ErrHelp):
			return 0
		case errors.As(err, &ue):
			fmt.Fprintf(stderr, "pgxroute %s: %s\nRun 'pgxroute %s -h' for usage.\n", name, ue.msg, name)
			return 2
		case errors.Is(err, errSilent):
			return 1
		default:
			fmt.Fprintf(stderr, "pgxroute %s: %s\n", name, redact(err.Error()))
			return 1
		}
	}
	fmt.Fprintf(stderr, "pgxroute: unknown command %q\n", name)
	mainUsage(stderr)
	return 2
}

func mainUsage(w io.Writer) {
	fmt.Fprintln(w, "pgxroute routes pgx calls between a PostgreSQL primary and its read replicas.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Usage: pgxroute <command> [flags] [arguments]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Commands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-12s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run 'pgxroute <command> -h' for a command's flags.")
}

// newFlagSet returns a flag set whose -h prints usage (the synopsis and the
// flags) to stdout.
func newFlagSet(name, synopsis, about string, stdout io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("pgxroute "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {
		fmt.Fprintf(stdout, "Usage: pgxroute %s %s\n\n%s\n", name, synopsis, strings.TrimSpace(about))
		var any bool
		fs.VisitAll(func(*flag.Flag) { any = true })
		if any {
			fmt.Fprintln(stdout, "\nFlags:")
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			fs.SetOutput(io.Discard)
		}
	}
	return fs
}

// parseFlags parses args with flags allowed before and after the positional
// arguments (a "--" ends the flags), and returns the positional arguments.
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err // Parse printed the usage
			}
			return nil, usagef("%v", err)
		}
		rest := fs.Args()
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}
