package obstest

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/pgxroute/pgxroute"
	"github.com/pgxroute/pgxroute/discovery/patroni"
	"github.com/pgxroute/pgxroute/routingtest"
)

// SwitchDiscoverer is a pgxroute.Discoverer that passes each call to the
// discoverer last given to Set, so that a test can make discovery fail and
// then recover while the pool runs. It is safe for concurrent use.
type SwitchDiscoverer struct {
	cur atomic.Pointer[pgxroute.Discoverer]
}

// NewSwitchDiscoverer returns a SwitchDiscoverer that passes calls to d.
func NewSwitchDiscoverer(d pgxroute.Discoverer) *SwitchDiscoverer {
	s := &SwitchDiscoverer{}
	s.Set(d)
	return s
}

// Set makes the next calls go to d.
func (s *SwitchDiscoverer) Set(d pgxroute.Discoverer) { s.cur.Store(&d) }

// Discover implements pgxroute.Discoverer.
func (s *SwitchDiscoverer) Discover(ctx context.Context) ([]pgxroute.Node, error) {
	return (*s.cur.Load()).Discover(ctx)
}

// ListDiscoverer is a pgxroute.Discoverer whose members are always the
// same list: a cluster whose membership is fixed (the first is the first
// guess of the primary).
type ListDiscoverer []pgxroute.Node

// Discover implements pgxroute.Discoverer: it returns a copy of the list.
func (l ListDiscoverer) Discover(context.Context) ([]pgxroute.Node, error) {
	return slices.Clone(l), nil
}

// DeadPatroni returns the built-in Patroni discoverer pointed at a local
// port nothing listens on, with password in its REST URL's credentials (as
// for a proxy in front of the API): every Discover call fails, with an
// error that names the URL (and must not show the password). connString is
// the members' connection string.
func DeadPatroni(tb testing.TB, password, connString string) pgxroute.Discoverer {
	tb.Helper()
	port := routingtest.ClosedPort(tb)
	return patroni.New(patroni.Config{
		URLs:       []string{fmt.Sprintf("http://operator:%s@127.0.0.1:%d", password, port)},
		ConnString: connString,
	})
}

// ClusterNodes lists the nodes of a pool from NewRouted as a discoverer
// would give them: the primary first, then the replicas, named and
// connected as NewRouted names and connects them (so that the router keeps
// them as they are).
func ClusterNodes(c *routingtest.Cluster) []pgxroute.Node {
	out := []pgxroute.Node{{Name: c.Primary().Name(), ConnString: c.Primary().ConnString()}}
	for _, r := range c.Replicas() {
		out = append(out, pgxroute.Node{Name: r.Name(), ConnString: r.ConnString()})
	}
	return out
}
