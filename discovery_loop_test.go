package pgxroute

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// listDiscoverer answers what its test sets: a list or an error.
type listDiscoverer struct {
	mu    sync.Mutex
	nodes []Node
	err   error
	calls int
}

func (d *listDiscoverer) Discover(context.Context) ([]Node, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls++
	return slices.Clone(d.nodes), d.err
}

func (d *listDiscoverer) set(nodes []Node, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.nodes, d.err = nodes, err
}

// waitUntil polls cond every few milliseconds, for at most 10s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
	}
}

// TestDiscoveryLoop covers the loop's rules, without servers (health checks
// off, pools that never connect): New starts from what the discoverer
// gives; a new answer becomes the members; a failure or an empty answer
// keeps them, counted and shown without the password.
func TestDiscoveryLoop(t *testing.T) {
	node := func(name, host string) Node {
		return Node{Name: name, ConnString: "postgres://app:hunter2@" + host + ":5432/db"}
	}
	d := &listDiscoverer{nodes: []Node{node("m1", "10.0.0.1"), node("m2", "10.0.0.2")}}
	p, err := New(context.Background(), Config{Discovery: d, DiscoveryInterval: 20 * time.Millisecond, Health: HealthConfig{Disabled: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	members := func() []string {
		var out []string
		for _, m := range p.Stat().Members {
			out = append(out, m.Name)
		}
		return out
	}
	if got := members(); !slices.Equal(got, []string{"m1", "m2"}) {
		t.Fatalf("members at New: %v", got)
	}

	d.set([]Node{node("m1", "10.0.0.1"), node("m3", "10.0.0.3")}, nil)
	waitUntil(t, "m3 in, m2 out", func() bool { return slices.Equal(members(), []string{"m1", "m3"}) })

	d.set(nil, errors.New("connect 10.0.0.9: refused (postgres://app:hunter2@10.0.0.9)"))
	waitUntil(t, "a failure counted", func() bool { return p.Stat().Discovery.Failures >= 2 })
	st := p.Stat()
	if got := members(); !slices.Equal(got, []string{"m1", "m3"}) {
		t.Errorf("members after failures: %v", got)
	}
	if strings.Contains(st.Discovery.LastError, "hunter2") || st.Discovery.LastError == "" {
		t.Errorf("LastError %q: want the error without its password", st.Discovery.LastError)
	}

	d.set(nil, nil)
	before := p.Stat().Discovery.Failures
	waitUntil(t, "an empty answer counted as a failure", func() bool {
		return p.Stat().Discovery.Failures > before && strings.Contains(p.Stat().Discovery.LastError, errNoMember.Error())
	})
	if got := members(); !slices.Equal(got, []string{"m1", "m3"}) {
		t.Errorf("members after an empty answer: %v", got)
	}
}

// TestDiscoveryAtNew: with no node configured, New fails with the
// discoverer's error.
func TestDiscoveryAtNew(t *testing.T) {
	d := &listDiscoverer{err: errors.New("patroni: no URL answered")}
	_, err := New(context.Background(), Config{Discovery: d})
	if err == nil || !strings.Contains(err.Error(), "no URL answered") {
		t.Fatalf("New: %v, want the discoverer's error", err)
	}
}
