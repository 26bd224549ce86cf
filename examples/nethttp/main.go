// Command nethttp serves users with net/http: pgxroute.Middleware gives each
// request a scope, so a request that writes reads its own write.
//
//	PRIMARY_URL=postgres://... REPLICA_URLS=postgres://...,postgres://... go run ./nethttp
//	curl -d '{"name":"ann"}' localhost:8080/users
//	curl localhost:8080/users/1
package main

import (
	"context"
	"encoding/json"
	"errors"
	"log"
	"net/http"
	"strconv"

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

	mux := http.NewServeMux()
	mux.HandleFunc("GET /users/{id}", func(w http.ResponseWriter, r *http.Request) {
		id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
		if err != nil {
			http.Error(w, "bad id", http.StatusBadRequest)
			return
		}
		u, err := store.Get(r.Context(), id) // a replica
		reply(w, u, err)
	})
	mux.HandleFunc("POST /users", func(w http.ResponseWriter, r *http.Request) {
		var in struct{ Name string }
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		u, err := store.Create(r.Context(), in.Name) // the primary; the scope turns sticky
		if err == nil {
			u, err = store.Get(r.Context(), u.ID) // the primary too: reads its own write
		}
		reply(w, u, err)
	})

	log.Printf("listening on %s", app.Addr())
	log.Fatal(http.ListenAndServe(app.Addr(), pgxroute.Middleware(mux)))
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
