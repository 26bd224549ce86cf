package stdlib_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	pgxstdlib "github.com/jackc/pgx/v5/stdlib"

	"github.com/pgxroute/pgxroute"
	"github.com/pgxroute/pgxroute/routingtest"
	"github.com/pgxroute/pgxroute/stdlib"
)

// BenchDSNEnv names a server for BenchmarkDatabaseSQL (one the benchmark
// does not start: `go run ./sqlbench -serve` in stdlib/frameworktest
// starts one), so that a run under valgrind counts the calls' instructions
// and not a cluster's start.
const benchDSNEnv = "PGXROUTE_BENCH_DSN"

// BenchmarkDatabaseSQL runs the same calls through database/sql on one
// server, with one connection: pgx's own stdlib.OpenDBFromPool over a
// pgxpool ("pgx-stdlib") and stdlib.OpenDB over a RoutedPool of that server
// alone ("routed"). Allocations per call are reported; for instructions
// per call, run it under valgrind (docs/benchmarks.md).
func BenchmarkDatabaseSQL(b *testing.B) {
	dsn := os.Getenv(benchDSNEnv)
	if dsn == "" {
		c := routingtest.NewCluster(b, routingtest.ClusterOptions{Replicas: routingtest.NoReplicas})
		dsn = c.Primary().ConnString()
	}
	ctx := context.Background()
	if err := benchSetup(ctx, dsn); err != nil {
		b.Fatal(err)
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		b.Fatal(err)
	}
	cfg.MaxConns = 1
	raw, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer raw.Close()
	routed, err := pgxroute.New(ctx, pgxroute.Config{
		Primary:       dsn,
		ConfigurePool: func(_, _ string, pc *pgxpool.Config) { pc.MaxConns = 1 },
	})
	if err != nil {
		b.Fatal(err)
	}
	defer routed.Close()
	targets := []struct {
		name string
		db   *sql.DB
	}{
		{"pgx-stdlib", pgxstdlib.OpenDBFromPool(raw)},
		{"routed", stdlib.OpenDB(routed)},
	}
	for _, t := range targets {
		t.db.SetMaxOpenConns(1)
		t.db.SetMaxIdleConns(1)
		defer t.db.Close()
	}
	calls := []struct {
		name string
		run  func(db *sql.DB, id int64) error
	}{
		{"QueryRow", func(db *sql.DB, id int64) error {
			var got, balance int64
			var note string
			return db.QueryRowContext(ctx, "SELECT id, balance, note FROM stdlib_bench WHERE id = $1", id).Scan(&got, &balance, &note)
		}},
		{"Query", func(db *sql.DB, id int64) error {
			rows, err := db.QueryContext(ctx, "SELECT id, balance, note FROM stdlib_bench WHERE id = $1", id)
			if err != nil {
				return err
			}
			defer rows.Close()
			for rows.Next() {
				var got, balance int64
				var note string
				if err := rows.Scan(&got, &balance, &note); err != nil {
					return err
				}
			}
			return rows.Err()
		}},
		{"Exec", func(db *sql.DB, id int64) error {
			_, err := db.ExecContext(ctx, "UPDATE stdlib_bench SET balance = balance + 1 WHERE id = $1", id)
			return err
		}},
	}
	for _, call := range calls {
		for _, t := range targets {
			b.Run(call.name+"/"+t.name, func(b *testing.B) {
				b.ReportAllocs()
				for i := range b.N {
					if err := call.run(t.db, int64(i%1000)+1); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// benchSetup creates the benchmark's table, once per server.
func benchSetup(ctx context.Context, dsn string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS stdlib_bench (id bigint PRIMARY KEY, balance bigint NOT NULL, note text NOT NULL);
INSERT INTO stdlib_bench SELECT g, 0, 'note ' || g FROM generate_series(1, 1000) g ON CONFLICT DO NOTHING`)
	if err != nil {
		return fmt.Errorf("bench table: %w", err)
	}
	return nil
}
