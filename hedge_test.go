package pgxroute_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgxroute/pgxroute"
	"github.com/pgxroute/pgxroute/routingtest"
)

// hedgeStats sums the hedges and hedge wins of the read group's nodes.
func hedgeStats(pool *pgxroute.RoutedPool) (hedges, wins map[string]int64) {
	hedges, wins = map[string]int64{}, map[string]int64{}
	g, _ := pool.Stat().Group(pgxroute.ReadGroupName)
	for _, n := range g.Nodes {
		hedges[n.Name], wins[n.Name] = n.Hedges, n.HedgeWins
	}
	return hedges, wins
}

// timedReads runs n reads of sql on 4 goroutines and returns their
// latencies, sorted, and the ports that answered.
func timedReadsOf(t *testing.T, pool *pgxroute.RoutedPool, n int, sql string, args ...any) ([]time.Duration, map[int]int) {
	t.Helper()
	var mu sync.Mutex
	var lat []time.Duration
	ports := map[int]int{}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 4 {
				start := time.Now()
				var one, port int
				err := pool.QueryRow(context.Background(), sql, args...).Scan(&one, &port)
				took := time.Since(start)
				mu.Lock()
				if err != nil {
					t.Errorf("read: %v", err)
				}
				lat = append(lat, took)
				ports[port]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	slices.Sort(lat)
	return lat, ports
}

// quantile returns the q quantile of sorted durations.
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(q*float64(len(sorted))))].Round(10 * time.Microsecond)
}

// createSlowOn creates slow_on(p int) on c: a function that sleeps 200 ms
// on the server listening on port p alone, and waits until the replicas
// have it.
func createSlowOn(t *testing.T, c *routingtest.Cluster) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, c.Primary().ConnString())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `CREATE FUNCTION slow_on(p int) RETURNS int LANGUAGE sql STABLE AS
		'SELECT CASE WHEN inet_server_port() = p THEN (SELECT 1 FROM pg_sleep(0.2)) ELSE 1 END'`); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitReplay(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestHedgedReads: with one replica slow (a function that sleeps 200 ms on
// it alone), reads that started there are hedged to the other replica,
// which answers them; on a healthy cluster few reads are hedged. The
// latencies are reported (docs/health.md), not asserted.
func TestHedgedReads(t *testing.T) {
	c := ownCluster(t, routingtest.ClusterOptions{})
	r1, r2 := c.Replicas()[0], c.Replicas()[1]
	createSlowOn(t, c)
	const reads = 400
	slow := "SELECT slow_on($1), inet_server_port()"
	healthy := "SELECT 1, inet_server_port()"

	plain := failoverPool(t, c, pgxroute.Config{})
	lat, _ := timedReadsOf(t, plain, reads, slow, r1.Port())
	t.Logf("FIGURES no hedging, r1 slow: p50 %v p99 %v p99.9 %v", quantile(lat, 0.5), quantile(lat, 0.99), quantile(lat, 0.999))

	logs := &routingtest.SyncBuffer{}
	pool := failoverPool(t, c, pgxroute.Config{HedgeAfter: 20 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))})
	defer func() {
		if t.Failed() {
			t.Logf("the router's log:\n%s", logs.String())
			g, _ := pool.Stat().Group(pgxroute.ReadGroupName)
			for _, n := range g.Nodes {
				t.Logf("node %s: state %v lag %v calls %v ejections %d last error %q", n.Name, n.State, n.Lag, n.Calls, n.Ejections, n.LastError)
			}
		}
	}()
	lat, _ = timedReadsOf(t, pool, reads, healthy)
	hedges, _ := hedgeStats(pool)
	hedged := hedges[r1.Name()] + hedges[r2.Name()]
	t.Logf("FIGURES hedging 20ms, healthy: p50 %v p99 %v p99.9 %v, hedged %d of %d (%.1f%%)", quantile(lat, 0.5), quantile(lat, 0.99), quantile(lat, 0.999),
		hedged, reads, 100*float64(hedged)/reads)

	lat, ports := timedReadsOf(t, pool, reads, slow, r1.Port())
	after, wins := hedgeStats(pool)
	slowHedges := after[r2.Name()] - hedges[r2.Name()]
	t.Logf("FIGURES hedging 20ms, r1 slow: p50 %v p99 %v p99.9 %v, hedges to r2 %d (won %d), answered by %v", quantile(lat, 0.5), quantile(lat, 0.99), quantile(lat, 0.999),
		slowHedges, wins[r2.Name()], ports)
	// Round-robin sends half the reads to r1 first; each of them sleeps
	// 200 ms there, so each is hedged to r2. A hedge takes no turn of the
	// balancer, so the first attempts stay half on each replica (hedges
	// that took turns sent 300 and more of 400 to r1 first).
	if slowHedges < reads*2/5 || slowHedges > reads*3/5 {
		t.Errorf("%d hedges to r2 for %d reads of which half started on the slow r1", slowHedges, reads)
	}
	// A loser is cancelled, which pgx may report as an i/o timeout of its
	// own making: that is not a failure of the slow replica.
	if st := nodeStat(pool, pgxroute.ReadGroupName, r1.Name()); st.Ejections != 0 {
		t.Errorf("the slow r1 was ejected %d times (last error %q): a cancelled loser is not a failure of its node", st.Ejections, st.LastError)
	}
	if wins[r2.Name()] == 0 || ports[r2.Port()] <= ports[r1.Port()] {
		t.Errorf("hedges won by r2: %d; reads answered by %v: r2 should answer most", wins[r2.Name()], ports)
	}
	// Every attempt ended: nothing in flight is left behind.
	routingtest.WaitFor(t, "the losers' attempts to end", func() bool {
		for _, g := range pool.Stat().Groups {
			for _, n := range g.Nodes {
				if n.InFlight != 0 {
					return false
				}
			}
		}
		return true
	})
}

