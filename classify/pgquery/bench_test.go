//go:build cgo

package pgquery

import (
	"strings"
	"testing"

	pg_query "github.com/pganalyze/pg_query_go/v6"

	"github.com/pgxroute/pgxroute/classify"
)

// The statements of classify's benchmarks (classify/bench_test.go), repeated
// here since test files do not export them.
const pointSelect = "SELECT id, name, email, updated_at FROM users WHERE id = $1"

func reportQuery() string {
	var b strings.Builder
	b.WriteString(`-- monthly revenue report
WITH paid AS (
    SELECT o.customer_id, o.id AS order_id, date_trunc('month', o.paid_at) AS month,
           sum(li.quantity * li.unit_price) AS amount
    FROM orders o
    JOIN line_items li ON li.order_id = o.id
    WHERE o.status = 'paid' AND o.paid_at >= $1 AND o.paid_at < $2
      AND o.note NOT LIKE '%FOR UPDATE%' /* keywords in strings change nothing */
    GROUP BY o.customer_id, o.id, date_trunc('month', o.paid_at)
), ranked AS (
    SELECT p.*, rank() OVER (PARTITION BY p.month ORDER BY p.amount DESC) AS rnk,
           sum(p.amount) OVER (PARTITION BY p.customer_id ORDER BY p.month
                               ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS running
    FROM paid p
)
SELECT c.id, c.name, c."Display Name", r.month, r.amount, r.rnk, r.running,
       coalesce(s.segment, 'unknown') AS segment,
       CASE WHEN r.amount > 1000 THEN 'large' WHEN r.amount > 100 THEN 'medium' ELSE 'small' END AS size,
       to_char(r.month, 'YYYY-MM') AS label
FROM ranked r
JOIN customers c ON c.id = r.customer_id
LEFT JOIN LATERAL (
    SELECT cs.segment FROM customer_segments cs
    WHERE cs.customer_id = c.id AND cs.valid_from <= r.month
    ORDER BY cs.valid_from DESC LIMIT 1
) s ON true
WHERE r.rnk <= 100
  AND c.deleted_at IS NULL
  AND c.country = ANY($3::text[])
`)
	for b.Len() < 1900 {
		b.WriteString("  AND r.amount >= 0 /* padding */\n")
	}
	b.WriteString("ORDER BY r.month, r.rnk\nLIMIT 1000")
	return b.String()
}

var benchStatements = []struct{ name, sql string }{
	{"point-select", pointSelect},
	{"report-2KB", reportQuery()},
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
