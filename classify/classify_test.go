package classify

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/pgxroute/pgxroute/classify/internal/benchsql"
)

// tc is one classification case.
type tc struct {
	sql  string
	want Result
}

func w(reason string) Result { return Result{Kind: Write, Reason: reason} }
func r(reason string) Result { return Result{Kind: Read, Reason: reason} }
func lr(reason string) Result {
	return Result{Kind: LockingRead, Reason: reason}
}

// ruleCases cover every rule with the default options.
var ruleCases = []tc{
	// Reads.
	{"SELECT 1", r("SELECT")},
	{"select * from t where id = $1", r("SELECT")},
	{"VALUES (1), (2)", r("VALUES")},
	{"TABLE t", r("TABLE")},
	{"SHOW search_path", r("SHOW")},
	{"SHOW TRANSACTION ISOLATION LEVEL", r("SHOW")},
	{"WITH x AS (SELECT 1) SELECT * FROM x", r("WITH")},
	{"WITH RECURSIVE t(n) AS (VALUES (1) UNION ALL SELECT n+1 FROM t WHERE n < 100) SELECT sum(n) FROM t", r("WITH")},
	{"WITH x AS MATERIALIZED (SELECT 1) SELECT * FROM x", r("WITH")},
	{"(SELECT 1) UNION (SELECT 2)", r("SELECT")},
	{"((SELECT 1))", r("SELECT")},
	{"(VALUES (1))", r("VALUES")},
	{"(WITH x AS (SELECT 1) SELECT * FROM x)", r("WITH")},
	{"EXPLAIN SELECT 1", r("EXPLAIN")},
	{"EXPLAIN ANALYZE SELECT 1", r("EXPLAIN")},
	{"explain analyse verbose select 1", r("EXPLAIN")},
	{"EXPLAIN VERBOSE SELECT 1", r("EXPLAIN")},
	{"EXPLAIN (ANALYZE, FORMAT JSON) SELECT * FROM t", r("EXPLAIN")},
	{"EXPLAIN (ANALYZE true, BUFFERS, SETTINGS on) WITH x AS (SELECT 1) SELECT * FROM x", r("EXPLAIN")},
	{"EXPLAIN (SELECT 1)", r("EXPLAIN")},
	{"EXPLAIN (FORMAT JSON) (SELECT 1)", r("EXPLAIN")},
	{"SELECT 1;", r("SELECT")},
	{"SELECT 1;;", r("SELECT")},
	{" \n\tSELECT 1 ; ", r("SELECT")},
	{"SELECT 1; SELECT 2", r("2 statements")},
	{"SELECT 1; SELECT 2; VALUES (3)", r("3 statements")},
	{"SELECT substring(s FROM 2 FOR 3) FROM t", r("SELECT")},
	{"SELECT * FROM t FOR READ ONLY", r("SELECT")},
	{"SELECT count(*), coalesce(max(x), 0) FROM t GROUP BY y", r("SELECT")},
	{"SELECT currval_like(1), nextvalue(2), my_setval(3)", r("SELECT")},
	{"SELECT t.update, t.delete, t.insert, t.merge FROM t", r("SELECT")},
	{"SELECT 1 AS insert, 2 AS update, 3 AS delete, 4 AS into", r("SELECT")},
	{"SELECT update.x FROM update", w("UPDATE")}, // a table named update reads as the statement: conservative
	{"SELECT $1::int", r("SELECT")},

	// Locking reads.
	{"SELECT * FROM t FOR UPDATE", lr("FOR UPDATE")},
	{"SELECT * FROM t FOR NO KEY UPDATE", lr("FOR NO KEY UPDATE")},
	{"SELECT * FROM t FOR SHARE", lr("FOR SHARE")},
	{"SELECT * FROM t FOR KEY SHARE", lr("FOR KEY SHARE")},
	{"select * from t for update skip locked", lr("FOR UPDATE")},
	{"SELECT * FROM t FOR UPDATE OF t NOWAIT", lr("FOR UPDATE")},
	{"SELECT * FROM t WHERE id IN (SELECT id FROM u FOR UPDATE)", lr("FOR UPDATE")},
	{"WITH x AS (SELECT * FROM t FOR SHARE) SELECT * FROM x", lr("FOR SHARE")},
	{"SELECT * FROM t FOR/**/UPDATE", lr("FOR UPDATE")},
	{"SELECT * FROM t FOR -- c\n UPDATE", lr("FOR UPDATE")},
	{"TABLE t FOR UPDATE", lr("FOR UPDATE")},
	{"EXPLAIN ANALYZE SELECT * FROM t FOR UPDATE", lr("FOR UPDATE")},
	{"(SELECT * FROM t FOR UPDATE)", lr("FOR UPDATE")},

	// SELECT INTO.
	{"SELECT * INTO new_t FROM t", w("SELECT INTO")},
	{"SELECT 1 INTO TEMP x", w("SELECT INTO")},
	{"WITH x AS (SELECT 1) SELECT * INTO y FROM x", w("SELECT INTO")},
	{"SELECT * INTO t FROM u FOR UPDATE", w("SELECT INTO")},
	{"SELECT 1into x", w("SELECT INTO")},

	// Data-modifying CTEs and WITH ... DML.
	{"WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x", w("data-modifying CTE")},
	{"WITH x AS (INSERT INTO t VALUES (1) RETURNING *) SELECT * FROM x", w("data-modifying CTE")},
	{"WITH x AS (UPDATE t SET a = 1 RETURNING *) SELECT * FROM x", w("data-modifying CTE")},
	{"WITH x AS (MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE RETURNING *) SELECT * FROM x", w("data-modifying CTE")},
	{"WITH a AS (SELECT 1), b AS (WITH c AS (DELETE FROM t RETURNING 1) SELECT * FROM c) SELECT * FROM b", w("data-modifying CTE")},
	{"SELECT * FROM (WITH c AS (DELETE FROM t RETURNING 1) SELECT * FROM c) s", w("data-modifying CTE")},
	{"WITH x AS (SELECT 1) INSERT INTO t SELECT * FROM x", w("INSERT")},
	{"WITH x AS (SELECT 1) UPDATE t SET a = 1", w("UPDATE")},
	{"WITH x AS (SELECT 1) DELETE FROM t", w("DELETE")},
	{"WITH x AS (SELECT 1) MERGE INTO t USING x ON true WHEN MATCHED THEN DELETE", w("MERGE")},
	{"WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x FOR UPDATE", w("data-modifying CTE")},

	// Function calls.
	{"SELECT nextval('s')", w("calls nextval")},
	{"SELECT NEXTVAL('s')", w("calls nextval")},
	{"SELECT pg_catalog.nextval('s')", w("calls nextval")},
	{"SELECT pg_catalog . nextval ('s')", w("calls nextval")},
	{`SELECT "pg_catalog"."nextval"('s')`, w("calls nextval")},
	{`SELECT "NEXTVAL"('s')`, r("SELECT")}, // a different function in PostgreSQL
	{"SELECT app.nextval('s')", w("calls nextval")},
	{"SELECT nextval /* c */ ('s')", w("calls nextval")},
	{"SELECT * FROM nextval('s')", w("calls nextval")},
	{"VALUES (nextval('s'))", w("calls nextval")},
	{"SELECT (SELECT setval('s', 1))", w("calls setval")},
	{"WITH x AS (SELECT pg_advisory_lock(1)) SELECT * FROM x", w("calls pg_advisory_lock")},
	{"SELECT pg_try_advisory_xact_lock(1)", w("calls pg_try_advisory_xact_lock")},
	{"SELECT pg_advisory_future_thing(1)", w("calls pg_advisory_*")},
	{"SELECT lo_import('/tmp/x')", w("calls lo_*")},
	{"SELECT pg_stat_reset_shared('bgwriter')", w("calls pg_stat_reset*")},
	{"SELECT 1 FROM t WHERE set_config('a.b', 'c', false) IS NOT NULL", w("calls set_config")},
	{"EXPLAIN ANALYZE SELECT nextval('s')", w("calls nextval")},
	{"SELECT nextval('s') FROM t FOR UPDATE", w("calls nextval")},
	{`SELECT U&"\006Eextval"('s')`, w("unicode-escaped function name")},
	{"SELECT 'nextval(1)', \"nextval\" FROM t", r("SELECT")},
	{"SELECT " + strings.Repeat("x", 70) + "nextval(1)", r("SELECT")},

	// Writes.
	{"INSERT INTO t VALUES (1)", w("INSERT")},
	{"insert into t select * from u", w("INSERT")},
	{"UPDATE t SET a = 1", w("UPDATE")},
	{"DELETE FROM t", w("DELETE")},
	{"MERGE INTO t USING s ON true WHEN MATCHED THEN DELETE", w("MERGE")},
	{"CREATE TABLE t (a int)", w("CREATE")},
	{"DROP TABLE t", w("DROP")},
	{"ALTER TABLE t ADD b int", w("ALTER")},
	{"TRUNCATE t", w("TRUNCATE")},
	{"CALL p()", w("CALL")},
	{"DO $$BEGIN PERFORM 1; END$$", w("DO")},
	{"COPY t FROM STDIN", w("COPY")},
	{"COPY (SELECT 1) TO STDOUT", w("COPY")},
	{"LOCK TABLE t", w("LOCK")},
	{"SET search_path = x", w("SET")},
	{"RESET ALL", w("RESET")},
	{"LISTEN c", w("LISTEN")},
	{"NOTIFY c", w("NOTIFY")},
	{"PREPARE p AS SELECT 1", w("PREPARE")},
	{"EXECUTE p", w("EXECUTE")},
	{"DISCARD ALL", w("DISCARD")},
	{"BEGIN", w("BEGIN")},
	{"START TRANSACTION READ ONLY", w("START")},
	{"COMMIT", w("COMMIT")},
	{"ROLLBACK", w("ROLLBACK")},
	{"SAVEPOINT a", w("SAVEPOINT")},
	{"VACUUM t", w("VACUUM")},
	{"ANALYZE t", w("ANALYZE")},
	{"DECLARE c CURSOR FOR SELECT 1", w("DECLARE")},
	{"REFRESH MATERIALIZED VIEW v", w("REFRESH")},
	{"EXPLAIN ANALYZE DELETE FROM t", w("DELETE")},
	{"EXPLAIN DELETE FROM t", w("DELETE")},
	{"EXPLAIN (ANALYZE) INSERT INTO t VALUES (1)", w("INSERT")},
	{"EXPLAIN CREATE TABLE x AS SELECT 1", w("CREATE")},
	{"EXPLAIN", w("unrecognized")},
	{"EXPLAIN (ANALYZE", w("unrecognized")},
	{"EXPLAIN SHOW x", w("unrecognized")},
	{"(DELETE FROM t)", w("unrecognized")},
	{"frobnicate", w("unrecognized")},
	{"\"select\" 1", w("unrecognized")},
	{"42", w("unrecognized")},

	// Multiple statements.
	{"SELECT 1; DELETE FROM t", w("2 statements")},
	{"DELETE FROM t; SELECT 1", w("2 statements")},
	{"SELECT 1; SELECT 1 FOR UPDATE", w("2 statements")},
	{"BEGIN; SELECT 1; COMMIT", w("3 statements")},
	{strings.Repeat("SELECT 1;", 12) + "DELETE FROM t", w("many statements")},
	{strings.Repeat("SELECT 1;", 12), r("many statements")},

	// Empty.
	{"", w("empty")},
	{"   \n\t ", w("empty")},
	{"-- just a comment", w("empty")},
	{"/* a /* nested */ comment */", w("empty")},
	{";", w("empty")},
	{" ; ; ", w("empty")},

	// Parentheses.
	{"SELECT (1", w("unbalanced parentheses")},
	{"SELECT 1)", w("unbalanced parentheses")},
	{"SELECT (1; DELETE FROM t)", w("2 statements")},
}

