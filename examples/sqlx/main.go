// Command sqlx serves users with sqlx on a routed *sql.DB
// (stdlib.OpenDB(pool)): Get and Select run on replicas, NamedExec and
// transactions on the primary, and pgxroute.Middleware gives each request a
// scope, so a request that writes reads its own write.
//
//	PRIMARY_URL=postgres://... REPLICA_URLS=postgres://...,postgres://... go run ./sqlx
//	curl -d '{"name":"ann"}' localhost:8080/users
//	curl localhost:8080/users
//	curl -X PUT -d '{"name":"bo"}' localhost:8080/users/1
package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"log"
	"net/http"
	"strconv"

	"github.com/jmoiron/sqlx"

	"github.com/pgxroute/pgxroute"
	"github.com/pgxroute/pgxroute/examples/internal/app"
	"github.com/pgxroute/pgxroute/stdlib"
)

// User is a row of users (app.Schema).
type User struct {
	ID   int64  `json:"id" db:"id"`
	Name string `json:"name" db:"name"`
}

func main() {
	pool, err := app.Open(context.Background()) // the RoutedPool; creates the table
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	// "pgx" tells sqlx to bind $1, $2; closing db leaves pool open.
	db := sqlx.NewDb(stdlib.OpenDB(pool), "pgx")
	defer db.Close()

	mux := http.NewServeMux()
	mux.HandleFunc("GET /users", func(w http.ResponseWriter, r *http.Request) {
		var users []User
		err := db.SelectContext(r.Context(), &users, "SELECT id, name FROM users ORDER BY id LIMIT 100") // a replica
		reply(w, users, err)
	})
	mux.HandleFunc("GET /users/{id}", func(w http.ResponseWriter, r *http.Request) {
		id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
		if err != nil {
			http.Error(w, "bad id", http.StatusBadRequest)
			return
		}
		var u User
		err = db.GetContext(r.Context(), &u, "SELECT id, name FROM users WHERE id = $1", id) // a replica
		reply(w, u, err)
	})
	mux.HandleFunc("POST /users", func(w http.ResponseWriter, r *http.Request) {
		var u User
		if err := json.NewDecoder(r.Body).Decode(&u); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		ctx := r.Context()
		// The primary; the request's scope turns sticky.
		_, err := db.NamedExecContext(ctx, "INSERT INTO users (name) VALUES (:name)", u)
		if err == nil {
			// The primary too: the request reads its own write.
			err = db.GetContext(ctx, &u, "SELECT id, name FROM users WHERE name = $1 ORDER BY id DESC LIMIT 1", u.Name)
		}
		reply(w, u, err)
	})
	mux.HandleFunc("PUT /users/{id}", func(w http.ResponseWriter, r *http.Request) {
		id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
		if err != nil {
			http.Error(w, "bad id", http.StatusBadRequest)
			return
		}
		u := User{ID: id}
		if err := json.NewDecoder(r.Body).Decode(&u); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		u.ID = id
		reply(w, u, rename(r.Context(), db, u))
	})

	log.Printf("listening on %s", app.Addr())
	log.Fatal(http.ListenAndServe(app.Addr(), pgxroute.Middleware(mux)))
}

// rename renames a user in a read-write transaction: on the primary, every
// statement of it.
func rename(ctx context.Context, db *sqlx.DB, u User) error {
	tx, err := db.BeginTxx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var old User
	if err := tx.GetContext(ctx, &old, "SELECT id, name FROM users WHERE id = $1 FOR UPDATE", u.ID); err != nil {
		return err
	}
	if _, err := tx.NamedExecContext(ctx, "UPDATE users SET name = :name WHERE id = :id", u); err != nil {
		return err
	}
	return tx.Commit()
}

func reply(w http.ResponseWriter, v any, err error) {
	switch {
	case errors.Is(err, sql.ErrNoRows):
		http.Error(w, err.Error(), http.StatusNotFound)
	case err != nil:
		http.Error(w, err.Error(), http.StatusInternalServerError)
	default:
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(v)
	}
}
