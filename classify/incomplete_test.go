package classify

import "testing"

// TestIncompleteStatementsAreWrites checks statements PostgreSQL's parser
// rejects (a read cut short, psql syntax, lexical junk): none may be routed
// as a read. Subpackage pgquery checks the same on the whole regression
// corpus and in its fuzz target, against the parser itself.
func TestIncompleteStatementsAreWrites(t *testing.T) {
	for _, sql := range []string{
		"WITH x AS (SELECT 1)",
		"WITH x AS (SELECT 1), y AS (SELECT 2)",
		"WITH",
		"WITH x AS (SELECT 1);",
		"SELECT 1 UNION",
		"SELECT 1 UNION ALL",
		"SELECT 0 0X0",
		"SELECT 1 'a'",
		"SELECT $1 $2",
		"SELECT 1 EXCEPT DISTINCT",
		"TABLE",
		"TABLE;",
		"VALUES",
		"VALUES 1",
		"SHOW",
		"(SELECT 1",
		"SELECT 1)",
		"SELECT a[1 FROM t",
		"SELECT 1 FROM",
		"SELECT 1 FROM t WHERE",
		"SELECT 1 FROM t ORDER BY",
		"SELECT 1 FROM t GROUP BY a HAVING",
		"SELECT 1,",
		"SELECT a, FROM t",
		"SELECT rank() OVER (PARTITION BY a, ORDER BY b) FROM t",
		"SELECT 1 +",
		"SELECT 10 !=-",
		"SELECT t.",
		"EXPLAIN",
		"EXPLAIN ANALYZE",
		"EXPLAIN (ANALYZE)",
		"SELECT 'abc",
		"SELECT E'abc\\'",
		`SELECT "abc`,
		"SELECT 1 /* never closed",
		"SELECT 1 /* /* nested */ still open",
		"SELECT $$abc",
		"SELECT $q$abc$$",
		"SELECT 1 \\gset",
		"SELECT 1 \\gset\nBEGIN",
		"SELECT :var",
		"SELECT * FROM t WHERE id = :'id'",
		"SELECT {1}",
		"SELECT $ 1",
		"SELECT 123abc",
		"SELECT 0x",
		"SELECT 0xfor",
		"SELECT 100_",
		"SELECT 1__000",
		"SELECT 1e+",
		"SELECT 1.5e_1",
		"SELECT 1 FROM t WHERE x = 'a'\nSELECT 2",
		"SELECT 'a' SELECT",
		"SELECT 1; SELECT 1 FROM",
		"SELECT '\xff'",
	} {
		if got := Classify(sql); got.Kind == Read {
			t.Errorf("Classify(%q) = %v; the parser rejects it", sql, got)
		}
	}
}

// TestValidEdgesStayReads checks statements near the incomplete ones that
// PostgreSQL accepts, so that the checks above cost no read.
func TestValidEdgesStayReads(t *testing.T) {
	for _, sql := range []string{
		"SELECT",
		"SELECT;",
		"SELECT 1 UNION SELECT",
		"WITH x AS (SELECT 1) SELECT",
		"WITH x AS (SELECT 1) (SELECT * FROM x)",
		"WITH x AS (SELECT 1) TABLE x",
		"WITH x AS (SELECT 1) VALUES (1)",
		"SELECT *",
		"SELECT t.* FROM t",
		"SELECT count(*) FROM t",
		"SELECT * FROM t ORDER BY a USING <",
		"SELECT * FROM t ORDER BY a USING ~<~",
		"SELECT t.from, 1 AS where FROM t",
		"SELECT 1 LIMIT ALL",
		"SELECT (ARRAY[1,2,3])[1:2], (ARRAY[1,2,3])[:2]",
		"SELECT JSON_OBJECT('a' : 1), JSON_OBJECTAGG(k : v) FROM t",
		"SELECT 1::int, f(a := 1)",
		"SELECT 0x1F, 0x_1F, 1_000, 1_000.5_5, 1e5, 1.5e-3, .5",
		"SELECT 1 UNION ALL SELECT 2 UNION DISTINCT SELECT 3",
		"SELECT x FROM t GROUP BY ()",
		"SELECT 'é'",
	} {
		if got := Classify(sql); got.Kind != Read {
			t.Errorf("Classify(%q) = %v, want a read", sql, got)
		}
	}
}