// lexicalCases check that nothing inside strings, comments and quoted
// identifiers is seen, and that every form ends where PostgreSQL ends it.
var lexicalCases = []tc{
	{"SELECT 'FOR UPDATE' FROM t", r("SELECT")},
	{"SELECT 'it''s; DELETE FROM t' FROM t", r("SELECT")},
	{"SELECT '' FROM t FOR UPDATE", lr("FOR UPDATE")},
	{"SELECT 'a'\n'b' FROM t", r("SELECT")},              // string continuation
	{"SELECT 'a' 'b' FROM t", w("incomplete statement")}, // no newline: two constants
	{"SELECT E'\\'' FROM t", r("SELECT")},
	{"SELECT E'\\'; DELETE FROM t; --' FROM t", r("SELECT")},
	{"SELECT E'\\\\' FROM t FOR UPDATE", lr("FOR UPDATE")},
	{"SELECT e'x\\'y''z' , 1", r("SELECT")},
	{"SELECT E'\\\\'; DELETE FROM t", w("2 statements")},
	{"SELECT U&'d\\0061t\\+000061' FROM t", r("SELECT")},
	{"SELECT U&'!0061' UESCAPE '!'", r("SELECT")},
	{"SELECT U&'\\'; DELETE FROM t", w("2 statements")}, // no backslash escapes in U&''
	{"SELECT B'1010', X'1F', N'nat' FROM t", r("SELECT")},
	{"SELECT X'\\'; DELETE FROM t", w("2 statements")},
	{"SELECT $$ ; DELETE FROM t; $$ FROM t", r("SELECT")},
	{"SELECT $tag$ it's $$ nested $$ ; DROP $tag$ FROM t", r("SELECT")},
	{"SELECT $a$ $b$ $a$ FROM t FOR UPDATE", lr("FOR UPDATE")},
	{"SELECT $1, $2 FROM t", r("SELECT")},
	{"SELECT a$b$ FROM t FOR UPDATE", lr("FOR UPDATE")}, // a$b$ is an identifier
	{"SELECT $_x1$ FOR UPDATE $_x1$", r("SELECT")},
	{`SELECT "delete", "FOR UPDATE", "a""b; DELETE" FROM t`, r("SELECT")},
	{`SELECT U&"d\0061t" FROM t`, r("SELECT")},
	{"SELECT updated_at, inserted_by, deleted, for_update, into_x FROM t", r("SELECT")},
	{"SELECT 1 -- ; DELETE FROM t\n FROM t", r("SELECT")},
	{"SELECT 1 --\r; DELETE FROM t", w("2 statements")},
	{"SELECT /* ; DELETE /* nested */ FROM t; */ 1", r("SELECT")},
	{"SELECT /* /* */ DELETE FROM t */ 1", r("SELECT")},
	{"SELECT /**/ 1 FOR UPDATE", lr("FOR UPDATE")},
	{"SELECT 1 +/* c */ 2", r("SELECT")},
	{"SELECT 1 */* c */ 2", r("SELECT")},
	{"SELECT 2 --- 1\n FROM t", r("SELECT")},
	{"sElEcT * fRoM t FoR uPdAtE", lr("FOR UPDATE")},
	{"SELECT 1.5e10, .5, 1_000, 0x1F, 0o17, 0b101 FROM t", r("SELECT")},
	// PostgreSQL 14 read this as SELECT 0 AS xfor; 15 and later reject
	// the junk after the constant (0xf then "or"): never a read.
	{"SELECT 0xfor", w("trailing junk after numeric literal")},
	{"SELECT 'a\\'; DELETE FROM t; SELECT ''';'", w("3 statements")},

	// standard_conforming_strings off would read this as one string: the
	// stricter reading wins either way.
	{"SELECT 'a\\'; SELECT 1 FOR UPDATE; SELECT '", w("unterminated quoted string")},
	{"SELECT 'a\\' FOR UPDATE; --'", lr("FOR UPDATE")},
	{"SELECT 'a\\'' FOR UPDATE --'", lr("FOR UPDATE")},
	{"SELECT 'C:\\path' FROM t", r("SELECT")},

	// Unterminated forms.
	{"SELECT 'abc", w("unterminated quoted string")},
	{"SELECT E'abc\\'", w("unterminated quoted string")},
	{"SELECT E'abc\\", w("unterminated quoted string")},
	{`SELECT "abc`, w("unterminated quoted identifier")},
	{"SELECT $$abc", w("unterminated dollar-quoted string")},
	{"SELECT $a$abc$b$", w("unterminated dollar-quoted string")},
	{"SELECT 1 /* abc", w("unterminated comment")},
	{"SELECT 1 /* /* */", w("unterminated comment")},
	{"SELECT 1 /*/", w("unterminated comment")},
	{"SELECT U&'abc", w("unterminated quoted string")},
	{"SELECT 1\x00", w("NUL byte")},
}

