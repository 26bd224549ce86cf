package pgxroute

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// TestComputeView runs the cluster view's transition function over every
// role change, split brain, ejection and re-admission, without a server.
func TestComputeView(t *testing.T) {
	const (
		P = rolePrimary
		R = roleReplica
	)
	topo := &topology{members: []int{0, 1, 2}, followsRoles: true}
	up := func(r role, tli uint32) nodeState {
		return nodeState{role: r, probe: &probeResult{timeline: tli, recovery: r == roleReplica}}
	}
	down := func(r role, tli uint32) nodeState {
		s := up(r, tli)
		s.down = true
		return s
	}
	type want struct {
		primary, last int
		stale         []bool
		split         []int
		changes       int64
		changed       bool
	}
	tests := []struct {
		name string
		prev *snapshot // nil: the configured snapshot of 3 members
		obs  []nodeState
		want want
	}{
		{
			name: "probes confirm the configuration",
			obs:  []nodeState{up(P, 1), up(R, 1), up(R, 1)},
			want: want{primary: 0, last: 0, stale: []bool{false, false, false}},
		},
		{
			name: "no probe yet: the configured roles stand",
			obs:  initialSnapshot(memOf(3, topo)).nodes,
			want: want{primary: 0, last: 0, stale: []bool{false, false, false}},
		},
		{
			name: "the configuration was wrong: the second member is the primary",
			obs:  []nodeState{up(R, 2), up(P, 2), up(R, 2)},
			want: want{primary: 1, last: 1, stale: []bool{false, false, false}, changes: 1, changed: true},
		},
		{
			name: "primary ejected: none known, the last one kept for positions",
			obs:  []nodeState{down(P, 1), up(R, 1), up(R, 1)},
			want: want{primary: -1, last: 0, stale: []bool{false, false, false}, changed: true},
		},
		{
			name: "primary suspect (not up): none known",
			obs:  []nodeState{{suspect: true, role: P, probe: &probeResult{timeline: 1}}, up(R, 1), up(R, 1)},
			want: want{primary: -1, last: 0, stale: []bool{false, false, false}, changed: true},
		},
		{
			name: "failover: r1 promoted while the old primary is down",
			prev: prevView(-1, 0, []nodeState{down(P, 1), up(R, 1), up(R, 1)}),
			obs:  []nodeState{down(P, 1), up(P, 2), up(R, 1)},
			want: want{primary: 1, last: 1, stale: []bool{false, false, false}, changes: 1, changed: true},
		},
		{
			name: "switchover: the primary reports recovery before r1 is promoted",
			obs:  []nodeState{up(R, 1), up(R, 1), up(R, 1)},
			want: want{primary: -1, last: 0, stale: []bool{false, false, false}, changed: true},
		},
		{
			name: "the old primary is re-admitted as a replica: no change",
			prev: prevView(1, 1, []nodeState{down(P, 1), up(P, 2), up(R, 2)}),
			obs:  []nodeState{up(R, 2), up(P, 2), up(R, 2)},
			want: want{primary: 1, last: 1, stale: []bool{false, false, false}},
		},
		{
			name: "the same primary re-admitted after an ejection is not a change",
			prev: prevView(-1, 0, []nodeState{down(P, 1), up(R, 1), up(R, 1)}),
			obs:  []nodeState{up(P, 1), up(R, 1), up(R, 1)},
			want: want{primary: 0, last: 0, stale: []bool{false, false, false}, changed: true},
		},
		{
			name: "split brain: the old primary back as a primary on the lower timeline is stale",
			prev: prevView(1, 1, []nodeState{down(P, 1), up(P, 2), up(R, 2)}),
			obs:  []nodeState{up(P, 1), up(P, 2), up(R, 2)},
			want: want{primary: 1, last: 1, stale: []bool{true, false, false}},
		},
		{
			name: "split brain on equal timelines: no primary, both named",
			prev: prevView(1, 1, []nodeState{down(P, 2), up(P, 2), up(R, 2)}),
			obs:  []nodeState{up(P, 2), up(P, 2), up(R, 2)},
			want: want{primary: -1, last: 1, stale: []bool{false, false, false}, split: []int{0, 1}, changed: true},
		},
		{
			name: "a stale primary that is down is not stale (it takes nothing anyway)",
			prev: prevView(1, 1, []nodeState{down(P, 1), up(P, 2), up(R, 2)}),
			obs:  []nodeState{down(P, 1), up(P, 2), up(R, 2)},
			want: want{primary: 1, last: 1, stale: []bool{false, false, false}},
		},
		{
			name: "the old primary back as a primary while the new one is down: stale, no primary",
			prev: withMax(prevView(-1, 1, []nodeState{down(R, 1), down(P, 2), up(R, 2)}), 2),
			obs:  []nodeState{up(P, 1), down(P, 2), up(R, 2)},
			want: want{primary: -1, last: 1, stale: []bool{true, false, false}},
		},
		{
			name: "a primary whose timeline is unknown (no WAL functions) is not compared",
			prev: withMax(prevView(0, 0, []nodeState{up(P, 0), up(R, 0), up(R, 0)}), 0),
			obs:  []nodeState{up(P, 0), up(R, 0), up(R, 0)},
			want: want{primary: 0, last: 0, stale: []bool{false, false, false}},
		},
		{
			name: "failing back to the first primary counts a change",
			prev: prevView(1, 1, []nodeState{up(R, 2), up(P, 2), up(R, 2)}),
			obs:  []nodeState{up(P, 3), up(R, 3), up(R, 3)},
			want: want{primary: 0, last: 0, stale: []bool{false, false, false}, changes: 1, changed: true},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prev := tt.prev
			if prev == nil {
				prev = initialSnapshot(memOf(len(tt.obs), topo))
			}
			at := time.Unix(1000, 0)
			v, ch := computeSnapshot(prev, slices.Clone(tt.obs), topo, at)
			var stale []bool
			for _, n := range v.nodes {
				stale = append(stale, n.stale)
			}
			got := want{primary: v.primary, last: v.last, stale: stale, split: v.split, changes: v.changes - prev.changes, changed: ch.primaryChanged}
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(want{})); diff != "" {
				t.Errorf("view (-want +got):\n%s", diff)
			}
			if got.changes > 0 && !v.changedAt.Equal(at) {
				t.Errorf("changedAt = %v, want %v", v.changedAt, at)
			}
			if (len(v.split) > 0) != ch.splitStarted && len(prev.split) == 0 {
				t.Errorf("splitStarted = %v with split %v", ch.splitStarted, v.split)
			}
			for i, n := range v.nodes {
				replica := n.role == roleReplica && !n.stale
				if i == v.primary && replica {
					t.Errorf("member %d is both primary and replica", i)
				}
				if n.stale && i == v.primary {
					t.Errorf("stale member %d takes writes", i)
				}
			}
		})
	}
}

