package main

import (
	"net/http"

	"github.com/pgxroute/pgxroute"
)

// mountStatus mounts the pool's status page at / on mux and reports whether
// it did. pgxroute.StatusHandler (issue 27's status page) is added on
// another branch; until it is merged this build has no status page, and
// the demo's -http serves /metrics alone.
//
// At the merge, replace the body with:
//
//	mux.Handle("/", pgxroute.StatusHandler(pool))
//	return true
func mountStatus(mux *http.ServeMux, pool *pgxroute.RoutedPool) bool {
	_, _ = mux, pool
	return false
}
