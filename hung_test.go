package pgxroute_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pgxroute/pgxroute"
	"github.com/pgxroute/pgxroute/routingtest"
)

// timedReads runs reads with no deadline from n goroutines until stop is
// closed, and records the slowest read, which server answered, and how many
// reads ended in each 100 ms of the run.
type timedReads struct {
	start    time.Time
	done     atomic.Int64
	failed   atomic.Int64
	slowest  atomic.Int64 // nanoseconds
	mu       sync.Mutex
	byNode   map[string]int
	errs     []error
	buckets  map[int64]int // 100 ms bucket -> reads that ended in it
	finished sync.WaitGroup
}

func startTimedReads(c *routingtest.Cluster, pool *pgxroute.RoutedPool, workers int, stop chan struct{}) *timedReads {
	names := nodeNames(c)
	l := &timedReads{start: time.Now(), byNode: map[string]int{}, buckets: map[int64]int{}}
	for range workers {
		l.finished.Add(1)
		go func() {
			defer l.finished.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				t0 := time.Now()
				var port int
				err := pool.QueryRow(context.Background(), "SELECT inet_server_port() FROM marker").Scan(&port)
				d := time.Since(t0)
				for {
					s := l.slowest.Load()
					if int64(d) <= s || l.slowest.CompareAndSwap(s, int64(d)) {
						break
					}
				}
				l.mu.Lock()
				if err != nil {
					l.failed.Add(1)
					if len(l.errs) < 5 {
						l.errs = append(l.errs, err)
					}
				} else {
					l.done.Add(1)
					l.byNode[names[port]]++
				}
				l.buckets[int64(time.Since(l.start)/(100*time.Millisecond))]++
				l.mu.Unlock()
			}
		}()
	}
	return l
}

// longestGap returns the longest run of 100 ms buckets in which no read
// ended, between the first and the last bucket.
func (l *timedReads) longestGap() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	var last int64
	for b := range l.buckets {
		last = max(last, b)
	}
	gap, run := 0, 0
	for b := int64(0); b <= last; b++ {
		if l.buckets[b] == 0 {
			run++
			gap = max(gap, run)
		} else {
			run = 0
		}
	}
	return time.Duration(gap) * 100 * time.Millisecond
}

// TestHungReplica freezes a replica (SIGSTOP of its postmaster and every
// backend: sockets stay open, nothing answers) or blackholes its port
// (iptables DROP both ways), under 16 goroutines that read with no deadline,
// with the default health settings. No read may fail; the reads caught on
// the hung replica are interrupted when its probe goes unanswered and run
// again on the other replica.
func TestHungReplica(t *testing.T) {
	for _, how := range []string{"freeze", "blackhole"} {
		t.Run(how, func(t *testing.T) {
			if how == "blackhole" {
				routingtest.SkipWithoutIptables(t)
			}
			c := ownCluster(t, routingtest.ClusterOptions{})
			events := &healthEvents{}
			pool := newPool(t, c, pgxroute.Config{Tracer: events})
			victim := c.Replicas()[0]
			stop := make(chan struct{})
			load := startTimedReads(c, pool, 16, stop)
			time.Sleep(time.Second)
			hungAt := time.Now()
			var err error
			if how == "freeze" {
				err = c.Freeze(victim)
			} else {
				err = c.Blackhole(victim)
			}
			if err != nil {
				t.Fatal(err)
			}
			avoided := routingtest.WaitFor(t, "the hung replica to be avoided", func() bool {
				s := nodeStat(pool, "read", victim.Name()).State
				return s == pgxroute.StateSuspect || s == pgxroute.StateDown
			})
			time.Sleep(10*time.Second - time.Since(hungAt))
			if how == "freeze" {
				err = c.Thaw(victim)
			} else {
				err = c.Unblackhole(victim)
			}
			if err != nil {
				t.Fatal(err)
			}
			readmitted := routingtest.WaitFor(t, "the replica to take calls again", func() bool {
				return nodeStat(pool, "read", victim.Name()).State == pgxroute.StateUp
			})
			time.Sleep(500 * time.Millisecond)
			close(stop)
			load.finished.Wait()

			st := nodeStat(pool, "read", victim.Name())
			var retries int64
			g, _ := pool.Stat().Group("read")
			for _, n := range g.Nodes {
				retries += n.Retries
			}
			t.Logf("%s: reads done %d, failed %d, retried %d, served %v; slowest read %v; longest time with no read ending %v; avoided %v after the %s (state %s, %d ejections), back %v after the end; events %v",
				how, load.done.Load(), load.failed.Load(), retries, load.byNode, time.Duration(load.slowest.Load()).Round(time.Millisecond),
				load.longestGap(), avoided.Round(time.Millisecond), how, st.State, st.Ejections, readmitted.Round(time.Millisecond), events.of(victim.Name()))
			if n := load.failed.Load(); n != 0 {
				t.Fatalf("%d reads failed, e.g. %v", n, load.errs)
			}
			ev := events.of(victim.Name())
			if len(ev) == 0 || ev[0] != pgxroute.EventSuspect {
				t.Errorf("events of the hung replica %v, want suspect first", ev)
			}
			// Back in rotation after the thaw: the replica answers reads.
			counts, _ := countServed(t, c, pool, 20)
			if counts[victim.Name()] == 0 {
				t.Errorf("the replica takes no reads after it answers again: %v", counts)
			}
		})
	}
}

