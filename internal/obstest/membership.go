package obstest

import (
	"context"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/pgxroute/pgxroute"
	"github.com/pgxroute/pgxroute/routingtest"
)

// ReplaceTxReplica opens a transaction in the read group of pool (made by
// NewRouted over c), asks the server which replica holds it, and replaces
// that replica with SetGroup: the read group keeps the other replica and
// gains "joiner", a node that listens nowhere. It returns the open
// transaction, which holds the removed replica's drain until it ends, and
// the removed replica's name.
func ReplaceTxReplica(tb testing.TB, c *routingtest.Cluster, pool *pgxroute.RoutedPool) (pgx.Tx, string) {
	tb.Helper()
	ctx := context.Background()
	tx, err := pool.Begin(pgxroute.WithBindGroup(ctx, pgxroute.ReadGroupName))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = tx.Rollback(ctx) })
	var port int
	if err := tx.QueryRow(ctx, ReadSQL).Scan(&port); err != nil {
		tb.Fatal(err)
	}
	for i, r := range c.Replicas() {
		if r.Port() != port {
			continue
		}
		keep := c.Replicas()[1-i]
		if err := pool.SetGroup(ctx, pgxroute.ReadGroupName, []pgxroute.Node{
			{Name: keep.Name(), ConnString: keep.ConnString()},
			{Name: "joiner", ConnString: fmt.Sprintf("host=127.0.0.1 port=%d user=postgres connect_timeout=1", routingtest.ClosedPort(tb))},
		}); err != nil {
			tb.Fatal(err)
		}
		return tx, r.Name()
	}
	tb.Fatalf("the transaction runs on port %d, no replica's", port)
	return nil, ""
}