func runCases(t *testing.T, classify func(string) Result, cases []tc) {
	t.Helper()
	for _, c := range cases {
		if diff := cmp.Diff(c.want, classify(c.sql)); diff != "" {
			t.Errorf("Classify(%q) mismatch (-want +got):\n%s", c.sql, diff)
		}
	}
}

func TestRules(t *testing.T)   { runCases(t, Classify, ruleCases) }
func TestLexical(t *testing.T) { runCases(t, Classify, lexicalCases) }

// TestClassifierMatchesClassify checks that a Classifier with default
// options, with and without a cache, decides as Classify does, twice (the
// second time from the cache).
func TestClassifierMatchesClassify(t *testing.T) {
	for _, size := range []int{-1, 0, 4} {
		c := New(Options{CacheSize: size})
		for i := 0; i < 2; i++ {
			runCases(t, c.Classify, ruleCases)
			runCases(t, c.Classify, lexicalCases)
		}
	}
}

func TestBuiltinWriteFunctions(t *testing.T) {
	for _, fn := range []string{
		"nextval", "setval", "currval", "lastval",
		"pg_advisory_lock", "pg_advisory_lock_shared", "pg_advisory_unlock", "pg_advisory_unlock_shared",
		"pg_advisory_unlock_all", "pg_advisory_xact_lock", "pg_advisory_xact_lock_shared",
		"pg_try_advisory_lock", "pg_try_advisory_lock_shared", "pg_try_advisory_xact_lock",
		"pg_try_advisory_xact_lock_shared", "set_config", "pg_notify", "txid_current",
		"pg_current_xact_id", "lo_import", "lo_export", "lo_unlink", "lo_create", "lo_creat", "lo_open",
		"lo_put", "lo_from_bytea", "lowrite", "dblink_exec", "pg_terminate_backend", "pg_cancel_backend",
		"pg_reload_conf", "pg_switch_wal", "pg_stat_reset", "pg_stat_reset_shared",
		"pg_stat_reset_single_table_counters", "pg_stat_statements_reset", "pg_create_restore_point",
		"pg_promote", "pg_logical_emit_message", "pg_drop_replication_slot",
		"pg_create_logical_replication_slot", "pg_replication_origin_create",
	} {
		for _, form := range []string{"SELECT %s(1)", "SELECT pg_catalog.%s(1)", "SELECT * FROM t WHERE x = upper(%s(1)::text)", "SELECT %s  (1)"} {
			sql := fmt.Sprintf(form, fn)
			got := Classify(sql)
			if got.Kind != Write || !strings.HasPrefix(got.Reason, "calls ") {
				t.Errorf("Classify(%q) = %v, want a write calling a function", sql, got)
			}
			if up := Classify(strings.ToUpper(sql)); up.Kind != Write {
				t.Errorf("Classify(%q) = %v, want a write", strings.ToUpper(sql), up)
			}
		}
	}
}

