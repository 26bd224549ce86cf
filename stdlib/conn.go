package stdlib

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgxroute/pgxroute"
	"github.com/pgxroute/pgxroute/classify"
)

// conn is a routing connection. database/sql uses it from one goroutine at
// a time; it holds a server connection (pin) from its first statement until
// database/sql takes it back (IsValid, ResetSession) or closes it.
type conn struct {
	pool  *pgxroute.RoutedPool
	pin   *pgxpool.Conn  // the session's server connection; nil: none yet
	route pgxroute.Route // where pin is
	tx    *tx            // the open transaction, if any
}

var (
	_ driver.Conn               = (*conn)(nil)
	_ driver.ConnPrepareContext = (*conn)(nil)
	_ driver.ConnBeginTx        = (*conn)(nil)
	_ driver.ExecerContext      = (*conn)(nil)
	_ driver.QueryerContext     = (*conn)(nil)
	_ driver.Pinger             = (*conn)(nil)
	_ driver.NamedValueChecker  = (*conn)(nil)
	_ driver.SessionResetter    = (*conn)(nil)
	_ driver.Validator          = (*conn)(nil)
)

// unpin gives the server connection back to its node's pool.
func (c *conn) unpin() {
	if c.pin != nil {
		c.pin.Release()
		c.pin, c.route = nil, pgxroute.Route{}
	}
}

// IsValid is called when database/sql takes the connection back into its
// pool: the session, if any, ends and its server connection goes back.
func (c *conn) IsValid() bool {
	if c.tx != nil {
		return false // never pooled with a transaction open
	}
	c.unpin()
	return true
}

// ResetSession is called before database/sql reuses the connection: it
// holds no server connection then.
func (c *conn) ResetSession(context.Context) error {
	if c.tx != nil {
		return driver.ErrBadConn
	}
	c.unpin()
	return nil
}

// Close ends the routing connection: an open transaction is rolled back and
// the server connection goes back to its pool.
func (c *conn) Close() error {
	var err error
	if c.tx != nil {
		err = c.tx.Rollback()
	}
	c.unpin()
	return err
}

// CheckNamedValue passes every argument to pgx as it is (pgx encodes
// driver.Valuer, sql.Null*, pgtype values, slices and maps itself); named
// arguments are refused.
func (c *conn) CheckNamedValue(nv *driver.NamedValue) error {
	if nv.Name != "" {
		return errNamedArg
	}
	return nil
}

// args returns the statement's arguments for pgx.
func args(named []driver.NamedValue, prefix ...any) []any {
	a := make([]any, len(prefix), len(prefix)+len(named))
	copy(a, prefix)
	for _, v := range named {
		a = append(a, v.Value)
	}
	return a
}

// Ping pings the session's server connection, or else every node
// (RoutedPool.Ping).
func (c *conn) Ping(ctx context.Context) error {
	if c.pin != nil {
		if c.pin.Conn().IsClosed() {
			return driver.ErrBadConn
		}
		return c.pin.Ping(ctx)
	}
	return c.pool.Ping(ctx)
}

// wrote reports whether sql is a write, for the scope of a session.
func (c *conn) wrote(sql string) bool {
	return c.pool.Classifier().Classify(sql).Kind == classify.Write
}

// ExecContext runs query: in the open transaction, on the session's server
// connection, or routed (the session's first statement).
func (c *conn) ExecContext(ctx context.Context, query string, named []driver.NamedValue) (driver.Result, error) {
	a := args(named)
	var tag pgconn.CommandTag
	var err error
	switch {
	case c.tx != nil:
		c.tx.watch(query)
		tag, err = c.tx.tx.Exec(ctx, query, a...)
	case c.pin != nil:
		if c.pin.Conn().IsClosed() {
			return nil, driver.ErrBadConn // provably not sent
		}
		if tag, err = c.pin.Exec(ctx, query, a...); err == nil && c.wrote(query) {
			c.pool.NoteWrite(ctx, c.route)
		}
	default:
		c.pin, c.route, err = c.pool.AcquireFor(ctx, query, func(pc *pgxpool.Conn) error {
			var err error
			tag, err = pc.Exec(ctx, query, a...)
			return err
		})
	}
	if err != nil {
		return nil, err
	}
	if c.tx == nil && dropsStatements(query) {
		// The server dropped the statements pgx's cache knows as
		// prepared: forget them too, or the connection's next user fails
		// with 26000 (prepared statement does not exist).
		if err := c.pin.Conn().DeallocateAll(ctx); err != nil {
			return nil, err
		}
	}
	return driver.RowsAffected(tag.RowsAffected()), nil
}

// dropsStatements reports whether sql is DISCARD ALL or DEALLOCATE ALL,
// which drop the session's prepared statements.
func dropsStatements(sql string) bool {
	s := strings.TrimSpace(sql)
	if len(s) < len("DISCARD ALL") || s[0]|0x20 != 'd' {
		return false // the usual statement: no allocation
	}
	w := strings.Fields(strings.ToUpper(strings.TrimSuffix(s, ";")))
	switch {
	case len(w) == 2 && (w[0] == "DISCARD" || w[0] == "DEALLOCATE") && w[1] == "ALL":
		return true
	case len(w) == 3 && w[0] == "DEALLOCATE" && w[1] == "PREPARE" && w[2] == "ALL":
		return true
	}
	return false
}

