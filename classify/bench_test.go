package classify

import (
	"testing"

	"github.com/pgxroute/pgxroute/classify/internal/benchsql"
)

// sqljsonSelect is a read in the SQL/JSON syntax (a constructor, an
// aggregate, a predicate and a query function), which the read grammar
// rejected (a Write, sent to the primary) before it covered that syntax.
const sqljsonSelect = `SELECT json_object('id' VALUE i.id, 'tags' : json_arrayagg(t.tag ORDER BY t.tag ABSENT ON NULL) RETURNING jsonb) ` +
	`FROM items i JOIN tags t ON t.item_id = i.id WHERE i.data IS JSON OBJECT AND json_exists(i.data, '$.visible' FALSE ON ERROR) GROUP BY i.id`

func BenchmarkClassify(b *testing.B) {
	for _, bc := range []struct{ name, sql string }{
		{"point-select", benchsql.PointSelect},
		{"report-2KB", benchsql.ReportQuery()},
		{"sqljson", sqljsonSelect},
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
