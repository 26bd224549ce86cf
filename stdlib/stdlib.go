// Package stdlib serves database/sql code (sqlc's database/sql output, sqlx,
// gorm, bun, ent, goose...) through a pgxroute.RoutedPool: every statement
// is routed as the pool's pgx calls are, with the same classifier, context
// overrides, scopes, health checks, retries and failover.
//
//	db := stdlib.OpenDB(pool) // pool: a *pgxroute.RoutedPool
//	defer db.Close()          // leaves the RoutedPool open
//
// # Connections
//
// database/sql's own pool holds light routing connections, which hold no
// server connection while they are idle: SetMaxOpenConns and
// SetMaxIdleConns bound how many calls run at once, not how many server
// connections are open (the nodes' pgxpools do that). A routing connection
// takes a server connection when its first statement runs, from the node
// that statement is routed to (RoutedPool.AcquireFor), and gives it back
// when database/sql takes the routing connection back into its pool
// (driver.Validator), that is when the call's rows are closed, when a
// transaction ends, or when a *sql.Conn is closed.
//
// # Statements
//
// QueryContext, ExecContext, QueryRowContext and each execution of a
// prepared statement are routed as RoutedPool.Query and Exec are: reads to a
// replica, writes to the primary, a scope that wrote reads its own writes,
// WithPrimary, WithReplica and WithBindGroup apply. Preparing is free: pgx's
// statement cache prepares a statement on a node when it first runs there.
// A failure has the pgx path's rules: a read is retried once on another node
// when its connection fails, a read a replica refuses as a write (SQLSTATE
// 25006) runs again on the primary, a statement that was provably never
// sent waits for a new primary during a failover, and nothing else is sent
// twice. Hedged reads (HealthConfig.HedgeAfter) are not used on this path.
//
// # Sessions
//
// A *sql.Conn (db.Conn(ctx)) is one session: its first statement is routed,
// and the session keeps that node and that server connection until it is
// closed, so that SET, temporary tables and advisory locks work as with
// pgx's stdlib. Later statements of the session are not routed: a session
// that must run on the primary starts with a write or with a
// pgxroute.WithPrimary context. Writes of a session on the primary mark the
// context's scope. A transaction begun as a session's first statement is
// routed as any transaction and ends with its server connection; the
// session then takes one at its next statement. What a session changes
// (SET, temporary tables) stays on the server connection after it ends,
// as with RoutedPool.Acquire: reset it (RESET ALL, DISCARD ALL) or use SET
// LOCAL in a transaction.
//
// # Transactions
//
// BeginTx with ReadOnly runs on a replica (a serializable read-only one on
// the primary, which a standby refuses); any other transaction runs on the
// primary. A transaction stays on its node (RoutedPool.BeginTx).
//
// # Errors and types
//
// Errors wrap the server's *pgconn.PgError (errors.As finds it) in a
// *pgxroute.NodeError naming the group and node. driver.ErrBadConn, on which
// database/sql runs a call again, is returned only when the statement was
// provably not sent: a session whose server connection is closed. Arguments
// go to pgx as they are (pgtype values, arrays, sql.Null*, driver.Valuer,
// json), and results come back as pgx's stdlib gives them: bool, int64,
// float64, []byte for bytea, json, jsonb and xml, time.Time for dates and
// timestamps, string for the others.
package stdlib

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"

	"github.com/pgxroute/pgxroute"
)

// OpenDB returns a *sql.DB whose statements are routed by pool. Closing it
// leaves pool open; pool must outlive it.
func OpenDB(pool *pgxroute.RoutedPool) *sql.DB {
	return sql.OpenDB(Connector{pool: pool})
}

// Connector is the driver.Connector of OpenDB: each connection it makes is
// a light routing connection over its RoutedPool.
type Connector struct {
	pool *pgxroute.RoutedPool
}

// NewConnector returns the connector OpenDB uses, for sql.OpenDB.
func NewConnector(pool *pgxroute.RoutedPool) Connector { return Connector{pool: pool} }

// Connect returns a routing connection; it holds no server connection yet.
func (c Connector) Connect(context.Context) (driver.Conn, error) {
	if c.pool == nil {
		return nil, errNoPool
	}
	return &conn{pool: c.pool}, nil
}

// Driver returns the package's driver.Driver, whose Open fails: a routed
// *sql.DB is opened with OpenDB, from a RoutedPool.
func (Connector) Driver() driver.Driver { return Driver{} }

// Driver is the driver.Driver of the routed *sql.DB. It opens nothing by
// name: use OpenDB.
type Driver struct{}

// Open fails: a routed *sql.DB comes from OpenDB.
func (Driver) Open(string) (driver.Conn, error) { return nil, errOpenByName }

var (
	errNoPool     = errors.New("pgxroute/stdlib: OpenDB with a nil *pgxroute.RoutedPool")
	errOpenByName = errors.New("pgxroute/stdlib: a routed *sql.DB is opened with stdlib.OpenDB(pool), not sql.Open")
	errNamedArg   = errors.New("pgxroute/stdlib: named arguments (sql.Named) are not supported: use $1, $2")
)
