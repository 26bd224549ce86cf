package routingtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Role is what the harness made of a node. It is the harness's record of its
// own operations (Promote, Repoint, Rejoin, Switchover), not what the server
// reports: ask the server (pg_is_in_recovery()) for that.
type Role string

const (
	// RolePrimary is the cluster's current primary (Cluster.Primary).
	RolePrimary Role = "primary"
	// RoleReplica is a streaming replica (listed by Cluster.Replicas).
	RoleReplica Role = "replica"
	// RoleFormerPrimary is a primary that another node was promoted over
	// and that was not rejoined yet. Started (or still running), it is a
	// second primary on an older timeline: split brain.
	RoleFormerPrimary Role = "former primary"
)

// Role returns the node's role in the cluster (see Role).
func (n *Node) Role() Role {
	n.c.mu.Lock()
	defer n.c.mu.Unlock()
	return n.role
}

// Upstream returns the node a replica streams from (nil for a primary or a
// former primary).
func (n *Node) Upstream() *Node {
	n.c.mu.Lock()
	defer n.c.mu.Unlock()
	if n.role != RoleReplica {
		return nil
	}
	return n.upstream
}

// conf lines that configureStandby owns in postgresql.auto.conf.
var standbySettings = []string{"primary_conninfo", "recovery_min_apply_delay", "primary_slot_name"}

// configureStandby makes n's data directory a standby of upstream: its
// postgresql.auto.conf names upstream in primary_conninfo (replacing any
// earlier primary_conninfo, such as one pg_rewind copied from its source)
// and standby.signal exists.
func (c *Cluster) configureStandby(n, upstream *Node) error {
	path := filepath.Join(n.dir, "postgresql.auto.conf")
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("routingtest: %s: %w", n.name, err)
	}
	var kept []string
	for _, line := range strings.Split(string(b), "\n") {
		t := strings.TrimSpace(line)
		drop := t == "" || t == "# added by pgxroute/routingtest"
		for _, s := range standbySettings {
			if strings.HasPrefix(t, s) {
				drop = true
			}
		}
		if !drop {
			kept = append(kept, line)
		}
	}
	kept = append(kept, "# added by pgxroute/routingtest",
		"primary_conninfo = 'host="+upstream.host+" port="+strconv.Itoa(upstream.port)+" user=postgres application_name="+n.name+"'")
	if n.applyDelay > 0 {
		kept = append(kept, fmt.Sprintf("recovery_min_apply_delay = '%dms'", n.applyDelay.Milliseconds()))
	}
	if err := os.WriteFile(path, []byte(strings.Join(kept, "\n")+"\n"), 0o600); err != nil {
		return fmt.Errorf("routingtest: %s: %w", n.name, err)
	}
	signal := filepath.Join(n.dir, "standby.signal")
	if err := os.WriteFile(signal, nil, 0o600); err != nil {
		return fmt.Errorf("routingtest: %s: %w", n.name, err)
	}
	if c.cred != nil {
		for _, p := range []string{path, signal} {
			if err := os.Chown(p, int(c.cred.Uid), int(c.cred.Gid)); err != nil {
				return fmt.Errorf("routingtest: %s: %w", n.name, err)
			}
		}
	}
	return nil
}

// setStandby records n as a replica of upstream.
func (c *Cluster) setStandby(n, upstream *Node) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n.role, n.upstream = RoleReplica, upstream
}

