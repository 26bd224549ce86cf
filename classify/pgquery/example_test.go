//go:build cgo

package pgquery_test

import (
	"fmt"

	"github.com/pgxroute/pgxroute/classify"
	"github.com/pgxroute/pgxroute/classify/pgquery"
)

func Example() {
	c := pgquery.New(classify.Options{WriteFunctions: []string{"app.touch"}})
	for _, sql := range []string{
		"SELECT * FROM users WHERE id = $1",
		"SELECT * FROM jobs FOR UPDATE SKIP LOCKED",
		"SELECT app.touch(id) FROM users",
		"WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d",
		"SELEC 1",
	} {
		fmt.Println(c.Classify(sql))
	}
	// Output:
	// read (SELECT)
	// locking read (FOR UPDATE)
	// write (calls app.touch)
	// write (data-modifying CTE)
	// write (syntax error)
}
