package classify

import "testing"

// FuzzClassify checks that nothing panics and that a Classifier (cached or
// not, with user functions off) decides exactly as Classify does. The
// comparison with PostgreSQL's parser is FuzzAgainstOracle in subpackage
// pgquery.
func FuzzClassify(f *testing.F) {
	for _, c := range ruleCases {
		f.Add(c.sql)
	}
	for _, c := range lexicalCases {
		f.Add(c.sql)
	}
	cached := New(Options{CacheSize: 64})
	uncached := New(Options{CacheSize: -1})
	f.Fuzz(func(t *testing.T, sql string) {
		want := Classify(sql)
		if got := cached.Classify(sql); got != want {
			t.Fatalf("cached %v, Classify %v", got, want)
		}
		if got := cached.Classify(sql); got != want {
			t.Fatalf("cache hit %v, Classify %v", got, want)
		}
		if got := uncached.Classify(sql); got != want {
			t.Fatalf("uncached %v, Classify %v", got, want)
		}
	})
}