// withMax sets a snapshot's highest timeline seen.
func withMax(v *snapshot, tl uint32) *snapshot {
	v.maxTimeline = tl
	return v
}

// prevView builds a previous snapshot.
func prevView(primary, last int, nodes []nodeState) *snapshot {
	return &snapshot{nodes: nodes, primary: primary, last: last, next: make(chan struct{})}
}

// TestNoPrimaryError checks what a call that needed the primary is told.
func TestNoPrimaryError(t *testing.T) {
	p := &RoutedPool{}
	mem := memOf(2, &topology{members: []int{0, 1}})
	mem.nodes[0].name, mem.nodes[1].name = "p", "r1"
	primary := nodeState{down: true, role: rolePrimary, probe: &probeResult{timeline: 1}}
	primary, _ = nextNodeState(primary, outcome{kind: callFailed, err: errors.New("dial tcp 127.0.0.1:5432: connection refused (password=secret)")}, healthRules{})
	v := prevView(-1, 0, []nodeState{primary, {role: roleReplica, probe: &probeResult{timeline: 1, recovery: true}}})
	v.mem = mem
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

	split := prevView(-1, 0, []nodeState{{role: rolePrimary, probe: &probeResult{timeline: 3}}, {role: rolePrimary, probe: &probeResult{timeline: 3}}})
	split.mem = mem
	split.split = []int{0, 1}
	err = p.noPrimary(split, errors.New("context deadline exceeded"))
	if !errors.Is(err, ErrSplitBrain) || !errors.Is(err, ErrNoPrimary) {
		t.Errorf("%v: want ErrSplitBrain and ErrNoPrimary", err)
	}
	if !strings.Contains(err.Error(), `split brain: "p" and "r1" both report being the primary on timeline 3`) {
		t.Errorf("%q does not name both", err)
	}
}

