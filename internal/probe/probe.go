// Package probe is the one health check of a PostgreSQL node, shared by the
// router's prober and `pgxroute check`: the node's role, WAL position,
// timeline and replay delay, in one light query.
package probe

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgxroute/pgxroute/internal/pgtext"
)

// SQL asks a node its role; its WAL position (on a primary the insert
// position, which is at or past the end of every commit that has returned;
// on a replica the replayed position); its timeline (on a primary the
// timeline of its current WAL file: pg_control_checkpoint()'s lags after a
// promotion until the next checkpoint; on a replica the timeline its WAL
// receiver streams, 0 when it streams nothing or the role may not see it);
// and its replay delay (zero when it has replayed all it received). A
// replica whose WAL receiver restarted (a rejoin, a switchover) reports the
// start of its current WAL segment as its receive position, behind its
// replay position: only a receive position ahead of the replay position is
// WAL still to replay, so an idle rejoined replica does not lag.
const SQL = `SELECT r,
  CASE WHEN r THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_insert_lsn() END::text,
  CASE WHEN NOT r THEN ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::bigint
    ELSE COALESCE((SELECT received_tli FROM pg_stat_wal_receiver), 0) END,
  CASE WHEN r AND COALESCE(pg_last_wal_receive_lsn() > pg_last_wal_replay_lsn(), true)
    THEN COALESCE(EXTRACT(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp()), 0) ELSE 0 END::float8
FROM pg_is_in_recovery() AS r`

// Result is what one probe saw.
type Result struct {
	Recovery bool          // the node is a replica (in recovery)
	LSN      uint64        // see SQL; 0 with NoPosition
	Timeline uint32        // see SQL; 0: unknown
	Lag      time.Duration // a replica's replay delay
	// NoPosition: the server did not tell its WAL position (it refuses the
	// WAL functions to this role, or a replica replayed nothing yet).
	NoPosition bool
}

// Run probes the node on conn, with the simple protocol (no prepared
// statement to lose on a new server or through a pooler). A server that
// refuses the WAL functions (a managed service, a role without the right)
// gets its role alone, with NoPosition.
func Run(ctx context.Context, conn *pgx.Conn) (Result, error) {
	var r Result
	var lsn *string
	var tli int64
	var lag float64
	err := conn.QueryRow(ctx, SQL, pgx.QueryExecModeSimpleProtocol).Scan(&r.Recovery, &lsn, &tli, &lag)
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		r = Result{NoPosition: true}
		err = conn.QueryRow(ctx, "SELECT pg_is_in_recovery()", pgx.QueryExecModeSimpleProtocol).Scan(&r.Recovery)
		return r, err
	}
	if err != nil {
		return Result{}, err
	}
	if lsn == nil {
		r.NoPosition = true
	} else if r.LSN, err = pgtext.ParseLSN(*lsn); err != nil {
		return Result{}, err
	}
	r.Timeline, r.Lag = uint32(tli), time.Duration(lag*float64(time.Second))
	return r, nil
}
