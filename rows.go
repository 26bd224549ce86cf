package pgxroute

import (
	"cmp"
	"errors"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
)

// callPool recycles the calls of QueryRow and Query: a call is done with
// once its row is scanned or its rows end, and recycling it costs less than
// the GC's work for a new one per call. Query's rows outlive their call
// (pgx's CommandTag and Err are read after Close): they are a small value
// of their own, from a slab, that keeps what they answer after the end.
var callPool = sync.Pool{New: func() any { return new(call) }}

func getCall() *call { return callPool.Get().(*call) }

// putCall zeroes c (what it held goes to the GC) and recycles it.
func putCall(c *call) {
	*c = call{}
	callPool.Put(c)
}

// routedRows follows a routed query to its end: the call's attempt ends
// (endCall) when the rows are done, which marks the scope after a write; a
// read whose rows fail before the first row runs again where next allows.
type routedRows struct {
	c    *call    // the call while it runs; nil once it ended (recycled)
	rows pgx.Rows // the node's rows of the current attempt
	err  error
	seen bool // a row was returned: no re-run any more
}

// Next advances to the next row. When the rows fail before their first row
// and the call may run again (a read whose connection failed, or that a
// replica refused), it runs again and Next goes on with the new rows.
func (r *routedRows) Next() bool {
	for r.c != nil {
		if r.rows.Next() {
			r.seen = true
			return true
		}
		err := r.rows.Err()
		if err == nil || r.seen {
			r.end(err)
			return false
		}
		r.rows.Close()
		c := r.c
		if err := c.pool.retry(c, err); err != nil {
			r.err = err
			r.release()
			return false
		}
		r.rows = c.rows
	}
	return false
}

// end ends the call's attempt once; err is the rows' error, nil when they
// were read to the end or closed early.
func (r *routedRows) end(err error) {
	c := r.c
	if c == nil {
		return
	}
	if err != nil {
		r.err = c.pool.wrapErr(c, err)
	}
	c.pool.endCall(c, c.ctx, err)
	r.release()
}

// release recycles the rows' call, which ended.
func (r *routedRows) release() {
	putCall(r.c)
	r.c = nil
}

// Close closes the rows and ends the call.
func (r *routedRows) Close() {
	if r.c == nil {
		return
	}
	r.rows.Close()
	r.end(r.rows.Err())
}

// Err returns the error of the rows, naming the node when it is the node's.
// Once the call ended, r.err is the whole answer: end took the rows' error.
func (r *routedRows) Err() error {
	if r.err != nil || r.c == nil {
		return r.err
	}
	if err := r.rows.Err(); err != nil {
		return r.c.pool.wrapErr(r.c, err)
	}
	return nil
}

// CommandTag returns the command tag of the query, once the rows are closed.
func (r *routedRows) CommandTag() pgconn.CommandTag { return r.rows.CommandTag() }

// FieldDescriptions returns the rows' field descriptions.
func (r *routedRows) FieldDescriptions() []pgconn.FieldDescription {
	return r.rows.FieldDescriptions()
}

// Scan reads the current row's values into dest.
func (r *routedRows) Scan(dest ...any) error { return r.rows.Scan(dest...) }

// Values returns the current row's decoded values.
func (r *routedRows) Values() ([]any, error) { return r.rows.Values() }

// RawValues returns the current row's raw bytes.
func (r *routedRows) RawValues() [][]byte { return r.rows.RawValues() }

// Conn returns the connection the rows come from: nil, as for pgxpool's
// rows (the connection goes back to the pool when they close).
func (r *routedRows) Conn() *pgx.Conn { return r.rows.Conn() }

// TypeMap returns the type map of the rows' connection (pgx v5.11 added it
// to pgx.Rows; older pgx rows without it get a new map).
func (r *routedRows) TypeMap() *pgtype.Map { return typeMapOf(r.rows) }

// typeMapOf returns rows' type map, or a new one when rows have none.
func typeMapOf(rows pgx.Rows) *pgtype.Map {
	if tm, ok := rows.(interface{ TypeMap() *pgtype.Map }); ok {
		return tm.TypeMap()
	}
	return pgtype.NewMap()
}

// routedRow is QueryRow's row: its call, whose row is the node's own
// (pgxpool's QueryRow, or the rows of a hedged read as a row). The call is
// recycled once scanned (callPool; a Row is read by one Scan, as pgx's
// contract says): a row scanned again while its call waits in the pool
// fails with errScannedTwice.
type routedRow call

