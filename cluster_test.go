package pgxroute

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestComputeView runs the cluster view's transition function over every
// role change, split brain, ejection and re-admission, without a server.
func TestComputeView(t *testing.T) {
	const (
		P = roleIsPrimary
		R = roleIsReplica
		U = roleUnknown
	)
	up := func(role nodeRole, tli uint32) memberObs { return memberObs{up: true, role: role, timeline: tli} }
	down := func(role nodeRole, tli uint32) memberObs { return memberObs{role: role, timeline: tli} }
	type want struct {
		primary, last int
		stale         []bool
		split         []int
		changes       int64
		changed       bool
	}
	tests := []struct {
		name string
		prev *clusterView // nil: the configured view of 3 members
		obs  []memberObs
		want want
	}{
		{
			name: "probes confirm the configuration",
			obs:  []memberObs{up(P, 1), up(R, 1), up(R, 1)},
			want: want{primary: 0, last: 0, stale: []bool{false, false, false}},
		},
		{
			name: "no probe yet: the configured roles stand",
			obs:  []memberObs{up(U, 0), up(U, 0), up(U, 0)},
			want: want{primary: 0, last: 0, stale: []bool{false, false, false}},
		},
		{
			name: "the configuration was wrong: the second member is the primary",
			obs:  []memberObs{up(R, 2), up(P, 2), up(R, 2)},
			want: want{primary: 1, last: 1, stale: []bool{false, false, false}, changes: 1, changed: true},
		},
		{
			name: "primary ejected: none known, the last one kept for positions",
			obs:  []memberObs{down(P, 1), up(R, 1), up(R, 1)},
			want: want{primary: -1, last: 0, stale: []bool{false, false, false}, changed: true},
		},
		{
			name: "primary suspect (not up): none known",
			obs:  []memberObs{{role: P, timeline: 1}, up(R, 1), up(R, 1)},
			want: want{primary: -1, last: 0, stale: []bool{false, false, false}, changed: true},
		},
		{
			name: "failover: r1 promoted while the old primary is down",
			prev: prevView(-1, 0, []memberObs{down(P, 1), up(R, 1), up(R, 1)}),
			obs:  []memberObs{down(P, 1), up(P, 2), up(R, 1)},
			want: want{primary: 1, last: 1, stale: []bool{false, false, false}, changes: 1, changed: true},
		},
		{
			name: "switchover: the primary reports recovery before r1 is promoted",
			obs:  []memberObs{up(R, 1), up(R, 1), up(R, 1)},
			want: want{primary: -1, last: 0, stale: []bool{false, false, false}, changed: true},
		},
		{
			name: "the old primary is re-admitted as a replica: no change",
			prev: prevView(1, 1, []memberObs{down(P, 1), up(P, 2), up(R, 2)}),
			obs:  []memberObs{up(R, 2), up(P, 2), up(R, 2)},
			want: want{primary: 1, last: 1, stale: []bool{false, false, false}},
		},
		{
			name: "the same primary re-admitted after an ejection is not a change",
			prev: prevView(-1, 0, []memberObs{down(P, 1), up(R, 1), up(R, 1)}),
			obs:  []memberObs{up(P, 1), up(R, 1), up(R, 1)},
			want: want{primary: 0, last: 0, stale: []bool{false, false, false}, changed: true},
		},
		{
			name: "split brain: the old primary back as a primary on the lower timeline is stale",
			prev: prevView(1, 1, []memberObs{down(P, 1), up(P, 2), up(R, 2)}),
			obs:  []memberObs{up(P, 1), up(P, 2), up(R, 2)},
			want: want{primary: 1, last: 1, stale: []bool{true, false, false}},
		},
		{
			name: "split brain on equal timelines: no primary, both named",
			prev: prevView(1, 1, []memberObs{down(P, 2), up(P, 2), up(R, 2)}),
			obs:  []memberObs{up(P, 2), up(P, 2), up(R, 2)},
			want: want{primary: -1, last: 1, stale: []bool{false, false, false}, split: []int{0, 1}, changed: true},
		},
		{
			name: "a stale primary that is down is not stale (it takes nothing anyway)",
			prev: prevView(1, 1, []memberObs{down(P, 1), up(P, 2), up(R, 2)}),
			obs:  []memberObs{down(P, 1), up(P, 2), up(R, 2)},
			want: want{primary: 1, last: 1, stale: []bool{false, false, false}},
		},
		{
			name: "the old primary back as a primary while the new one is down: stale, no primary",
			prev: withMax(prevView(-1, 1, []memberObs{down(R, 1), down(P, 2), up(R, 2)}), 2),
			obs:  []memberObs{up(P, 1), down(P, 2), up(R, 2)},
			want: want{primary: -1, last: 1, stale: []bool{true, false, false}},
		},
		{
			name: "a primary whose timeline is unknown (no WAL functions) is not compared",
			prev: withMax(prevView(0, 0, []memberObs{up(P, 0), up(R, 0), up(R, 0)}), 0),
			obs:  []memberObs{up(P, 0), up(R, 0), up(R, 0)},
			want: want{primary: 0, last: 0, stale: []bool{false, false, false}},
		},
		{
			name: "failing back to the first primary counts a change",
			prev: prevView(1, 1, []memberObs{up(R, 2), up(P, 2), up(R, 2)}),
			obs:  []memberObs{up(P, 3), up(R, 3), up(R, 3)},
			want: want{primary: 0, last: 0, stale: []bool{false, false, false}, changes: 1, changed: true},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prev := tt.prev
			if prev == nil {
				prev = initialView(len(tt.obs))
			}
			at := time.Unix(1000, 0)
			v, ch := computeView(prev, tt.obs, at)
			got := want{primary: v.primary, last: v.last, stale: v.stale, split: v.split, changes: v.changes - prev.changes, changed: ch.primaryChanged}
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(want{})); diff != "" {
				t.Errorf("view (-want +got):\n%s", diff)
			}
			if got.changes > 0 && !v.changedAt.Equal(at) {
				t.Errorf("changedAt = %v, want %v", v.changedAt, at)
			}
			if (len(v.split) > 0) != ch.splitStarted && len(prev.split) == 0 {
				t.Errorf("splitStarted = %v with split %v", ch.splitStarted, v.split)
			}
			for i := range tt.obs {
				if v.isPrimary(i) && v.isReplica(i) {
					t.Errorf("member %d is both primary and replica", i)
				}
				if v.stale[i] && (v.isPrimary(i) || v.isReplica(i)) {
					t.Errorf("stale member %d takes calls", i)
				}
			}
		})
	}
}

