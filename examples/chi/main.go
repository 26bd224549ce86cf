// Command chi serves users with go-chi: pgxroute.Middleware is a chi
// middleware as it is.
//
//	PRIMARY_URL=postgres://... REPLICA_URLS=postgres://... go run ./chi
package main

import (
	"context"
	"encoding/json"
	"errors"
	"log"
	"net/http"
	"strconv"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"

	"github.com/pgxroute/pgxroute"
	"github.com/pgxroute/pgxroute/examples/internal/app"
)

func main() {
	db, err := app.Open(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	store := app.Store{DB: db}

	r := chi.NewRouter()
	r.Use(middleware.Recoverer)
	r.Use(pgxroute.Middleware) // a fresh scope per request
	r.Get("/users/{id}", func(w http.ResponseWriter, r *http.Request) {
		id, err := strconv.ParseInt(chi.URLParam(r, "id"), 10, 64)
		if err != nil {
			http.Error(w, "bad id", http.StatusBadRequest)
			return
		}
		u, err := store.Get(r.Context(), id)
		reply(w, u, err)
	})
	r.Post("/users", func(w http.ResponseWriter, r *http.Request) {
		var in struct{ Name string }
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		u, err := store.Create(r.Context(), in.Name)
		if err == nil {
			u, err = store.Get(r.Context(), u.ID) // sticky: the primary
		}
		reply(w, u, err)
	})

	log.Printf("listening on %s", app.Addr())
	log.Fatal(http.ListenAndServe(app.Addr(), r))
}

func reply(w http.ResponseWriter, v any, err error) {
	switch {
	case errors.Is(err, app.ErrNotFound):
		http.Error(w, err.Error(), http.StatusNotFound)
	case err != nil:
		http.Error(w, err.Error(), http.StatusInternalServerError)
	default:
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(v)
	}
}