// Repoint makes replica r stream from upstream (normally a newly promoted
// primary): it stops r cleanly, names upstream in its primary_conninfo,
// starts it again and waits until upstream lists it as streaming. The
// replica follows upstream's timeline switch (recovery_target_timeline is
// 'latest'). That works when r has not received WAL of the old timeline
// past the point where upstream was promoted (replicas that had replayed
// everything, as after WaitReplay); a replica ahead of it needs Rejoin.
func (c *Cluster) Repoint(ctx context.Context, r, upstream *Node) error {
	if r == upstream {
		return fmt.Errorf("routingtest: repoint %s at itself", r.name)
	}
	if r.Role() == RolePrimary {
		return fmt.Errorf("routingtest: repoint %s: it is the primary", r.name)
	}
	if err := c.Stop(r); err != nil {
		return fmt.Errorf("routingtest: repoint %s: %w", r.name, err)
	}
	if err := c.configureStandby(r, upstream); err != nil {
		return err
	}
	if err := c.start(ctx, r); err != nil {
		return fmt.Errorf("routingtest: repoint %s: %w", r.name, err)
	}
	if err := c.waitStreaming(ctx, r, upstream); err != nil {
		return err
	}
	c.setStandby(r, upstream)
	c.logf("%s: streams from %s", r.name, upstream.name)
	return nil
}

// Rejoin turns old (a former primary, running or not, cleanly stopped or
// killed) into a streaming replica of primary, and starts it. It first tries
// Rewind (pg_rewind: fast, works after a crash and after old took writes
// that primary never got); when pg_rewind fails it falls back to Rebuild (a
// fresh base backup). The log says which one ran.
func (c *Cluster) Rejoin(ctx context.Context, old, primary *Node) error {
	err := c.Rewind(ctx, old, primary)
	if err == nil {
		return nil
	}
	c.logf("%s: pg_rewind failed, taking a new base backup instead: %v", old.name, err)
	return c.Rebuild(ctx, old, primary)
}

// Rewind makes old a streaming replica of primary with pg_rewind, and starts
// it. old is stopped first (fast shutdown) when it runs; pg_rewind itself
// runs crash recovery on a data directory that was not shut down cleanly.
// It needs wal_log_hints and full_page_writes, which every node of the
// cluster has. A Rewind with nothing to rewind (a clean switchover) only
// configures and starts old as a standby.
func (c *Cluster) Rewind(ctx context.Context, old, primary *Node) error {
	if old == primary {
		return fmt.Errorf("routingtest: rewind %s onto itself", old.name)
	}
	if err := c.Stop(old); err != nil {
		return fmt.Errorf("routingtest: rewind %s: %w", old.name, err)
	}
	// After a promotion the new primary's control file names its new
	// timeline only after a checkpoint; pg_rewind reads it there.
	if err := c.exec(ctx, primary, "CHECKPOINT"); err != nil {
		return fmt.Errorf("routingtest: rewind %s: checkpoint on %s: %w", old.name, primary.name, err)
	}
	c.logf("%s: pg_rewind from %s", old.name, primary.name)
	if err := c.spawner.run(exec.CommandContext(ctx, filepath.Join(c.binDir, "pg_rewind"),
		"--target-pgdata="+old.dir,
		"--source-server=host="+primary.host+" port="+strconv.Itoa(primary.port)+" user=postgres dbname=postgres",
		"--no-sync"), c.cred); err != nil {
		return fmt.Errorf("routingtest: %s: pg_rewind: %w", old.name, err)
	}
	return c.startStandby(ctx, old, primary)
}

// Rebuild replaces n's data directory with a fresh base backup of primary
// and starts n as a streaming replica of it. n is stopped first.
func (c *Cluster) Rebuild(ctx context.Context, n, primary *Node) error {
	if n == primary {
		return fmt.Errorf("routingtest: rebuild %s from itself", n.name)
	}
	if err := c.Stop(n); err != nil {
		return fmt.Errorf("routingtest: rebuild %s: %w", n.name, err)
	}
	if err := os.RemoveAll(n.dir); err != nil {
		return fmt.Errorf("routingtest: rebuild %s: %w", n.name, err)
	}
	if err := c.baseBackup(ctx, n, primary); err != nil {
		return err
	}
	if err := c.start(ctx, n); err != nil {
		return err
	}
	if err := c.waitStreaming(ctx, n, primary); err != nil {
		return err
	}
	c.setStandby(n, primary)
	return nil
}