// TestNextNodeState runs a node's health transitions over every ejection,
// suspicion, re-admission and role change, without a server.
func TestNextNodeState(t *testing.T) {
	rules := healthRules{failuresToEject: 2, successesToReadmit: 2, ejectOnCall: true}
	refused := errors.New("dial tcp 127.0.0.1:1: connect: connection refused")
	timeout := context.DeadlineExceeded
	primary := &probeResult{seq: 1, timeline: 1, lsn: 100}
	replica := &probeResult{seq: 1, timeline: 1, lsn: 90, recovery: true}
	answered := func(r *probeResult) outcome { return outcome{kind: probeAnswered, probe: r} }
	failed := func(err error) outcome { return outcome{kind: probeFailed, err: err} }
	callErr := outcome{kind: callFailed, err: refused}
	type step struct {
		o      outcome
		state  NodeState
		events []HealthEventKind
		act    string // "interrupt", "reset", "probe": the actions asked for, in that order
	}
	tests := []struct {
		name  string
		start nodeState
		rules func(*healthRules)
		steps []step
	}{
		{
			name: "refused probes: ejected after FailuresToEject, the calls interrupted",
			steps: []step{
				{o: failed(refused), state: StateUp},
				{o: failed(refused), state: StateDown, events: []HealthEventKind{EventEjected}, act: "interrupt probe"},
				{o: failed(refused), state: StateDown},
			},
		},
		{
			name: "a probe unanswered past its timeout: suspect at once, then ejected",
			steps: []step{
				{o: failed(timeout), state: StateSuspect, events: []HealthEventKind{EventSuspect}, act: "interrupt probe"},
				{o: failed(timeout), state: StateSuspect, events: []HealthEventKind{EventEjected}, act: "interrupt probe"},
				{o: answered(replica), state: StateDown, events: []HealthEventKind{EventAnswering}},
				{o: answered(replica), state: StateUp, events: []HealthEventKind{EventReadmitted}},
			},
		},
		{
			name:  "re-admission needs SuccessesToReadmit in a row",
			start: nodeState{down: true, interrupted: true, role: roleReplica, probe: replica},
			steps: []step{
				{o: answered(replica), state: StateDown},
				{o: failed(refused), state: StateDown},
				{o: answered(replica), state: StateDown},
				{o: answered(replica), state: StateUp, events: []HealthEventKind{EventReadmitted}},
			},
		},
		{
			name: "one failed probe between good ones ejects nothing",
			steps: []step{
				{o: answered(primary), state: StateUp},
				{o: failed(refused), state: StateUp},
				{o: answered(primary), state: StateUp},
				{o: failed(refused), state: StateUp},
			},
		},
		{
			name: "a call's connection failure ejects at once and drops the idle connections",
			steps: []step{
				{o: callErr, state: StateDown, events: []HealthEventKind{EventEjected}, act: "reset probe"},
				{o: callErr, state: StateDown},
			},
		},
		{
			name: "ejected by a call, then a probe fails: the calls in flight are interrupted, once",
			steps: []step{
				{o: callErr, state: StateDown, events: []HealthEventKind{EventEjected}, act: "reset probe"},
				{o: failed(refused), state: StateDown, act: "interrupt"},
				{o: failed(refused), state: StateDown},
				{o: failed(refused), state: StateDown},
				{o: answered(replica), state: StateDown},
				{o: answered(replica), state: StateUp, events: []HealthEventKind{EventReadmitted}},
				{o: callErr, state: StateDown, events: []HealthEventKind{EventEjected}, act: "reset probe"},
				{o: failed(refused), state: StateDown, act: "interrupt"},
			},
		},
		{
			name: "a probe started before a call's failure ejected the node re-admits nothing",
			steps: []step{
				{o: outcome{kind: callFailed, err: refused, probesStarted: 5}, state: StateDown, events: []HealthEventKind{EventEjected}, act: "reset probe"},
				{o: answered(&probeResult{seq: 4, timeline: 1, lsn: 100}), state: StateDown},
				{o: answered(&probeResult{seq: 5, timeline: 1, lsn: 100}), state: StateDown},
				{o: answered(&probeResult{seq: 6, timeline: 1, lsn: 100}), state: StateDown},
				{o: answered(&probeResult{seq: 7, timeline: 1, lsn: 100}), state: StateUp, events: []HealthEventKind{EventReadmitted}},
			},
		},
		{
			name:  "with health checks off a call's failure is only remembered",
			rules: func(r *healthRules) { r.ejectOnCall = false },
			steps: []step{{o: callErr, state: StateUp}},
		},
		{
			name:  "a member promoted: its role changes",
			start: nodeState{role: roleReplica, probe: replica},
			steps: []step{{o: answered(primary), state: StateUp, events: []HealthEventKind{EventRoleChanged}}},
		},
		{
			name:  "the first probe confirms nothing: no role change from the configured guess",
			start: nodeState{role: roleReplica},
			steps: []step{{o: answered(primary), state: StateUp}},
		},
		{
			name:  "a node added while the pool runs takes calls from its first answered probe",
			start: nodeState{joining: true},
			steps: []step{
				{o: failed(refused), state: StateJoining},
				{o: failed(refused), state: StateJoining},
				{o: failed(timeout), state: StateJoining},
				{o: answered(replica), state: StateUp, events: []HealthEventKind{EventNodeJoined}},
			},
		},
		{
			name:  "a node added answers at once",
			start: nodeState{joining: true},
			steps: []step{{o: answered(replica), state: StateUp, events: []HealthEventKind{EventNodeJoined}}},
		},
		{
			name:  "static roles: a default-group node in recovery is reported once",
			rules: func(r *healthRules) { r.expect = rolePrimary },
			steps: []step{
				{o: answered(replica), state: StateUp, events: []HealthEventKind{EventRoleMismatch}},
				{o: answered(replica), state: StateUp},
				{o: answered(primary), state: StateUp, events: []HealthEventKind{EventRoleChanged}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := rules
			if tt.rules != nil {
				tt.rules(&r)
			}
			s := tt.start
			for i, st := range tt.steps {
				var tr transition
				s, tr = nextNodeState(s, st.o, r)
				var kinds []HealthEventKind
				for _, e := range tr.events {
					kinds = append(kinds, e.kind)
				}
				var act []string
				for _, a := range []struct {
					on   bool
					name string
				}{{tr.interrupt, "interrupt"}, {tr.resetPool, "reset"}, {tr.probeNow, "probe"}} {
					if a.on {
						act = append(act, a.name)
					}
				}
				got := step{o: st.o, state: s.state(), events: kinds, act: strings.Join(act, " ")}
				if diff := cmp.Diff(st, got, cmp.AllowUnexported(step{}, outcome{}, probeResult{}), cmpopts.EquateErrors()); diff != "" {
					t.Errorf("step %d (-want +got):\n%s", i, diff)
				}
				if st.o.err != nil && s.lastErr == "" {
					t.Errorf("step %d: the error is not remembered", i)
				}
			}
		})
	}
}

// TestComputeSnapshotLag covers a replica's lag flags: by time, by bytes
// against the primary's position, and their events.
func TestComputeSnapshotLag(t *testing.T) {
	topo := &topology{members: []int{0, 1}, followsRoles: true, maxLag: time.Second, maxLagBytes: 1000}
	prev := initialSnapshot(memOf(2, topo))
	at := func(lsn uint64, lag time.Duration) []nodeState {
		return []nodeState{
			{role: rolePrimary, probe: &probeResult{lsn: 10_000, timeline: 1}},
			{role: roleReplica, probe: &probeResult{lsn: lsn, lag: lag, timeline: 1, recovery: true}},
		}
	}
	tests := []struct {
		name    string
		nodes   []nodeState
		lagging bool
		bytes   int64
	}{
		{name: "within both limits", nodes: at(9_500, 10*time.Millisecond), bytes: 500},
		{name: "beyond the time limit", nodes: at(9_900, 2*time.Second), lagging: true, bytes: 100},
		{name: "beyond the byte limit", nodes: at(8_000, 0), lagging: true, bytes: 2000},
		{name: "ahead of the primary's last probe: no distance", nodes: at(10_500, 0), bytes: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, ch := computeSnapshot(prev, tt.nodes, topo, time.Now())
			r := v.nodes[1]
			if r.lagging != tt.lagging || r.lagBytes != tt.bytes {
				t.Errorf("lagging %v, %d bytes; want %v, %d", r.lagging, r.lagBytes, tt.lagging, tt.bytes)
			}
			if changed := slices.Contains(ch.laggingChanged, 1); changed != tt.lagging {
				t.Errorf("lagging change reported: %v, want %v", changed, tt.lagging)
			}
			if v.nodes[0].lagging {
				t.Errorf("the primary lags")
			}
		})
	}
}

// memOf is a membership of n nodes named n0, n1... with topology t.
func memOf(n int, t *topology) *membership {
	m := &membership{topo: *t, expect: make([]role, n), noReads: make([]bool, n)}
	for i := range n {
		m.nodes = append(m.nodes, &node{name: fmt.Sprint("n", i), index: i})
	}
	return m
}
