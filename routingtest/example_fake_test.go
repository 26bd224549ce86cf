package routingtest_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/pgxroute/pgxroute"
	"github.com/pgxroute/pgxroute/routingtest"
)

// Users is a repository as an application would write it: it takes the
// RoutedPool (or an interface it satisfies) and knows nothing of routing.
type Users struct{ db *pgxroute.RoutedPool }

func (u Users) Name(ctx context.Context, id int) (string, error) {
	var name string
	err := u.db.QueryRow(ctx, "SELECT name FROM users WHERE id = $1", id).Scan(&name)
	return name, err
}

func (u Users) Rename(ctx context.Context, id int, name string) error {
	_, err := u.db.Exec(ctx, "UPDATE users SET name = $2 WHERE id = $1", id, name)
	return err
}

// A unit test asserts where each repository call went, with no database. In a
// test, routingtest.NewFake(t, opts) does the same and closes the fake at the
// end of the test.
func ExampleStartFake() {
	ctx := context.Background()
	f, err := routingtest.StartFake(ctx, routingtest.FakeOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	users := Users{db: f.Pool}

	ctx = pgxroute.WithScope(ctx) // one unit of work, as pgxroute.Middleware makes per request
	_, err = users.Name(ctx, 1)
	fmt.Println(errors.Is(err, pgx.ErrNoRows)) // a fake node answers empty results
	_ = users.Rename(ctx, 1, "bob")
	_, _ = users.Name(ctx, 1)

	for _, c := range f.Calls() {
		fmt.Println(c)
	}
	// Output:
	// true
	// read/replica1: read: SELECT name FROM users WHERE id = $1
	// default/primary: write: UPDATE users SET name = $2 WHERE id = $1
	// default/primary: sticky: the scope wrote: SELECT name FROM users WHERE id = $1
}

// Two fakes with the same seed pick the same nodes: Random and LeastBusy are
// repeatable in tests.
func ExampleFakeOptions_seed() {
	nodes := func() []string {
		f, err := routingtest.StartFake(context.Background(), routingtest.FakeOptions{
			Groups:   map[string][]string{"default": {"primary"}, "read": {"r1", "r2", "r3"}},
			Strategy: pgxroute.Random,
			Seed:     42,
		})
		if err != nil {
			log.Fatal(err)
		}
		defer f.Close()
		for range 10 {
			_, _ = f.Pool.Exec(context.Background(), "SELECT 1")
		}
		return f.Nodes()
	}
	first, second := nodes(), nodes()
	fmt.Println(slices.Equal(first, second))
	// Output: true
}

// Replica emulation points the read group at the test database through a
// read-only session, so that a write sent to a replica fails in CI as it
// would in production. In a test, routingtest.NewEmulatedPool(t, url, nil)
// also fails the test when the router had to re-run a refused write on the
// primary.
func ExampleEmulatedConfig() {
	ctx := context.Background()
	cfg, err := routingtest.EmulatedConfig(os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	pool, err := pgxroute.New(ctx, cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()

	// Fails with SQLSTATE 25006 (read_only_sql_transaction): the read group
	// is read-only.
	_, err = pool.Exec(pgxroute.WithReplica(ctx), "INSERT INTO users (name) VALUES ('x')")
	fmt.Println(err)
}
