//go:build cgo

package pgquery

import (
	"testing"

	"github.com/pgxroute/pgxroute/classify"
)

// FuzzAgainstOracle checks on generated input that the lexical classifier
// is never less strict than the parser: never Read or LockingRead where the
// parser says Write, never Read where it says LockingRead, and never Read
// for input the parser rejects (a statement PostgreSQL cannot run must not
// be routed as a read; PgCat's issue #887). The seed corpus runs with go test; a long
// run:
//
//	go test -run '^$' -fuzz FuzzAgainstOracle -fuzztime 10m ./classify/pgquery
func FuzzAgainstOracle(f *testing.F) {
	for _, s := range []string{
		"SELECT 1",
		"SELECT * FROM t WHERE id = $1 FOR UPDATE",
		"SELECT * FROM t FOR NO KEY UPDATE OF t SKIP LOCKED",
		"SELECT * FROM t FOR KEY SHARE",
		"WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x",
		"WITH RECURSIVE r(n) AS (VALUES (1) UNION ALL SELECT n + 1 FROM r WHERE n < 5) SELECT * FROM r",
		"WITH a AS (SELECT 1) INSERT INTO t SELECT * FROM a",
		"SELECT * INTO t2 FROM t",
		"SELECT nextval('s'), pg_catalog.setval('s', 1)",
		`SELECT "nextval"('s'), "NEXTVAL"('s')`,
		`SELECT U&"\006Eextval"('s')`,
		"SELECT pg_advisory_lock(1); SELECT 1",
		"EXPLAIN (ANALYZE, FORMAT JSON) SELECT * FROM t",
		"EXPLAIN ANALYZE DELETE FROM t",
		"EXPLAIN (SELECT 1)",
		"(SELECT 1) UNION ALL (SELECT 2 FOR UPDATE)",
		"VALUES (1), (2) ORDER BY 1",
		"TABLE t",
		"SHOW search_path",
		"SELECT 'FOR UPDATE', \"delete\", updated_at FROM t",
		"SELECT E'\\'; DELETE FROM t; --'",
		"SELECT 'a\\'; DELETE FROM t; --'",
		"SELECT U&'\\0041' UESCAPE '\\'",
		"SELECT $$;DELETE$$, $q$ $$ $q$",
		"SELECT 1 /* /* nested */ ; DELETE */",
		"SELECT 1 -- ; DELETE\n",
		"SELECT 1into t",
		"SELECT 0x1F, 1e5, .5, 1_000",
		"SELECT t.update, 1 AS delete FROM t",
		"SELECT substring('abc' FROM 1 FOR 2)",
		"SELECT * FROM t WHERE x IN (SELECT y FROM u FOR SHARE)",
		"MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE",
		"DO $$BEGIN NULL; END$$",
		"COPY t FROM STDIN",
		"",
		";;",
		"SELECT (1",
		"WITH x AS (SELECT 1)",
		"SELECT 1 UNION",
		"TABLE",
		"(SELECT 1",
		"SELECT 1 FROM",
		"EXPLAIN",
		"SELECT 'abc",
		"SELECT 1 /* never closed",
		"SELECT $$abc",
		"SELECT 1 \\gset\nBEGIN",
		"SELECT :var",
		"SELECT 0xfor",
		"SELECT a, FROM t",
		"SELECT 1 SELECT 2",
		"SELECT",
		"SELECT * FROM t ORDER BY a USING <",
		"SELECT JSON_OBJECT('a' : 1), (ARRAY[1,2,3])[1:2], 1::int",
	} {
		f.Add(s)
	}
	oracle := New(classify.Options{})
	lexer := classify.New(classify.Options{CacheSize: -1})
	f.Fuzz(func(t *testing.T, sql string) {
		if len(sql) > 1<<12 {
			return
		}
		lex := lexer.Classify(sql)
		if pure := classify.Classify(sql); pure != lex {
			t.Fatalf("Classify and Classifier.Classify differ on %q: %v vs %v", sql, pure, lex)
		}
		want, err := oracle.ClassifyErr(sql)
		if err != nil {
			if lex.Kind == classify.Read {
				t.Fatalf("REJECTED BY THE PARSER (%v) but lexer %v for %q", err, lex, sql)
			}
			return
		}
		if isUnsafe(lex.Kind, want.Kind) {
			t.Fatalf("UNSAFE: lexer %v, oracle %v for %q", lex, want, sql)
		}
	})
}
