package pgxroute_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgxroute/pgxroute"
	"github.com/pgxroute/pgxroute/routingtest"
)

// The same failover and switchover as failover_test.go's, with a real HA
// engine: Patroni 3.0 over etcd, three members on loopback (ttl 5 s,
// loop_wait 1 s, retry_timeout 2 s), the router given the leader as its
// primary and the two others as its replicas, named by member name, with
// default health settings.

// newPatroniCluster starts a Patroni cluster of opts (skipping the test without
// patroni, etcd or PostgreSQL, failing it when PGXROUTE_REQUIRE_PG=1), makes
// the test tables on the leader and waits until every replica has them.
func newPatroniCluster(t *testing.T, opts routingtest.PatroniOptions) (*routingtest.Patroni, *routingtest.PatroniMember) {
	t.Helper()
	p := routingtest.NewPatroni(t, opts)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	leader, err := p.WaitLeader(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, leader.ConnString())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, `CREATE TABLE items (id bigint PRIMARY KEY, note text, port int DEFAULT inet_server_port())`); err != nil {
		t.Fatal(err)
	}
	var lsn string
	if err := conn.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&lsn); err != nil {
		t.Fatal(err)
	}
	for _, m := range p.Members() {
		if m == leader || !m.Running() {
			continue // a member left stopped (PatroniOptions.Stopped) clones the schema when it starts
		}
		routingtest.WaitFor(t, m.Name()+" replaying the schema", func() bool {
			rc, err := pgx.Connect(ctx, m.ConnString())
			if err != nil {
				return false
			}
			defer rc.Close(context.Background())
			var ok bool
			err = rc.QueryRow(ctx, "SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn", lsn).Scan(&ok)
			return err == nil && ok
		})
	}
	return p, leader
}

// patroniPool is a RoutedPool with leader as its primary and the other
// members as its replicas, named by member name, with default health
// settings; the router's log is kept in logs.
func patroniPool(t *testing.T, p *routingtest.Patroni, leader *routingtest.PatroniMember, logs *routingtest.SyncBuffer) *pgxroute.RoutedPool {
	t.Helper()
	cfg := pgxroute.Config{
		Groups: map[string][]pgxroute.Node{pgxroute.DefaultGroupName: {{Name: leader.Name(), ConnString: leader.ConnString()}}},
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	for _, m := range p.Members() {
		if m != leader {
			cfg.Groups[pgxroute.ReadGroupName] = append(cfg.Groups[pgxroute.ReadGroupName], pgxroute.Node{Name: m.Name(), ConnString: m.ConnString()})
		}
	}
	pool, err := pgxroute.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// leaderWatch polls Patroni (GET /cluster on a running member's REST API,
// every 20 ms) from a goroutine and records when a member other than old
// first held the leader key, and when that member's PostgreSQL first
// accepted writes.
type leaderWatch struct {
	done chan struct{}
	stop chan struct{}

	// Set before done is closed.
	leader   *routingtest.PatroniMember
	keyAt    time.Time // Patroni first reported leader as the leader
	writesAt time.Time // leader's PostgreSQL first answered pg_is_in_recovery() = false
	err      error
}

// watchLeader starts a leaderWatch; it gives up after 45 s.
func watchLeader(p *routingtest.Patroni, old string) *leaderWatch {
	w := &leaderWatch{done: make(chan struct{}), stop: make(chan struct{})}
	go func() {
		defer close(w.done)
		ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
		defer cancel()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			if w.leader == nil {
				l, err := p.Leader(ctx)
				if err == nil && l != nil && l.Name() != old {
					w.leader, w.keyAt = l, time.Now()
				}
			}
			if w.leader != nil && acceptsWrites(ctx, w.leader) {
				w.writesAt = time.Now()
				return
			}
			select {
			case <-ctx.Done():
				w.err = fmt.Errorf("no new Patroni leader accepting writes within 45s (leader seen: %v)", w.leader)
				return
			case <-w.stop:
				w.err = fmt.Errorf("stopped before a new leader accepted writes (leader seen: %v)", w.leader)
				return
			case <-tick.C:
			}
		}
	}()
	return w
}

// wait waits for the watch to end and fails the test if it found no leader.
func (w *leaderWatch) wait(t *testing.T) {
	t.Helper()
	<-w.done
	if w.err != nil {
		t.Fatal(w.err)
	}
}

// acceptsWrites asks m's PostgreSQL directly whether it is out of recovery.
func acceptsWrites(ctx context.Context, m *routingtest.PatroniMember) bool {
	cctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	conn, err := pgx.Connect(cctx, m.ConnString()+"&connect_timeout=1")
	if err != nil {
		return false
	}
	defer conn.Close(context.Background())
	var rec bool
	return conn.QueryRow(cctx, "SELECT pg_is_in_recovery()").Scan(&rec) == nil && !rec
}

// memberInRecovery asks m's PostgreSQL whether it is in recovery, failing
// the test when it does not answer.
func memberInRecovery(t *testing.T, m *routingtest.PatroniMember) bool {
	t.Helper()
	var rec bool
	ask(t, m, &rec, "SELECT pg_is_in_recovery()")
	return rec
}

// memberServing asks the server that answers a routed read which member it
// is.
func memberServing(t *testing.T, p *routingtest.Patroni, pool *pgxroute.RoutedPool) string {
	t.Helper()
	// A scope of its own: the load's writers write without one, and the
	// pool's own scope would send unscoped reads to the leader while the
	// replicas replay them.
	ctx, cancel := context.WithTimeout(pgxroute.WithScope(context.Background()), 10*time.Second)
	defer cancel()
	var port int
	if err := pool.QueryRow(ctx, "SELECT inet_server_port()").Scan(&port); err != nil {
		t.Fatalf("routed read: %v", err)
	}
	for _, m := range p.Members() {
		if m.Port() == port {
			return m.Name()
		}
	}
	t.Fatalf("routed read answered by unknown port %d", port)
	return ""
}

// memberState is the state Stat shows for the member of that name
// (StateDown when Stat does not list it).
func memberState(pool *pgxroute.RoutedPool, name string) pgxroute.NodeState {
	for _, m := range pool.Stat().Members {
		if m.Name == name {
			return m.State
		}
	}
	return pgxroute.StateDown
}

// patroniLoad starts the load of failover_test.go (16 readers, 4 writers)
// and returns it with a function that ends it, once; the test's cleanup
// ends it too (before the pool closes) when the test stops early.
func patroniLoad(t *testing.T, pool *pgxroute.RoutedPool) (*load, func()) {
	l := startLoad(pool, 16, 4)
	end := sync.OnceFunc(l.end)
	t.Cleanup(end)
	return l, end
}

// writesAfter returns the acknowledged writes that port answered after
// since.
func (l *load) writesAfter(port int, since time.Time) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, w := range l.writes {
		if w.port == port && w.at.After(since) {
			n++
		}
	}
	return n
}

