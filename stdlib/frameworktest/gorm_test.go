package frameworktest_test

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/pgxroute/pgxroute"
)

// gormAuthor is gorm's model of authors. Served is the port of the server
// that answered a read that selects it.
type gormAuthor struct {
	ID     int64 `gorm:"primaryKey"`
	Name   string
	Bio    *string
	Port   int32 `gorm:"->"` // the server's default: read only
	Served int32 `gorm:"->;-:migration"`
}

func (gormAuthor) TableName() string { return "authors" }

// served selects every column and the answering server's port.
const served = "*, inet_server_port() AS served"

// TestGorm runs gorm through gorm.io/driver/postgres with
// postgres.Config{Conn: db}: Create on the primary, First and Find on a
// replica, Transaction on the primary, a read forced to the primary
// through the context.
func TestGorm(t *testing.T) {
	c := cluster(t)
	_, sqldb := openDB(t, c)
	db, err := gorm.Open(postgres.New(postgres.Config{Conn: sqldb}), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	g := db.WithContext(ctx)

	ann := gormAuthor{Name: "gorm-ann"}
	if err := g.Create(&ann).Error; err != nil {
		t.Fatal(err)
	}
	bob := gormAuthor{Name: "gorm-bob"}
	if err := g.Create(&bob).Error; err != nil {
		t.Fatal(err)
	}
	replayed(t, c)
	var first gormAuthor
	if err := g.Select(served).First(&first, ann.ID).Error; err != nil {
		t.Fatal(err)
	}
	var found []gormAuthor
	if err := g.Select(served).Where("id IN ?", []int64{ann.ID, bob.ID}).Order("id").Find(&found).Error; err != nil {
		t.Fatal(err)
	}
	var foundOn []string
	for _, a := range found {
		foundOn = append(foundOn, a.Name+" inserted on "+role(c, int(a.Port))+", read on "+role(c, int(a.Served)))
	}
	var txPort int
	err = g.Transaction(func(tx *gorm.DB) error {
		if err := tx.Create(&gormAuthor{Name: "gorm-tx"}).Error; err != nil {
			return err
		}
		return tx.Raw("SELECT inet_server_port()").Scan(&txPort).Error
	})
	if err != nil {
		t.Fatal(err)
	}
	var forced gormAuthor
	if err := db.WithContext(pgxroute.WithPrimary(ctx)).Select(served).Where("name = ?", "gorm-tx").First(&forced).Error; err != nil {
		t.Fatal(err)
	}

	type where struct {
		First, Transaction, Forced, ForcedInsert string
		Found                                    []string
	}
	want := where{"replica", "primary", "primary", "primary", []string{
		"gorm-ann inserted on primary, read on replica", "gorm-bob inserted on primary, read on replica",
	}}
	got := where{role(c, int(first.Served)), role(c, txPort), role(c, int(forced.Served)), role(c, int(forced.Port)), foundOn}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("where gorm ran (-want +got):\n%s", diff)
	}
}
