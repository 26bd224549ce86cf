package classify_test

import (
	"fmt"

	"github.com/pgxroute/pgxroute/classify"
)

func ExampleClassify() {
	for _, sql := range []string{
		"SELECT * FROM users WHERE id = $1",
		"SELECT * FROM jobs WHERE state = 'new' FOR UPDATE SKIP LOCKED",
		"SELECT nextval('orders_id_seq')",
		"WITH gone AS (DELETE FROM sessions RETURNING id) SELECT count(*) FROM gone",
		"SELECT 'DELETE FROM t' AS \"update\" -- FOR UPDATE",
	} {
		fmt.Println(classify.Classify(sql))
	}
	// Output:
	// read (SELECT)
	// locking read (FOR UPDATE)
	// write (calls nextval)
	// write (data-modifying CTE)
	// read (SELECT)
}

func ExampleNew() {
	c := classify.New(classify.Options{
		WriteFunctions: []string{"audit.record_access", "bump_counter"},
	})
	fmt.Println(c.Classify("SELECT audit.record_access($1), * FROM docs WHERE id = $1"))
	fmt.Println(c.Classify("SELECT bump_counter('views')"))
	fmt.Println(c.Classify("SELECT * FROM docs WHERE id = $1").Kind.ReplicaSafe())
	// Output:
	// write (calls audit.record_access)
	// write (calls bump_counter)
	// true
}

func ExampleClassifier_MarkWrite() {
	c := classify.New(classify.Options{})
	const sql = "SELECT refresh_stats()" // a user function that writes
	fmt.Println(c.Classify(sql))
	// The replica refused it with SQLSTATE 25006: remember it.
	c.MarkWrite(sql, "refused by replica (25006)")
	fmt.Println(c.Classify(sql))
	// Output:
	// read (SELECT)
	// write (refused by replica (25006))
}
