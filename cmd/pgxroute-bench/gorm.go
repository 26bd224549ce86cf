package main

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"strings"

	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"gorm.io/plugin/dbresolver"
)

// account is the gorm model of the benchmark table.
type account struct {
	ID      int64 `gorm:"primaryKey"`
	Balance int64
	Note    string
}

func (account) TableName() string { return table }

// gormTarget is gorm with dbresolver: the default connection (the primary)
// is the source, the replicas are balanced strictly round-robin. Queries use
// gorm's model API as a gorm application would.
type gormTarget struct {
	db  *gorm.DB
	res *dbresolver.DBResolver
}

// withAppName adds application_name to a URL or key=value connection string.
func withAppName(conn string) string {
	if strings.HasPrefix(conn, "postgres://") || strings.HasPrefix(conn, "postgresql://") {
		u, err := url.Parse(conn)
		if err != nil {
			return conn
		}
		q := u.Query()
		q.Set("application_name", appName)
		u.RawQuery = q.Encode()
		return u.String()
	}
	return conn + " application_name=" + appName
}

func openGorm(ctx context.Context, s servers, conns int) (target, error) {
	cfg := &gorm.Config{
		// gorm's advice for speed: no implicit transaction around writes.
		SkipDefaultTransaction: true,
		Logger:                 logger.Discard,
	}
	db, err := gorm.Open(postgres.Open(withAppName(s.primary)), cfg)
	if err != nil {
		return nil, err
	}
	replicas := make([]gorm.Dialector, len(s.replicas))
	for i, r := range s.replicas {
		replicas[i] = postgres.Open(withAppName(r))
	}
	res := dbresolver.Register(dbresolver.Config{
		Replicas: replicas,
		Policy:   dbresolver.StrictRoundRobinPolicy(),
	}).SetMaxOpenConns(conns).SetMaxIdleConns(conns).SetConnMaxLifetime(0).SetConnMaxIdleTime(0)
	t := &gormTarget{db: db, res: res}
	if err := db.Use(res); err != nil {
		t.close()
		return nil, err
	}
	// Open every connection now, as the pgx targets do.
	err = res.Call(func(p gorm.ConnPool) error {
		sqlDB, ok := p.(*sql.DB)
		if !ok {
			return nil
		}
		held := make([]*sql.Conn, 0, conns)
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for range conns {
			c, err := sqlDB.Conn(ctx)
			if err != nil {
				return err
			}
			if err := c.PingContext(ctx); err != nil {
				return err
			}
			held = append(held, c)
		}
		return nil
	})
	if err != nil {
		t.close()
		return nil, err
	}
	return t, nil
}

func (t *gormTarget) take(db *gorm.DB, id int64) error {
	var a account
	if err := db.Take(&a, id).Error; err != nil {
		return err
	}
	if a.ID != id {
		return fmt.Errorf("asked for row %d, got %d", id, a.ID)
	}
	return nil
}

func (t *gormTarget) point(ctx context.Context, id int64) error {
	return t.take(t.db.WithContext(ctx), id)
}

func (t *gormTarget) write(ctx context.Context, id int64) error {
	res := t.db.WithContext(ctx).Model(&account{}).Where("id = ?", id).
		UpdateColumn("balance", gorm.Expr("balance + 1"))
	if res.Error == nil && res.RowsAffected != 1 {
		return fmt.Errorf("update of row %d touched %d rows", id, res.RowsAffected)
	}
	return res.Error
}

// batch runs the reads one after the other: gorm has no pipelined batch.
func (t *gormTarget) batch(ctx context.Context, ids *[batchSize]int64) error {
	db := t.db.WithContext(ctx)
	for _, id := range ids {
		if err := t.take(db, id); err != nil {
			return err
		}
	}
	return nil
}

// rotx starts the transaction on a replica, as dbresolver's documentation
// shows (a transaction otherwise goes to the source).
func (t *gormTarget) rotx(ctx context.Context, ids *[txReads]int64) error {
	tx := t.db.WithContext(ctx).Clauses(dbresolver.Read).Begin(&sql.TxOptions{ReadOnly: true})
	if tx.Error != nil {
		return tx.Error
	}
	for _, id := range ids {
		if err := t.take(tx, id); err != nil {
			tx.Rollback()
			return err
		}
	}
	return tx.Commit().Error
}

func (t *gormTarget) close() {
	if t.res != nil {
		_ = t.res.Call(func(p gorm.ConnPool) error {
			if sqlDB, ok := p.(*sql.DB); ok {
				sqlDB.Close()
			}
			return nil
		})
	}
	if sqlDB, err := t.db.DB(); err == nil {
		sqlDB.Close()
	}
}