func TestUserWriteFunctions(t *testing.T) {
	c := New(Options{WriteFunctions: []string{"audit_log", "App.Bump", ` "Exact" `, "ops.touch(int, text)", "", "bad name"}})
	runCases(t, c.Classify, []tc{
		{"SELECT audit_log(1)", w("calls audit_log")},
		{"SELECT AUDIT_LOG(1)", w("calls audit_log")},
		{"SELECT x.audit_log(1)", w("calls audit_log")},
		{`SELECT "audit_log"(1)`, w("calls audit_log")},
		{"SELECT app.bump(1)", w("calls app.bump")},
		{"SELECT bump(1)", w("calls app.bump")},
		{"SELECT other.bump(1)", r("SELECT")},
		{`SELECT "App".bump(1)`, r("SELECT")},
		{`SELECT "Exact"(1)`, w("calls Exact")},
		{"SELECT exact(1)", r("SELECT")},
		{"SELECT ops.touch(1, 'a')", w("calls ops.touch")},
		{"SELECT t.audit_log FROM t", w("calls audit_log")}, // functional notation
		{"SELECT nextval('s')", w("calls nextval")},
		{"SELECT audit_logger(1)", r("SELECT")},
	})
	if err := (Options{WriteFunctions: []string{"ok", "a.b", "bad name", "x.", ""}}).Validate(); err == nil ||
		!strings.Contains(err.Error(), `"bad name"`) || !strings.Contains(err.Error(), `"x."`) {
		t.Errorf("Validate() = %v, want the two bad names", err)
	}
	if err := (Options{WriteFunctions: []string{"ok", `a."B c"`, "fn(int)"}}).Validate(); err != nil {
		t.Errorf("Validate() = %v, want nil", err)
	}
	if reason, ok := c.WriteFunction("app", "bump"); !ok || reason != "calls app.bump" {
		t.Errorf("WriteFunction(app, bump) = %q, %v", reason, ok)
	}
	if _, ok := c.WriteFunction("other", "bump"); ok {
		t.Errorf("WriteFunction(other, bump) matched")
	}
	if _, ok := c.WriteFunction("pg_catalog", "nextval"); !ok {
		t.Errorf("WriteFunction(pg_catalog, nextval) did not match")
	}
}