// TestHedgeNeverTwice: with hedging after 1µs (every read is hedged),
// statements that are not plain reads run once: a function that writes
// (refused by both replicas, run again once on the primary), a write, a
// locking read, a transaction's statements and reads on an explicit bind
// group. A counter the function bumps proves it.
func TestHedgeNeverTwice(t *testing.T) {
	c := ownCluster(t, routingtest.ClusterOptions{})
	ctx := context.Background()
	pool := failoverPool(t, c, pgxroute.Config{HedgeAfter: time.Microsecond})
	counter := func() int {
		var n int
		if err := pool.QueryRow(pgxroute.WithPrimary(ctx), "SELECT n FROM counter").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := counter()
	const rounds = 10
	for range rounds {
		var n int
		// Classified a read (the function is unknown): sent to a replica,
		// hedged, refused by both (25006), run once on the primary.
		if err := pool.QueryRow(ctx, "SELECT bump_counter()").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if err := pool.QueryRow(ctx, "UPDATE counter SET n = n + 1 RETURNING n").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if err := pool.QueryRow(ctx, "SELECT bump_counter() FROM marker FOR UPDATE").Scan(&n); err != nil {
			t.Fatal(err)
		}
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			return tx.QueryRow(ctx, "SELECT bump_counter()").Scan(&n)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := counter() - before; got != 4*rounds {
		t.Errorf("the counter moved by %d for %d statements that bump it once", got, 4*rounds)
	}
	// Reads on an explicit bind group are never hedged.
	hedges, _ := hedgeStats(pool)
	for range rounds {
		var one int
		if err := pool.QueryRow(pgxroute.WithReplica(ctx), "SELECT 1").Scan(&one); err != nil {
			t.Fatal(err)
		}
	}
	if after, _ := hedgeStats(pool); !maps.Equal(hedges, after) {
		t.Errorf("reads WithReplica were hedged: %v → %v", hedges, after)
	}
	// Plain reads are (every one, after 1µs): the counter of hedges moves.
	// (In scopes of their own: the unscoped writes above hold unscoped
	// reads on the primary until the replicas replay them.)
	for range rounds {
		var one int
		if err := pool.QueryRow(pgxroute.WithScope(ctx), "SELECT 1").Scan(&one); err != nil {
			t.Fatal(err)
		}
	}
	if after, _ := hedgeStats(pool); maps.Equal(hedges, after) {
		t.Errorf("plain reads after 1µs were not hedged: %v", after)
	}
}

// TestHedgeRefusedRunsOnPrimary: a read the classifier cannot tell from a
// write (a SQL function that writes), hedged because its first replica is
// frozen, is refused by the other replica (25006) and runs once on the
// primary, as any read a replica refuses: 0 failed calls, and the counter
// the function bumps moved once per call. (Before the attempt path was one,
// the refusal inside a hedge was lost: 4 of 200 such calls failed with the
// other replica's 25006.)
func TestHedgeRefusedRunsOnPrimary(t *testing.T) {
	c := ownCluster(t, routingtest.ClusterOptions{})
	ctx := context.Background()
	r1 := c.Replicas()[0]
	// ForgetUnscopedWrites: each call, a write run on the primary after a
	// refusal, would otherwise hold the next unscoped calls on the primary
	// (the pool's own scope), and they must start on a replica.
	pool := failoverPool(t, c, pgxroute.Config{HedgeAfter: 20 * time.Millisecond, ForgetUnscopedWrites: true})
	counter := func() int {
		var n int
		if err := pool.QueryRow(pgxroute.WithPrimary(ctx), "SELECT n FROM counter").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := counter()
	if err := c.Freeze(r1); err != nil {
		t.Fatal(err)
	}
	defer c.Thaw(r1)
	const calls = 200
	var failed atomic.Int64
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < calls; i += 16 {
				// A new text each time: a refused statement is remembered
				// as a write by its text, and this one must be routed as a
				// read first.
				var n int
				sql := fmt.Sprintf("SELECT bump_counter() AS call_%d", i)
				if err := pool.QueryRow(ctx, sql).Scan(&n); err != nil {
					failed.Add(1)
					t.Errorf("%s: %v", sql, err)
				}
			}
		}()
	}
	wg.Wait()
	if err := c.Thaw(r1); err != nil {
		t.Fatal(err)
	}
	hedges, _ := hedgeStats(pool)
	st := nodeStat(pool, pgxroute.DefaultGroupName, c.Primary().Name())
	t.Logf("FIGURES %d calls, %d failed, hedges %v, misroutes on the primary %d", calls, failed.Load(), hedges, st.Calls[pgxroute.ReasonMisroute])
	if got := counter() - before; got != calls {
		t.Errorf("the counter moved by %d for %d calls that bump it once", got, calls)
	}
	if st.Calls[pgxroute.ReasonMisroute] != calls {
		t.Errorf("%d calls re-run on the primary after a refusal, want %d", st.Calls[pgxroute.ReasonMisroute], calls)
	}
	if hedges[c.Replicas()[1].Name()] == 0 {
		t.Errorf("no call was hedged away from the frozen %s: the test did not exercise the hedge", r1.Name())
	}
}

// hedgeTrace records every attempt's start and end, by the call its
// context belongs to.
type hedgeTrace struct {
	mu     sync.Mutex
	starts map[int][]pgxroute.TraceRouteStartData
	ends   map[int][]pgxroute.TraceRouteEndData
}

type callIDKey struct{}

func (h *hedgeTrace) TraceRouteStart(ctx context.Context, d pgxroute.TraceRouteStartData) context.Context {
	id, _ := ctx.Value(callIDKey{}).(int)
	h.mu.Lock()
	h.starts[id] = append(h.starts[id], d)
	h.mu.Unlock()
	return ctx
}

func (h *hedgeTrace) TraceRouteEnd(ctx context.Context, d pgxroute.TraceRouteEndData) {
	id, _ := ctx.Value(callIDKey{}).(int)
	h.mu.Lock()
	h.ends[id] = append(h.ends[id], d)
	h.mu.Unlock()
}

// TestHedgeTraced: both attempts of a hedged read are traced as attempts,
// a start and an end each, numbered in order; the loser's end carries its
// cancellation; the hedge starts the tracer sees equal Stat's hedge count.
func TestHedgeTraced(t *testing.T) {
	c := ownCluster(t, routingtest.ClusterOptions{})
	ctx := context.Background()
	r1 := c.Replicas()[0]
	createSlowOn(t, c)
	tr := &hedgeTrace{starts: map[int][]pgxroute.TraceRouteStartData{}, ends: map[int][]pgxroute.TraceRouteEndData{}}
	pool := failoverPool(t, c, pgxroute.Config{HedgeAfter: 20 * time.Millisecond, Tracer: tr})
	const calls = 40
	for i := 1; i <= calls; i++ {
		var one int
		cctx := context.WithValue(ctx, callIDKey{}, i)
		if err := pool.QueryRow(cctx, "SELECT slow_on($1)", r1.Port()).Scan(&one); err != nil {
			t.Fatal(err)
		}
	}
	// A loser ends in the background: wait until every start has its end.
	routingtest.WaitFor(t, "every attempt's end", func() bool {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		for id, s := range tr.starts {
			if len(tr.ends[id]) < len(s) {
				return false
			}
		}
		return true
	})
	hedgeStarts := 0
	for id := 1; id <= calls; id++ {
		starts, ends := tr.starts[id], tr.ends[id]
		if len(starts) != len(ends) {
			t.Errorf("call %d: %d starts, %d ends", id, len(starts), len(ends))
			continue
		}
		failedEnds := 0
		for k, s := range starts {
			if s.Attempt != k {
				t.Errorf("call %d: start %d numbered %d", id, k, s.Attempt)
			}
			if s.Route.Reason == pgxroute.ReasonHedge {
				hedgeStarts++
			}
		}
		for _, e := range ends {
			if e.Err != nil {
				failedEnds++
				if !errors.Is(e.Err, context.Canceled) {
					t.Errorf("call %d: a loser's end says %v, want its cancellation", id, e.Err)
				}
			}
		}
		if len(starts) == 2 && failedEnds != 1 {
			t.Errorf("call %d hedged: %d of its 2 ends failed, want the loser's alone", id, failedEnds)
		}
	}
	hedges, _ := hedgeStats(pool)
	total := int64(0)
	for _, n := range hedges {
		total += n
	}
	t.Logf("FIGURES %d calls, %d hedge starts traced, Stat hedges %v", calls, hedgeStarts, hedges)
	if int64(hedgeStarts) != total {
		t.Errorf("the tracer saw %d hedge starts, Stat counts %d hedges", hedgeStarts, total)
	}
	if hedgeStarts < calls/4 {
		t.Errorf("only %d of %d calls were hedged, with half of them starting on the slow replica", hedgeStarts, calls)
	}
}

// removeOnHedge is a tracer that, at the first hedge's start, removes the
// hedge's replica from the read group with SetGroup (keeping the first
// attempt's node and adding spare): the hedge was picked on a snapshot from
// before the removal.
type removeOnHedge struct {
	pool  atomic.Pointer[pgxroute.RoutedPool]
	spare pgxroute.Node
	nodes map[string]pgxroute.Node // the read group's nodes by name

	mu      sync.Mutex
	first   string // the first attempt's node
	victim  string // the hedge's first pick, removed
	setErr  error
	hedges  []string // the nodes of the hedge starts, in order
	endings map[string]pgxroute.TraceRouteEndData
}

func (r *removeOnHedge) TraceRouteStart(ctx context.Context, d pgxroute.TraceRouteStartData) context.Context {
	r.mu.Lock()
	defer r.mu.Unlock()
	if d.Attempt == 0 {
		r.first = d.Route.Node
	}
	if d.Route.Reason != pgxroute.ReasonHedge {
		return ctx
	}
	r.hedges = append(r.hedges, d.Route.Node)
	if r.victim == "" {
		r.victim = d.Route.Node
		r.setErr = r.pool.Load().SetGroup(context.Background(), pgxroute.ReadGroupName, []pgxroute.Node{r.nodes[r.first], r.spare})
	}
	return ctx
}

func (r *removeOnHedge) TraceRouteEnd(_ context.Context, d pgxroute.TraceRouteEndData) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if d.Route.Reason == pgxroute.ReasonHedge {
		r.endings[d.Route.Node] = d
	}
}

