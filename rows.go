package pgxroute

import (
	"context"
	"errors"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// routedRows follows a routed query to its end: it counts the call as
// finished when the rows are done, marks the scope after a write, and re-runs
// a read that a replica refused before returning any row.
type routedRows struct {
	pgx.Rows
	p       *RoutedPool
	d       decision
	ctx     context.Context
	sql     string
	args    []any
	attempt int
	seen    bool  // a row was returned: no re-run any more
	done    bool  // finish ran
	err     error // an error of a re-run that could not start
}

// Next advances to the next row.
func (r *routedRows) Next() bool {
	if r.err != nil {
		return false
	}
	if r.Rows.Next() {
		r.seen = true
		return true
	}
	err := r.Rows.Err()
	if err != nil && !r.seen && !r.done {
		r.Rows.Close()
		r.finish(err)
		if next, retry := r.p.recover(r.ctx, &r.d, r.sql, err, r.attempt); retry {
			if err := r.p.query(r.ctx, next, r.sql, r.args, r.attempt+1, r); err != nil {
				r.err = err
				return false
			}
			return r.Next()
		}
		return false
	}
	r.finish(err)
	return false
}

// Close closes the rows and counts the call as finished.
func (r *routedRows) Close() {
	r.Rows.Close()
	r.finish(r.Rows.Err())
}

// Err returns the error of the rows, naming the node when it is the node's.
func (r *routedRows) Err() error {
	if r.err != nil {
		return r.err
	}
	if err := r.Rows.Err(); err != nil {
		return r.p.wrapErr(&r.d, err)
	}
	return nil
}

func (r *routedRows) finish(err error) {
	if r.done {
		return
	}
	r.done = true
	r.p.end(&r.d, err, r.d.isWrite())
	if err != nil {
		r.p.passive(&r.d, err)
	}
}

// routedRow is QueryRow's row, allocated with its rows: Scan reads the
// first row.
type routedRow struct{ rows routedRows }

// Scan reads the row's values into dest; pgx.ErrNoRows when there is none.
func (r *routedRow) Scan(dest ...any) error {
	rows := &r.rows
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return err
		}
		return pgx.ErrNoRows
	}
	if err := rows.Scan(dest...); err != nil {
		return err
	}
	rows.Close()
	return rows.Err()
}

// errRow is a row whose call failed before it ran.
type errRow struct{ err error }

func (e errRow) Scan(...any) error { return e.err }

// routedBatch counts a batch as finished when it is closed, and marks the
// scope after a batch that wrote.
type routedBatch struct {
	pgx.BatchResults
	p      *RoutedPool
	d      decision
	failed bool
	done   atomic.Bool
}

func (b *routedBatch) Exec() (pgconn.CommandTag, error) {
	tag, err := b.BatchResults.Exec()
	b.fail(err)
	return tag, err
}

func (b *routedBatch) Query() (pgx.Rows, error) {
	rows, err := b.BatchResults.Query()
	b.fail(err)
	return rows, err
}

// QueryRow reads the next result as a row; its errors count as the batch's.
func (b *routedBatch) QueryRow() pgx.Row {
	return batchRow{row: b.BatchResults.QueryRow(), b: b}
}

// batchRow passes a batch row's Scan error to its batch.
type batchRow struct {
	row pgx.Row
	b   *routedBatch
}

// Scan reads the row; pgx.ErrNoRows is not a failure of the batch.
func (r batchRow) Scan(dest ...any) error {
	err := r.row.Scan(dest...)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		r.b.fail(err)
	}
	return err
}

func (b *routedBatch) fail(err error) {
	if err != nil {
		b.failed = true
		b.p.passive(&b.d, err)
	}
}

// Close closes the batch results.
func (b *routedBatch) Close() error {
	err := b.BatchResults.Close()
	if b.done.CompareAndSwap(false, true) {
		// A failed statement rolls the batch's implicit transaction back.
		b.p.end(&b.d, err, b.d.isWrite() && !b.failed)
	}
	return err
}

// errBatch is a batch whose call failed before it ran.
type errBatch struct{ err error }

func (e errBatch) Exec() (pgconn.CommandTag, error) { return pgconn.CommandTag{}, e.err }
func (e errBatch) Query() (pgx.Rows, error)         { return nil, e.err }
func (e errBatch) QueryRow() pgx.Row                { return errRow(e) }
func (e errBatch) Close() error                     { return e.err }

// Tx returns nil: the batch began no transaction. (pgx v5.12 added Tx to
// pgx.BatchResults; having it keeps errBatch a BatchResults on every pgx.)
func (e errBatch) Tx() pgx.Tx { return nil }
