package pgxroute

import (
	"context"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgxroute/pgxroute/classify"
)

// Sessions: the hooks of a caller that runs a statement on a connection it
// keeps, such as package stdlib's database/sql sessions. AcquireFor routes
// and sends the statement as a call does (the one attempt path: call.go)
// and hands over the connection; NoteWrite tells the pool of the writes
// that later run on it.

// AcquireFor routes sql as Exec or Query would route it in ctx (the
// context's group, the statement's kind, the scope, the nodes' health),
// acquires a connection of the node the route picks and calls send with it;
// send sends sql on that connection (and may keep what it returns, such as
// its rows, having read the first row). On success the caller owns the
// connection, whose statements are no longer routed, and releases it; the
// route says where it is.
//
// A failure of the acquire or of send is the call's failure, with the
// call's rules: a connection error marks the node down; a read is retried
// once on another node; a read a replica refused (25006) runs again on the
// default group; a statement for the primary that was provably never sent
// waits for a new primary during a failover; nothing else is sent twice.
// Before a retry the failed connection is released (send must close what it
// opened on it). A write that succeeded marks the scope (or the pool's own
// scope, without one), as a routed write does. The error names the group
// and node, and wraps ErrOutcomeUnknown when a write may have reached the
// server. A nil send only acquires.
func (p *RoutedPool) AcquireFor(ctx context.Context, sql string, send func(*pgxpool.Conn) error) (*pgxpool.Conn, Route, error) {
	c := call{pool: p, ctx: ctx, kind: callSession, inputs: &callInputs{send: send}}
	c.sql = sql
	if err := p.prepare(ctx, opStatement, classify.Result{}, &c.decision); err != nil {
		return nil, c.route(), err
	}
	if err := p.execute(&c); err != nil {
		return nil, c.route(), err
	}
	return c.inputs.conn, c.route(), nil
}

// NoteWrite tells the pool that a write ran, outside its routed calls, on
// the node of r (a route from AcquireFor): when r is on the default group,
// the scope of ctx remembers the write as after a routed write (its reads
// turn sticky; in ReadYourWrites mode they wait for the primary's next WAL
// position); without a scope, the pool's own scope does. On another group
// it does nothing.
func (p *RoutedPool) NoteWrite(ctx context.Context, r Route) {
	if r.Group == p.defaultGroup.name {
		p.noteSuccess(scopeFrom(ctx), true)
	}
}