// counts returns the load's failed reads, failed never-sent and
// outcome-unknown writes, and its slowest write.
func (l *load) counts() (reads, neverSent, unknown int, slowest time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.readErrs), len(l.neverSent), len(l.unknown), l.slowestWrite
}

// logRouter prints the router's warnings (role and primary changes) when
// the test ends.
func logRouter(t *testing.T, logs *routingtest.SyncBuffer) {
	t.Cleanup(func() {
		if s := strings.TrimSpace(logs.String()); s != "" {
			t.Logf("router log:\n%s", s)
		}
	})
}

// since formats the time from start to at, rounded to the millisecond, or
// "none" when at is zero.
func since(start, at time.Time) string {
	if at.IsZero() {
		return "none"
	}
	return at.Sub(start).Round(time.Millisecond).String()
}

// TestPatroniFailover kills the Patroni leader's host (its Patroni and its
// PostgreSQL, SIGKILL) under 16 readers and 4 writers: Patroni elects
// another leader, writes resume there (the server that acknowledged them
// says so), no read fails, no never-sent write fails; then the old member
// is started again, Patroni rejoins it as a replica (pg_rewind), and it
// takes routed reads again. The load runs throughout.
func TestPatroniFailover(t *testing.T) {
	p, old := newPatroniCluster(t, routingtest.PatroniOptions{})
	var logs routingtest.SyncBuffer
	logRouter(t, &logs)
	pool := patroniPool(t, p, old, &logs)
	l, end := patroniLoad(t, pool)
	l.waitWrites(t, old.Port(), 50)

	killed := time.Now()
	w := watchLeader(p, old.Name())
	if err := p.KillMember(old); err != nil {
		t.Fatal(err)
	}
	dead := time.Now() // old's Patroni, then its PostgreSQL, are gone
	w.wait(t)
	leader := w.leader
	l.waitWrites(t, leader.Port(), 50)
	first := l.firstWriteOn(leader.Port(), killed)
	// The third member, which Patroni repoints at the new leader, takes
	// the reads now; the new leader takes none (it would only as the
	// fallback with no replica up).
	var third *routingtest.PatroniMember
	for _, m := range p.Members() {
		if m != old && m != leader {
			third = m
		}
	}
	routingtest.WaitFor(t, third.Name()+" up", func() bool { return memberState(pool, third.Name()) == pgxroute.StateUp })
	for range 20 {
		if got := memberServing(t, p, pool); got != third.Name() {
			t.Errorf("a routed read ran on %s, want %s (the only replica up)", got, third.Name())
		}
	}
	// Reads and writes go on while the old member comes back.
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	restarted := time.Now()
	if err := p.StartMember(ctx, old); err != nil {
		t.Fatal(err)
	}
	rejoined := time.Now()
	routingtest.WaitFor(t, old.Name()+" taking routed reads again", func() bool { return memberServing(t, p, pool) == old.Name() })
	readsAgain := time.Now()
	l.waitWrites(t, leader.Port(), 20)
	end()
	l.check(t)
	reads, neverSent, unknown, slowest := l.counts()
	t.Logf("FIGURES patroni-failover: KillMember took %s, kill→new leader %s, kill→leader accepts writes %s, kill→first write through the router on the new leader %s, accepts writes→first write %s; failed reads %d; failed writes never-sent %d / outcome-unknown %d; slowest write %v; restart→rejoined %s, rejoined→reads on the old leader %s",
		since(killed, dead), since(killed, w.keyAt), since(killed, w.writesAt), since(killed, first), since(w.writesAt, first),
		reads, neverSent, unknown, slowest.Round(time.Millisecond), since(restarted, rejoined), since(rejoined, readsAgain))

	if first.IsZero() {
		t.Errorf("no write through the router ran on the new leader %s", leader)
	}
	// KillMember kills Patroni first, then PostgreSQL: the old leader
	// acknowledges writes until then. Once it is started again it is a
	// replica (recovering, rewound, streaming): no write may run on it.
	t.Logf("writes acknowledged by the old leader while KillMember ran: %d", l.writesAfter(old.Port(), killed)-l.writesAfter(old.Port(), dead))
	if n := l.writesAfter(old.Port(), restarted); n != 0 {
		t.Errorf("%d writes were acknowledged by the old leader %s after it was started again as a replica", n, old)
	}
	if ids := l.writesOn(leader.Port()); rowsOn(t, leader, ids) != len(ids) {
		t.Errorf("the new leader acknowledged %d writes but holds %d of them", len(ids), rowsOn(t, leader, ids))
	}
	st := pool.Stat()
	if st.Primary != leader.Name() || st.PrimaryChanges != 1 {
		t.Errorf("Stat: primary %q after %d changes, want %q after 1", st.Primary, st.PrimaryChanges, leader.Name())
	}
	for _, m := range st.Members {
		if m.Name == old.Name() && (m.Role != "replica" || m.Stale) {
			t.Errorf("Stat: the rejoined old leader is %+v, want a replica", m)
		}
	}
	// Ask the old leader itself: it is in recovery.
	if !memberInRecovery(t, old) {
		t.Errorf("the old leader %s is out of recovery after its rejoin", old)
	}
}

