package prometheus_test

import (
	"context"
	"fmt"
	"log"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"

	"github.com/pgxroute/pgxroute"
	pgxrouteprom "github.com/pgxroute/pgxroute/prometheus"
	"github.com/pgxroute/pgxroute/routingtest"
)

// Register the collector and serve /metrics: every scrape reads the pool's
// Stat.
func Example() {
	pool, err := pgxroute.New(context.Background(), pgxroute.Config{
		Primary:  "postgres://app@db-primary:5432/app",
		Replicas: []pgxroute.Node{{ConnString: "postgres://app@db-replica:5432/app"}},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	prometheus.MustRegister(pgxrouteprom.NewCollector(pool, prometheus.Labels{"service": "billing"}))
	http.Handle("/metrics", promhttp.Handler())
	log.Fatal(http.ListenAndServe("127.0.0.1:9187", nil))
}

// The calls of a fake pool (routingtest: no database) as Prometheus scrapes
// them.
func ExampleNewCollector() {
	ctx := context.Background()
	f, err := routingtest.StartFake(ctx, routingtest.FakeOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	col := pgxrouteprom.NewCollector(f.Pool, nil)

	sctx := pgxroute.WithScope(ctx)
	f.Pool.Exec(sctx, "SELECT name FROM users WHERE id = 1")
	f.Pool.Exec(sctx, "SELECT name FROM users WHERE id = 2")
	f.Pool.Exec(sctx, "UPDATE users SET name = 'bob' WHERE id = 1")
	f.Pool.Exec(sctx, "SELECT name FROM users WHERE id = 1")

	text, err := testutil.CollectAndFormat(col, expfmt.TypeTextPlain, "pgxroute_calls_total")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(string(text))
	// Output:
	// # HELP pgxroute_calls_total Routed calls (attempts) by bind group, node and routing reason.
	// # TYPE pgxroute_calls_total counter
	// pgxroute_calls_total{group="default",node="primary",reason="sticky"} 1
	// pgxroute_calls_total{group="default",node="primary",reason="write"} 1
	// pgxroute_calls_total{group="read",node="replica1",reason="read"} 1
	// pgxroute_calls_total{group="read",node="replica2",reason="read"} 1
}
