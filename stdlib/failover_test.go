package stdlib_test

import (
	"context"
	"database/sql"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgxroute/pgxroute"
	"github.com/pgxroute/pgxroute/routingtest"
)

// load runs reads and writes through a routed *sql.DB until stopped, and
// records where each write ran and how each call failed.
type load struct {
	db   *sql.DB
	stop chan struct{}
	wg   sync.WaitGroup
	once sync.Once

	mu        sync.Mutex
	reads     map[int]int // answers by port
	readErrs  []error
	writes    map[int][]int64 // acknowledged ids by port
	neverSent []error         // failed writes that are not ErrOutcomeUnknown
	unknown   []error         // failed writes whose outcome is unknown
}

// startLoad starts readers goroutines of `SELECT inet_server_port()` and
// writers goroutines of inserts into items, each call with a 30 s deadline.
func startLoad(db *sql.DB, readers, writers int) *load {
	l := &load{db: db, stop: make(chan struct{}), reads: map[int]int{}, writes: map[int][]int64{}}
	for range readers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for l.running() {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				var port int
				err := db.QueryRowContext(ctx, "SELECT inet_server_port()").Scan(&port)
				cancel()
				l.mu.Lock()
				if err != nil {
					l.readErrs = append(l.readErrs, err)
				} else {
					l.reads[port]++
				}
				l.mu.Unlock()
			}
		}()
	}
	for range writers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for l.running() {
				id := nextID()
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				var port int
				err := db.QueryRowContext(ctx, "INSERT INTO items (id, note) VALUES ($1, 'failover') RETURNING port", id).Scan(&port)
				cancel()
				l.mu.Lock()
				switch {
				case err == nil:
					l.writes[port] = append(l.writes[port], id)
				case errors.Is(err, pgxroute.ErrOutcomeUnknown):
					l.unknown = append(l.unknown, err)
				default:
					l.neverSent = append(l.neverSent, err)
				}
				l.mu.Unlock()
			}
		}()
	}
	return l
}

func (l *load) running() bool {
	select {
	case <-l.stop:
		return false
	default:
		return true
	}
}

// end stops the load and waits for its calls; it may be called again.
func (l *load) end() {
	l.once.Do(func() { close(l.stop) })
	l.wg.Wait()
}

// readsOn and writesOn count the answers of port.
func (l *load) readsOn(port int) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.reads[port]
}

func (l *load) writesOn(port int) []int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]int64(nil), l.writes[port]...)
}

// check fails the test on a failed read or a failed never-sent write.
func (l *load) check(t *testing.T) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	reads, writes := 0, 0
	for _, n := range l.reads {
		reads += n
	}
	for _, ids := range l.writes {
		writes += len(ids)
	}
	t.Logf("reads %d (failed %d); writes acknowledged %d, failed never-sent %d, failed outcome-unknown %d",
		reads, len(l.readErrs), writes, len(l.neverSent), len(l.unknown))
	for i, err := range l.readErrs {
		if i < 5 {
			t.Errorf("read failed: %v", err)
		}
	}
	for i, err := range l.neverSent {
		if i < 5 {
			t.Errorf("write failed without ErrOutcomeUnknown (never sent: it should have waited and run on the new primary): %v", err)
		}
	}
	for i, err := range l.unknown {
		if i < 3 {
			t.Logf("outcome unknown (allowed): %v", err)
		}
	}
}

// rowsOn counts the rows of ids that n holds, asking it directly.
func rowsOn(t *testing.T, n *routingtest.Node, ids []int64) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, n.ConnString())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var count int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM items WHERE id = ANY($1)", ids).Scan(&count); err != nil {
		t.Fatal(err)
	}
	return count
}

// TestReplicaKilledUnder16Readers kills a replica under 16 database/sql
// readers: no read fails, and the reads go on on the other replica.
func TestReplicaKilledUnder16Readers(t *testing.T) {
	c := ownCluster(t)
	pool := newPool(t, c, pgxroute.Config{})
	db := openDB(t, pool)
	r1, r2 := c.Replicas()[0], c.Replicas()[1]
	l := startLoad(db, 16, 0)
	t.Cleanup(l.end) // on a failure: before the cluster closes
	waitFor(t, "reads on r1", func() bool { return l.readsOn(r1.Port()) >= 200 })
	if err := c.Kill(r1); err != nil {
		t.Fatal(err)
	}
	after := l.readsOn(r2.Port())
	waitFor(t, "reads on r2 after the kill", func() bool { return l.readsOn(r2.Port()) >= after+2000 })
	l.end()
	l.check(t)
}

// TestFailover kills the primary under 16 readers and 4 writers through a
// routed *sql.DB, promotes r1 and rejoins r2 to it: no read fails, no
// never-sent write fails (each waited and ran on r1), writes resume on r1,
// every write r1 acknowledged is on r1 once (the ids are primary keys: a
// write sent twice would fail with 23505).
func TestFailover(t *testing.T) {
	c := ownCluster(t)
	ctx := context.Background()
	old := c.Primary()
	r1, r2 := c.Replicas()[0], c.Replicas()[1]
	pool := newPool(t, c, pgxroute.Config{})
	db := openDB(t, pool)
	l := startLoad(db, 16, 4)
	t.Cleanup(l.end)
	waitFor(t, "writes on the primary", func() bool { return len(l.writesOn(old.Port())) >= 50 })
	if err := c.Kill(old); err != nil {
		t.Fatal(err)
	}
	if err := c.Promote(ctx, r1); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "writes on r1", func() bool { return len(l.writesOn(r1.Port())) >= 50 })
	if err := c.Rejoin(ctx, r2, r1); err != nil {
		t.Fatal(err)
	}
	n := len(l.writesOn(r1.Port()))
	waitFor(t, "writes on r1 after the rejoin", func() bool { return len(l.writesOn(r1.Port())) >= n+50 })
	l.end()
	l.check(t)
	if ids := l.writesOn(r1.Port()); rowsOn(t, r1, ids) != len(ids) {
		t.Errorf("r1 acknowledged %d writes but holds %d of them", len(ids), rowsOn(t, r1, ids))
	}
	if st := pool.Stat(); st.Primary != r1.Name() {
		t.Errorf("Stat: primary %q, want %q", st.Primary, r1.Name())
	}
}