// TestHungPrimary freezes the primary: writes fail with an error naming the
// node (and, for a write caught while it ran, ErrInterrupted: its outcome
// is unknown), reads of scopes that did not write keep succeeding, and
// writes succeed again after the thaw.
func TestHungPrimary(t *testing.T) {
	c := ownCluster(t, routingtest.ClusterOptions{})
	// A later write waits for a primary (none is known while this one
	// hangs) up to FailoverTimeout: a short one keeps the test short.
	pool := newPool(t, c, pgxroute.Config{Health: pgxroute.HealthConfig{FailoverTimeout: 2 * time.Second}})
	ctx := context.Background()
	if _, err := pool.Exec(pgxroute.WithScope(ctx), "INSERT INTO items (id) VALUES ($1)", nextID()); err != nil {
		t.Fatal(err)
	}
	if err := c.Freeze(c.Primary()); err != nil {
		t.Fatal(err)
	}
	// A write sent while the primary hangs: it waits until the prober gives
	// up on the node, then fails naming it.
	t0 := time.Now()
	_, err := pool.Exec(pgxroute.WithScope(ctx), "INSERT INTO items (id) VALUES ($1)", nextID())
	firstWrite := time.Since(t0)
	var ne *pgxroute.NodeError
	if err == nil || !errors.As(err, &ne) || ne.Node != primaryName(c) {
		t.Fatalf("write on a frozen primary: %v, want a NodeError naming it", err)
	}
	interrupted := errors.Is(err, pgxroute.ErrInterrupted)
	// Reads keep going to the replicas meanwhile.
	var port int
	if err := pool.QueryRow(pgxroute.WithScope(ctx), "SELECT inet_server_port() FROM marker").Scan(&port); err != nil || port == c.Primary().Port() {
		t.Fatalf("read while the primary hangs: port %d, %v", port, err)
	}
	// A later write is never sent to the primary known to hang: it waits
	// for a primary for FailoverTimeout, then fails naming it.
	t0 = time.Now()
	_, err2 := pool.Exec(pgxroute.WithScope(ctx), "INSERT INTO items (id) VALUES ($1)", nextID())
	secondWrite := time.Since(t0)
	if !errors.Is(err2, pgxroute.ErrNoHealthyNode) || !errors.Is(err2, pgxroute.ErrNoPrimary) || !strings.Contains(err2.Error(), primaryName(c)) {
		t.Fatalf("second write: %v, want ErrNoPrimary and ErrNoHealthyNode naming the primary", err2)
	}
	t.Logf("first write failed after %v (interrupted: %v): %v; second after %v: %v",
		firstWrite.Round(time.Millisecond), interrupted, err, secondWrite.Round(time.Millisecond), err2)
	if err := c.Thaw(c.Primary()); err != nil {
		t.Fatal(err)
	}
	routingtest.WaitFor(t, "writes to succeed after the thaw", func() bool {
		_, err := pool.Exec(pgxroute.WithScope(ctx), "INSERT INTO items (id) VALUES ($1)", nextID())
		return err == nil
	})
}

// TestStallNeverSuspectsHealthy: the stall watch's short probe (a node
// whose calls stop ending is probed at once with less time than Timeout)
// never suspects a node that answers: a healthy cluster serving point reads
// beside long reads (pg_sleep(2)), and a cluster where one replica is merely
// slower (every read 50 ms slower), give 0 suspicions and 0 re-runs.
func TestStallNeverSuspectsHealthy(t *testing.T) {
	c := ownCluster(t, routingtest.ClusterOptions{})
	ctx := context.Background()
	if _, err := pool0(t, c).Exec(ctx, `CREATE FUNCTION slower_on(p int) RETURNS int LANGUAGE sql STABLE AS
		'SELECT CASE WHEN inet_server_port() = p THEN (SELECT 1 FROM pg_sleep(0.05)) ELSE 1 END'`); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitReplay(ctx); err != nil {
		t.Fatal(err)
	}
	r1 := c.Replicas()[0]
	for _, tt := range []struct {
		name       string
		long, fast string
		args       []any
	}{
		{name: "point reads beside long reads", long: "SELECT pg_sleep(2)", fast: "SELECT 1"},
		{name: "one replica 50 ms slower", fast: "SELECT slower_on($1)", args: []any{r1.Port()}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			events := &healthEvents{}
			pool := newPool(t, c, pgxroute.Config{Tracer: events})
			runCtx, cancel := context.WithTimeout(ctx, 6*time.Second)
			defer cancel()
			var wg sync.WaitGroup
			var reads atomic.Int64
			for w := range 16 {
				sql, args := tt.fast, tt.args
				if tt.long != "" && w < 4 {
					sql, args = tt.long, nil
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					for runCtx.Err() == nil {
						rows, err := pool.Query(ctx, sql, args...)
						if err == nil {
							rows.Close()
							err = rows.Err()
						}
						if err != nil {
							t.Errorf("%s: %v", sql, err)
							return
						}
						reads.Add(1)
					}
				}()
			}
			wg.Wait()
			st := pool.Stat()
			var retries int64
			for _, g := range st.Groups {
				for _, n := range g.Nodes {
					retries += n.Retries
					for _, ev := range events.of(n.Name) {
						if ev == pgxroute.EventSuspect || ev == pgxroute.EventEjected {
							t.Errorf("node %s: %v under a healthy load", n.Name, ev)
						}
					}
				}
			}
			t.Logf("FIGURES %s: %d reads, %d re-runs", tt.name, reads.Load(), retries)
			if retries != 0 {
				t.Errorf("%d reads ran again on a healthy cluster", retries)
			}
		})
	}
}

// pool0 is a plain pool on c's primary for setting up a test.
func pool0(t *testing.T, c *routingtest.Cluster) *pgxroute.RoutedPool {
	return newPool(t, c, pgxroute.Config{Disabled: true})
}
