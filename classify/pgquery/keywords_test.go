//go:build cgo

package pgquery

import (
	"os"
	"strings"
	"testing"

	"github.com/pgxroute/pgxroute/classify"
)

// keywordTemplates put a keyword (§) where gram.y gives keywords of some
// categories a meaning and others none: names, labels, aliases, types,
// functions, operators' operands, clauses.
var keywordTemplates = []string{
	"SELECT §", "SELECT § FROM t", "SELECT 1 §", "SELECT 1 § FROM t", "SELECT 1 AS §",
	"SELECT a § b", "SELECT a.§", "SELECT §.a", "SELECT §(1)", "SELECT §()", "SELECT § 'x'",
	"SELECT 1::§", "SELECT CAST(1 AS §)", "SELECT 1::§(1)", "SELECT 1::§[]", "SELECT * FROM §",
	"SELECT * FROM t §", "SELECT * FROM t AS §", "SELECT * FROM §(1)", "SELECT * FROM t § JOIN u ON true",
	"SELECT * FROM f() AS x(§ int)", "SELECT * FROM f() AS x(a §)", "SELECT f(§)", "SELECT f(§ => 1)",
	"SELECT f(1 §)", "SELECT f(1, §)", "SELECT 1 + §", "SELECT 1 § 1", "SELECT (1 §)", "SELECT (§)",
	"SELECT 1 WHERE §", "SELECT 1 WHERE a §", "SELECT 1 WHERE a § b", "SELECT 1 ORDER BY 1 §",
	"SELECT 1 ORDER BY §", "SELECT 1 GROUP BY §", "WITH § AS (SELECT 1) SELECT 1",
	"WITH x(§) AS (SELECT 1) SELECT 1", "SELECT count(*) OVER (§)", "SELECT count(*) OVER §",
	"SELECT 1 FROM t WINDOW § AS ()", "SHOW §", "SHOW a.§", "EXPLAIN (§) SELECT 1",
	"EXPLAIN (a §) SELECT 1", "SELECT §, 1", "SELECT 1 §, 2", "SELECT x § AND y",
	"SELECT 'a' LIKE 'b' §", "SELECT a IS §", "SELECT a IS NOT §", "SELECT interval '1' §",
	"SELECT 1 FROM t § u", "SELECT § §", "SELECT NOT §", "SELECT - §", "SELECT a[§]",
	"SELECT 1 LIMIT §", "SELECT 1 OFFSET 1 §", "SELECT § 1", "SELECT 1 § AS a", "SELECT a = §",
	"SELECT a = § b", "SELECT a BETWEEN § AND 1", "SELECT a BETWEEN 1 AND §", "SELECT a IN (§)",
	"SELECT §.§", "SELECT §.*", "SELECT f(§ ORDER BY 1)", "SELECT CASE § WHEN 1 THEN 2 END",
	"SELECT CASE WHEN § THEN 2 END", "SELECT ARRAY[§]", "SELECT ROW(§)", "SELECT 1 FROM §.t",
	"SELECT 1 FROM t, §", "SELECT 1 FROM t JOIN § ON true", "SELECT 1 FROM t JOIN u USING (§)",
	"TABLE §", "VALUES (§)", "SELECT (SELECT 1) §", "SELECT $1 §", "SELECT 1 UNION §",
	"SELECT 1 FROM t § JOIN u USING (a)", "SELECT a COLLATE §", "SELECT 1 AT §",
	"SELECT x AT TIME ZONE §", "SELECT 1 FROM t TABLESAMPLE § (1)", "SELECT 1 FROM ROWS FROM (§()) x",
	"WITH RECURSIVE x AS (SELECT 1) SEARCH DEPTH FIRST BY § SET o SELECT 1",
	"SELECT 1 FROM t WINDOW w AS (ORDER BY 1 ROWS § PRECEDING)",
	"SELECT a § 'x'", "SELECT a::§ 'x'", "SELECT § ISNULL", "SELECT 1 § IS NULL",
}

// pairKeywords are the keywords tried in pairs: operators, clauses, labels
// that are also something else.
var pairKeywords = []string{
	"and", "or", "not", "is", "in", "like", "ilike", "similar", "between", "escape", "at",
	"collate", "from", "where", "as", "on", "using", "join", "left", "natural", "cross",
	"union", "all", "distinct", "any", "some", "null", "true", "time", "zone", "with",
	"without", "interval", "day", "to", "second", "order", "by", "nulls", "first",
	"rows", "range", "preceding", "current", "row", "over", "filter", "within", "group",
	"select", "values", "table", "lateral", "only", "limit", "offset", "fetch", "for",
	"case", "when", "then", "else", "end", "array", "cast", "exists", "int", "varying",
	"precision", "double", "character", "national", "operator", "uescape", "symmetric",
	"isnull", "ordinality", "tablesample", "repeatable", "search", "cycle", "set",
}

var pairTemplates = []string{
	"SELECT a § ¤", "SELECT a § ¤ b", "SELECT 1 FROM t § ¤", "SELECT 1 WHERE a § ¤ b",
	"SELECT § ¤", "SELECT f(a § ¤)", "SELECT (a § ¤)", "SELECT a::§ ¤", "SELECT a § ¤ FROM t",
}

// TestGrammarKeywords checks, for every keyword of PostgreSQL 17 in every
// position of keywordTemplates (and some keyword pairs), that the lexical
// classifier never calls a statement Read that the parser rejects or calls
// anything else. It reports how many of the parser's reads it calls Write.
func TestGrammarKeywords(t *testing.T) {
	data, err := os.ReadFile("testdata/keywords.txt")
	if err != nil {
		t.Fatal(err)
	}
	keywords := strings.Fields(string(data))
	if len(keywords) < 400 {
		t.Fatalf("testdata/keywords.txt holds %d keywords", len(keywords))
	}
	oracle := New(classify.Options{})
	var tried, valid, reads, missed int
	check := func(sql string) {
		tried++
		got := classify.Classify(sql)
		want, err := oracle.ClassifyErr(sql)
		if err == nil {
			valid++
			if want.Kind == classify.Read {
				reads++
				if got.Kind == classify.Write {
					missed++
				}
			}
		}
		if got.Kind == classify.Read && (err != nil || want.Kind != classify.Read) {
			t.Errorf("lexer Read, parser %v (%v): %q", want, err, sql)
		}
	}
	for _, tmpl := range keywordTemplates {
		for _, k := range keywords {
			check(strings.ReplaceAll(tmpl, "§", k))
		}
	}
	for _, tmpl := range pairTemplates {
		for _, k := range pairKeywords {
			for _, l := range pairKeywords {
				check(strings.NewReplacer("§", k, "¤", l).Replace(tmpl))
			}
		}
	}
	t.Logf("%d statements, %d accepted by the parser, %d of them reads; the lexer calls %d of those reads Write", tried, valid, reads, missed)
	if valid == 0 || reads == 0 {
		t.Error("no statement was valid: the check checked nothing")
	}
}
