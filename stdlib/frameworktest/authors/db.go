// Package authors is a small database/sql package written in the style of
// sqlc's generated code (a DBTX interface, Queries, one method per query),
// for the schema in schema.sql. It runs on any *sql.DB, *sql.Tx or
// *sql.Conn: here, on one from stdlib.OpenDB.
package authors

import (
	"context"
	"database/sql"
)

// DBTX is what the queries run on: *sql.DB, *sql.Tx and *sql.Conn have
// these methods.
type DBTX interface {
	ExecContext(context.Context, string, ...interface{}) (sql.Result, error)
	PrepareContext(context.Context, string) (*sql.Stmt, error)
	QueryContext(context.Context, string, ...interface{}) (*sql.Rows, error)
	QueryRowContext(context.Context, string, ...interface{}) *sql.Row
}

// New returns the queries over db.
func New(db DBTX) *Queries {
	return &Queries{db: db}
}

// Queries runs the package's queries.
type Queries struct {
	db DBTX
}

// WithTx returns the queries over tx.
func (q *Queries) WithTx(tx *sql.Tx) *Queries {
	return &Queries{db: tx}
}
