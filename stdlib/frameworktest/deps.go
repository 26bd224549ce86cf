// Package frameworktest tests package stdlib under real database/sql
// libraries (sqlx, gorm, bun) and a hand-written package in sqlc's
// database/sql style, on real servers. It is a nested module, so that the
// library's go.mod stays free of these libraries.
package frameworktest