// QueryContext runs query as ExecContext does and reads its first row, so
// that a failure before any row is the call's (and a read can be retried).
func (c *conn) QueryContext(ctx context.Context, query string, named []driver.NamedValue) (driver.Rows, error) {
	a := args(named, resultFormats)
	var r *rows
	var err error
	switch {
	case c.tx != nil:
		c.tx.watch(query)
		r, err = query1(ctx, c.tx.tx, query, a)
	case c.pin != nil:
		if c.pin.Conn().IsClosed() {
			return nil, driver.ErrBadConn // provably not sent
		}
		if r, err = query1(ctx, c.pin, query, a); err == nil && c.wrote(query) {
			c.pool.NoteWrite(ctx, c.route)
		}
	default:
		c.pin, c.route, err = c.pool.AcquireFor(ctx, query, func(pc *pgxpool.Conn) error {
			var err error
			r, err = query1(ctx, pc, query, a)
			return err
		})
	}
	if err != nil {
		return nil, err
	}
	return r, nil
}

// querier is what runs a query: a server connection or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// query1 runs query on q and reads its first row; on an error the rows are
// closed.
func query1(ctx context.Context, q querier, query string, a []any) (*rows, error) {
	pr, err := q.Query(ctx, query, a...)
	if err != nil {
		return nil, err
	}
	more := pr.Next()
	if err := pr.Err(); err != nil {
		pr.Close()
		return nil, err
	}
	return &rows{rows: pr, first: true, more: more}, nil
}

// Prepare returns a prepared statement; see PrepareContext.
func (c *conn) Prepare(query string) (driver.Stmt, error) {
	return c.PrepareContext(context.Background(), query)
}

// PrepareContext returns a statement that is routed at each execution as
// ExecContext and QueryContext are. Nothing is sent now: pgx's statement
// cache prepares it on a node when it first runs there.
func (c *conn) PrepareContext(_ context.Context, query string) (driver.Stmt, error) {
	return &stmt{c: c, sql: query}, nil
}

// Begin starts a transaction; see BeginTx.
func (c *conn) Begin() (driver.Tx, error) {
	return c.BeginTx(context.Background(), driver.TxOptions{})
}

// BeginTx starts a transaction: routed by RoutedPool.BeginTx (a read-only
// one to a replica, a serializable read-only one and any other to the
// primary), or, in a session that holds a server connection, on it.
func (c *conn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	var o pgx.TxOptions
	switch sql.IsolationLevel(opts.Isolation) {
	case sql.LevelDefault:
	case sql.LevelReadUncommitted:
		o.IsoLevel = pgx.ReadUncommitted
	case sql.LevelReadCommitted:
		o.IsoLevel = pgx.ReadCommitted
	case sql.LevelRepeatableRead, sql.LevelSnapshot:
		o.IsoLevel = pgx.RepeatableRead
	case sql.LevelSerializable:
		o.IsoLevel = pgx.Serializable
	default:
		return nil, fmt.Errorf("pgxroute/stdlib: isolation level %v is not supported", sql.IsolationLevel(opts.Isolation))
	}
	if opts.ReadOnly {
		o.AccessMode = pgx.ReadOnly
	}
	t := &tx{c: c, ctx: ctx}
	var err error
	if c.pin != nil {
		if c.pin.Conn().IsClosed() {
			return nil, driver.ErrBadConn // provably not sent
		}
		t.session = true
		t.tx, err = c.pin.BeginTx(ctx, o)
	} else {
		t.tx, err = c.pool.BeginTx(ctx, o)
	}
	if err != nil {
		return nil, err
	}
	c.tx = t
	return t, nil
}

// tx is a transaction of a routing connection.
type tx struct {
	c       *conn
	ctx     context.Context // BeginTx's: database/sql ends the transaction when it ends
	tx      pgx.Tx
	session bool // on the session's server connection, not routed
	wrote   bool // a session's transaction wrote
}

// watch notes a write of a session's transaction (a routed transaction
// watches its own).
func (t *tx) watch(sql string) {
	if t.session && !t.wrote && t.c.wrote(sql) {
		t.wrote = true
	}
}

// Commit commits the transaction.
func (t *tx) Commit() error {
	t.c.tx = nil
	err := t.tx.Commit(t.ctx)
	if err == nil && t.wrote {
		t.c.pool.NoteWrite(t.ctx, t.c.route)
	}
	return err
}

// Rollback rolls the transaction back.
func (t *tx) Rollback() error {
	t.c.tx = nil
	return t.tx.Rollback(t.ctx)
}

// stmt is a prepared statement: its SQL, routed at each execution.
type stmt struct {
	c   *conn
	sql string
}

// Close does nothing: pgx's statement cache owns what was prepared.
func (s *stmt) Close() error { return nil }

// NumInput returns -1: pgx checks the arguments' count when it runs.
func (s *stmt) NumInput() int { return -1 }

// Exec runs the statement (database/sql calls ExecContext).
func (s *stmt) Exec(a []driver.Value) (driver.Result, error) {
	return s.c.ExecContext(context.Background(), s.sql, toNamed(a))
}

// Query runs the statement (database/sql calls QueryContext).
func (s *stmt) Query(a []driver.Value) (driver.Rows, error) {
	return s.c.QueryContext(context.Background(), s.sql, toNamed(a))
}

// ExecContext runs the statement as conn.ExecContext does.
func (s *stmt) ExecContext(ctx context.Context, a []driver.NamedValue) (driver.Result, error) {
	return s.c.ExecContext(ctx, s.sql, a)
}

// QueryContext runs the statement as conn.QueryContext does.
func (s *stmt) QueryContext(ctx context.Context, a []driver.NamedValue) (driver.Rows, error) {
	return s.c.QueryContext(ctx, s.sql, a)
}

func toNamed(a []driver.Value) []driver.NamedValue {
	out := make([]driver.NamedValue, len(a))
	for i, v := range a {
		out[i] = driver.NamedValue{Ordinal: i + 1, Value: v}
	}
	return out
}
