package balancer

import "fmt"

// smoothSequence returns one period of the smooth weighted round-robin order
// (the nginx algorithm) for the gcd-reduced weights: at every step each node's
// current value grows by its weight, the node with the largest current value
// (the lowest index on a tie) is chosen and its current value drops by the
// sum of the weights. After one period every current value is back to zero,
// so the period repeats forever and can be replayed with a counter.
func smoothSequence(weights []int) ([]uint16, error) {
	g := weights[0]
	for _, w := range weights[1:] {
		g = gcd(g, w)
	}
	reduced := make([]int, len(weights))
	total := 0
	for i, w := range weights {
		reduced[i] = w / g
		total += reduced[i]
	}
	if total > MaxPeriod {
		return nil, fmt.Errorf("balancer: %w: round-robin period %d (sum of weights / their gcd %d) exceeds %d; use smaller or more even weights",
			ErrBadWeight, total, g, MaxPeriod)
	}
	seq := make([]uint16, total)
	current := make([]int, len(weights))
	for step := range seq {
		best := 0
		for i, w := range reduced {
			current[i] += w
			if current[i] > current[best] {
				best = i
			}
		}
		current[best] -= total
		seq[step] = uint16(best)
	}
	return seq, nil
}

// pickRoundRobin hands out the positions of the smooth sequence with one
// atomic counter. When the scheduled node is not usable, its turn is given to
// the next usable entry after a second, shared cursor that sweeps the
// sequence. Every sweep gives each usable node exactly its weight of turns, so
// the turns of unusable nodes are shared among the usable ones in proportion
// to their weights, interleaved.
func (b *Balancer) pickRoundRobin(nodes Nodes) int {
	period := uint64(len(b.seq))
	i := int(b.seq[(b.next.Add(1)-1)%period])
	if nodes == nil || nodes.Usable(i) {
		return i
	}
	var u usableSet
	u.note(i, false) // the answer just received
	for {
		start := b.cursor.Load()
		for k := range period {
			pos := start + k
			node := int(b.seq[pos%period])
			if u.has(nodes, node) {
				if b.cursor.CompareAndSwap(start, pos+1) {
					return node
				}
				break // another pick moved the cursor: walk again from there
			}
			if u.exhausted(len(b.weights)) {
				return -1
			}
		}
		if u.nUsable == 0 {
			return -1 // walked a whole period without a usable node
		}
	}
}
