package pgxroute

import (
	"context"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgxroute/pgxroute/classify"
)

// txState is shared by a transaction and its savepoints.
type txState struct {
	wrote atomic.Bool // a statement of the transaction was a write
	done  atomic.Bool // the transaction ended
}

// routedTx is a transaction on one node's connection. Every statement runs
// on that connection; the router only watches for writes, so that a commit
// after a write marks the scope.
type routedTx struct {
	pgx.Tx
	c      *call // the BeginTx call, shared with the savepoints
	state  *txState
	nested bool // a savepoint of an outer transaction
}

// watch notes a write among the statements of the transaction.
func (t *routedTx) watch(sql string) {
	if !t.state.wrote.Load() && t.c.pool.classifier.Classify(sql).Kind == classify.Write {
		t.state.wrote.Store(true)
	}
}

// Begin starts a savepoint (a pseudo nested transaction).
func (t *routedTx) Begin(ctx context.Context) (pgx.Tx, error) {
	tx, err := t.Tx.Begin(ctx)
	if err != nil {
		return nil, err
	}
	return &routedTx{Tx: tx, c: t.c, state: t.state, nested: true}, nil
}

// Commit commits the transaction (or releases the savepoint). A committed
// transaction that wrote on the default group marks the scope: commit does
// not clear stickiness, it is what makes the writes visible.
func (t *routedTx) Commit(ctx context.Context) error {
	err := t.Tx.Commit(ctx)
	if !t.nested {
		t.finish(ctx, err, true)
	}
	return err
}

// Rollback rolls the transaction (or savepoint) back.
func (t *routedTx) Rollback(ctx context.Context) error {
	err := t.Tx.Rollback(ctx)
	if !t.nested {
		t.finish(ctx, err, false)
	}
	return err
}

// finish ends the BeginTx call once, with the error of the Commit or
// Rollback that ended the transaction and that ran with ctx.
func (t *routedTx) finish(ctx context.Context, err error, commit bool) {
	if !t.state.done.CompareAndSwap(false, true) {
		return
	}
	t.c.txWrote = commit && t.state.wrote.Load()
	t.c.pool.endCall(t.c, ctx, err)
}

// CopyFrom copies rows in the transaction: a write.
func (t *routedTx) CopyFrom(ctx context.Context, tableName pgx.Identifier, columnNames []string, rowSrc pgx.CopyFromSource) (int64, error) {
	t.state.wrote.Store(true)
	return t.Tx.CopyFrom(ctx, tableName, columnNames, rowSrc)
}

// SendBatch sends a batch in the transaction.
func (t *routedTx) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	if !t.state.wrote.Load() && batchKind(t.c.pool.classifier, b).Kind == classify.Write {
		t.state.wrote.Store(true)
	}
	return t.Tx.SendBatch(ctx, b)
}

// LargeObjects returns the large objects of the transaction's connection;
// the transaction counts as a write.
func (t *routedTx) LargeObjects() pgx.LargeObjects {
	t.state.wrote.Store(true)
	return t.Tx.LargeObjects()
}

// Exec runs sql in the transaction.
func (t *routedTx) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	t.watch(sql)
	return t.Tx.Exec(ctx, sql, args...)
}

// Query runs sql in the transaction.
func (t *routedTx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	t.watch(sql)
	return t.Tx.Query(ctx, sql, args...)
}

// QueryRow runs sql in the transaction.
func (t *routedTx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	t.watch(sql)
	return t.Tx.QueryRow(ctx, sql, args...)
}

// Route returns the route the transaction took.
func (t *routedTx) Route() Route { return t.c.route() }

// TxRoute returns the route of a transaction begun by a RoutedPool, and
// whether tx is one.
func TxRoute(tx pgx.Tx) (Route, bool) {
	if rt, ok := tx.(*routedTx); ok {
		return rt.Route(), true
	}
	return Route{}, false
}
