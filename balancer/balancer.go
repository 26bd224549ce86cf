// Package balancer picks a node of a weighted group: smooth weighted
// round-robin, weighted random, least-busy of two. Lock-free and
// allocation-free.
//
// A [Balancer] is built once per group with [New] from the nodes' weights and
// is then shared by every caller: [Balancer.Pick] takes no lock (it uses a few
// atomic counters only), allocates nothing and is safe for concurrent use.
// Which nodes may be picked right now, and how busy they are, is asked of a
// [Nodes] value passed to every call, so health and load are never copied
// into the balancer.
//
// Limits: a balancer holds at most [MaxNodes] nodes, each weight is between 1
// and [MaxWeight], and for [RoundRobin] the period of the smooth sequence (the
// sum of the weights divided by their greatest common divisor) is at most
// [MaxPeriod]. New reports anything else as [ErrBadWeight].
package balancer

import (
	"errors"
	"fmt"
	"math/bits"
	"strings"
	"sync/atomic"
)

// Strategy names how a [Balancer] picks a node.
type Strategy uint8

const (
	// RoundRobin is smooth weighted round-robin (the nginx algorithm): over
	// every period of the summed weights each node is picked exactly its
	// weight times, interleaved rather than in runs. It is the zero value.
	RoundRobin Strategy = iota
	// Random picks a node at random with probability proportional to its
	// weight.
	Random
	// LeastBusy makes two independent weighted random picks and returns the
	// one with fewer calls in flight (the first of the two on a tie).
	LeastBusy

	numStrategies
)

var strategyNames = [numStrategies]string{
	RoundRobin: "round-robin",
	Random:     "random",
	LeastBusy:  "least-busy",
}

// String returns the strategy's name: "round-robin", "random" or
// "least-busy". An unknown value prints as "Strategy(N)".
func (s Strategy) String() string {
	if s < numStrategies {
		return strategyNames[s]
	}
	return fmt.Sprintf("Strategy(%d)", uint8(s))
}

// ParseStrategy returns the strategy named s. The match ignores case and the
// separators '-', '_' and ' ', so "round-robin", "RoundRobin", "least_busy"
// and "LEASTBUSY" are all accepted. An unknown name gives an error wrapping
// [ErrUnknownStrategy].
func ParseStrategy(s string) (Strategy, error) {
	key := strings.Map(func(r rune) rune {
		switch r {
		case '-', '_', ' ':
			return -1
		}
		return r
	}, strings.ToLower(strings.TrimSpace(s)))
	for st, name := range strategyNames {
		if key == strings.ReplaceAll(name, "-", "") {
			return Strategy(st), nil
		}
	}
	return 0, fmt.Errorf("balancer: %w %q (want round-robin, random or least-busy)", ErrUnknownStrategy, s)
}

var (
	// ErrUnknownStrategy is wrapped by the errors of [ParseStrategy] and of
	// [New] for a name or value that is not a known [Strategy].
	ErrUnknownStrategy = errors.New("unknown balancing strategy")
	// ErrBadWeight is wrapped by the errors of [New] when a weight is below 1
	// or above [MaxWeight], when there are more than [MaxNodes] nodes, or when
	// the round-robin period would exceed [MaxPeriod].
	ErrBadWeight = errors.New("bad node weight")
)

const (
	// MaxWeight is the largest weight [New] accepts.
	MaxWeight = 1 << 16
	// MaxNodes is the largest number of nodes [New] accepts.
	MaxNodes = 1 << 10
	// MaxPeriod bounds the length of the precomputed [RoundRobin] sequence:
	// the sum of the weights divided by their greatest common divisor must not
	// exceed it. Weights {3, 1} have period 4, {200, 100} period 3, and
	// {65536, 1} (period 65537) is refused.
	MaxPeriod = 1 << 16
)

// Nodes is what a pick looks at: whether node i may be picked now, and its
// calls in flight. i ranges over [0, Len). Implementations must be safe for
// concurrent use; a pick may call each method several times.
type Nodes interface {
	// Usable reports whether node i may be picked now (healthy, not
	// draining, within its lag budget, ...).
	Usable(i int) bool
	// InFlight returns the number of calls currently running on node i. Only
	// LeastBusy looks at it.
	InFlight(i int) int64
}

// Options tunes a [Balancer]. The zero value is ready to use.
type Options struct {
	// Seed, when non-zero, makes Random and LeastBusy deterministic: the same
	// seed and the same sequence of calls (from one goroutine) give the same
	// picks. Zero: seeded from the runtime.
	Seed uint64
}

// cacheLine is the padding put around the hot atomic counters so that their
// writes do not invalidate the read-only fields every Pick reads.
const cacheLine = 64

