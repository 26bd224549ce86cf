// Package pgquery decides statements with the rules of package classify on
// PostgreSQL's own parse tree, through pg_query_go (libpg_query, cgo).
//
// It is exact where the lexical classifier of package classify is
// conservative, at the cost of cgo and of a full parse per statement (tens of
// microseconds instead of tens to hundreds of nanoseconds). It also serves
// as the oracle of classify's differential tests: over PostgreSQL's
// regression suite, and under fuzzing, the lexical classifier must never
// answer Read or LockingRead where this package answers Write, nor Read
// where it answers LockingRead.
//
// The package needs cgo; without it, it is empty.
package pgquery
