package authors

import "database/sql"

// Author is a row of authors.
type Author struct {
	ID   int64
	Name string
	Bio  sql.NullString
	// Port is the port of the server that inserted the row.
	Port int32
}