func TestLongIdentifiersAreTruncated(t *testing.T) {
	long := "fn_" + strings.Repeat("x", 60) // 63 bytes
	c := New(Options{WriteFunctions: []string{long + "_ignored_by_the_server"}})
	if got := c.Classify("SELECT " + long + "_and_more(1)"); got.Kind != Write {
		t.Errorf("truncated name: got %v, want a write", got)
	}
}

func TestKindString(t *testing.T) {
	got := []string{Write.String(), Read.String(), LockingRead.String(), Kind(9).String()}
	want := []string{"write", "read", "locking read", "Kind(9)"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Error(diff)
	}
	if s := Classify("SELECT nextval('s')").String(); s != "write (calls nextval)" {
		t.Errorf("Result.String() = %q", s)
	}
	if !Read.ReplicaSafe() || Write.ReplicaSafe() || LockingRead.ReplicaSafe() {
		t.Error("ReplicaSafe")
	}
	var zero Result
	if zero.Kind != Write {
		t.Error("the zero Result must be a write")
	}
}

func TestMarkWrite(t *testing.T) {
	const sql = "SELECT my_func()"
	c := New(Options{CacheSize: 4})
	if got := c.Classify(sql); got.Kind != Read {
		t.Fatalf("before: %v", got)
	}
	c.MarkWrite(sql, "refused by replica (25006)")
	want := w("refused by replica (25006)")
	if diff := cmp.Diff(want, c.Classify(sql)); diff != "" {
		t.Fatalf("after MarkWrite (-want +got):\n%s", diff)
	}
	// Evict everything: the mark survives.
	for i := 0; i < 100; i++ {
		c.Classify(fmt.Sprintf("SELECT %d", i))
	}
	if diff := cmp.Diff(want, c.Classify(sql)); diff != "" {
		t.Fatalf("after eviction (-want +got):\n%s", diff)
	}
	// Other texts are unaffected; without a cache the mark holds too.
	if got := c.Classify(sql + " "); got.Kind != Read {
		t.Errorf("other text: %v", got)
	}
	nc := New(Options{CacheSize: -1})
	nc.MarkWrite(sql, "")
	if diff := cmp.Diff(w("marked write"), nc.Classify(sql)); diff != "" {
		t.Error(diff)
	}
}

