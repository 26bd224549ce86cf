package pgxroute

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestPlanChange covers how a new list of nodes meets the nodes the pool
// has: which are kept, which are new, how derived names are chosen, and
// which lists are refused (and why, naming the group and node).
func TestPlanChange(t *testing.T) {
	const (
		a  = "postgres://u:pw@10.0.0.1:5432/shop"
		a2 = "postgres://u:pw@10.0.0.1:5432/other"
		b  = "postgres://u:pw@10.0.0.2:5432/shop"
		c  = "postgres://u:pw@10.0.0.3:5432/shop"
	)
	newTestPool := func(t *testing.T) *RoutedPool {
		p, err := New(context.Background(), Config{
			Health: HealthConfig{Disabled: true},
			Groups: map[string][]Node{
				DefaultGroupName: {{ConnString: a}},
				ReadGroupName:    {{Name: "r1", ConnString: b}},
				"analytics":      {{Name: "an", ConnString: c}},
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Close)
		return p
	}
	type want struct {
		kept, fresh []string
		err         string // a substring; "" for none
	}
	tests := []struct {
		name  string
		group string
		nodes []Node
		want  want
	}{
		{
			name: "the same list: every node kept", group: ReadGroupName,
			nodes: []Node{{Name: "r1", ConnString: b}},
			want:  want{kept: []string{"r1"}},
		},
		{
			name: "a derived name finds the node of the same connection", group: ReadGroupName,
			nodes: []Node{{Name: "r1", ConnString: b}, {ConnString: a}},
			want:  want{kept: []string{"10.0.0.1:5432", "r1"}},
		},
		{
			name: "a new node on a host:port taken by another database is told apart by it", group: ReadGroupName,
			nodes: []Node{{ConnString: a2}},
			want:  want{fresh: []string{"10.0.0.1:5432/other"}},
		},
		{
			name: "the same name with another connection: a new node", group: ReadGroupName,
			nodes: []Node{{Name: "r1", ConnString: c}},
			want:  want{fresh: []string{"r1"}},
		},
		{
			name: "a name another group's node has, with another connection", group: ReadGroupName,
			nodes: []Node{{Name: "an", ConnString: b}},
			want:  want{err: `group "read" node "an": group "analytics" lists a node of this name with another connection`},
		},
		{
			name: "two nodes of one name", group: ReadGroupName,
			nodes: []Node{{Name: "x", ConnString: b}, {Name: "x", ConnString: c}},
			want:  want{err: `group "read" node "x": two nodes of the group have this name`},
		},
		{
			name: "one connection twice", group: ReadGroupName,
			nodes: []Node{{Name: "x", ConnString: b}, {Name: "y", ConnString: b}},
			want:  want{err: `group "read" node "y": the node is listed twice in the group`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newTestPool(t)
			g := p.group(tt.group)
			var specs []nodeSpec
			for i, n := range tt.nodes {
				ns, err := n.normalise(g.name, i)
				if err != nil {
					t.Fatal(err)
				}
				specs = append(specs, ns)
			}
			plan, err := p.planChange(p.pub.snap.Load().mem, map[*group][]nodeSpec{g: specs})
			if tt.want.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.want.err) || !errors.Is(err, ErrConfig) {
					t.Fatalf("error %v, want one wrapping ErrConfig with %q", err, tt.want.err)
				}
				if strings.Contains(err.Error(), "pw@") {
					t.Errorf("the error shows a password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got want
			for name := range plan.kept {
				got.kept = append(got.kept, name)
			}
			for _, ns := range plan.fresh {
				got.fresh = append(got.fresh, ns.name)
			}
			slices.Sort(got.kept)
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(want{})); diff != "" {
				t.Errorf("plan (-want +got):\n%s", diff)
			}
		})
	}
}
