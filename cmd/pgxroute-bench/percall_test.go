package main

import (
	"testing"

	"github.com/pgxroute/pgxroute/internal/costbench"
)

func TestBootstrapMedian(t *testing.T) {
	if lo, hi := bootstrapMedian([]float64{1.02, 1.02, 1.02}); lo != 1.02 || hi != 1.02 {
		t.Errorf("constant rounds: %v – %v, want 1.02 – 1.02", lo, hi)
	}
	v := []float64{0.90, 0.95, 0.98, 1.00, 1.01, 1.02, 1.03, 1.05, 1.10, 1.30, 0.99}
	med, min, max := costbench.MedianRange(v)
	lo, hi := bootstrapMedian(v)
	if !(min <= lo && lo < med && med < hi && hi <= max) {
		t.Errorf("interval %v – %v around median %v of range %v – %v", lo, hi, med, min, max)
	}
	if lo2, hi2 := bootstrapMedian(v); lo2 != lo || hi2 != hi {
		t.Errorf("not repeatable: %v – %v then %v – %v", lo, hi, lo2, hi2)
	}
}
