package frameworktest_test

import (
	"context"
	"database/sql"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/jmoiron/sqlx"

	"github.com/pgxroute/pgxroute"
)

// sqlxAuthor is a row of authors for sqlx, with the port of the server
// that answered.
type sqlxAuthor struct {
	ID     int64          `db:"id"`
	Name   string         `db:"name"`
	Bio    sql.NullString `db:"bio"`
	Port   int32          `db:"port"`
	Served int32          `db:"served"`
}

// TestSQLX runs sqlx on a routed *sql.DB: NamedExec on the primary, Get and
// Select on a replica, a transaction on the primary, a Get forced to the
// primary through the context.
func TestSQLX(t *testing.T) {
	c := cluster(t)
	_, sqldb := openDB(t, c)
	db := sqlx.NewDb(sqldb, "pgx") // "pgx": sqlx binds $1, $2
	ctx := context.Background()

	var names []string
	for _, n := range []string{"sx-ann", "sx-bob"} {
		names = append(names, n)
		if _, err := db.NamedExecContext(ctx, "INSERT INTO authors (name, bio) VALUES (:name, :bio)", sqlxAuthor{Name: n, Bio: sql.NullString{String: n + "'s", Valid: true}}); err != nil {
			t.Fatal(err)
		}
	}
	replayed(t, c)
	var one sqlxAuthor
	if err := db.GetContext(ctx, &one, "SELECT id, name, bio, port, inet_server_port() AS served FROM authors WHERE name = $1", "sx-ann"); err != nil {
		t.Fatal(err)
	}
	var all []sqlxAuthor
	if err := db.SelectContext(ctx, &all, "SELECT id, name, bio, port, inet_server_port() AS served FROM authors WHERE name = ANY($1) ORDER BY id", names); err != nil {
		t.Fatal(err)
	}
	var selected []string
	for _, a := range all {
		selected = append(selected, a.Name+" inserted on "+role(c, int(a.Port))+", read on "+role(c, int(a.Served)))
	}

	tx, err := db.BeginTxx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.NamedExecContext(ctx, "INSERT INTO authors (name) VALUES (:name)", sqlxAuthor{Name: "sx-tx"}); err != nil {
		t.Fatal(err)
	}
	var txPort int
	if err := tx.GetContext(ctx, &txPort, "SELECT inet_server_port()"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	var forced sqlxAuthor
	if err := db.GetContext(pgxroute.WithPrimary(ctx), &forced, "SELECT id, name, bio, port, inet_server_port() AS served FROM authors WHERE name = $1", "sx-tx"); err != nil {
		t.Fatal(err)
	}

	type where struct {
		Get, Tx, Forced, ForcedInsert string
		Bio                           sql.NullString
		Selected                      []string
	}
	want := where{"replica", "primary", "primary", "primary", sql.NullString{String: "sx-ann's", Valid: true}, []string{
		"sx-ann inserted on primary, read on replica", "sx-bob inserted on primary, read on replica",
	}}
	got := where{role(c, int(one.Served)), role(c, txPort), role(c, int(forced.Served)), role(c, int(forced.Port)), one.Bio, selected}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("where sqlx ran (-want +got):\n%s", diff)
	}
}
