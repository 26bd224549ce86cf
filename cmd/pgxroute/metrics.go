package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pgxroute/pgxroute"
	pgxrouteprom "github.com/pgxroute/pgxroute/prometheus"
)

// serveHTTP serves pool's Prometheus collector at http://addr/metrics, and
// its status page at / when this build has one (mountStatus), until stop is
// called. It returns the address it listens on (addr with a port of 0 picks
// a free one) and whether the status page is served.
func serveHTTP(addr string, pool *pgxroute.RoutedPool) (string, bool, func(), error) {
	reg := prometheus.NewRegistry()
	if err := reg.Register(pgxrouteprom.NewCollector(pool, nil)); err != nil {
		return "", false, nil, fmt.Errorf("metrics: %w", err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", false, nil, fmt.Errorf("http: listen on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	status := mountStatus(mux, pool)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			fmt.Fprintf(os.Stderr, "http: %v\n", err)
		}
	}()
	stop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
	}
	return ln.Addr().String(), status, stop, nil
}
