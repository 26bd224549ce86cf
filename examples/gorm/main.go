// Command gorm serves users with gorm on a routed *sql.DB: gorm's own
// postgres driver runs on stdlib.OpenDB(pool), so every query gorm builds is
// routed (reads to replicas, writes and transactions to the primary), and
// pgxroute.Middleware gives each request a scope, so a request that writes
// reads its own write.
//
//	PRIMARY_URL=postgres://... REPLICA_URLS=postgres://...,postgres://... go run ./gorm
//	curl -d '{"name":"ann"}' localhost:8080/users
//	curl localhost:8080/users/1
//	curl -X PUT -d '{"name":"bo"}' localhost:8080/users/1
package main

import (
	"context"
	"encoding/json"
	"errors"
	"log"
	"net/http"
	"strconv"

	"gorm.io/driver/postgres"
	"gorm.io/gorm"

	"github.com/pgxroute/pgxroute"
	"github.com/pgxroute/pgxroute/examples/internal/app"
	"github.com/pgxroute/pgxroute/stdlib"
)

// User is gorm's model of the users table (app.Schema).
type User struct {
	ID   int64  `json:"id" gorm:"primaryKey"`
	Name string `json:"name"`
}

func main() {
	pool, err := app.Open(context.Background()) // the RoutedPool; creates the table
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	sqlDB := stdlib.OpenDB(pool) // routed database/sql; closing it leaves pool open
	defer sqlDB.Close()
	db, err := gorm.Open(postgres.New(postgres.Config{Conn: sqlDB}), &gorm.Config{})
	if err != nil {
		log.Fatal(err)
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /users/{id}", func(w http.ResponseWriter, r *http.Request) {
		id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
		if err != nil {
			http.Error(w, "bad id", http.StatusBadRequest)
			return
		}
		var u User
		err = db.WithContext(r.Context()).First(&u, id).Error // a replica
		reply(w, u, err)
	})
	mux.HandleFunc("GET /users/{id}/fresh", func(w http.ResponseWriter, r *http.Request) {
		id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
		if err != nil {
			http.Error(w, "bad id", http.StatusBadRequest)
			return
		}
		var u User
		// A read that must see the latest data: forced to the primary.
		err = db.WithContext(pgxroute.WithPrimary(r.Context())).First(&u, id).Error
		reply(w, u, err)
	})
	mux.HandleFunc("POST /users", func(w http.ResponseWriter, r *http.Request) {
		var u User
		if err := json.NewDecoder(r.Body).Decode(&u); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		g := db.WithContext(r.Context())
		err := g.Create(&u).Error // the primary; the request's scope turns sticky
		if err == nil {
			err = g.First(&u, u.ID).Error // the primary too: reads its own write
		}
		reply(w, u, err)
	})
	mux.HandleFunc("PUT /users/{id}", func(w http.ResponseWriter, r *http.Request) {
		id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
		if err != nil {
			http.Error(w, "bad id", http.StatusBadRequest)
			return
		}
		var in User
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var u User
		// A read-write transaction: on the primary, every statement of it.
		err = db.WithContext(r.Context()).Transaction(func(tx *gorm.DB) error {
			if err := tx.First(&u, id).Error; err != nil {
				return err
			}
			return tx.Model(&u).Update("name", in.Name).Error
		})
		reply(w, u, err)
	})

	log.Printf("listening on %s", app.Addr())
	log.Fatal(http.ListenAndServe(app.Addr(), pgxroute.Middleware(mux)))
}

func reply(w http.ResponseWriter, v any, err error) {
	switch {
	case errors.Is(err, gorm.ErrRecordNotFound):
		http.Error(w, err.Error(), http.StatusNotFound)
	case err != nil:
		http.Error(w, err.Error(), http.StatusInternalServerError)
	default:
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(v)
	}
}