// Balancer picks one node of a weighted group per call. Build it with [New];
// it is immutable afterwards except for its internal atomic counters, and all
// its methods are safe for concurrent use.
type Balancer struct {
	strategy Strategy
	weights  []int // as given to New

	// RoundRobin: one period of the smooth sequence of the gcd-reduced
	// weights.
	seq []uint16

	// Random, LeastBusy: cum[i] is the sum of weights[0..i]; total the sum.
	cum   []uint32
	total uint32
	seed  uint64 // 0: draw from math/rand/v2

	_ [cacheLine]byte
	// next counts RoundRobin picks (position in seq) or, with a seed, random
	// draws.
	next atomic.Uint64
	_    [cacheLine - 8]byte
	// cursor is the RoundRobin position the fallback walk resumes from when
	// the scheduled node is not usable.
	cursor atomic.Uint64
	_      [cacheLine - 8]byte
}

// New returns a balancer over len(weights) nodes; every weight must be >= 1
// (the caller maps 0 to 1 before) and at most [MaxWeight], there may be at
// most [MaxNodes] weights, and for RoundRobin the reduced sum must not exceed
// [MaxPeriod]. Errors wrap [ErrBadWeight] or [ErrUnknownStrategy]. An empty
// weights gives a balancer whose Pick always returns -1. New copies weights.
//
// For RoundRobin, New precomputes one period of the smooth sequence in
// O(len(weights) × period) time and 2 bytes per entry: at the limits
// (1024 nodes, period 65536) that is about 128 KiB and a fraction of a second.
func New(s Strategy, weights []int, opts Options) (*Balancer, error) {
	if s >= numStrategies {
		return nil, fmt.Errorf("balancer: %w %v", ErrUnknownStrategy, s)
	}
	if len(weights) > MaxNodes {
		return nil, fmt.Errorf("balancer: %w: %d nodes, at most %d allowed", ErrBadWeight, len(weights), MaxNodes)
	}
	for i, w := range weights {
		if w < 1 || w > MaxWeight {
			return nil, fmt.Errorf("balancer: %w: node %d has weight %d, want 1..%d", ErrBadWeight, i, w, MaxWeight)
		}
	}
	b := &Balancer{
		strategy: s,
		weights:  append([]int(nil), weights...),
		seed:     opts.Seed,
	}
	if len(weights) == 0 {
		return b, nil
	}
	if s == RoundRobin {
		seq, err := smoothSequence(weights)
		if err != nil {
			return nil, err
		}
		b.seq = seq
	} else {
		b.cum = make([]uint32, len(weights))
		var sum uint32 // at most MaxNodes*MaxWeight = 1<<26
		for i, w := range weights {
			sum += uint32(w)
			b.cum[i] = sum
		}
		b.total = sum
	}
	return b, nil
}

// Pick returns the index of the chosen node, or -1 when none is usable (or
// the balancer has no nodes). nodes may be nil: every node is usable and has
// nothing in flight. Pick takes no lock, allocates nothing and is safe for
// concurrent use.
func (b *Balancer) Pick(nodes Nodes) int {
	switch len(b.weights) {
	case 0:
		return -1
	case 1:
		if nodes == nil || nodes.Usable(0) {
			return 0
		}
		return -1
	}
	switch b.strategy {
	case RoundRobin:
		return b.pickRoundRobin(nodes)
	case Random:
		return b.pickRandom(nodes)
	default:
		return b.pickLeastBusy(nodes)
	}
}

// Len returns the number of nodes.
func (b *Balancer) Len() int { return len(b.weights) }

// Strategy returns the strategy b was built with.
func (b *Balancer) Strategy() Strategy { return b.strategy }

// Weight returns the weight of node i as given to [New]. It panics if i is
// out of range.
func (b *Balancer) Weight(i int) int { return b.weights[i] }

// usableSet remembers, for one Pick, which nodes were asked about and which
// of them are usable, so that a fallback path asks Nodes.Usable at most once
// per node and sees one consistent answer. It lives on the stack.
type usableSet struct {
	asked, usable [MaxNodes / 64]uint64
	nAsked        int // distinct nodes asked
	nUsable       int // distinct nodes found usable
}

// has reports whether node i is usable, asking nodes the first time.
func (u *usableSet) has(nodes Nodes, i int) bool {
	word, bit := i/64, uint64(1)<<(i%64)
	if u.asked[word]&bit == 0 {
		u.note(i, nodes.Usable(i))
	}
	return u.usable[word]&bit != 0
}

// note records the answer usable for node i without asking.
func (u *usableSet) note(i int, usable bool) {
	word, bit := i/64, uint64(1)<<(i%64)
	if u.asked[word]&bit != 0 {
		return
	}
	u.asked[word] |= bit
	u.nAsked++
	if usable {
		u.usable[word] |= bit
		u.nUsable++
	}
}

// exhausted reports whether all n nodes were asked and none is usable.
func (u *usableSet) exhausted(n int) bool { return u.nAsked == n && u.nUsable == 0 }

// gcd returns the greatest common divisor of two positive ints.
func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// mulHi maps a uniform 64-bit x to [0, n) by taking the high word of x*n.
// The bias is below n/2^64, under 2^-38 for every n used here.
func mulHi(x uint64, n uint32) uint32 {
	hi, _ := bits.Mul64(x, uint64(n))
	return uint32(hi)
}
