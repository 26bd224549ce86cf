package frameworktest_test

import (
	"context"
	"database/sql"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/pgxroute/pgxroute"
)

// bunAuthor is bun's model of authors.
type bunAuthor struct {
	bun.BaseModel `bun:"table:authors"`

	ID     int64          `bun:"id,pk,autoincrement"`
	Name   string         `bun:"name"`
	Bio    sql.NullString `bun:"bio"`
	Port   int32          `bun:"port,scanonly"`
	Served int32          `bun:"served,scanonly"`
}

// TestBun runs bun on a routed *sql.DB: an insert on the primary, selects
// on a replica, RunInTx on the primary, a select forced to the primary
// through the context.
func TestBun(t *testing.T) {
	c := cluster(t)
	_, sqldb := openDB(t, c)
	db := bun.NewDB(sqldb, pgdialect.New())
	ctx := context.Background()

	a := bunAuthor{Name: "bun-ann"}
	if _, err := db.NewInsert().Model(&a).Returning("id, port").Exec(ctx); err != nil {
		t.Fatal(err)
	}
	replayed(t, c)
	var read bunAuthor
	if err := db.NewSelect().Model(&read).ColumnExpr("*, inet_server_port() AS served").Where("id = ?", a.ID).Scan(ctx); err != nil {
		t.Fatal(err)
	}
	var txPort int
	err := db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if _, err := tx.NewInsert().Model(&bunAuthor{Name: "bun-tx"}).Exec(ctx); err != nil {
			return err
		}
		return tx.NewRaw("SELECT inet_server_port()").Scan(ctx, &txPort)
	})
	if err != nil {
		t.Fatal(err)
	}
	var forced bunAuthor
	if err := db.NewSelect().Model(&forced).ColumnExpr("*, inet_server_port() AS served").Where("name = ?", "bun-tx").Scan(pgxroute.WithPrimary(ctx)); err != nil {
		t.Fatal(err)
	}

	type where struct {
		Insert, Select, RunInTx, Forced, ForcedInsert string
		Name                                          string
	}
	want := where{"primary", "replica", "primary", "primary", "primary", "bun-ann"}
	got := where{role(c, int(a.Port)), role(c, int(read.Served)), role(c, txPort), role(c, int(forced.Served)), role(c, int(forced.Port)), read.Name}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("where bun ran (-want +got):\n%s", diff)
	}
}
