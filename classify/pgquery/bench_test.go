//go:build cgo

package pgquery

import (
	"testing"

	pg_query "github.com/pganalyze/pg_query_go/v6"

	"github.com/pgxroute/pgxroute/classify"

	"github.com/pgxroute/pgxroute/classify/internal/benchsql"
)

var benchStatements = []struct{ name, sql string }{
	{"point-select", benchsql.PointSelect},
	{"report-2KB", benchsql.ReportQuery()},
}

// BenchmarkParse is pg_query_go's parse alone, what a parser-based router
// pays per statement.
func BenchmarkParse(b *testing.B) {
	for _, bc := range benchStatements {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.sql)))
			for b.Loop() {
				if _, err := pg_query.Parse(bc.sql); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkClassify is this package's classifier: parse plus tree walk.
func BenchmarkClassify(b *testing.B) {
	c := New(classify.Options{})
	for _, bc := range benchStatements {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.sql)))
			for b.Loop() {
				c.Classify(bc.sql)
			}
		})
	}
}

// BenchmarkLexer is classify.Classify on the same statements, for a
// side-by-side run.
func BenchmarkLexer(b *testing.B) {
	for _, bc := range benchStatements {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.sql)))
			for b.Loop() {
				classify.Classify(bc.sql)
			}
		})
	}
}
