package authors

import (
	"context"
	"database/sql"
)

const createAuthor = `-- name: CreateAuthor :one
INSERT INTO authors (name, bio) VALUES ($1, $2)
RETURNING id, name, bio, port
`

// CreateAuthorParams are CreateAuthor's arguments.
type CreateAuthorParams struct {
	Name string
	Bio  sql.NullString
}

// CreateAuthor inserts an author and returns its row.
func (q *Queries) CreateAuthor(ctx context.Context, arg CreateAuthorParams) (Author, error) {
	row := q.db.QueryRowContext(ctx, createAuthor, arg.Name, arg.Bio)
	var i Author
	err := row.Scan(&i.ID, &i.Name, &i.Bio, &i.Port)
	return i, err
}

const getAuthor = `-- name: GetAuthor :one
SELECT id, name, bio, port, inet_server_port() AS served FROM authors
WHERE id = $1 LIMIT 1
`

// GetAuthorRow is a row of GetAuthor.
type GetAuthorRow struct {
	ID     int64
	Name   string
	Bio    sql.NullString
	Port   int32
	Served int32
}

// GetAuthor returns an author, with the port of the server that answered.
func (q *Queries) GetAuthor(ctx context.Context, id int64) (GetAuthorRow, error) {
	row := q.db.QueryRowContext(ctx, getAuthor, id)
	var i GetAuthorRow
	err := row.Scan(&i.ID, &i.Name, &i.Bio, &i.Port, &i.Served)
	return i, err
}

const listAuthors = `-- name: ListAuthors :many
SELECT id, name, bio, port, inet_server_port() AS served FROM authors
WHERE id = ANY($1::bigint[])
ORDER BY id
`

// ListAuthorsRow is a row of ListAuthors.
type ListAuthorsRow struct {
	ID     int64
	Name   string
	Bio    sql.NullString
	Port   int32
	Served int32
}

// ListAuthors returns the authors of ids.
func (q *Queries) ListAuthors(ctx context.Context, ids []int64) ([]ListAuthorsRow, error) {
	rows, err := q.db.QueryContext(ctx, listAuthors, ids)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var items []ListAuthorsRow
	for rows.Next() {
		var i ListAuthorsRow
		if err := rows.Scan(&i.ID, &i.Name, &i.Bio, &i.Port, &i.Served); err != nil {
			return nil, err
		}
		items = append(items, i)
	}
	if err := rows.Close(); err != nil {
		return nil, err
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return items, nil
}

const deleteAuthor = `-- name: DeleteAuthor :execrows
DELETE FROM authors WHERE id = $1
`

// DeleteAuthor deletes an author and returns the number of rows deleted.
func (q *Queries) DeleteAuthor(ctx context.Context, id int64) (int64, error) {
	result, err := q.db.ExecContext(ctx, deleteAuthor, id)
	if err != nil {
		return 0, err
	}
	return result.RowsAffected()
}

const serverPort = `-- name: ServerPort :one
SELECT inet_server_port()::int AS port
`

// ServerPort returns the port of the server that answers.
func (q *Queries) ServerPort(ctx context.Context) (int32, error) {
	row := q.db.QueryRowContext(ctx, serverPort)
	var port int32
	err := row.Scan(&port)
	return port, err
}