// Scan reads the row's values into dest; pgx.ErrNoRows when there is none.
// A row that failed runs again where the retry rules allow (a read whose
// connection failed, or that a replica refused), and Scan reads the new
// attempt's row. That includes a row that came before its statement failed
// (a server shutting down sends the row, then FATAL 57P01): dest may hold
// its values, which the new attempt's overwrite.
func (row *routedRow) Scan(dest ...any) error {
	c := (*call)(row)
	if c.pool == nil {
		return errScannedTwice
	}
	for {
		err := c.row.Scan(dest...)
		if err == nil || errors.Is(err, pgx.ErrNoRows) {
			c.pool.endCall(c, c.ctx, nil)
			putCall(c)
			return err
		}
		if err := c.pool.retry(c, err); err != nil {
			putCall(c)
			return err
		}
	}
}

// rowsRow reads rows as pgx reads a QueryRow's: the first row, then the
// rows' error once they are closed.
type rowsRow struct{ rows pgx.Rows }

// Scan reads the first row into dest; pgx.ErrNoRows when there is none.
func (r rowsRow) Scan(dest ...any) error {
	rows := r.rows
	if !rows.Next() {
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		return pgx.ErrNoRows
	}
	err := rows.Scan(dest...)
	rows.Close()
	if err != nil {
		return err
	}
	return rows.Err()
}

// errRow is a row whose call failed before it ran.
type errRow struct{ err error }

func (e errRow) Scan(...any) error { return e.err }

// errRows are the rows of a call that failed before it ran: they carry its
// error, as pgxpool's do, so that pgx.CollectRows and pgx.ForEachRow
// return it.
type errRows struct{ err error }

func (errRows) Close()                                       {}
func (e errRows) Err() error                                 { return e.err }
func (errRows) CommandTag() pgconn.CommandTag                { return pgconn.CommandTag{} }
func (errRows) FieldDescriptions() []pgconn.FieldDescription { return nil }
func (errRows) Next() bool                                   { return false }
func (e errRows) Scan(...any) error                          { return e.err }
func (e errRows) Values() ([]any, error)                     { return nil, e.err }
func (e errRows) RawValues() [][]byte                        { return nil }
func (e errRows) Conn() *pgx.Conn                            { return nil }

// TypeMap returns a new type map: the call has no connection.
func (errRows) TypeMap() *pgtype.Map { return pgtype.NewMap() }

// routedBatch ends the batch's call when it is closed, with the first
// error of its statements (a failed statement rolls the batch's implicit
// transaction back, so it marks the scope only when none failed). The
// call, with its inputs, is recycled then (batchPool); the results, a small
// value from a slab, outlive it.
type routedBatch struct {
	pgx.BatchResults            // the node's results
	bc               *batchCall // nil once closed
	err              error      // the first failure of a statement
	done             atomic.Bool
}

// batchCall is a batch's call with its inputs, recycled together.
type batchCall struct {
	c      call
	inputs callInputs // c.inputs
}

var batchPool = sync.Pool{New: func() any { return new(batchCall) }}

func getBatchCall() *batchCall {
	bc := batchPool.Get().(*batchCall)
	bc.c.inputs = &bc.inputs
	return bc
}

// putBatchCall zeroes bc (what it held goes to the GC) and recycles it.
func putBatchCall(bc *batchCall) {
	*bc = batchCall{}
	batchPool.Put(bc)
}

// Exec reads the next result as an Exec's.
func (b *routedBatch) Exec() (pgconn.CommandTag, error) {
	tag, err := b.BatchResults.Exec()
	b.fail(err)
	return tag, err
}

// Query reads the next result as rows.
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

// fail notes the first failed statement of the batch.
func (b *routedBatch) fail(err error) {
	if err != nil && b.err == nil {
		b.err = err
	}
}

// Close closes the batch results and ends the call.
func (b *routedBatch) Close() error {
	err := b.BatchResults.Close()
	if b.done.CompareAndSwap(false, true) {
		bc := b.bc
		b.bc = nil
		bc.c.pool.endCall(&bc.c, bc.c.ctx, cmp.Or(b.err, err))
		putBatchCall(bc)
	}
	return err
}

// errBatch is a batch whose call failed before it ran.
type errBatch struct{ err error }

func (e errBatch) Exec() (pgconn.CommandTag, error) { return pgconn.CommandTag{}, e.err }
func (e errBatch) Query() (pgx.Rows, error)         { return errRows(e), e.err }
func (e errBatch) QueryRow() pgx.Row                { return errRow(e) }
func (e errBatch) Close() error                     { return e.err }

// Tx returns nil: the batch began no transaction. (pgx v5.12 added Tx to
// pgx.BatchResults; having it keeps errBatch a BatchResults on every pgx.)
func (e errBatch) Tx() pgx.Tx { return nil }