// TestPatroniSwitchover runs `patronictl switchover` under 16 readers and 4
// writers: no read fails, no never-sent write fails, writes resume on the
// new leader, and the old leader takes reads again once Patroni has
// restarted it as a replica.
func TestPatroniSwitchover(t *testing.T) {
	p, old := newPatroniCluster(t, routingtest.PatroniOptions{})
	var logs routingtest.SyncBuffer
	logRouter(t, &logs)
	pool := patroniPool(t, p, old, &logs)
	l, end := patroniLoad(t, pool)
	l.waitWrites(t, old.Port(), 50)

	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	start := time.Now()
	w := watchLeader(p, old.Name())
	leader, err := p.Switchover(ctx, nil)
	if err != nil {
		close(w.stop)
		t.Fatal(err)
	}
	returned := time.Now()
	w.wait(t)
	if w.leader != leader {
		t.Errorf("the watch saw %s as the new leader, Switchover says %s", w.leader, leader)
	}
	l.waitWrites(t, leader.Port(), 50)
	first := l.firstWriteOn(leader.Port(), start)
	if err := p.WaitStreaming(ctx); err != nil {
		t.Fatal(err)
	}
	streaming := time.Now()
	routingtest.WaitFor(t, old.Name()+" taking routed reads again", func() bool { return memberServing(t, p, pool) == old.Name() })
	readsAgain := time.Now()
	// Reads go to the two replicas only, never to the new leader.
	for range 20 {
		if got := memberServing(t, p, pool); got == leader.Name() {
			t.Errorf("a routed read ran on the new leader %s", got)
		}
	}
	end()
	l.check(t)
	reads, neverSent, unknown, slowest := l.counts()
	t.Logf("FIGURES patroni-switchover: command→new leader %s, command→leader accepts writes %s, command→patronictl and Switchover returned %s, command→first write through the router on the new leader %s, accepts writes→first write %s; failed reads %d; failed writes never-sent %d / outcome-unknown %d; slowest write %v; command→old leader streaming %s, streaming→reads on the old leader %s",
		since(start, w.keyAt), since(start, w.writesAt), since(start, returned), since(start, first), since(w.writesAt, first),
		reads, neverSent, unknown, slowest.Round(time.Millisecond), since(start, streaming), since(streaming, readsAgain))

	if first.IsZero() {
		t.Errorf("no write through the router ran on the new leader %s", leader)
	}
	// A clean switchover loses nothing: every write the old leader
	// acknowledged is on the new one.
	if ids := l.writesOn(old.Port()); rowsOn(t, leader, ids) != len(ids) {
		t.Errorf("the old leader acknowledged %d writes; the new one holds %d of them", len(ids), rowsOn(t, leader, ids))
	}
	if ids := l.writesOn(leader.Port()); rowsOn(t, leader, ids) != len(ids) {
		t.Errorf("the new leader acknowledged %d writes but holds %d of them", len(ids), rowsOn(t, leader, ids))
	}
	if st := pool.Stat(); st.Primary != leader.Name() || st.PrimaryChanges != 1 {
		t.Errorf("Stat: primary %q after %d changes, want %q after 1", st.Primary, st.PrimaryChanges, leader.Name())
	}
}
