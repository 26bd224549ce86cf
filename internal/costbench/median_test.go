package costbench_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/pgxroute/pgxroute/internal/costbench"
)

func TestMedianRange(t *testing.T) {
	type result struct{ Med, Lo, Hi float64 }
	for _, tc := range []struct {
		name string
		v    []float64
		want result
	}{
		{"empty", nil, result{}},
		{"one", []float64{1.5}, result{1.5, 1.5, 1.5}},
		{"odd count, unsorted", []float64{3, 1, 2}, result{2, 1, 3}},
		{"even count: mean of the middle two", []float64{4, 1, 3, 2}, result{2.5, 1, 4}},
		{"repeated values", []float64{1.02, 1.02, 0.9, 1.02}, result{1.02, 0.9, 1.02}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := append([]float64(nil), tc.v...)
			var got result
			got.Med, got.Lo, got.Hi = costbench.MedianRange(tc.v)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("MedianRange(%v) (-want +got):\n%s", in, diff)
			}
			if diff := cmp.Diff(in, tc.v); diff != "" {
				t.Errorf("MedianRange changed its argument (-before +after):\n%s", diff)
			}
		})
	}
}
