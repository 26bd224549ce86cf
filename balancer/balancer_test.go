package balancer

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// fakeNodes is a Nodes for tests: node i is usable unless down[i], and has
// inFlight[i] calls running. Indices beyond the slices are up and idle.
type fakeNodes struct {
	down     []bool
	inFlight []int64
}

func (f *fakeNodes) Usable(i int) bool { return i >= len(f.down) || !f.down[i] }

func (f *fakeNodes) InFlight(i int) int64 {
	if i < len(f.inFlight) {
		return f.inFlight[i]
	}
	return 0
}

// countingNodes counts Usable calls, all nodes up.
type countingNodes struct{ calls int }

func (c *countingNodes) Usable(int) bool    { c.calls++; return true }
func (c *countingNodes) InFlight(int) int64 { return 0 }

var allStrategies = []Strategy{RoundRobin, Random, LeastBusy}

func mustNew(t testing.TB, s Strategy, weights []int, seed uint64) *Balancer {
	t.Helper()
	b, err := New(s, weights, Options{Seed: seed})
	if err != nil {
		t.Fatalf("New(%v, %v): %v", s, weights, err)
	}
	return b
}

// picks returns n picks in order.
func picks(b *Balancer, nodes Nodes, n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = b.Pick(nodes)
	}
	return out
}

// counts returns how often each node was picked in n picks; a -1 pick fails
// the test.
func counts(t *testing.T, b *Balancer, nodes Nodes, n int) []int {
	t.Helper()
	c := make([]int, b.Len())
	for range n {
		i := b.Pick(nodes)
		if i < 0 || i >= b.Len() {
			t.Fatalf("Pick = %d, want a node in [0, %d)", i, b.Len())
		}
		c[i]++
	}
	return c
}

// checkShares fails when a count is further than tol (relative) from its
// expected share of the total, want being the relative weights (0: never).
func checkShares(t *testing.T, got []int, want []int, tol float64) {
	t.Helper()
	total, wsum := 0, 0
	for i := range got {
		total += got[i]
		wsum += want[i]
	}
	for i := range got {
		exp := float64(total) * float64(want[i]) / float64(wsum)
		if want[i] == 0 {
			if got[i] != 0 {
				t.Errorf("node %d picked %d times, want never (counts %v)", i, got[i], got)
			}
			continue
		}
		if math.Abs(float64(got[i])-exp) > tol*exp {
			t.Errorf("node %d picked %d times, want %.0f ± %.0f%% (counts %v, weights %v)", i, got[i], exp, tol*100, got, want)
		}
	}
}

func TestStrategyString(t *testing.T) {
	got := []string{RoundRobin.String(), Random.String(), LeastBusy.String(), Strategy(9).String()}
	want := []string{"round-robin", "random", "least-busy", "Strategy(9)"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("String (-want +got):\n%s", diff)
	}
}

