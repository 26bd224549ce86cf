package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/pgxroute/pgxroute"
	"github.com/pgxroute/pgxroute/classify"
)

const explainAbout = `
Explain prints how SQL is classified (write, read or locking read, and why)
and the route the configuration would pick for it: the bind group, the node
and the reason. It connects to nothing (health checks are off, so every node
counts as up). Without -config or -primary it uses an embedded default: the
primary postgres://app@primary:5432/app and the replicas replica-1 and
replica-2.

The call is routed as in a scope (pgxroute.WithScope) that has not written,
unless -no-scope (no scope in the context) or -sticky (a scope that wrote:
computed from the stickiness rules, since a scope only turns sticky by a real
write).`

// explainOptions is a parsed explain command line.
type explainOptions struct {
	cfg        configFlags
	group      string
	primaryCtx bool
	replicaCtx bool
	sticky     bool
	noScope    bool
	sql        string
}

func runExplain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o explainOptions
	fs := newFlagSet("explain", "[-config FILE | -primary URL -replica URL...] [-group NAME | -primary-ctx | -replica-ctx] [-sticky] [-no-scope] 'SQL'", explainAbout, stdout)
	o.cfg.register(fs)
	fs.StringVar(&o.group, "group", "", "route in bind group `NAME` (pgxroute.WithBindGroup)")
	fs.BoolVar(&o.primaryCtx, "primary-ctx", false, "route with pgxroute.WithPrimary")
	fs.BoolVar(&o.replicaCtx, "replica-ctx", false, "route with pgxroute.WithReplica")
	fs.BoolVar(&o.sticky, "sticky", false, "route as in a scope that has written")
	fs.BoolVar(&o.noScope, "no-scope", false, "route without a scope in the context")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	switch {
	case len(pos) == 0:
		return usagef("missing the SQL to explain")
	case len(pos) > 1:
		return usagef("give the SQL as one argument (quote it); got %d arguments", len(pos))
	}
	o.sql = pos[0]
	overrides := 0
	for _, set := range []bool{o.group != "", o.primaryCtx, o.replicaCtx} {
		if set {
			overrides++
		}
	}
	if overrides > 1 {
		return usagef("give at most one of -group, -primary-ctx and -replica-ctx")
	}
	if o.sticky && o.noScope {
		return usagef("-sticky needs a scope: drop -no-scope")
	}
	return explain(ctx, o, stdout)
}

// explain prints the classification and route of o.sql.
func explain(ctx context.Context, o explainOptions, w io.Writer) error {
	fc, source, err := o.cfg.load(&defaultConfig)
	if err != nil {
		return err
	}
	cfg, err := fc.routerConfig()
	if err != nil {
		return fmt.Errorf("%s: %w", source, err)
	}
	cfg.Health.Disabled = true
	pool, err := pgxroute.New(ctx, cfg)
	if err != nil {
		return fmt.Errorf("%s: %w", source, err)
	}
	defer pool.Close()

	rctx := ctx
	scopeDesc := "a scope that has not written (pgxroute.WithScope)"
	switch {
	case o.noScope:
		scopeDesc = "no scope"
	case o.sticky:
		scopeDesc = "a scope that has written (simulated)"
		rctx = pgxroute.WithScope(rctx)
	default:
		rctx = pgxroute.WithScope(rctx)
	}
	switch {
	case o.group != "":
		rctx = pgxroute.WithBindGroup(rctx, o.group)
		scopeDesc += ", WithBindGroup(" + o.group + ")"
	case o.primaryCtx:
		rctx = pgxroute.WithPrimary(rctx)
		scopeDesc += ", WithPrimary"
	case o.replicaCtx:
		rctx = pgxroute.WithReplica(rctx)
		scopeDesc += ", WithReplica"
	}

	r, err := pool.Route(rctx, o.sql)
	if err != nil {
		return fmt.Errorf("route: %w", err)
	}
	var notes []string
	overridden := o.group != "" || o.primaryCtx || o.replicaCtx
	if o.sticky && !overridden && r.Statement.Kind == classify.Read {
		var note string
		r, note, err = stickyRoute(ctx, pool, cfg.Stickiness, r)
		if err != nil {
			return fmt.Errorf("route: %w", err)
		}
		if note != "" {
			notes = append(notes, note)
		}
	}
	if r.Statement.Kind == classify.Write && !overridden && !o.noScope && r.Group == fc.defaultGroup() {
		notes = append(notes, afterWrite(cfg.Stickiness, fc.defaultGroup()))
	}
	if r.Statement.Kind == classify.Write && o.noScope {
		notes = append(notes, "without a scope nothing remembers the write: a read right after it may miss it on a lagging replica")
	}

	fmt.Fprintf(w, "config:     %s (strategy %s, stickiness %s)\n", source, cfg.Strategy, cfg.Stickiness)
	fmt.Fprintf(w, "statement:  %s\n", oneLine(o.sql))
	fmt.Fprintf(w, "class:      %s (%s)\n", r.Statement.Kind, r.Statement.Reason)
	fmt.Fprintf(w, "context:    %s\n", scopeDesc)
	fmt.Fprintf(w, "route:      group %q, node %q\n", r.Group, r.Node)
	fmt.Fprintf(w, "reason:     %s\n", r.Reason)
	for _, n := range notes {
		fmt.Fprintf(w, "note:       %s\n", n)
	}
	return nil
}

// stickyRoute returns where a read goes in a scope that wrote, by the rules
// of mode, given r, its route in a scope that did not.
func stickyRoute(ctx context.Context, pool *pgxroute.RoutedPool, mode pgxroute.Stickiness, r pgxroute.Route) (pgxroute.Route, string, error) {
	if mode == pgxroute.NoStickiness {
		return r, "stickiness is off: a scope's write does not hold its reads back", nil
	}
	def, err := pool.Route(pgxroute.WithPrimary(pgxroute.WithScope(ctx)), r.SQL)
	if err != nil {
		return r, "", err
	}
	r.Group, r.Node = def.Group, def.Node
	switch {
	case mode == pgxroute.ReadYourWrites:
		r.Reason = pgxroute.ReasonReplicasBehind
		return r, "read-your-writes: until a replica is known to have replayed the scope's write; then a replica (" + pgxroute.ReasonCaughtUp.String() + ")", nil
	case mode == pgxroute.StickyScope:
		r.Reason = pgxroute.ReasonSticky
		return r, "every read of the scope goes there until the scope ends", nil
	default:
		r.Reason = pgxroute.ReasonSticky
		return r, "for the window of " + mode.String() + " after each write of the scope; then back to the read group", nil
	}
}

// afterWrite describes what a write does to its scope's later reads.
func afterWrite(mode pgxroute.Stickiness, def string) string {
	switch {
	case mode == pgxroute.NoStickiness:
		return "stickiness is off: the scope's later reads still go to the read group"
	case mode == pgxroute.ReadYourWrites:
		return "the scope's later reads go to group " + def + " until a replica has replayed this write"
	case mode == pgxroute.StickyScope:
		return "the scope turns sticky: its later reads go to group " + def
	default:
		return "the scope's reads go to group " + def + " for " + mode.String() + " after this write"
	}
}

// oneLine folds SQL onto one line for display.
func oneLine(sql string) string {
	return strings.Join(strings.Fields(sql), " ")
}
