//go:build cgo

package pgquery

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/pgxroute/pgxroute/classify"
)

func TestOracleRules(t *testing.T) {
	w := func(r string) classify.Result { return classify.Result{Kind: classify.Write, Reason: r} }
	r := func(r string) classify.Result { return classify.Result{Kind: classify.Read, Reason: r} }
	lr := func(r string) classify.Result { return classify.Result{Kind: classify.LockingRead, Reason: r} }
	c := New(classify.Options{WriteFunctions: []string{"app.bump", "audit"}})
	for _, tc := range []struct {
		sql  string
		want classify.Result
	}{
		{"SELECT 1", r("SELECT")},
		{"VALUES (1)", r("VALUES")},
		{"TABLE t", r("SELECT")},
		{"WITH x AS (SELECT 1) SELECT * FROM x", r("WITH")},
		{"SHOW search_path", r("SHOW")},
		{"EXPLAIN ANALYZE SELECT 1", r("EXPLAIN")},
		{"EXPLAIN ANALYZE DELETE FROM t", w("DELETE")},
		{"(SELECT 1)", r("SELECT")},
		{"SELECT 1; SELECT 2", r("2 statements")},
		{"SELECT 1; DELETE FROM t", w("2 statements")},
		{"SELECT * FROM t FOR UPDATE", lr("FOR UPDATE")},
		{"SELECT * FROM t FOR NO KEY UPDATE", lr("FOR NO KEY UPDATE")},
		{"SELECT * FROM t FOR SHARE", lr("FOR SHARE")},
		{"SELECT * FROM t FOR KEY SHARE", lr("FOR KEY SHARE")},
		{"SELECT * FROM t WHERE a IN (SELECT b FROM u FOR UPDATE)", lr("FOR UPDATE")},
		{"SELECT * INTO x FROM t", w("SELECT INTO")},
		{"WITH x AS (UPDATE t SET a = 1 RETURNING *) SELECT * FROM x", w("data-modifying CTE")},
		{"WITH x AS (SELECT 1) INSERT INTO t SELECT * FROM x", w("INSERT")},
		{"SELECT pg_catalog.nextval('s')", w("calls nextval")},
		{"SELECT bump()", w("calls app.bump")},
		{"SELECT other.bump()", r("SELECT")},
		{"SELECT x.audit()", w("calls audit")},
		{"INSERT INTO t VALUES (1)", w("INSERT")},
		{"CREATE TABLE t (a int)", w("CreateStmt")},
		{"BEGIN", w("transaction control")},
		{"", w("empty")},
		{"-- nothing", w("empty")},
		{"SELEC 1", w("syntax error")},
		{"SELECT 1\x00", w("NUL byte")},
	} {
		if diff := cmp.Diff(tc.want, c.Classify(tc.sql)); diff != "" {
			t.Errorf("Classify(%q) (-want +got):\n%s", tc.sql, diff)
		}
	}
	if got := Classify("SELECT nextval('s')"); got.Kind != classify.Write {
		t.Errorf("package Classify: %v", got)
	}
}