func TestParseStrategy(t *testing.T) {
	tests := []struct {
		in      string
		want    Strategy
		wantErr bool
	}{
		{"round-robin", RoundRobin, false},
		{"roundrobin", RoundRobin, false},
		{"Round_Robin", RoundRobin, false},
		{"ROUND ROBIN", RoundRobin, false},
		{"random", Random, false},
		{"Random", Random, false},
		{"least-busy", LeastBusy, false},
		{"least_busy", LeastBusy, false},
		{"LeastBusy", LeastBusy, false},
		{" least-busy ", LeastBusy, false},
		{"", 0, true},
		{"rr", 0, true},
		{"fastest", 0, true},
		{"least-busy-2", 0, true},
	}
	for _, tt := range tests {
		got, err := ParseStrategy(tt.in)
		if tt.wantErr {
			if !errors.Is(err, ErrUnknownStrategy) {
				t.Errorf("ParseStrategy(%q) error = %v, want one wrapping ErrUnknownStrategy", tt.in, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseStrategy(%q) = %v, %v; want %v, nil", tt.in, got, err, tt.want)
		}
	}
	// Every name String prints parses back.
	for _, s := range allStrategies {
		if got, err := ParseStrategy(s.String()); err != nil || got != s {
			t.Errorf("ParseStrategy(%q) = %v, %v; want %v", s.String(), got, err, s)
		}
	}
}

func TestNewErrors(t *testing.T) {
	tooMany := make([]int, MaxNodes+1)
	for i := range tooMany {
		tooMany[i] = 1
	}
	tests := []struct {
		name    string
		s       Strategy
		weights []int
		wantErr error
	}{
		{"zero weight", RoundRobin, []int{1, 0}, ErrBadWeight},
		{"negative weight", Random, []int{-1}, ErrBadWeight},
		{"weight too large", LeastBusy, []int{MaxWeight + 1}, ErrBadWeight},
		{"too many nodes", Random, tooMany, ErrBadWeight},
		{"period too long", RoundRobin, []int{MaxWeight, 1}, ErrBadWeight},
		{"unknown strategy", Strategy(3), []int{1}, ErrUnknownStrategy},
		{"long period ok for random", Random, []int{MaxWeight, 1}, nil},
		{"large weights reduce", RoundRobin, []int{MaxWeight, MaxWeight, MaxWeight / 2}, nil},
		{"period at limit", RoundRobin, []int{MaxPeriod - 1, 1}, nil},
		{"max nodes", LeastBusy, tooMany[1:], nil},
		{"max nodes round-robin", RoundRobin, tooMany[1:], nil},
		{"empty", RoundRobin, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := New(tt.s, tt.weights, Options{})
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("New error = %v, want %v", err, tt.wantErr)
			}
			if err == nil && b.Len() != len(tt.weights) {
				t.Errorf("Len = %d, want %d", b.Len(), len(tt.weights))
			}
		})
	}
}

func TestAccessors(t *testing.T) {
	for _, s := range allStrategies {
		weights := []int{4, 2, 6}
		b := mustNew(t, s, weights, 1)
		weights[0] = 100 // New copied them
		got := []int{b.Len(), b.Weight(0), b.Weight(1), b.Weight(2)}
		if diff := cmp.Diff([]int{3, 4, 2, 6}, got); diff != "" {
			t.Errorf("%v: Len, Weights (-want +got):\n%s", s, diff)
		}
		if b.Strategy() != s {
			t.Errorf("Strategy = %v, want %v", b.Strategy(), s)
		}
	}
}

func TestPickEdgeCases(t *testing.T) {
	for _, s := range allStrategies {
		t.Run(s.String(), func(t *testing.T) {
			empty := mustNew(t, s, nil, 1)
			if got := empty.Pick(nil); got != -1 {
				t.Errorf("empty: Pick = %d, want -1", got)
			}
			one := mustNew(t, s, []int{3}, 1)
			if got := picks(one, nil, 3); !cmp.Equal(got, []int{0, 0, 0}) {
				t.Errorf("one node: picks %v, want all 0", got)
			}
			if got := one.Pick(&fakeNodes{down: []bool{true}}); got != -1 {
				t.Errorf("one node down: Pick = %d, want -1", got)
			}
			b := mustNew(t, s, []int{1, 5, 2, 3}, 1)
			down := &fakeNodes{down: []bool{true, true, true, true}}
			if got := picks(b, down, 20); !cmp.Equal(got, []int{-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1}) {
				t.Errorf("none usable: picks %v, want all -1", got)
			}
			// One node left: every pick is it.
			oneUp := &fakeNodes{down: []bool{true, true, false, true}}
			for _, got := range picks(b, oneUp, 50) {
				if got != 2 {
					t.Fatalf("only node 2 usable: Pick = %d", got)
				}
			}
		})
	}
}

