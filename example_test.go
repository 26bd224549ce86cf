package pgxroute_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgxroute/pgxroute"
	"github.com/pgxroute/pgxroute/routingtest"
)

// The examples route without running anything (Route), or run on
// routingtest's fakes, so that they need no database. New connects lazily.

func Example() {
	ctx := context.Background()
	pool, err := pgxroute.New(ctx, pgxroute.Config{
		Primary: "postgres://app@primary.internal:5432/app",
		Replicas: []pgxroute.Node{
			{Name: "replica-1", ConnString: "postgres://app@replica1.internal:5432/app", Weight: 2},
			{Name: "replica-2", ConnString: "postgres://app@replica2.internal:5432/app"},
		},
		Health: pgxroute.HealthConfig{Disabled: true}, // no probes in this example
	})
	if err != nil {
		panic(err)
	}
	defer pool.Close()

	for _, sql := range []string{
		"SELECT name FROM users WHERE id = $1",
		"UPDATE users SET name = $2 WHERE id = $1",
		"SELECT * FROM jobs FOR UPDATE SKIP LOCKED",
	} {
		r, _ := pool.Route(ctx, sql)
		fmt.Printf("%-9s %-17s %s\n", r.Group, r.Node, r.Reason)
	}
	// Output:
	// read      replica-1         read (no scope)
	// default   primary.internal:5432 write (no scope: the pool's scope remembers it)
	// default   primary.internal:5432 locking read
}

func ExampleNew_bindGroups() {
	ctx := context.Background()
	pool, err := pgxroute.New(ctx, pgxroute.Config{
		Groups: map[string][]pgxroute.Node{
			"default":   {{Name: "primary", ConnString: "postgres://app@primary:5432/app"}},
			"read":      {{Name: "replica", ConnString: "postgres://app@replica:5432/app"}},
			"analytics": {{Name: "warehouse", ConnString: "postgres://app@warehouse:5432/app"}},
		},
		Strategy: pgxroute.LeastBusy,
		ConfigurePool: func(group, node string, cfg *pgxpool.Config) {
			if group == "analytics" {
				cfg.MaxConns = 2 // heavy queries: few at a time
			}
		},
		Health: pgxroute.HealthConfig{Disabled: true},
	})
	if err != nil {
		panic(err)
	}
	defer pool.Close()
	r, _ := pool.Route(pgxroute.WithBindGroup(ctx, "analytics"), "SELECT count(*) FROM events")
	fmt.Println(r.Group, r.Node, r.Reason)
	// Output: analytics warehouse bind group from context
}

func ExampleNew_configError() {
	_, err := pgxroute.New(context.Background(), pgxroute.Config{
		Primary:  "postgres://app:secret@primary:5432/app",
		Replicas: []pgxroute.Node{{Name: "replica-1", ConnString: "postgres://app@replica:5432/app", Weight: -1}},
	})
	fmt.Println(errors.Is(err, pgxroute.ErrConfig))
	fmt.Println(err)
	// Output:
	// true
	// pgxroute: bad config: group "read" node "replica-1": weight -1 is negative
}

func ExampleRoutedPool_Route() {
	f, err := routingtest.StartFake(context.Background(), routingtest.FakeOptions{})
	if err != nil {
		panic(err)
	}
	defer f.Close()
	ctx := pgxroute.WithScope(context.Background())
	show := func() {
		r, _ := f.Pool.Route(ctx, "SELECT 1")
		fmt.Println(r)
	}
	show()
	f.Pool.Exec(ctx, "INSERT INTO t VALUES (1)")
	show()
	// Output:
	// read/replica1: read (read: SELECT)
	// default/primary: sticky: the scope wrote (read: SELECT)
}

func ExampleWithScope() {
	f, err := routingtest.StartFake(context.Background(), routingtest.FakeOptions{})
	if err != nil {
		panic(err)
	}
	defer f.Close()
	// One scope per unit of work (Middleware makes one per HTTP request).
	ctx := pgxroute.WithScope(context.Background())
	f.Pool.QueryRow(ctx, "SELECT name FROM users WHERE id = 1").Scan(new(string))
	f.Pool.Exec(ctx, "UPDATE users SET name = 'x' WHERE id = 1")
	f.Pool.QueryRow(ctx, "SELECT name FROM users WHERE id = 1").Scan(new(string))
	fmt.Println("sticky:", pgxroute.IsSticky(ctx))
	for _, c := range f.Calls() {
		fmt.Println(c.Node, "-", c.Reason)
	}
	// Output:
	// sticky: true
	// replica1 - read
	// primary - write
	// primary - sticky: the scope wrote
}

