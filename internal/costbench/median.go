package costbench

import "slices"

// MedianRange returns the median, least and greatest of v (the median of an
// even count is the mean of the middle two), leaving v as it is; all three
// are 0 when v is empty.
func MedianRange(v []float64) (med, lo, hi float64) {
	if len(v) == 0 {
		return 0, 0, 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	med = s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return med, s[0], s[len(s)-1]
}
