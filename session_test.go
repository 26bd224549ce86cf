package pgxroute_test

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgxroute/pgxroute"
)

// TestAcquireFor routes statements with AcquireFor and asks the server of
// the connection it returns where it is: a read on a replica, a write on
// the primary (and the scope turns sticky), a function that writes called
// as a read runs again on the primary after the replica's 25006, once.
func TestAcquireFor(t *testing.T) {
	c := sharedCluster(t)
	pool := newPool(t, c, pgxroute.Config{})
	ctx := context.Background()
	portOf := func(t *testing.T, conn *pgxpool.Conn) string {
		var port int
		if err := conn.QueryRow(ctx, "SELECT inet_server_port()").Scan(&port); err != nil {
			t.Fatal(err)
		}
		return nodeNames(c)[port]
	}
	replicas := map[string]bool{}
	for _, r := range c.Replicas() {
		replicas[r.Name()] = true
	}
	primary := c.Primary().Name()

	t.Run("read", func(t *testing.T) {
		var sent int
		conn, r, err := pool.AcquireFor(ctx, "SELECT 1", func(conn *pgxpool.Conn) error {
			return conn.QueryRow(ctx, "SELECT 1").Scan(&sent)
		})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Release()
		if node := portOf(t, conn); !replicas[node] || r.Group != pgxroute.ReadGroupName || sent != 1 {
			t.Errorf("read: connection of %s, route %v, sent %d; want a replica, the read group, 1", node, r, sent)
		}
	})
	t.Run("write marks the scope", func(t *testing.T) {
		sctx := pgxroute.WithScope(ctx)
		sql := "INSERT INTO items (id) VALUES ($1)"
		conn, r, err := pool.AcquireFor(sctx, sql, func(conn *pgxpool.Conn) error {
			_, err := conn.Exec(sctx, sql, nextID())
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Release()
		if node := portOf(t, conn); node != primary || r.Reason != pgxroute.ReasonWrite || !pgxroute.IsSticky(sctx) {
			t.Errorf("write: connection of %s, route %v, sticky %v; want the primary, a write, sticky", node, r, pgxroute.IsSticky(sctx))
		}
	})
	t.Run("25006 runs again on the primary", func(t *testing.T) {
		var before, got int
		if err := pool.QueryRow(pgxroute.WithPrimary(ctx), "SELECT n FROM counter").Scan(&before); err != nil {
			t.Fatal(err)
		}
		sql := "SELECT bump_counter()"
		sends := 0
		conn, r, err := pool.AcquireFor(ctx, sql, func(conn *pgxpool.Conn) error {
			sends++
			return conn.QueryRow(ctx, sql).Scan(&got)
		})
		if err != nil {
			t.Fatal(err)
		}
		conn.Release()
		if r.Reason != pgxroute.ReasonMisroute || sends != 2 || got != before+1 {
			t.Errorf("route %v after %d sends, counter %d → %d; want a misroute, 2 sends (the replica refused the first), one increment", r, sends, before, got)
		}
	})
	t.Run("nil send", func(t *testing.T) {
		conn, r, err := pool.AcquireFor(pgxroute.WithPrimary(ctx), "SELECT 1", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Release()
		if r.Reason != pgxroute.ReasonPrimary {
			t.Errorf("route %v, want WithPrimary", r)
		}
	})
	t.Run("error names the node", func(t *testing.T) {
		_, _, err := pool.AcquireFor(pgxroute.WithPrimary(ctx), "SELECT broken(", func(conn *pgxpool.Conn) error {
			_, err := conn.Exec(ctx, "SELECT broken(")
			return err
		})
		var pe *pgconn.PgError
		var ne *pgxroute.NodeError
		if !errors.As(err, &pe) || !errors.As(err, &ne) || ne.Group != pgxroute.DefaultGroupName {
			t.Errorf("error %v: want a PgError in a NodeError of the default group", err)
		}
	})
}

// TestNoteWrite marks the scope for a route on the default group only.
func TestNoteWrite(t *testing.T) {
	c := sharedCluster(t)
	pool := newPool(t, c, pgxroute.Config{})
	ctx := context.Background()
	tests := []struct {
		name  string
		route pgxroute.Route
		want  bool
	}{
		{"default group", pgxroute.Route{Group: pgxroute.DefaultGroupName}, true},
		{"read group", pgxroute.Route{Group: pgxroute.ReadGroupName}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sctx := pgxroute.WithScope(ctx)
			pool.NoteWrite(sctx, tt.route)
			if got := pgxroute.IsSticky(sctx); got != tt.want {
				t.Errorf("sticky %v, want %v", got, tt.want)
			}
		})
	}
	pool.NoteWrite(ctx, pgxroute.Route{Group: pgxroute.DefaultGroupName}) // no scope: nothing to mark, no panic
}
