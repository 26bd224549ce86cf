package balancer_test

import (
	"errors"
	"fmt"

	"github.com/pgxroute/pgxroute/balancer"
)

func ExampleNew() {
	// A primary-heavy group: node 0 has weight 5, two replicas weight 1.
	b, err := balancer.New(balancer.RoundRobin, []int{5, 1, 1}, balancer.Options{})
	if err != nil {
		panic(err)
	}
	picks := make([]int, 7)
	for i := range picks {
		picks[i] = b.Pick(nil)
	}
	fmt.Println(picks)

	_, err = balancer.New(balancer.Random, []int{1, 0}, balancer.Options{})
	fmt.Println(errors.Is(err, balancer.ErrBadWeight))
	// Output:
	// [0 0 1 0 2 0 0]
	// true
}

// replicas is what a group would pass to Pick: health and load of each node.
type replicas struct {
	up       []bool
	inFlight []int64
}

func (r *replicas) Usable(i int) bool    { return r.up[i] }
func (r *replicas) InFlight(i int) int64 { return r.inFlight[i] }

func ExampleBalancer_Pick() {
	nodes := &replicas{up: []bool{true, true, true}, inFlight: []int64{0, 0, 0}}
	b, _ := balancer.New(balancer.RoundRobin, []int{2, 1, 1}, balancer.Options{})
	fmt.Println(b.Pick(nodes), b.Pick(nodes), b.Pick(nodes), b.Pick(nodes))

	// Node 0 goes down: its turns go to the others, in proportion.
	nodes.up[0] = false
	fmt.Println(b.Pick(nodes), b.Pick(nodes), b.Pick(nodes), b.Pick(nodes))

	// Nothing usable.
	nodes.up[1], nodes.up[2] = false, false
	fmt.Println(b.Pick(nodes))

	// LeastBusy avoids the busy node: of two draws it keeps the idler one.
	// Node 0 wins only when both draws are it: 1/16 of picks, not 1/4.
	lb, _ := balancer.New(balancer.LeastBusy, []int{1, 1, 1, 1}, balancer.Options{Seed: 1})
	busy := &replicas{up: []bool{true, true, true, true}, inFlight: []int64{50, 0, 0, 0}}
	busyPicks := 0
	for range 1000 {
		if lb.Pick(busy) == 0 {
			busyPicks++
		}
	}
	fmt.Println(busyPicks < 100)
	// Output:
	// 0 1 2 0
	// 1 1 2 2
	// -1
	// true
}

func ExampleParseStrategy() {
	for _, name := range []string{"round-robin", "Least_Busy", "RANDOM", "fastest"} {
		s, err := balancer.ParseStrategy(name)
		if err != nil {
			fmt.Println(errors.Is(err, balancer.ErrUnknownStrategy), err)
			continue
		}
		fmt.Println(s)
	}
	// Output:
	// round-robin
	// least-busy
	// random
	// true balancer: unknown balancing strategy "fastest" (want round-robin, random or least-busy)
}
