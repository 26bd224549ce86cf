package frameworktest_test

import (
	"context"
	"database/sql"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/pgxroute/pgxroute"
	"github.com/pgxroute/pgxroute/stdlib/frameworktest/authors"
)

// TestSQLC runs a package in sqlc's database/sql style on a routed *sql.DB:
// its insert on the primary, its reads on a replica, its queries in a
// read-write transaction on the primary and in a read-only one on a
// replica (each server says its port).
func TestSQLC(t *testing.T) {
	c := cluster(t)
	_, db := openDB(t, c)
	ctx := context.Background()
	q := authors.New(db)

	a, err := q.CreateAuthor(ctx, authors.CreateAuthorParams{Name: "ann", Bio: sql.NullString{String: "b", Valid: true}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := q.CreateAuthor(ctx, authors.CreateAuthorParams{Name: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	replayed(t, c)
	got, err := q.GetAuthor(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	list, err := q.ListAuthors(ctx, []int64{a.ID, b.ID})
	if err != nil {
		t.Fatal(err)
	}
	var listed []string
	for _, r := range list {
		listed = append(listed, r.Name+"@"+role(c, int(r.Served)))
	}

	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	qtx := q.WithTx(tx)
	inTx, err := qtx.CreateAuthor(ctx, authors.CreateAuthorParams{Name: "cy"})
	if err != nil {
		t.Fatal(err)
	}
	txPort, err := qtx.ServerPort(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	ro, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	roPort, err := q.WithTx(ro).ServerPort(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ro.Rollback()
	primaryPort, err := q.ServerPort(pgxroute.WithPrimary(ctx))
	if err != nil {
		t.Fatal(err)
	}
	n, err := q.DeleteAuthor(ctx, b.ID)
	if err != nil {
		t.Fatal(err)
	}

	type where struct {
		Create, CreateInTx, Get, TxRead, ReadOnlyTx, WithPrimary string
		Listed                                                   []string
		Bio                                                      sql.NullString
		Deleted                                                  int64
	}
	want := where{"primary", "primary", "replica", "primary", "replica", "primary", []string{"ann@replica", "bob@replica"}, sql.NullString{String: "b", Valid: true}, 1}
	gotW := where{role(c, int(a.Port)), role(c, int(inTx.Port)), role(c, int(got.Served)), role(c, int(txPort)), role(c, int(roPort)), role(c, int(primaryPort)), listed, got.Bio, n}
	if diff := cmp.Diff(want, gotW); diff != "" {
		t.Errorf("where the queries ran (-want +got):\n%s", diff)
	}
}
