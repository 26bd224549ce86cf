package balancer

import "math/rand/v2"

// randomRetries is how many more weighted draws over all nodes a pick makes
// after the first one lands on an unusable node, before it falls back to one
// O(n) weighted draw over the usable nodes only. Each way, a usable node is
// picked with probability proportional to its weight.
const randomRetries = 3

// rand64 returns a uniform 64-bit number. With a seed it is splitmix64 of the
// seed advanced by an atomic counter, so the stream depends only on the seed
// and the number of draws; without one it comes from math/rand/v2's global,
// lock-free source.
func (b *Balancer) rand64() uint64 {
	if b.seed == 0 {
		return rand.Uint64()
	}
	return splitmix64(b.seed + b.next.Add(1)*0x9e3779b97f4a7c15)
}

// splitmix64 is the output function of Steele, Lea and Flood's SplitMix64
// generator, applied to the state z.
func splitmix64(z uint64) uint64 {
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// draw returns a node index drawn with probability proportional to its
// weight, over all nodes.
func (b *Balancer) draw() int {
	r := mulHi(b.rand64(), b.total)
	// The first i with cum[i] > r.
	lo, hi := 0, len(b.cum)-1
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if b.cum[mid] > r {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo
}

// pickRandom returns a usable node drawn with probability proportional to its
// weight among the usable nodes, or -1 when none is usable.
func (b *Balancer) pickRandom(nodes Nodes) int {
	i := b.draw()
	if nodes == nil || nodes.Usable(i) {
		return i
	}
	var u usableSet
	u.note(i, false)
	return b.pickRandomSlow(nodes, &u)
}

// pickRandomSlow is pickRandom after its first draw hit an unusable node.
func (b *Balancer) pickRandomSlow(nodes Nodes, u *usableSet) int {
	for range randomRetries {
		if i := b.draw(); u.has(nodes, i) {
			return i
		}
	}
	var sum uint32
	for i, w := range b.weights {
		if u.has(nodes, i) {
			sum += uint32(w)
		}
	}
	if sum == 0 {
		return -1
	}
	r := mulHi(b.rand64(), sum)
	for i, w := range b.weights {
		if u.has(nodes, i) { // answered above: no new call
			if r < uint32(w) {
				return i
			}
			r -= uint32(w)
		}
	}
	return -1 // unreachable: r < sum
}

// pickLeastBusy makes two independent weighted draws among the usable nodes
// and returns the one with fewer calls in flight, the first on a tie.
func (b *Balancer) pickLeastBusy(nodes Nodes) int {
	if nodes == nil {
		return b.draw() // nothing in flight anywhere: the first draw wins
	}
	first := b.pickRandom(nodes)
	if first < 0 {
		return -1
	}
	second := b.pickRandom(nodes)
	if second >= 0 && second != first && nodes.InFlight(second) < nodes.InFlight(first) {
		return second
	}
	return first
}