func TestRoundRobinExact(t *testing.T) {
	tests := []struct {
		weights []int
		period  []int // one period of the nginx smooth order
	}{
		{[]int{1}, []int{0}},
		{[]int{2, 1}, []int{0, 1, 0}},
		{[]int{5, 1, 1}, []int{0, 0, 1, 0, 2, 0, 0}},
		{[]int{1, 1, 1}, []int{0, 1, 2}},
		{[]int{4, 2, 2}, []int{0, 1, 2, 0}}, // reduced to {2, 1, 1}
		{[]int{3, 1}, []int{0, 0, 1, 0}},
		{[]int{1, 2, 3}, []int{2, 1, 0, 2, 1, 2}},
		{[]int{200, 100}, []int{0, 1, 0}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.weights), func(t *testing.T) {
			b := mustNew(t, RoundRobin, tt.weights, 0)
			var want []int
			for range 5 {
				want = append(want, tt.period...)
			}
			if diff := cmp.Diff(want, picks(b, nil, len(want))); diff != "" {
				t.Errorf("five periods (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRoundRobinPeriods(t *testing.T) {
	b := mustNew(t, RoundRobin, []int{2, 1}, 0)
	got := picks(b, &fakeNodes{}, 300)
	total := []int{0, 0}
	for p := 0; p < len(got); p += 3 {
		c := []int{0, 0}
		for _, i := range got[p : p+3] {
			c[i]++
			total[i]++
		}
		if diff := cmp.Diff([]int{2, 1}, c); diff != "" {
			t.Fatalf("period at %d: counts (-want +got):\n%s", p, diff)
		}
	}
	if diff := cmp.Diff([]int{200, 100}, total); diff != "" {
		t.Errorf("300 picks (-want +got):\n%s", diff)
	}

	// {5,1,1}: runs of node 0 are at most what the smooth order itself gives
	// when it repeats, 0 0 1 0 2 0 0 | 0 0 1 ..., i.e. 4 across the wrap.
	b = mustNew(t, RoundRobin, []int{5, 1, 1}, 0)
	run, longest, prev := 0, 0, -1
	for _, i := range picks(b, nil, 700) {
		if i == prev {
			run++
		} else {
			run = 1
		}
		prev, longest = i, max(longest, run)
	}
	if longest != 4 {
		t.Errorf("longest run = %d, want 4 (the smooth order wrapping)", longest)
	}
}

func TestRoundRobinUnusable(t *testing.T) {
	tests := []struct {
		name    string
		weights []int
		down    []bool
		n       int
		want    []int
	}{
		{"{2,1} node 0 down", []int{2, 1}, []bool{true}, 300, []int{0, 300}},
		{"{5,1,1} node 0 down", []int{5, 1, 1}, []bool{true}, 700, []int{0, 350, 350}},
		{"{1,2,3} node 0 down", []int{1, 2, 3}, []bool{true}, 300, []int{0, 120, 180}},
		{"{1,2,3} node 2 down", []int{1, 2, 3}, []bool{false, false, true}, 300, []int{100, 200, 0}},
		{"{3,3,1,1} nodes 1,2 down", []int{3, 3, 1, 1}, []bool{false, true, true}, 800, []int{600, 0, 0, 200}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := mustNew(t, RoundRobin, tt.weights, 0)
			got := counts(t, b, &fakeNodes{down: tt.down}, tt.n)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("counts over %d picks (-want +got):\n%s", tt.n, diff)
			}
		})
	}

	// The remaining nodes stay interleaved: with {5,1,1} and node 0 down,
	// nodes 1 and 2 never run more than twice in a row.
	b := mustNew(t, RoundRobin, []int{5, 1, 1}, 0)
	run, prev := 0, -1
	for k, i := range picks(b, &fakeNodes{down: []bool{true}}, 700) {
		if i == prev {
			run++
		} else {
			run = 1
		}
		prev = i
		if run > 2 {
			t.Fatalf("pick %d: node %d picked %d times in a row", k, i, run)
		}
	}
}

func TestRandomShares(t *testing.T) {
	tests := []struct {
		weights []int
		down    []bool
		want    []int // relative expected shares
	}{
		{[]int{1, 2, 7}, nil, []int{1, 2, 7}},
		{[]int{3, 1}, nil, []int{3, 1}},
		{[]int{1, 1, 1, 1}, nil, []int{1, 1, 1, 1}},
		{[]int{1, 2, 7}, []bool{false, false, true}, []int{1, 2, 0}},
		{[]int{1, 2, 7}, []bool{true}, []int{0, 2, 7}},
		{[]int{5, 1, 1, 3}, []bool{true, false, true}, []int{0, 1, 0, 3}},
	}
	for _, s := range []Strategy{Random, LeastBusy} { // LeastBusy with nothing in flight follows the weights
		for _, tt := range tests {
			t.Run(fmt.Sprint(s, tt.weights, tt.down), func(t *testing.T) {
				b := mustNew(t, s, tt.weights, 42)
				got := counts(t, b, &fakeNodes{down: tt.down}, 100_000)
				checkShares(t, got, tt.want, 0.02)
			})
		}
	}
}

func TestRandomUnseeded(t *testing.T) {
	b := mustNew(t, Random, []int{1, 2, 7}, 0)
	got := counts(t, b, nil, 100_000)
	// Not deterministic: a looser bound (the 1/10 share has a standard
	// deviation of about 1%, so 10% is many deviations away).
	checkShares(t, got, []int{1, 2, 7}, 0.10)
}

func TestSeedRepeatable(t *testing.T) {
	nodes := &fakeNodes{down: []bool{false, true}, inFlight: []int64{3, 0, 1, 5, 2}}
	for _, s := range []Strategy{Random, LeastBusy} {
		t.Run(s.String(), func(t *testing.T) {
			weights := []int{1, 3, 2, 5, 4}
			a := picks(mustNew(t, s, weights, 7), nodes, 1000)
			b := picks(mustNew(t, s, weights, 7), nodes, 1000)
			if diff := cmp.Diff(a, b); diff != "" {
				t.Errorf("same seed, different picks (-first +second):\n%s", diff)
			}
			c := picks(mustNew(t, s, weights, 8), nodes, 1000)
			if cmp.Equal(a, c) {
				t.Errorf("seeds 7 and 8 gave identical picks")
			}
		})
	}
}

func TestLeastBusy(t *testing.T) {
	// Node 0 has many calls in flight: it wins only when both draws are
	// it, (1/4)^2 = 6.25% of picks instead of 25%.
	b := mustNew(t, LeastBusy, []int{1, 1, 1, 1}, 3)
	got := counts(t, b, &fakeNodes{inFlight: []int64{100, 0, 0, 0}}, 100_000)
	if share := float64(got[0]) / 100_000; share < 0.05 || share > 0.075 {
		t.Errorf("busy node share = %.4f, want about 0.0625 (counts %v)", share, got)
	}

	// Strictly ordered load: the least busy node of two wins, so the share
	// falls with the load. Node i (of 4, equal weights) wins when one draw
	// is i and the other is busier: ((4-i)^2 - (3-i)^2) / 16.
	b = mustNew(t, LeastBusy, []int{1, 1, 1, 1}, 3)
	got = counts(t, b, &fakeNodes{inFlight: []int64{0, 1, 2, 3}}, 100_000)
	checkShares(t, got, []int{7, 5, 3, 1}, 0.03)

	// Unusable nodes are never picked, even when idle.
	b = mustNew(t, LeastBusy, []int{1, 1, 1}, 3)
	got = counts(t, b, &fakeNodes{down: []bool{true}, inFlight: []int64{0, 5, 5}}, 10_000)
	if got[0] != 0 {
		t.Errorf("down node picked %d times", got[0])
	}
}

func TestUsableAskedOncePerNode(t *testing.T) {
	// The fallback paths ask each node at most once per pick, however long
	// the round-robin sequence.
	b := mustNew(t, RoundRobin, []int{1000, 1, 1}, 0)
	down := &fakeNodes{down: []bool{true, true, true}}
	var c countingDown
	c.fakeNodes = down
	if got := b.Pick(&c); got != -1 {
		t.Fatalf("Pick = %d, want -1", got)
	}
	if c.calls > 3 {
		t.Errorf("Usable called %d times for 3 nodes", c.calls)
	}
}

type countingDown struct {
	*fakeNodes
	calls int
}

func (c *countingDown) Usable(i int) bool { c.calls++; return c.fakeNodes.Usable(i) }

func TestPickAllocs(t *testing.T) {
	weights := []int{5, 1, 3, 2, 4, 1, 1, 7}
	nodes := &fakeNodes{down: []bool{false, true, false, false, true}, inFlight: []int64{1, 2, 3, 4, 5, 6, 7, 8}}
	allDown := &fakeNodes{down: []bool{true, true, true, true, true, true, true, true}}
	for _, s := range allStrategies {
		for _, seed := range []uint64{0, 1} {
			b := mustNew(t, s, weights, seed)
			for name, n := range map[string]Nodes{"nil": nil, "some down": nodes, "all down": allDown, "counting": &countingNodes{}} {
				if avg := testing.AllocsPerRun(1000, func() { b.Pick(n) }); avg != 0 {
					t.Errorf("%v seed %d nodes %s: %v allocs per Pick, want 0", s, seed, name, avg)
				}
			}
		}
	}
}

// atomicNodes is a Nodes whose state other goroutines change.
type atomicNodes struct {
	down     []atomic.Bool
	inFlight []atomic.Int64
}

func (a *atomicNodes) Usable(i int) bool    { return !a.down[i].Load() }
func (a *atomicNodes) InFlight(i int) int64 { return a.inFlight[i].Load() }

func TestConcurrent(t *testing.T) {
	const goroutines, perG = 8, 2100 // 8*2100 is a multiple of 7
	for _, s := range allStrategies {
		for _, seed := range []uint64{0, 99} {
			t.Run(fmt.Sprint(s, "/seed=", seed), func(t *testing.T) {
				b := mustNew(t, s, []int{5, 1, 1}, seed)
				nodes := &atomicNodes{down: make([]atomic.Bool, 3), inFlight: make([]atomic.Int64, 3)}
				var total [3]atomic.Int64
				var bad atomic.Int64
				var wg sync.WaitGroup
				for g := range goroutines {
					wg.Go(func() {
						for k := range perG {
							if g == 0 && k%100 == 0 { // flap node 1
								nodes.down[1].Store(k%200 == 0)
							}
							i := b.Pick(nodes)
							if i < 0 || i > 2 {
								bad.Add(1)
								continue
							}
							nodes.inFlight[i].Add(1)
							total[i].Add(1)
							nodes.inFlight[i].Add(-1)
						}
					})
				}
				wg.Wait()
				if bad.Load() != 0 {
					t.Errorf("%d picks out of range", bad.Load())
				}
				if sum := total[0].Load() + total[1].Load() + total[2].Load(); sum != goroutines*perG {
					t.Errorf("picks = %d, want %d", sum, goroutines*perG)
				}
			})
		}
	}

	// Without unusable nodes, concurrent round-robin callers share one
	// counter: the totals are exact.
	b := mustNew(t, RoundRobin, []int{5, 1, 1}, 0)
	var total [3]atomic.Int64
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() {
			for range perG {
				total[b.Pick(nil)].Add(1)
			}
		})
	}
	wg.Wait()
	got := []int64{total[0].Load(), total[1].Load(), total[2].Load()}
	want := []int64{goroutines * perG * 5 / 7, goroutines * perG / 7, goroutines * perG / 7}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("concurrent round-robin counts (-want +got):\n%s", diff)
	}
}
