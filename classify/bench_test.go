package classify

import (
	"testing"

	"github.com/pgxroute/pgxroute/classify/internal/benchsql"
)

func BenchmarkClassify(b *testing.B) {
	for _, bc := range []struct{ name, sql string }{
		{"point-select", benchsql.PointSelect},
		{"report-2KB", benchsql.ReportQuery()},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.sql)))
			for b.Loop() {
				Classify(bc.sql)
			}
		})
	}
}

func BenchmarkCacheHit(b *testing.B) {
	for _, bc := range []struct{ name, sql string }{
		{"point-select", benchsql.PointSelect},
		{"report-2KB", benchsql.ReportQuery()},
	} {
		c := New(Options{})
		c.Classify(bc.sql)
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				c.Classify(bc.sql)
			}
		})
		b.Run(bc.name+"/parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					c.Classify(bc.sql)
				}
			})
		})
	}
}