// TestHedgeSkipsRemovedReplica: a hedged read's second attempt picked a
// replica that SetGroup removes in the same instant (the tracer removes it
// at the hedge's start, before the attempt runs). The attempt does not run
// there: it ends, marked as run again, and the hedge goes to the replica
// that replaced it, which answers (the server says which) while the first
// attempt still sleeps.
func TestHedgeSkipsRemovedReplica(t *testing.T) {
	c := ownCluster(t, routingtest.ClusterOptions{Replicas: 3})
	ctx := context.Background()
	a, b, spare := c.Replicas()[0], c.Replicas()[1], c.Replicas()[2]
	node := func(r *routingtest.Node) pgxroute.Node {
		return pgxroute.Node{Name: r.Name(), ConnString: r.ConnString()}
	}
	tr := &removeOnHedge{spare: node(spare), nodes: map[string]pgxroute.Node{a.Name(): node(a), b.Name(): node(b)}, endings: map[string]pgxroute.TraceRouteEndData{}}
	pool := newPool(t, c, pgxroute.Config{
		Health:     fastHealth,
		HedgeAfter: 20 * time.Millisecond,
		Tracer:     tr,
		Groups: map[string][]pgxroute.Node{
			pgxroute.DefaultGroupName: {{Name: c.Primary().Name(), ConnString: c.Primary().ConnString()}},
			pgxroute.ReadGroupName:    {node(a), node(b)},
			"spare":                   {node(spare)}, // probed, and up, before it joins the read group
		},
	})
	tr.pool.Store(pool)
	// Every replica probed (a node of another group takes reads once a
	// probe has seen it a replica).
	routingtest.WaitFor(t, "every replica probed", func() bool {
		for _, r := range c.Replicas() {
			group := pgxroute.ReadGroupName
			if r == spare {
				group = "spare"
			}
			if st := nodeStat(pool, group, r.Name()); st.Role != "replica" || st.State != pgxroute.StateUp {
				return false
			}
		}
		return true
	})
	// A second on the first attempt's replica (a or b), none on spare.
	var port int
	err := pool.QueryRow(ctx, "SELECT inet_server_port() FROM pg_sleep(CASE WHEN inet_server_port() = $1 THEN 0 ELSE 1 END)", spare.Port()).Scan(&port)
	if err != nil {
		t.Fatal(err)
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	t.Logf("first attempt on %s; hedges started on %v; answered by port %d", tr.first, tr.hedges, port)
	if tr.setErr != nil {
		t.Fatalf("SetGroup in the tracer: %v", tr.setErr)
	}
	if tr.victim == "" || tr.victim == spare.Name() {
		t.Fatalf("the hedge's first pick was %q, want a or b", tr.victim)
	}
	if port != spare.Port() {
		t.Errorf("answered by port %d, want %s's (%d): the hedge did not go on to the replica that replaced %s", port, spare.Name(), spare.Port(), tr.victim)
	}
	if want := []string{tr.victim, spare.Name()}; !slices.Equal(tr.hedges, want) {
		t.Errorf("hedges started on %v, want %v", tr.hedges, want)
	}
	if e, ok := tr.endings[tr.victim]; !ok || e.Err == nil || !e.Rerun {
		t.Errorf("the removed replica's hedge attempt ended with %+v, want an error and marked as run again", e)
	}
}
