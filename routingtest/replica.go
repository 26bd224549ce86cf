package routingtest

import (
	"context"
	"fmt"
	"strconv"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgxroute/pgxroute"
)

// ReadOnlyParam is the server setting that replica emulation turns on: every
// transaction of the session is read-only, so a write fails with SQLSTATE
// 25006 (read_only_sql_transaction), the error a real standby returns.
const ReadOnlyParam = "default_transaction_read_only"

// ReadOnlyPoolConfig parses connString and returns a pool configuration
// whose sessions start with default_transaction_read_only=on: a stand-in for
// a replica that needs one database only. Unlike a real standby it sees every
// commit at once (no lag), and a session may still SET the setting off.
func ReadOnlyPoolConfig(connString string) (*pgxpool.Config, error) {
	cfg, err := pgxpool.ParseConfig(connString)
	if err != nil {
		return nil, fmt.Errorf("routingtest: read-only replica: %w", err)
	}
	cfg.ConnConfig.RuntimeParams[ReadOnlyParam] = "on"
	return cfg, nil
}

// EmulatedReplicas returns n read-group nodes, "replica1" to "replicaN", each
// with its own pool on connString made read-only by ReadOnlyPoolConfig. Put
// them in pgxroute.Config.Replicas next to the same database as Primary.
func EmulatedReplicas(connString string, n int) ([]pgxroute.Node, error) {
	if n < 1 {
		return nil, fmt.Errorf("routingtest: emulated replicas: n is %d, want at least 1", n)
	}
	nodes := make([]pgxroute.Node, n)
	for i := range nodes {
		cfg, err := ReadOnlyPoolConfig(connString)
		if err != nil {
			return nil, err
		}
		nodes[i] = pgxroute.Node{Name: "replica" + strconv.Itoa(i+1), PoolConfig: cfg}
	}
	return nodes, nil
}

// EmulatedConfig returns a configuration over one database, connString: a
// default group with the node "primary" on it, and a read group with one
// read-only node, "replica1" (see EmulatedReplicas). Code that sends a write
// to the read group then fails with SQLSTATE 25006, as it would in production,
// while reads and writes routed as they should work. Change the other fields
// as needed before pgxroute.New.
//
// The router's safety net still runs a statement that classify took for a
// read but that the replica refused as a write again on the primary
// (pgxroute.ReasonMisroute). NewEmulatedPool fails the test when that
// happens.
func EmulatedConfig(connString string) (pgxroute.Config, error) {
	if _, err := pgxpool.ParseConfig(connString); err != nil {
		return pgxroute.Config{}, fmt.Errorf("routingtest: emulated primary: %w", err)
	}
	replicas, err := EmulatedReplicas(connString, 1)
	if err != nil {
		return pgxroute.Config{}, err
	}
	return pgxroute.Config{
		Groups: map[string][]pgxroute.Node{
			pgxroute.DefaultGroupName: {{Name: "primary", ConnString: connString}},
		},
		Replicas: replicas,
		// The emulated replicas are the primary server itself: following
		// the cluster's roles, the router would see two primaries on one
		// timeline (a split brain). The roles are the configured ones.
		StaticRoles: true,
		// Nor can they be stale: the pool's own scope, which holds reads
		// without a scope on the primary after a write until a replica is
		// known to have replayed it, is off, so that those reads reach the
		// read-only sessions too (where a write taken for a read fails).
		ForgetUnscopedWrites: true,
	}, nil
}

// NewEmulatedPool returns a RoutedPool over the test database connString
// with an emulated read-only replica (EmulatedConfig), closed at the end of
// the test. configure, when not nil, may change the configuration first. The
// pool fails tb (without stopping it) for every statement that a replica
// refused as a write and the router ran again on the primary
// (pgxroute.ReasonMisroute): such a statement needs WithPrimary, or its
// function in Config.WriteFunctions.
func NewEmulatedPool(tb testing.TB, connString string, configure func(*pgxroute.Config)) *pgxroute.RoutedPool {
	tb.Helper()
	cfg, err := EmulatedConfig(connString)
	if err != nil {
		tb.Fatal(err)
	}
	if configure != nil {
		configure(&cfg)
	}
	onRoute := cfg.OnRoute
	cfg.OnRoute = func(ctx context.Context, r pgxroute.Route) {
		if r.Reason == pgxroute.ReasonMisroute {
			tb.Errorf("routingtest: a write was routed to a replica, which refused it (25006), and ran again on %s/%s: %q; use pgxroute.WithPrimary or Config.WriteFunctions", r.Group, r.Node, r.SQL)
		}
		if onRoute != nil {
			onRoute(ctx, r)
		}
	}
	p, err := pgxroute.New(context.Background(), cfg)
	if err != nil {
		tb.Fatalf("routingtest: emulated pool: %v", err)
	}
	tb.Cleanup(p.Close)
	return p
}
