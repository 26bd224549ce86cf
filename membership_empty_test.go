package pgxroute_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pgxroute/pgxroute"
	"github.com/pgxroute/pgxroute/routingtest"
)

// TestSetGroupEmptyList: SetGroup with an empty list empties the read
// group (it once returned nil and changed nothing): its nodes leave the
// cluster and reads go to the default group.
func TestSetGroupEmptyList(t *testing.T) {
	c := sharedCluster(t)
	ctx := context.Background()
	p, r1, r2 := c.Primary(), c.Replicas()[0], c.Replicas()[1]
	pool := newPool(t, c, pgxroute.Config{Health: pgxroute.HealthConfig{Interval: 100 * time.Millisecond},
		Groups: map[string][]pgxroute.Node{"default": memberNodes(p), "read": memberNodes(r1, r2)}})
	routingtest.WaitState(t, pool, r1.Name(), pgxroute.StateUp)
	routingtest.WaitState(t, pool, r2.Name(), pgxroute.StateUp)
	if err := pool.SetGroup(ctx, "read", nil); err != nil {
		t.Fatal(err)
	}
	st := pool.Stat()
	if !slices.Equal(memberNames(st), []string{p.Name()}) {
		t.Errorf("SetGroup(read, nil) returned nil, but the members are still %v and draining %v", memberNames(st), st.Draining)
	}
	ctx2 := pgxroute.WithScope(ctx)
	if got := routingtest.ServedBy(t, ctx2, c, pool, "SELECT inet_server_port()"); got != p.Name() {
		t.Errorf("after SetGroup(read, nil) a read ran on %s, want the primary", got)
	}
}

// TestSetGroupReadGroupLater: a read group listed empty at New is kept,
// and SetGroup adds replicas to it; a pool made with no read group at all
// refuses, naming the remedy.
func TestSetGroupReadGroupLater(t *testing.T) {
	c := sharedCluster(t)
	ctx := context.Background()
	p, r1 := c.Primary(), c.Replicas()[0]
	health := pgxroute.HealthConfig{Interval: 100 * time.Millisecond}
	pool := newPool(t, c, pgxroute.Config{Groups: map[string][]pgxroute.Node{"default": memberNodes(p), "read": {}}, Health: health})
	if got := routingtest.ServedBy(t, pgxroute.WithScope(ctx), c, pool, "SELECT inet_server_port()"); got != p.Name() {
		t.Errorf("with an empty read group a read ran on %s, want the primary", got)
	}
	if err := pool.SetGroup(ctx, "read", memberNodes(r1)); err != nil {
		t.Fatal(err)
	}
	routingtest.WaitFor(t, r1.Name()+" serving reads", func() bool {
		return routingtest.ServedBy(t, pgxroute.WithScope(ctx), c, pool, "SELECT inet_server_port()") == r1.Name()
	})

	alone := newPool(t, c, pgxroute.Config{Groups: map[string][]pgxroute.Node{"default": memberNodes(p)}, Health: health})
	err := alone.SetGroup(ctx, "read", memberNodes(r1))
	if !errors.Is(err, pgxroute.ErrUnknownGroup) || !strings.Contains(err.Error(), "as an empty list") {
		t.Errorf("SetGroup(read) on a pool with no read group: %v, want ErrUnknownGroup naming the remedy", err)
	}
}

// shrinkingDiscoverer reports the primary and a replica on its first
// call, then the primary alone (the last replica left the cluster).
type shrinkingDiscoverer struct {
	mu         sync.Mutex
	calls      int
	first, all []pgxroute.Node
}

func (d *shrinkingDiscoverer) Discover(context.Context) ([]pgxroute.Node, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls++
	if d.calls == 1 {
		return d.first, nil
	}
	return d.all, nil
}

// TestDiscoveryLastReplicaLeaves: the last replica leaves the cluster (the
// discoverer lists the leader alone): it is removed (it once stayed, and
// kept taking reads).
func TestDiscoveryLastReplicaLeaves(t *testing.T) {
	c := sharedCluster(t)
	p, r1 := c.Primary(), c.Replicas()[0]
	d := &shrinkingDiscoverer{first: memberNodes(p, r1), all: memberNodes(p)}
	pool := newPool(t, c, pgxroute.Config{Discovery: d, DiscoveryInterval: 200 * time.Millisecond, Groups: map[string][]pgxroute.Node{},
		Health: pgxroute.HealthConfig{Interval: 100 * time.Millisecond}})
	routingtest.WaitFor(t, "3 discoveries", func() bool { return pool.Stat().Discovery.Calls >= 3 })
	st := pool.Stat()
	if !slices.Equal(memberNames(st), []string{p.Name()}) {
		t.Errorf("members %v after the discoverer stopped listing %s; discovery: %+v", memberNames(st), r1.Name(), *st.Discovery)
	}
}
