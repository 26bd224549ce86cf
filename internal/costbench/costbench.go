// Package costbench holds what the measures of the cost of routing share:
// the root module's benchmarks (BenchmarkCostOfRouting, BenchmarkCallPath)
// and the pgxroute-bench command (-cost, -percall). They make the same calls
// (Kinds) on the same kinds of targets (Querier), one of which alternates
// over two plain pools by hand (Pair), and count the client's CPU
// (ProcessCPU).
package costbench

import (
	"context"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Querier is what the measured calls run on: a *pgxpool.Pool, a
// *pgxroute.RoutedPool, a *Pair.
type Querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// SQL is the statement every measured call runs, with the call's number as
// its argument: a read that costs the server next to nothing.
const SQL = "SELECT $1::int + 1"

// Kind is one kind of call measured: Run makes call number i on q.
type Kind struct {
	Name string
	Run  func(ctx context.Context, q Querier, i int) error
}

// Kinds are the calls measured, in the order the reports list them:
// QueryRow, Query with Next and Close, Exec, and a batch of 10 reads.
var Kinds = []Kind{
	{"QueryRow", func(ctx context.Context, q Querier, i int) error {
		var v int
		return q.QueryRow(ctx, SQL, i).Scan(&v)
	}},
	{"Query", func(ctx context.Context, q Querier, i int) error {
		rows, err := q.Query(ctx, SQL, i)
		if err != nil {
			return err
		}
		for rows.Next() {
		}
		rows.Close()
		return rows.Err()
	}},
	{"Exec", func(ctx context.Context, q Querier, i int) error {
		_, err := q.Exec(ctx, SQL, i)
		return err
	}},
	{"Batch10", func(ctx context.Context, q Querier, i int) error {
		var b pgx.Batch
		for j := range 10 {
			b.Queue(SQL, i+j)
		}
		return q.SendBatch(ctx, &b).Close()
	}},
}

// Pair alternates calls over two pools by hand (the first call on Pools[1],
// the next on Pools[0], and so on): what an application does without a
// router, the baseline of a RoutedPool over the same two servers. Its
// methods are safe for concurrent use once Pools are set.
type Pair struct {
	Pools [2]*pgxpool.Pool
	n     atomic.Uint64
}

func (p *Pair) next() *pgxpool.Pool { return p.Pools[p.n.Add(1)&1] }

// QueryRow runs QueryRow on the next pool.
func (p *Pair) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return p.next().QueryRow(ctx, sql, args...)
}

// Query runs Query on the next pool.
func (p *Pair) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	return p.next().Query(ctx, sql, args...)
}

// Exec runs Exec on the next pool.
func (p *Pair) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	return p.next().Exec(ctx, sql, args...)
}

// SendBatch runs SendBatch on the next pool.
func (p *Pair) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	return p.next().SendBatch(ctx, b)
}

// BeginTx begins a transaction on the next pool.
func (p *Pair) BeginTx(ctx context.Context, o pgx.TxOptions) (pgx.Tx, error) {
	return p.next().BeginTx(ctx, o)
}