func ExampleResetStickiness() {
	f, err := routingtest.StartFake(context.Background(), routingtest.FakeOptions{})
	if err != nil {
		panic(err)
	}
	defer f.Close()
	ctx := pgxroute.WithScope(context.Background())
	f.Pool.Exec(ctx, "DELETE FROM sessions WHERE expired")
	fmt.Println(pgxroute.IsSticky(ctx))
	pgxroute.ResetStickiness(ctx)
	fmt.Println(pgxroute.IsSticky(ctx))
	// Output:
	// true
	// false
}

func ExampleWithPrimary() {
	f, err := routingtest.StartFake(context.Background(), routingtest.FakeOptions{})
	if err != nil {
		panic(err)
	}
	defer f.Close()
	// A read that must see the latest data, whatever the scope.
	r, _ := f.Pool.Route(pgxroute.WithPrimary(context.Background()), "SELECT balance FROM accounts WHERE id = 1")
	fmt.Println(r.Group, r.Reason)
	// Output: default WithPrimary
}

func ExampleWithReplica() {
	f, err := routingtest.StartFake(context.Background(), routingtest.FakeOptions{})
	if err != nil {
		panic(err)
	}
	defer f.Close()
	ctx := pgxroute.WithScope(context.Background())
	f.Pool.Exec(ctx, "INSERT INTO audit VALUES (1)") // the scope is now sticky
	// A report that tolerates lag goes to a replica anyway.
	r, _ := f.Pool.Route(pgxroute.WithReplica(ctx), "SELECT count(*) FROM audit")
	fmt.Println(r.Group, r.Reason)
	// Output: read WithReplica
}

func ExampleWithBindGroup() {
	f, err := routingtest.StartFake(context.Background(), routingtest.FakeOptions{
		Groups: map[string][]string{"default": {"primary"}, "read": {"replica1"}, "reporting": {"report1", "report2"}},
	})
	if err != nil {
		panic(err)
	}
	defer f.Close()
	ctx := pgxroute.WithBindGroup(context.Background(), "reporting")
	for i := 0; i < 3; i++ {
		r, _ := f.Pool.Route(ctx, "SELECT * FROM monthly_totals")
		fmt.Println(r.Group, r.Node)
	}
	_, err = f.Pool.Route(pgxroute.WithBindGroup(context.Background(), "reportng"), "SELECT 1")
	fmt.Println(errors.Is(err, pgxroute.ErrUnknownGroup), err)
	// Output:
	// reporting report1
	// reporting report2
	// reporting report1
	// true pgxroute: unknown bind group "reportng"
}

func ExampleWithoutOverride() {
	f, err := routingtest.StartFake(context.Background(), routingtest.FakeOptions{})
	if err != nil {
		panic(err)
	}
	defer f.Close()
	ctx := pgxroute.WithPrimary(context.Background())
	r, _ := f.Pool.Route(pgxroute.WithoutOverride(ctx), "SELECT 1")
	fmt.Println(r.Group)
	// Output: read
}

func ExampleMiddleware() {
	f, err := routingtest.StartFake(context.Background(), routingtest.FakeOptions{})
	if err != nil {
		panic(err)
	}
	defer f.Close()
	handler := pgxroute.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.Pool.Exec(r.Context(), "INSERT INTO visits VALUES (now())")
		f.Pool.QueryRow(r.Context(), "SELECT count(*) FROM visits").Scan(new(int))
		fmt.Fprint(w, pgxroute.IsSticky(r.Context()))
	}))
	for i := 0; i < 2; i++ {
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
		fmt.Println("request", i, "sticky:", rec.Body.String())
	}
	for _, c := range f.Calls() {
		fmt.Println(c.Node, c.Reason)
	}
	// Output:
	// request 0 sticky: true
	// request 1 sticky: true
	// primary write
	// primary sticky: the scope wrote
	// primary write
	// primary sticky: the scope wrote
}

func ExampleMiddlewareWith() {
	// Carry read-your-writes positions from a POST to the redirected GET in
	// a cookie (with Config.Stickiness: pgxroute.ReadYourWrites). A
	// malformed token is ignored: the request gets a fresh scope.
	handler := pgxroute.MiddlewareWith(pgxroute.MiddlewareOptions{Cookie: "pgxroute"})(
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, "scope: ", pgxroute.HasScope(r.Context()))
		}))
	req := httptest.NewRequest("GET", "/", nil)
	req.AddCookie(&http.Cookie{Name: "pgxroute", Value: "forged"})
	rec := httptest.NewRecorder()
	handler.ServeHTTP(rec, req)
	fmt.Println(rec.Code, rec.Body.String())
	// Output: 200 scope: true
}

