package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/pgxroute/pgxroute/internal/costbench"
)

// The statements every pgx-based target runs. gorm builds its own from the
// model (see gorm.go).
const (
	table     = "pgxroute_bench"
	sqlPoint  = "SELECT id, balance, note FROM " + table + " WHERE id = $1"
	sqlWrite  = "UPDATE " + table + " SET balance = balance + 1 WHERE id = $1"
	batchSize = 10 // reads per batch
	txReads   = 3  // reads per read-only transaction
	appName   = "pgxroute-bench"
)

// target is one way of reaching the servers. Its methods run one operation
// of a workload each and are safe for concurrent use.
type target interface {
	point(ctx context.Context, id int64) error
	write(ctx context.Context, id int64) error
	batch(ctx context.Context, ids *[batchSize]int64) error
	rotx(ctx context.Context, ids *[txReads]int64) error
	close()
}

// querier is the part of *pgxpool.Pool (and of pgxroute.RoutedPool) the
// workloads use.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
	BeginTx(ctx context.Context, txOptions pgx.TxOptions) (pgx.Tx, error)
}

// pgxTarget sends reads to r and writes to w.
type pgxTarget struct {
	r, w    querier
	closers []func()
}

func scanPoint(row pgx.Row, id int64) error {
	var (
		got, balance int64
		note         string
	)
	if err := row.Scan(&got, &balance, &note); err != nil {
		return err
	}
	if got != id {
		return fmt.Errorf("asked for row %d, got %d", id, got)
	}
	return nil
}

func (t *pgxTarget) point(ctx context.Context, id int64) error {
	return scanPoint(t.r.QueryRow(ctx, sqlPoint, id), id)
}

func (t *pgxTarget) write(ctx context.Context, id int64) error {
	tag, err := t.w.Exec(ctx, sqlWrite, id)
	if err == nil && tag.RowsAffected() != 1 {
		err = fmt.Errorf("update of row %d touched %d rows", id, tag.RowsAffected())
	}
	return err
}

func (t *pgxTarget) batch(ctx context.Context, ids *[batchSize]int64) error {
	b := &pgx.Batch{QueuedQueries: make([]*pgx.QueuedQuery, 0, batchSize)}
	for _, id := range ids {
		b.Queue(sqlPoint, id)
	}
	br := t.r.SendBatch(ctx, b)
	var first error
	for _, id := range ids {
		if err := scanPoint(br.QueryRow(), id); err != nil && first == nil {
			first = err
		}
	}
	if err := br.Close(); err != nil && first == nil {
		first = err
	}
	return first
}

func (t *pgxTarget) rotx(ctx context.Context, ids *[txReads]int64) error {
	tx, err := t.r.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
	if err != nil {
		return err
	}
	for _, id := range ids {
		if err := scanPoint(tx.QueryRow(ctx, sqlPoint, id), id); err != nil {
			_ = tx.Rollback(ctx)
			return err
		}
	}
	return tx.Commit(ctx)
}

func (t *pgxTarget) close() {
	for i := len(t.closers) - 1; i >= 0; i-- {
		t.closers[i]()
	}
}

// poolConfig parses a connection string into a pool config of the run's
// size, tagged with the application name the statistics wait for.
func poolConfig(connString string, conns int) (*pgxpool.Config, error) {
	cfg, err := pgxpool.ParseConfig(connString)
	if err != nil {
		return nil, err
	}
	sizePool(cfg, conns)
	return cfg, nil
}

func sizePool(cfg *pgxpool.Config, conns int) {
	cfg.MaxConns = int32(conns)
	cfg.MinConns = int32(conns)
	cfg.ConnConfig.RuntimeParams["application_name"] = appName
}

// openPool creates a pool and waits until it holds all its connections, so
// that no run measures connection set-up.
func openPool(ctx context.Context, connString string, conns int) (*pgxpool.Pool, error) {
	cfg, err := poolConfig(connString, conns)
	if err != nil {
		return nil, err
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := fillPool(ctx, pool, conns); err != nil {
		pool.Close()
		return nil, err
	}
	return pool, nil
}

// fillPool acquires n connections at once and releases them.
func fillPool(ctx context.Context, pool *pgxpool.Pool, n int) error {
	conns := make([]*pgxpool.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Release()
		}
	}()
	for range n {
		c, err := pool.Acquire(ctx)
		if err != nil {
			return err
		}
		conns = append(conns, c)
	}
	return nil
}

// servers are the connection strings of the run.
type servers struct {
	primary  string
	replicas []string
}

func openRawPrimary(ctx context.Context, s servers, conns int) (target, error) {
	p, err := openPool(ctx, s.primary, conns)
	if err != nil {
		return nil, err
	}
	return &pgxTarget{r: p, w: p, closers: []func(){p.Close}}, nil
}

// openRawReplica reads from the first replica; its writes (mixed workload)
// go to a pool of the primary, as an application with one replica would.
func openRawReplica(ctx context.Context, s servers, conns int) (target, error) {
	if len(s.replicas) == 0 {
		return nil, errors.New("no replica")
	}
	t := &pgxTarget{}
	r, err := openPool(ctx, s.replicas[0], conns)
	if err != nil {
		return nil, err
	}
	t.closers = append(t.closers, r.Close)
	w, err := openPool(ctx, s.primary, conns)
	if err != nil {
		t.close()
		return nil, err
	}
	t.closers = append(t.closers, w.Close)
	t.r, t.w = r, w
	return t, nil
}

// openRawPair alternates reads over the first two replicas by hand and sends
// writes to a pool of the primary.
func openRawPair(ctx context.Context, s servers, conns int) (target, error) {
	if len(s.replicas) < 2 {
		return nil, errors.New("raw-pair needs two replicas")
	}
	t := &pgxTarget{}
	pr := &costbench.Pair{}
	for i := range pr.Pools {
		p, err := openPool(ctx, s.replicas[i], conns)
		if err != nil {
			t.close()
			return nil, err
		}
		t.closers = append(t.closers, p.Close)
		pr.Pools[i] = p
	}
	w, err := openPool(ctx, s.primary, conns)
	if err != nil {
		t.close()
		return nil, err
	}
	t.closers = append(t.closers, w.Close)
	t.r, t.w = pr, w
	return t, nil
}

// openPgxToPgpool connects a pool to pgpool-II, which routes every statement.
func openPgxToPgpool(ctx context.Context, url string, conns int) (target, error) {
	p, err := openPool(ctx, url, conns)
	if err != nil {
		return nil, err
	}
	return &pgxTarget{r: p, w: p, closers: []func(){p.Close}}, nil
}