func TestAllocations(t *testing.T) {
	report := benchsql.ReportQuery()
	for _, sql := range []string{benchsql.PointSelect, report, "SELECT NEXTVAL('s')", "SELECT 'a\\' FROM t", "INSERT INTO t VALUES (1)", "SELECT 1; SELECT 2", "SELECT pg_create_logical_replication_slot('a', 'b')"} {
		if n := testing.AllocsPerRun(100, func() { Classify(sql) }); n != 0 {
			t.Errorf("Classify(%.30q): %v allocations", sql, n)
		}
		c := New(Options{WriteFunctions: []string{"app.audit", "Other"}, CacheSize: -1})
		if n := testing.AllocsPerRun(100, func() { c.Classify(sql) }); n != 0 {
			t.Errorf("uncached Classifier.Classify(%.30q): %v allocations", sql, n)
		}
		cc := New(Options{})
		cc.Classify(sql)
		if n := testing.AllocsPerRun(100, func() { cc.Classify(sql) }); n != 0 {
			t.Errorf("cache hit %.30q: %v allocations", sql, n)
		}
		cc.MarkWrite("SELECT other", "x")
		cc.Classify(sql) // revalidate after the generation changed
		if n := testing.AllocsPerRun(100, func() { cc.Classify(sql) }); n != 0 {
			t.Errorf("cache hit with marks %.30q: %v allocations", sql, n)
		}
	}
}

