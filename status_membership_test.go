package pgxroute_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pgxroute/pgxroute"
	"github.com/pgxroute/pgxroute/internal/obstest"
	"github.com/pgxroute/pgxroute/routingtest"
)

// TestStatusMembership: a node removed from its one group while a
// transaction runs on it is listed as draining (the page and the JSON),
// with the transaction in flight and its connection acquired; the node
// added in its place shows joining while it has answered no probe (it
// listens nowhere); the membership counts and the node_added and
// node_removed events say so; the transaction commits, and the node is
// drained. A node added then that answers shows its node_joined event. No
// password reaches the page.
func TestStatusMembership(t *testing.T) {
	c := sharedCluster(t)
	const secret = "Sw0rdf1sh-membership"
	r1, r2 := c.Replicas()[0], c.Replicas()[1]
	pool := newPool(t, c, pgxroute.Config{Groups: map[string][]pgxroute.Node{
		pgxroute.DefaultGroupName: {{Name: "primary", ConnString: c.Primary().ConnString()}},
		pgxroute.ReadGroupName:    {{Name: r1.Name(), ConnString: r1.ConnString()}},
		"extra":                   {{Name: r2.Name(), ConnString: r2.ConnString() + "&password=" + secret}},
	}, Health: fastHealth, DrainTimeout: time.Minute})
	waitProbed(t, pool)
	h := pgxroute.StatusHandler(pool)
	ctx := context.Background()

	tx, err := pool.Begin(pgxroute.WithBindGroup(ctx, "extra"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	var port int
	if err := tx.QueryRow(ctx, "SELECT inet_server_port()").Scan(&port); err != nil {
		t.Fatal(err)
	}
	if port != r2.Port() {
		t.Fatalf("the transaction runs on port %d, want %s's %d", port, r2.Name(), r2.Port())
	}
	closed := routingtest.ClosedPort(t)
	joiner := pgxroute.Node{Name: "joiner", ConnString: fmt.Sprintf("postgres://postgres:%s@127.0.0.1:%d/postgres?connect_timeout=1", secret, closed)}
	if err := pool.SetGroup(ctx, "extra", []pgxroute.Node{joiner}); err != nil {
		t.Fatal(err)
	}

	_, body := get(t, h, http.MethodGet, "/?format=json", nil)
	_, page := get(t, h, http.MethodGet, "/", nil)
	for what, text := range map[string]string{"page": page, "JSON": body} {
		if strings.Contains(text, secret) {
			t.Errorf("the %s shows the password:\n%s", what, text)
		}
	}
	s := decodeStatus(t, body)
	if len(s.Draining) != 1 || s.Draining[0].Name != r2.Name() || s.Draining[0].InFlight != 1 || s.Draining[0].Acquired != 1 || s.Draining[0].Since.IsZero() {
		t.Errorf("draining %+v, want %s with the transaction in flight and its connection acquired", s.Draining, r2.Name())
	}
	m := s.Membership
	if m.Added != 1 || m.Removed != 1 || m.Drained != 0 || m.DrainTimeouts != 0 || m.LastChange == nil {
		t.Errorf("membership %+v, want 1 added, 1 removed, none drained yet, a last change", m)
	}
	var extra []string
	for _, g := range s.Groups {
		if g.Name == "extra" {
			for _, n := range g.Nodes {
				extra = append(extra, n.Name+" "+n.State)
			}
		}
	}
	if diff := cmp.Diff([]string{"joiner joining"}, extra); diff != "" {
		t.Errorf("group extra's nodes (-want +got):\n%s", diff)
	}
	var kinds []string
	for _, ev := range s.Events {
		kinds = append(kinds, ev.Kind+" "+ev.Node+" "+ev.Group)
		if ev.Kind == "node_removed" && (ev.State != "" || ev.Role != "") {
			t.Errorf("node_removed event %+v: want no state or role (the node leaves)", ev)
		}
	}
	for _, want := range []string{"node_added joiner extra", "node_removed " + r2.Name() + " extra"} {
		if !slices.Contains(kinds, want) {
			t.Errorf("events %q lack %q", kinds, want)
		}
	}
	if s.Discovery != nil {
		t.Errorf("discovery %+v without Config.Discovery", s.Discovery)
	}
	for _, want := range []string{
		`<tr data-draining="` + r2.Name() + `">`,
		`added <strong>1</strong> · removed <strong>1</strong> · drained <strong>0</strong>`,
		`draining now <strong>1</strong>`,
		`<span class="st st-joining">joining</span>`,
		`<span class="st ev-node_added">node_added</span>`,
		`<span class="mute">group: extra</span>`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %s", want)
		}
	}

	// The transaction ends normally; then the node's pool closes.
	if err := tx.Commit(ctx); err != nil {
		t.Fatalf("commit on the draining node: %v", err)
	}
	routingtest.WaitFor(t, r2.Name()+" drained", func() bool {
		st := pool.Stat()
		return len(st.Draining) == 0 && st.Membership.Drained == 1
	})
	_, body = get(t, h, http.MethodGet, "/?format=json", nil)
	s = decodeStatus(t, body)
	if len(s.Draining) != 0 || s.Membership.Drained != 1 || s.Membership.DrainTimeouts != 0 {
		t.Errorf("after the commit: draining %+v, membership %+v; want none draining, 1 drained, no timeout", s.Draining, s.Membership)
	}
	kinds = kinds[:0]
	for _, ev := range s.Events {
		kinds = append(kinds, ev.Kind+" "+ev.Node)
		if ev.Kind == "node_drained" && (ev.State != "" || ev.Detail == "") {
			t.Errorf("node_drained event %+v: want no state, and a detail", ev)
		}
	}
	if !slices.Contains(kinds, "node_drained "+r2.Name()) {
		t.Errorf("events %q lack node_drained %s", kinds, r2.Name())
	}
	_, page = get(t, h, http.MethodGet, "/", nil)
	if strings.Contains(page, `id="draining"`) || !strings.Contains(page, `draining now <strong>0</strong>`) {
		t.Errorf("the page still shows a draining node")
	}

	// A node added that answers: joining, then up, with a node_joined
	// event on the page.
	if err := pool.SetGroup(ctx, "extra", []pgxroute.Node{joiner, {Name: "again", ConnString: r2.ConnString()}}); err != nil {
		t.Fatal(err)
	}
	routingtest.WaitState(t, pool, "again", pgxroute.StateUp)
	_, page = get(t, h, http.MethodGet, "/", nil)
	if !strings.Contains(page, `<tr data-event="node_joined" data-node="again">`) || !strings.Contains(page, `<span class="st ev-node_joined">node_joined</span>`) {
		t.Errorf("the page lacks the node_joined event of the node that answered")
	}
}

// TestStatusDiscovery: a pool whose discoverer fails (the built-in Patroni
// discoverer, its REST URL, with a password, on a port nothing listens on)
// keeps its members and serves reads; the page warns that discovery fails
// and shows the error without the password, the JSON counts the calls and
// failures. Then the discoverer answers (the cluster's own nodes): the
// warning goes, the members it gave are listed, with the time of the
// success.
func TestStatusDiscovery(t *testing.T) {
	c := sharedCluster(t)
	const secret = "Sw0rdf1sh-discovery"
	disc := obstest.NewSwitchDiscoverer(obstest.DeadPatroni(t, secret, c.Primary().ConnString()))
	pool := namedPool(t, c, pgxroute.Config{Health: fastHealth, Discovery: disc, DiscoveryInterval: 200 * time.Millisecond}, "")
	waitProbed(t, pool)
	h := pgxroute.StatusHandler(pool)
	routingtest.WaitFor(t, "two failed discoveries", func() bool {
		d := pool.Stat().Discovery
		return d != nil && d.Failures >= 2
	})
	// The members stay: reads still reach the replicas.
	// (Bounded retries: on a loaded machine a probe late for a moment may
	// send a read to the primary.)
	routingtest.WaitFor(t, "a read served by a replica while discovery fails", func() bool {
		return strings.HasPrefix(routingtest.ServedBy(t, context.Background(), c, pool, "SELECT inet_server_port() FROM marker"), "replica")
	})
	_, body := get(t, h, http.MethodGet, "/?format=json", nil)
	_, page := get(t, h, http.MethodGet, "/", nil)
	for what, text := range map[string]string{"page": page, "JSON": body} {
		if strings.Contains(text, secret) {
			t.Errorf("the %s shows the password:\n%s", what, text)
		}
	}
	s := decodeStatus(t, body)
	d := s.Discovery
	if d == nil {
		t.Fatalf("no discovery in %s", body)
	}
	if !d.Failing || d.Failures < 2 || d.Calls < d.Failures || d.LastError == "" || d.LastErrorAt == nil || d.LastSuccessAt != nil || len(d.Members) != 0 {
		t.Errorf("discovery %+v: want failing, 2 failures or more, an error, no success, no members", *d)
	}
	if !strings.Contains(d.LastError, "127.0.0.1") {
		t.Errorf("the discovery error %q does not name the URL", d.LastError)
	}
	if len(s.Members) != 3 {
		t.Errorf("members %+v, want the three configured", s.Members)
	}
	var failed int
	for _, ev := range s.Events {
		if ev.Kind == "discovery_failed" {
			failed++
			if ev.Err == "" || ev.State != "" || ev.Role != "" {
				t.Errorf("discovery_failed event %+v: want its error, no state, no role", ev)
			}
		}
	}
	if failed == 0 {
		t.Errorf("no discovery_failed event among %+v", s.Events)
	}
	for _, want := range []string{`id="discovery-failing"`, `<tr data-discovery="failing">`, `<span class="mute">never</span>`} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %s", want)
		}
	}

	// The discoverer answers with the cluster's nodes, as configured.
	disc.Set(obstest.ListDiscoverer(obstest.ClusterNodes(c)))
	routingtest.WaitFor(t, "a successful discovery", func() bool {
		d := pool.Stat().Discovery
		return d != nil && !d.LastSuccessAt.IsZero() && d.LastSuccessAt.After(d.LastErrorAt)
	})
	_, body = get(t, h, http.MethodGet, "/?format=json", nil)
	_, page = get(t, h, http.MethodGet, "/", nil)
	s = decodeStatus(t, body)
	d = s.Discovery
	want := []string{"primary", "replica1", "replica2"}
	if d == nil || d.Failing || d.LastSuccessAt == nil || !cmp.Equal(want, d.Members) {
		t.Fatalf("discovery %+v: want not failing, a success, members %v", d, want)
	}
	// The same names and connection strings: nothing added or removed.
	if s.Membership.Added != 0 || s.Membership.Removed != 0 {
		t.Errorf("membership %+v, want no change", s.Membership)
	}
	if strings.Contains(page, `id="discovery-failing"`) || !strings.Contains(page, `<tr data-discovery="ok">`) || !strings.Contains(page, "primary, replica1, replica2") {
		t.Errorf("the page does not show discovery recovered")
	}
}