// withMax sets a view's highest timeline seen.
func withMax(v *clusterView, tl uint32) *clusterView {
	v.maxTimeline = tl
	return v
}

// prevView builds a previous view.
func prevView(primary, last int, obs []memberObs) *clusterView {
	return &clusterView{obs: obs, primary: primary, last: last, stale: make([]bool, len(obs)), next: make(chan struct{})}
}

// TestNoPrimaryError checks what a call that needed the primary is told.
func TestNoPrimaryError(t *testing.T) {
	p := &RoutedPool{}
	for _, name := range []string{"p", "r1"} {
		p.members = append(p.members, &node{name: name})
	}
	p.members[0].health.down.Store(true)
	p.members[0].health.setErr(errors.New("dial tcp 127.0.0.1:5432: connection refused (password=secret)"))
	v := prevView(-1, 0, []memberObs{{role: roleIsPrimary, timeline: 1}, {up: true, role: roleIsReplica, timeline: 1}})
	err := p.noPrimary(v, nil)
	for _, target := range []error{ErrNoPrimary, ErrNoHealthyNode} {
		if !errors.Is(err, target) {
			t.Errorf("%v does not wrap %v", err, target)
		}
	}
	if errors.Is(err, ErrSplitBrain) {
		t.Errorf("%v wraps ErrSplitBrain", err)
	}
	for _, want := range []string{`"p" primary on timeline 1 (down: `, "connection refused", `"r1" replica on timeline 1`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q does not say %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "secret") {
		t.Errorf("%q shows a password", err)
	}

	split := prevView(-1, 0, []memberObs{{up: true, role: roleIsPrimary, timeline: 3}, {up: true, role: roleIsPrimary, timeline: 3}})
	split.split = []int{0, 1}
	err = p.noPrimary(split, errors.New("context deadline exceeded"))
	if !errors.Is(err, ErrSplitBrain) || !errors.Is(err, ErrNoPrimary) {
		t.Errorf("%v: want ErrSplitBrain and ErrNoPrimary", err)
	}
	if !strings.Contains(err.Error(), `split brain: "p" and "r1" both report being the primary on timeline 3`) {
		t.Errorf("%q does not name both", err)
	}
}
