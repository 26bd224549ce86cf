package balancer

import (
	"fmt"
	"testing"
)

// benchNodes returns n weights (1..4) and a Nodes with every node usable and
// a varying number of calls in flight.
func benchNodes(n int) ([]int, *fakeNodes) {
	weights := make([]int, n)
	nodes := &fakeNodes{down: make([]bool, n), inFlight: make([]int64, n)}
	for i := range weights {
		weights[i] = i%4 + 1
		nodes.inFlight[i] = int64(i % 5)
	}
	return weights, nodes
}

func BenchmarkPick(b *testing.B) {
	for _, s := range allStrategies {
		for _, n := range []int{1, 8, 64} {
			b.Run(fmt.Sprintf("%v/nodes=%d", s, n), func(b *testing.B) {
				weights, nodes := benchNodes(n)
				bal := mustNew(b, s, weights, 0)
				b.ReportAllocs()
				for b.Loop() {
					bal.Pick(nodes)
				}
			})
		}
	}
}

// BenchmarkPickParallel runs Pick over 8 nodes from many goroutines. As with
// b.SetParallelism, goroutines=N starts N goroutines per GOMAXPROCS.
func BenchmarkPickParallel(b *testing.B) {
	for _, s := range allStrategies {
		for _, g := range []int{2, 8, 64} {
			b.Run(fmt.Sprintf("%v/goroutines=%d", s, g), func(b *testing.B) {
				weights, nodes := benchNodes(8)
				bal := mustNew(b, s, weights, 0)
				b.ReportAllocs()
				b.SetParallelism(g)
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						bal.Pick(nodes)
					}
				})
			})
		}
	}
}
