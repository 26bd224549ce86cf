package routingtest_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pgxroute/pgxroute/routingtest"
)

func timeline(t *testing.T, n *routingtest.Node) int {
	t.Helper()
	tl, err := n.Timeline(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return tl
}

// streamsFrom reports whether upstream lists r as a streaming replica.
func streamsFrom(t *testing.T, r, upstream *routingtest.Node) bool {
	t.Helper()
	var ok bool
	if err := connect(t, upstream).QueryRow(context.Background(),
		"SELECT count(*) > 0 FROM pg_stat_replication WHERE application_name = $1 AND state = 'streaming'", r.Name()).Scan(&ok); err != nil {
		t.Fatal(err)
	}
	return ok
}

// TestPromoteAndRepoint: the primary dies, replica1 is promoted and
// replica2 repointed at it; the roles follow and replica2 replays replica1's
// writes on the new timeline.
func TestPromoteAndRepoint(t *testing.T) {
	c := routingtest.NewCluster(t, routingtest.ClusterOptions{})
	ctx := context.Background()
	old, r1, r2 := c.Primary(), c.Replicas()[0], c.Replicas()[1]
	exec1(t, old, "CREATE TABLE items (id int PRIMARY KEY)")
	exec1(t, old, "INSERT INTO items VALUES (1)")
	if err := c.WaitReplay(ctx); err != nil {
		t.Fatal(err)
	}
	if tl := timeline(t, old); tl != 1 {
		t.Fatalf("initial primary on timeline %d, want 1", tl)
	}
	if err := c.Kill(old); err != nil {
		t.Fatal(err)
	}
	if err := c.Promote(ctx, r1); err != nil {
		t.Fatal(err)
	}
	if c.Primary() != r1 || r1.Role() != routingtest.RolePrimary || old.Role() != routingtest.RoleFormerPrimary {
		t.Fatalf("after Promote: Primary %s, roles %s=%s %s=%s", c.Primary().Name(), r1.Name(), r1.Role(), old.Name(), old.Role())
	}
	if got := c.Replicas(); !slices.Equal(got, []*routingtest.Node{r2}) {
		t.Fatalf("Replicas after Promote: %v, want [replica2]", got)
	}
	if got := c.Nodes(); !slices.Equal(got, []*routingtest.Node{old, r1, r2}) {
		t.Fatalf("Nodes after Promote: %v, want creation order", got)
	}
	if tl := timeline(t, r1); tl != 2 {
		t.Fatalf("promoted replica on timeline %d, want 2", tl)
	}
	if r2.Upstream() != old {
		t.Fatalf("replica2 upstream %v before Repoint, want the old primary", r2.Upstream())
	}
	start := time.Now()
	if err := c.Repoint(ctx, r2, r1); err != nil {
		t.Fatal(err)
	}
	t.Logf("Repoint took %v", time.Since(start).Round(time.Millisecond))
	if r2.Upstream() != r1 || !streamsFrom(t, r2, r1) {
		t.Fatalf("replica2 does not stream from replica1 after Repoint (upstream %v)", r2.Upstream())
	}
	exec1(t, r1, "INSERT INTO items VALUES (2)")
	if err := c.WaitReplay(ctx); err != nil {
		t.Fatal(err)
	}
	if !hasRow(t, r2, 1) || !hasRow(t, r2, 2) {
		t.Fatal("repointed replica lacks rows of the old or the new primary")
	}
	if !inRecovery(t, r2) {
		t.Fatal("repointed replica is not in recovery")
	}
	if tl := timeline(t, r2); tl != 2 {
		t.Fatalf("repointed replica streams timeline %d, want 2", tl)
	}
}

// TestSplitBrainAndRewind: the old primary, started again after replica1
// was promoted, is a second primary on the older timeline (split brain);
// each takes its own writes. Rejoin (pg_rewind) then makes it a replica of
// the new primary, without its split-brain write.
func TestSplitBrainAndRewind(t *testing.T) {
	c := routingtest.NewCluster(t, routingtest.ClusterOptions{Replicas: 1})
	ctx := context.Background()
	old, r1 := c.Primary(), c.Replicas()[0]
	exec1(t, old, "CREATE TABLE items (id int PRIMARY KEY)")
	exec1(t, old, "INSERT INTO items VALUES (1)")
	if err := c.WaitReplay(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Kill(old); err != nil {
		t.Fatal(err)
	}
	if err := c.Promote(ctx, r1); err != nil {
		t.Fatal(err)
	}
	exec1(t, r1, "INSERT INTO items VALUES (2)")

	// Start of a former primary without Rejoin: split brain.
	if err := c.Start(ctx, old); err != nil {
		t.Fatal(err)
	}
	exec1(t, old, "INSERT INTO items VALUES (3)") // a write the new primary never sees
	if inRecovery(t, old) || inRecovery(t, r1) {
		t.Fatal("want both nodes out of recovery (split brain)")
	}
	tlOld, tlNew := timeline(t, old), timeline(t, r1)
	t.Logf("split brain: %s on timeline %d, %s on timeline %d", old.Name(), tlOld, r1.Name(), tlNew)
	if tlOld != 1 || tlNew != 2 {
		t.Fatalf("timelines %d (old) and %d (new), want 1 and 2", tlOld, tlNew)
	}
	if c.Primary() != r1 || old.Role() != routingtest.RoleFormerPrimary {
		t.Fatalf("Primary %s, old primary's role %s", c.Primary().Name(), old.Role())
	}

	start := time.Now()
	if err := c.Rewind(ctx, old, r1); err != nil {
		t.Fatal(err)
	}
	t.Logf("Rewind (pg_rewind, start, streaming) took %v", time.Since(start).Round(time.Millisecond))
	if !inRecovery(t, old) || !streamsFrom(t, old, r1) {
		t.Fatal("rewound old primary is not a streaming replica of the new one")
	}
	if old.Role() != routingtest.RoleReplica || !slices.Equal(c.Replicas(), []*routingtest.Node{old}) {
		t.Fatalf("after Rewind: role %s, Replicas %v", old.Role(), c.Replicas())
	}
	exec1(t, r1, "INSERT INTO items VALUES (4)")
	if err := c.WaitReplay(ctx); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[int]bool{1: true, 2: true, 3: false, 4: true} {
		if got := hasRow(t, old, id); got != want {
			t.Errorf("rewound node has row %d: %v, want %v", id, got, want)
		}
	}
	if tl := timeline(t, old); tl != 2 {
		t.Errorf("rewound node on timeline %d, want 2", tl)
	}
}

// TestRebuild: a fresh base backup turns a killed former primary into a
// replica of the new one.
func TestRebuild(t *testing.T) {
	c := routingtest.NewCluster(t, routingtest.ClusterOptions{Replicas: 1})
	ctx := context.Background()
	old, r1 := c.Primary(), c.Replicas()[0]
	exec1(t, old, "CREATE TABLE items (id int PRIMARY KEY)")
	if err := c.WaitReplay(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Kill(old); err != nil {
		t.Fatal(err)
	}
	if err := c.Promote(ctx, r1); err != nil {
		t.Fatal(err)
	}
	exec1(t, r1, "INSERT INTO items VALUES (1)")
	start := time.Now()
	if err := c.Rebuild(ctx, old, r1); err != nil {
		t.Fatal(err)
	}
	t.Logf("Rebuild (pg_basebackup, start, streaming) took %v", time.Since(start).Round(time.Millisecond))
	if err := c.WaitReplay(ctx); err != nil {
		t.Fatal(err)
	}
	if !inRecovery(t, old) || !hasRow(t, old, 1) || old.Upstream() != r1 {
		t.Fatal("rebuilt node is not an up-to-date replica of the new primary")
	}
}

// TestSwitchover: a clean switchover to replica1; the old primary and
// replica2 follow it, and no committed row is lost.
func TestSwitchover(t *testing.T) {
	var logs routingtest.SyncBuffer
	c := routingtest.NewCluster(t, routingtest.ClusterOptions{Log: &logs})
	ctx := context.Background()
	old, r1, r2 := c.Primary(), c.Replicas()[0], c.Replicas()[1]
	exec1(t, old, "CREATE TABLE items (id int PRIMARY KEY)")
	exec1(t, old, "INSERT INTO items SELECT generate_series(1, 100)") // not waited for: the switchover must keep it
	start := time.Now()
	if err := c.Switchover(ctx, r1); err != nil {
		t.Fatal(err)
	}
	t.Logf("Switchover (stop, promote, repoint replica2, rejoin) took %v", time.Since(start).Round(time.Millisecond))
	if c.Primary() != r1 || inRecovery(t, r1) {
		t.Fatal("replica1 is not the primary after Switchover")
	}
	if got := c.Replicas(); !slices.Equal(got, []*routingtest.Node{old, r2}) {
		t.Fatalf("Replicas after Switchover: %v, want [primary replica2]", got)
	}
	for _, r := range []*routingtest.Node{old, r2} {
		if !inRecovery(t, r) || r.Upstream() != r1 || !streamsFrom(t, r, r1) {
			t.Fatalf("%s does not stream from the new primary", r.Name())
		}
	}
	if !hasRow(t, r1, 100) {
		t.Fatal("the new primary lost a row committed before the switchover")
	}
	exec1(t, r1, "INSERT INTO items VALUES (101)")
	if err := c.WaitReplay(ctx); err != nil {
		t.Fatal(err)
	}
	for _, r := range []*routingtest.Node{old, r2} {
		if !hasRow(t, r, 101) {
			t.Errorf("%s lacks the new primary's write", r.Name())
		}
	}
	// And back: the old primary becomes the primary again.
	if err := c.Switchover(ctx, old); err != nil {
		t.Fatal(err)
	}
	if c.Primary() != old || inRecovery(t, old) || !inRecovery(t, r1) || !inRecovery(t, r2) {
		t.Fatal("second switchover did not make the old primary the primary again")
	}
	if tl := timeline(t, old); tl != 3 {
		t.Errorf("after two switchovers the primary is on timeline %d, want 3", tl)
	}
	// A clean switchover needs no new base backup: pg_rewind did it.
	if out := logs.String(); strings.Contains(out, "pg_rewind failed") || strings.Count(out, "pg_rewind from") != 2 {
		t.Errorf("the switchovers did not rejoin with pg_rewind alone:\n%s", out)
	}
}