func ExampleToken() {
	// A scope that wrote in ReadYourWrites mode has a token; carry it to
	// another request or process (a job's payload) and start a scope from it.
	ctx := pgxroute.WithScope(context.Background())
	fmt.Printf("%q\n", pgxroute.Token(ctx)) // nothing written yet
	next, err := pgxroute.WithToken(context.Background(), pgxroute.Token(ctx))
	fmt.Println(pgxroute.HasScope(next), err)
	_, err = pgxroute.WithToken(context.Background(), "not a token")
	fmt.Println(errors.Is(err, pgxroute.ErrBadToken))
	// Output:
	// ""
	// true <nil>
	// true
}

func ExampleStickyFor() {
	fmt.Println(pgxroute.StickyFor(2 * time.Second))
	fmt.Println(pgxroute.StickyScope, pgxroute.NoStickiness, pgxroute.ReadYourWrites)
	// Output:
	// sticky-for(2s)
	// sticky-scope off read-your-writes
}

func ExampleRoutedPool_BeginTx() {
	f, err := routingtest.StartFake(context.Background(), routingtest.FakeOptions{})
	if err != nil {
		panic(err)
	}
	defer f.Close()
	ctx := context.Background()
	tx, _ := f.Pool.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
	r, _ := pgxroute.TxRoute(tx)
	fmt.Println(r.Group, r.Reason)
	tx.Rollback(ctx)
	tx, _ = f.Pool.Begin(ctx)
	r, _ = pgxroute.TxRoute(tx)
	fmt.Println(r.Group, r.Reason)
	tx.Rollback(ctx)
	// Output:
	// read read (no scope)
	// default read-write transaction
}

func ExampleRoutedPool_Stat() {
	f, err := routingtest.StartFake(context.Background(), routingtest.FakeOptions{})
	if err != nil {
		panic(err)
	}
	defer f.Close()
	for i := 0; i < 4; i++ {
		f.Pool.QueryRow(context.Background(), "SELECT 1").Scan(new(int))
	}
	for _, g := range f.Pool.Stat().Groups {
		for _, n := range g.Nodes {
			fmt.Println(g.Name, n.Name, n.Total, n.State)
		}
	}
	// Output:
	// default primary 0 up
	// read replica1 2 up
	// read replica2 2 up
}

func ExampleWithToken() {
	// A job queue carries the token of the request that enqueued the job;
	// the worker's reads then wait for that request's writes (in
	// ReadYourWrites mode). A malformed token still gives a scope.
	payloadToken := "" // pgxroute.Token(requestCtx) when the job was enqueued
	ctx, err := pgxroute.WithToken(context.Background(), payloadToken)
	fmt.Println(pgxroute.HasScope(ctx), err)
	// Output: true <nil>
}

func ExampleHasScope() {
	fmt.Println(pgxroute.HasScope(context.Background()))
	fmt.Println(pgxroute.HasScope(pgxroute.WithScope(context.Background())))
	// Output:
	// false
	// true
}

func ExampleIsSticky() {
	f, err := routingtest.StartFake(context.Background(), routingtest.FakeOptions{})
	if err != nil {
		panic(err)
	}
	defer f.Close()
	ctx := pgxroute.WithScope(context.Background())
	fmt.Println(pgxroute.IsSticky(ctx))
	f.Pool.CopyFrom(ctx, pgx.Identifier{"events"}, []string{"id"}, pgx.CopyFromRows([][]any{{1}}))
	fmt.Println(pgxroute.IsSticky(ctx))
	// Output:
	// false
	// true
}

func ExampleTxRoute() {
	f, err := routingtest.StartFake(context.Background(), routingtest.FakeOptions{})
	if err != nil {
		panic(err)
	}
	defer f.Close()
	tx, _ := f.Pool.Begin(context.Background())
	defer tx.Rollback(context.Background())
	r, ok := pgxroute.TxRoute(tx)
	fmt.Println(r.Group, r.Node, ok)
	// Output: default primary true
}

func ExampleReasons() {
	for _, r := range pgxroute.Reasons()[:4] {
		fmt.Println(r)
	}
	// Output:
	// write
	// write (no scope: the pool's scope remembers it)
	// locking read
	// sticky: the scope wrote
}

func ExampleRoutedPool_SendBatch() {
	f, err := routingtest.StartFake(context.Background(), routingtest.FakeOptions{})
	if err != nil {
		panic(err)
	}
	defer f.Close()
	b := &pgx.Batch{}
	b.Queue("SELECT 1")
	b.Queue("UPDATE counters SET n = n + 1")
	f.Pool.SendBatch(context.Background(), b).Close()
	fmt.Println(f.Last().Group, f.Last().Reason)
	// Output: default write (no scope: the pool's scope remembers it)
}
