package main

import (
	"net/http"

	"github.com/pgxroute/pgxroute"
)

// mountStatus mounts the pool's status page (pgxroute.StatusHandler) at /
// on mux and reports whether it did.
func mountStatus(mux *http.ServeMux, pool *pgxroute.RoutedPool) bool {
	mux.Handle("/", pgxroute.StatusHandler(pool))
	return true
}
