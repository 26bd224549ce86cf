package otel_test

import (
	"fmt"
	"slices"
	"strings"

	"github.com/pgxroute/pgxroute/routingtest"
)

// nodePorts maps the pool's node names to the servers' ports.
func nodePorts(c *routingtest.Cluster) map[string]int {
	m := map[string]int{"primary": c.Primary().Port()}
	for i, r := range c.Replicas() {
		m[fmt.Sprintf("replica%d", i+1)] = r.Port()
	}
	return m
}

// sortedLines sorts lines for stable comparison.
func sortedLines(lines []string) string {
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}
