// Package app holds what the example servers share: the routed pool built
// from the environment, the schema, and a small users store. Each example
// only wires its router to it.
package app

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/pgxroute/pgxroute"
)

// Config builds a pgxroute configuration from the environment:
//
//	PRIMARY_URL   connection string of the primary (required)
//	REPLICA_URLS  comma-separated connection strings of the replicas (optional)
func Config() (pgxroute.Config, error) {
	primary := os.Getenv("PRIMARY_URL")
	if primary == "" {
		return pgxroute.Config{}, errors.New("set PRIMARY_URL (and REPLICA_URLS, comma-separated)")
	}
	// Config.Primary would do; a Node names the primary in logs and Stat.
	cfg := pgxroute.Config{Groups: map[string][]pgxroute.Node{
		pgxroute.DefaultGroupName: {{Name: "primary", ConnString: primary}},
	}}
	for i, url := range strings.Split(os.Getenv("REPLICA_URLS"), ",") {
		if url = strings.TrimSpace(url); url != "" {
			cfg.Replicas = append(cfg.Replicas, pgxroute.Node{Name: "replica" + strconv.Itoa(i+1), ConnString: url})
		}
	}
	// Log every routing decision, to see reads go to replicas and a request
	// that wrote read its own write from the primary.
	cfg.OnRoute = func(_ context.Context, r pgxroute.Route) { log.Printf("route: %v", r) }
	return cfg, nil
}

// Open returns a RoutedPool configured from the environment, with the
// schema created.
func Open(ctx context.Context) (*pgxroute.RoutedPool, error) {
	cfg, err := Config()
	if err != nil {
		return nil, err
	}
	db, err := pgxroute.New(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if _, err := db.Exec(ctx, Schema); err != nil { // a write: runs on the primary
		db.Close()
		return nil, fmt.Errorf("create schema: %w", err)
	}
	return db, nil
}

// Addr is the address to listen on: ADDR, or ":8080".
func Addr() string {
	if a := os.Getenv("ADDR"); a != "" {
		return a
	}
	return ":8080"
}

// Schema is the examples' one table.
const Schema = `CREATE TABLE IF NOT EXISTS users (
  id   bigserial PRIMARY KEY,
  name text NOT NULL
)`

// User is a row of users.
type User struct {
	ID   int64  `json:"id"`
	Name string `json:"name"`
}

// ErrNotFound is returned for a user that does not exist.
var ErrNotFound = errors.New("user not found")

// DB is what the store needs: *pgxroute.RoutedPool has it, and so do
// *pgxpool.Pool and pgx.Tx.
type DB interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Store reads and writes users. It knows nothing of routing: the pool sends
// its reads to replicas and its writes to the primary.
type Store struct{ DB DB }

// Get reads a user (on a replica, or on the primary once the request wrote).
func (s Store) Get(ctx context.Context, id int64) (User, error) {
	u := User{ID: id}
	err := s.DB.QueryRow(ctx, "SELECT name FROM users WHERE id = $1", id).Scan(&u.Name)
	if errors.Is(err, pgx.ErrNoRows) {
		return u, ErrNotFound
	}
	return u, err
}

// Create inserts a user (on the primary).
func (s Store) Create(ctx context.Context, name string) (User, error) {
	u := User{Name: name}
	err := s.DB.QueryRow(ctx, "INSERT INTO users (name) VALUES ($1) RETURNING id", name).Scan(&u.ID)
	return u, err
}
