-- name: GetUser :one
SELECT id, name FROM users
WHERE id = $1;

-- name: ListUsers :many
SELECT id, name FROM users
ORDER BY id
LIMIT $1;

-- name: CreateUser :one
INSERT INTO users (name) VALUES ($1)
RETURNING id, name;

-- name: RenameUser :exec
UPDATE users SET name = $2
WHERE id = $1;
