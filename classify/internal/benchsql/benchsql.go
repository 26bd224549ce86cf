// Package benchsql holds the statements that classify's benchmarks and
// classify/pgquery's benchmarks both measure, so that the lexer and the real
// parser are compared on the same text.
package benchsql

import "strings"

// PointSelect is the typical OLTP read.
const PointSelect = "SELECT id, name, email, updated_at FROM users WHERE id = $1"

// ReportQuery returns a report query of about 2 KB: CTEs, joins, window
// functions, strings and comments.
func ReportQuery() string {
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
