package main

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// node is one server as the statistics see it.
type node struct {
	name string
	conn string
}

func (s servers) nodes() []node {
	ns := []node{{"primary", s.primary}}
	for i, r := range s.replicas {
		ns = append(ns, node{fmt.Sprintf("replica%d", i+1), r})
	}
	return ns
}

func withConn(ctx context.Context, connString string, f func(*pgx.Conn) error) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, connString)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	return f(conn)
}

// xacts returns each server's committed plus rolled-back transactions in
// its database, from pg_stat_database: every target's calls counted the
// same way, on the server. A backend flushes its counts at the latest when
// it exits, so read them after the target closed its connections (see
// waitGone).
func xacts(ctx context.Context, ns []node) ([]int64, error) {
	out := make([]int64, len(ns))
	for i, n := range ns {
		err := withConn(ctx, n.conn, func(c *pgx.Conn) error {
			return c.QueryRow(ctx, `SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()`).Scan(&out[i])
		})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", n.name, err)
		}
	}
	return out, nil
}

// waitGone waits until no server has a backend of the benchmark left, so
// that their statistics are flushed.
func waitGone(ctx context.Context, ns []node) error {
	deadline := time.Now().Add(15 * time.Second)
	for _, n := range ns {
		for {
			var left int
			err := withConn(ctx, n.conn, func(c *pgx.Conn) error {
				return c.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND pid <> pg_backend_pid()`, appName).Scan(&left)
			})
			if err != nil {
				return fmt.Errorf("%s: %w", n.name, err)
			}
			if left == 0 {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s: %d benchmark backends still there after 15s", n.name, left)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// The counts are flushed at backend exit just around the time it leaves
	// pg_stat_activity: leave them a moment.
	time.Sleep(50 * time.Millisecond)
	return nil
}

// setupData creates the table on the primary and waits until every replica
// has replayed it.
func setupData(ctx context.Context, s servers, rows int) error {
	var lsn string
	err := withConn(ctx, s.primary, func(c *pgx.Conn) error {
		for _, q := range []string{
			"DROP TABLE IF EXISTS " + table,
			"CREATE TABLE " + table + " (id bigint PRIMARY KEY, balance bigint NOT NULL, note text NOT NULL)",
			fmt.Sprintf("INSERT INTO %s SELECT g, 0, md5(g::text) FROM generate_series(1, %d) g", table, rows),
			"VACUUM ANALYZE " + table,
			"CHECKPOINT",
		} {
			if _, err := c.Exec(ctx, q); err != nil {
				return fmt.Errorf("%s: %w", q, err)
			}
		}
		return c.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&lsn)
	})
	if err != nil {
		return fmt.Errorf("primary: %w", err)
	}
	return waitReplay(ctx, s, lsn)
}

func waitReplay(ctx context.Context, s servers, lsn string) error {
	deadline := time.Now().Add(2 * time.Minute)
	for i, r := range s.replicas {
		for {
			var done bool
			err := withConn(ctx, r, func(c *pgx.Conn) error {
				return c.QueryRow(ctx, "SELECT NOT pg_is_in_recovery() OR pg_last_wal_replay_lsn() >= $1::pg_lsn", lsn).Scan(&done)
			})
			if err != nil {
				return fmt.Errorf("replica%d: %w", i+1, err)
			}
			if done {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("replica%d has not replayed %s after 2 minutes", i+1, lsn)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nil
}

// serverVersion returns the primary's version string.
func serverVersion(ctx context.Context, conn string) string {
	var v string
	_ = withConn(ctx, conn, func(c *pgx.Conn) error {
		return c.QueryRow(ctx, "SHOW server_version").Scan(&v)
	})
	return v
}

// roundTrip measures one loopback round trip: the median of sequential
// point selects on one connection to the primary.
func roundTrip(ctx context.Context, conn string, n int) (time.Duration, error) {
	var h hist
	err := withConn(ctx, conn, func(c *pgx.Conn) error {
		for i := range n + n/10 {
			id := int64(i%1000 + 1)
			t0 := time.Now()
			if err := scanPoint(c.QueryRow(ctx, sqlPoint, id), id); err != nil {
				return err
			}
			if i >= n/10 { // the first tenth warms up
				h.record(time.Since(t0))
			}
		}
		return nil
	})
	return h.quantile(0.5), err
}
