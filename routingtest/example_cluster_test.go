package routingtest_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgxroute/pgxroute/routingtest"
)

// ExampleStartCluster starts a primary and two replicas, the second lagging
// by 200 ms on purpose, writes on the primary and waits until every replica
// has replayed it. It needs PostgreSQL's server binaries, so it has no
// Output to check.
func ExampleStartCluster() {
	ctx := context.Background()
	c, err := routingtest.StartCluster(ctx, routingtest.ClusterOptions{
		ApplyDelay: []time.Duration{0, 200 * time.Millisecond},
	})
	if err != nil {
		fmt.Println(err) // says what to install when the binaries are missing
		return
	}
	defer c.Close()
	conn, err := pgx.Connect(ctx, c.Primary().ConnString())
	if err != nil {
		panic(err)
	}
	defer conn.Close(ctx)
	conn.Exec(ctx, "CREATE TABLE t (id int)")
	if err := c.WaitReplay(ctx); err != nil {
		panic(err)
	}
	for _, r := range c.Replicas() {
		fmt.Println(r.Name(), r.ConnString())
	}
}

// ExampleNewCluster is the form for tests: it skips without server binaries
// (fails with PGXROUTE_REQUIRE_PG=1) and closes the cluster at cleanup.
func ExampleNewCluster() {
	_ = func(t *testing.T) {
		c := routingtest.NewCluster(t, routingtest.ClusterOptions{Replicas: 1})
		if err := c.Kill(c.Replicas()[0]); err != nil {
			t.Fatal(err)
		}
		if err := c.Start(context.Background(), c.Replicas()[0]); err != nil {
			t.Fatal(err)
		}
	}
}
