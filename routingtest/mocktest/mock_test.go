package mocktest_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/pashagolub/pgxmock/v4"

	"github.com/pgxroute/pgxroute"
	"github.com/pgxroute/pgxroute/routingtest"
)

// where drops the parts of calls that a test does not check.
type where struct {
	Group, Node string
	Reason      pgxroute.Reason
	SQL         string
	InTx        bool
}

func wantCalls(t *testing.T, f *routingtest.Fake, want []where) {
	t.Helper()
	calls := f.Calls()
	got := make([]where, len(calls))
	for i, c := range calls {
		got[i] = where{c.Group, c.Node, c.Reason, c.SQL, c.InTx}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
}

const (
	sel = "SELECT name FROM users WHERE id = $1"
	ins = "INSERT INTO users (name) VALUES ($1)"
)

// Users is a repository as an application would write it.
type Users struct{ db *pgxroute.RoutedPool }

func (u Users) Name(ctx context.Context, id int) (string, error) {
	var name string
	err := u.db.QueryRow(ctx, "SELECT name FROM users WHERE id = $1", id).Scan(&name)
	return name, err
}

func TestFakeMockCannedRows(t *testing.T) {
	replica, err := pgxmock.NewPool(pgxmock.QueryMatcherOption(pgxmock.QueryMatcherEqual))
	if err != nil {
		t.Fatal(err)
	}
	defer replica.Close()
	primary, err := pgxmock.NewPool(pgxmock.QueryMatcherOption(pgxmock.QueryMatcherEqual))
	if err != nil {
		t.Fatal(err)
	}
	defer primary.Close()

	replica.ExpectQuery(sel).WithArgs(1).
		WillReturnRows(pgxmock.NewRows([]string{"name"}).AddRow("alice"))
	replica.ExpectQuery("SELECT id, name FROM users ORDER BY id").
		WillReturnRows(pgxmock.NewRows([]string{"id", "name"}).AddRow(1, "alice").AddRow(2, "bob"))
	primary.ExpectExec(ins).WithArgs("carol").WillReturnResult(pgxmock.NewResult("INSERT", 1))
	primary.ExpectBegin()
	primary.ExpectExec("DELETE FROM users").WillReturnResult(pgxmock.NewResult("DELETE", 2))
	primary.ExpectCommit()

	f := routingtest.NewFake(t, routingtest.FakeOptions{
		Groups: map[string][]string{"default": {"primary"}, "read": {"replica1", "replica2"}},
		Mocks:  map[string]pgxroute.Backend{"primary": primary, "replica1": replica},
	})
	ctx := context.Background()

	var name string
	if err := f.Pool.QueryRow(ctx, sel, 1).Scan(&name); err != nil || name != "alice" {
		t.Fatalf("QueryRow: %q, %v", name, err)
	}
	// replica2 has no mock: it answers empty.
	if err := f.Pool.QueryRow(ctx, sel, 1).Scan(&name); !errors.Is(err, pgx.ErrNoRows) {
		t.Fatalf("QueryRow on replica2: %v", err)
	}
	rows, err := f.Pool.Query(ctx, "SELECT id, name FROM users ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	type user struct {
		ID   int
		Name string
	}
	users, err := pgx.CollectRows(rows, pgx.RowToStructByPos[user])
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]user{{1, "alice"}, {2, "bob"}}, users); diff != "" {
		t.Errorf("rows (-want +got):\n%s", diff)
	}
	tag, err := f.Pool.Exec(ctx, ins, "carol")
	if err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("Exec: %q, %v", tag, err)
	}
	tx, err := f.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if tag, err := tx.Exec(ctx, "DELETE FROM users"); err != nil || tag.RowsAffected() != 2 {
		t.Fatalf("Exec in a transaction: %q, %v", tag, err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}

	for _, m := range []pgxmock.PgxPoolIface{primary, replica} {
		if err := m.ExpectationsWereMet(); err != nil {
			t.Error(err)
		}
	}
	wantCalls(t, f, []where{
		{"read", "replica1", pgxroute.ReasonReadNoScope, sel, false},
		{"read", "replica2", pgxroute.ReasonReadNoScope, sel, false},
		{"read", "replica1", pgxroute.ReasonReadNoScope, "SELECT id, name FROM users ORDER BY id", false},
		{"default", "primary", pgxroute.ReasonWriteNoScope, ins, false},
		{"default", "primary", pgxroute.ReasonTransaction, "", false},
	})
}

func TestFakeMockErrorReachesCaller(t *testing.T) {
	primary, err := pgxmock.NewPool()
	if err != nil {
		t.Fatal(err)
	}
	defer primary.Close()
	boom := &pgconn.PgError{Code: "23505", Message: "duplicate key"}
	primary.ExpectExec("INSERT INTO users").WithArgs("dup").WillReturnError(boom)
	f := routingtest.NewFake(t, routingtest.FakeOptions{
		Mocks: map[string]pgxroute.Backend{"primary": primary},
	})
	_, err = f.Pool.Exec(context.Background(), ins, "dup")
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "23505" {
		t.Fatalf("Exec: %v, want the mock's PgError", err)
	}
	var ne *pgxroute.NodeError
	if !errors.As(err, &ne) || ne.Node != "primary" {
		t.Errorf("Exec: %v, want a NodeError naming primary", err)
	}
	if err := primary.ExpectationsWereMet(); err != nil {
		t.Error(err)
	}
}

// A node with a pgxmock pool answers with canned rows; the others answer
// empty results.
func Example_mocks() {
	replica, err := pgxmock.NewPool()
	if err != nil {
		log.Fatal(err)
	}
	defer replica.Close()
	replica.ExpectQuery("SELECT name FROM users").WithArgs(1).
		WillReturnRows(pgxmock.NewRows([]string{"name"}).AddRow("alice"))

	f, err := routingtest.StartFake(context.Background(), routingtest.FakeOptions{
		Groups: map[string][]string{"default": {"primary"}, "read": {"replica"}},
		Mocks:  map[string]pgxroute.Backend{"replica": replica},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()

	name, err := Users{db: f.Pool}.Name(context.Background(), 1)
	fmt.Println(name, err)
	fmt.Println(f.Last().Node)
	fmt.Println(replica.ExpectationsWereMet())
	// Output:
	// alice <nil>
	// replica
	// <nil>
}