func TestConcurrent(t *testing.T) {
	c := New(Options{CacheSize: 16})
	var marked atomic.Bool
	all := append(append([]tc{}, ruleCases...), lexicalCases...)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				for j, cs := range all {
					if g == 0 && i == 10 && j == 0 {
						c.MarkWrite("SELECT marked", "marked")
						marked.Store(true)
					}
					if got := c.Classify(cs.sql); got != cs.want {
						t.Errorf("Classify(%q) = %v, want %v", cs.sql, got, cs.want)
						return
					}
				}
				if marked.Load() {
					if got := c.Classify("SELECT marked"); got.Kind != Write {
						t.Errorf("marked statement: %v", got)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
}

// TestNoPanic runs every prefix of every case, and garbage, through the
// classifier: it must not panic, and a truncated read must never become
// a different kind of read than a write-free prefix allows.
func TestNoPanic(t *testing.T) {
	var inputs []string
	for _, c := range append(append([]tc{}, ruleCases...), lexicalCases...) {
		for i := 0; i <= len(c.sql); i++ {
			inputs = append(inputs, c.sql[:i], c.sql[i:])
		}
	}
	inputs = append(inputs, "\xff\xfe", "$", "$$", "$a", "$a$", "E'", "U&", "U&'", `U&"`, "e", "u&", "/*", "*/", "--", "-", "0x", "0x_", "1e", "1e+", ".", "..", "\"\"", "''", "(((", ")))", "EXPLAIN (", "EXPLAIN ((")
	for _, s := range inputs {
		func() {
			defer func() {
				if p := recover(); p != nil {
					t.Fatalf("Classify(%q) panicked: %v", s, p)
				}
			}()
			Classify(s)
		}()
	}
	for _, s := range []string{"SELECT 'abc", "SELECT $x$", "SELECT /*", `SELECT "x`, "SELECT E'\\"} {
		if got := Classify(s); got.Kind != Write {
			t.Errorf("Classify(%q) = %v, want write", s, got)
		}
	}
}

// TestLinear checks that time is linear: deeply nested and very long inputs
// classify (a quadratic scan would time out here).
func TestLinear(t *testing.T) {
	// PostgreSQL's parser refuses nesting this deep (its stack holds
	// 10 000 states), and so does the read grammar.
	big := "SELECT " + strings.Repeat("(", 200000) + "1" + strings.Repeat(")", 200000)
	if got := Classify(big); got.Kind != Write {
		t.Errorf("nested: %v", got)
	}
	deep := "SELECT " + strings.Repeat("(", 100) + "1" + strings.Repeat(")", 100)
	if got := Classify(deep); got.Kind != Read {
		t.Errorf("nested 100 deep: %v", got)
	}
	many := strings.Repeat("SELECT a.b, $$x$$, 'y', /* z */ f(1) FROM t;", 20000)
	if got := Classify(many); got.Kind != Read {
		t.Errorf("many: %v", got)
	}
	dollars := "SELECT " + strings.Repeat("$a$ $b $a$, ", 20000) + "1"
	if got := Classify(dollars); got.Kind != Read {
		t.Errorf("dollars: %v", got)
	}
}