// startStandby configures n as a standby of primary, starts it and waits
// until it streams.
func (c *Cluster) startStandby(ctx context.Context, n, primary *Node) error {
	if err := c.configureStandby(n, primary); err != nil {
		return err
	}
	if err := c.start(ctx, n); err != nil {
		return err
	}
	if err := c.waitStreaming(ctx, n, primary); err != nil {
		return err
	}
	c.setStandby(n, primary)
	c.logf("%s: rejoined as a replica of %s", n.name, primary.name)
	return nil
}

// Switchover moves the primary role to replica to, cleanly, as an operator
// does for maintenance: it stops the current primary (a fast shutdown, whose
// walsenders send every WAL record, the shutdown checkpoint included, to the
// connected replicas before it exits), promotes to (pg_promote replays what
// to received first), repoints the other replicas at it, and rejoins the
// old primary as a replica of to (Rejoin: pg_rewind finds nothing or little
// to rewind). No committed transaction is lost when to was streaming.
// Afterwards Primary returns to.
func (c *Cluster) Switchover(ctx context.Context, to *Node) error {
	old := c.Primary()
	if to == old {
		return fmt.Errorf("routingtest: switchover to %s: it is the primary already", to.name)
	}
	if to.Role() != RoleReplica {
		return fmt.Errorf("routingtest: switchover to %s: it is not a replica", to.name)
	}
	if err := c.Stop(old); err != nil {
		return fmt.Errorf("routingtest: switchover: stop %s: %w", old.name, err)
	}
	if err := c.Promote(ctx, to); err != nil {
		return fmt.Errorf("routingtest: switchover: %w", err)
	}
	for _, r := range c.Replicas() {
		if r == to || r.Upstream() == to {
			continue
		}
		if err := c.Repoint(ctx, r, to); err != nil {
			return fmt.Errorf("routingtest: switchover: %w", err)
		}
	}
	if err := c.Rejoin(ctx, old, to); err != nil {
		return fmt.Errorf("routingtest: switchover: %w", err)
	}
	return nil
}

// Timeline returns the timeline n is on, as the server reports it: for a
// server not in recovery, the first 8 hex digits of the name of its current
// WAL file (pg_walfile_name(pg_current_wal_lsn()); pg_control_checkpoint()
// lags behind a promotion until the next checkpoint); for a replica, the
// timeline its WAL receiver streams (received_tli), or the one it replays.
func (n *Node) Timeline(ctx context.Context) (int, error) {
	conn, err := pgx.Connect(ctx, n.ConnString())
	if err != nil {
		return 0, fmt.Errorf("routingtest: timeline of %s: %w", n.name, err)
	}
	defer conn.Close(context.Background())
	var hex string
	err = conn.QueryRow(ctx, `SELECT CASE WHEN pg_is_in_recovery()
		THEN lpad(to_hex(COALESCE((SELECT received_tli FROM pg_stat_wal_receiver), (pg_control_checkpoint()).timeline_id)), 8, '0')
		ELSE substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8) END`).Scan(&hex)
	if err != nil {
		return 0, fmt.Errorf("routingtest: timeline of %s: %w", n.name, err)
	}
	tl, err := strconv.ParseInt(hex, 16, 64)
	if err != nil {
		return 0, fmt.Errorf("routingtest: timeline of %s: %q: %w", n.name, hex, err)
	}
	return int(tl), nil
}

// InRecovery asks n whether it is in recovery (a standby): pg_is_in_recovery().
func (n *Node) InRecovery(ctx context.Context) (bool, error) {
	conn, err := pgx.Connect(ctx, n.ConnString())
	if err != nil {
		return false, fmt.Errorf("routingtest: %s: %w", n.name, err)
	}
	defer conn.Close(context.Background())
	var rec bool
	if err := conn.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&rec); err != nil {
		return false, fmt.Errorf("routingtest: %s: %w", n.name, err)
	}
	return rec, nil
}

// exec runs one statement on n on a connection of its own.
func (c *Cluster) exec(ctx context.Context, n *Node, sql string) error {
	conn, err := pgx.Connect(ctx, n.ConnString())
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}
