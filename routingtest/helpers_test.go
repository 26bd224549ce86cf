package routingtest_test

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pgxroute/pgxroute"
	"github.com/pgxroute/pgxroute/routingtest"
)

// TestSyncBufferConcurrentWriters: lines written from many goroutines at
// once all arrive whole (go test -race checks the locking).
func TestSyncBufferConcurrentWriters(t *testing.T) {
	const writers, lines = 8, 200
	var buf routingtest.SyncBuffer
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range lines {
				fmt.Fprintf(&buf, "writer %d line %d\n", w, i)
			}
		})
	}
	wg.Go(func() {
		for range lines {
			_ = buf.String() // a reader while the writers write
		}
	})
	wg.Wait()
	got := map[string]int{}
	for _, l := range strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n") {
		got[l]++
	}
	want := map[string]int{}
	for w := range writers {
		for i := range lines {
			want[fmt.Sprintf("writer %d line %d", w, i)] = 1
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("lines (-want +got):\n%s", diff)
	}
}

// TestWaitForPollsUntilTrue: WaitFor asks the condition again until it
// holds, and not once more.
func TestWaitForPollsUntilTrue(t *testing.T) {
	for _, n := range []int{1, 2, 5} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			calls := 0
			routingtest.WaitFor(t, fmt.Sprintf("the condition's call %d", n), func() bool {
				calls++
				return calls == n
			})
			if calls != n {
				t.Errorf("condition called %d times, want %d", calls, n)
			}
		})
	}
}

// fatalRecorder is a testing.TB whose Fatalf records the message and ends
// the goroutine, as testing's does, without failing the test.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (r *fatalRecorder) Helper() {}

func (r *fatalRecorder) Fatalf(format string, args ...any) {
	r.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// fatalOf runs f with a fatalRecorder in a goroutine of its own and returns
// what it passed to Fatalf ("" when nothing).
func fatalOf(t *testing.T, f func(tb testing.TB)) string {
	r := &fatalRecorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(r)
	}()
	<-done
	return r.msg
}

// TestServedByAndWaitState, on a primary and a replica: ServedBy names the
// node whose server ran the statement (the primary for a write, the replica
// for a read, by inet_server_port()), fails the test with the port when it
// is no node of the cluster, and WaitState returns once Stat shows the
// killed replica down.
func TestServedByAndWaitState(t *testing.T) {
	c := routingtest.NewCluster(t, routingtest.ClusterOptions{Replicas: 1})
	ctx := context.Background()
	cfg := pgxroute.Config{
		Groups: map[string][]pgxroute.Node{
			pgxroute.DefaultGroupName: {{Name: "primary", ConnString: c.Primary().ConnString()}},
		},
		Replicas: []pgxroute.Node{{Name: "replica1", ConnString: c.Replicas()[0].ConnString()}},
		Health:   pgxroute.HealthConfig{Interval: 100 * time.Millisecond, Timeout: time.Second},
	}
	pool, err := pgxroute.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)

	if _, err := pool.Exec(ctx, "CREATE TABLE served (id int)"); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{
		"write": routingtest.ServedBy(t, ctx, c, pool, "INSERT INTO served VALUES (1) RETURNING inet_server_port()"),
		// In a scope of its own: after the unscoped write, the pool's own
		// scope holds unscoped reads on the primary until the replica is
		// known to have replayed it.
		"read":                routingtest.ServedBy(t, pgxroute.WithScope(ctx), c, pool, "SELECT inet_server_port()"),
		"sent to the primary": routingtest.ServedBy(t, pgxroute.WithPrimary(ctx), c, pool, "SELECT inet_server_port()"),
	}
	want := map[string]string{"write": "primary", "read": "replica1", "sent to the primary": "primary"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("served by (-want +got):\n%s", diff)
	}
	if n := c.NodeAt(c.Replicas()[0].Port()); n != c.Replicas()[0] {
		t.Errorf("NodeAt(replica1's port) = %v", n)
	}
	// An ordinary cluster: every node on 127.0.0.1, which names none.
	for _, n := range c.Nodes() {
		if n.Host() != "127.0.0.1" {
			t.Errorf("%s: Host %q, want 127.0.0.1", n.Name(), n.Host())
		}
	}
	if n := c.NodeAtHost("127.0.0.1"); n != nil {
		t.Errorf("NodeAtHost(127.0.0.1) = %v on an ordinary cluster, want nil", n)
	}
	if msg := fatalOf(t, func(tb testing.TB) { routingtest.ServedBy(tb, ctx, c, pool, "SELECT 1") }); msg != "SELECT 1: answered by port 1, no node of the cluster" {
		t.Errorf("ServedBy with a port of no node: Fatalf(%q)", msg)
	}

	if err := c.Kill(c.Replicas()[0]); err != nil {
		t.Fatal(err)
	}
	routingtest.WaitState(t, pool, "replica1", pgxroute.StateDown)
	g, _ := pool.Stat().Group(pgxroute.ReadGroupName)
	if n, _ := g.Node("replica1"); n.State != pgxroute.StateDown {
		t.Errorf("after WaitState, replica1 is %v", n.State)
	}
}
