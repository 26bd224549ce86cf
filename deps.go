//go:build tools

package pgxroute

import (
	_ "github.com/google/go-cmp/cmp"
	_ "github.com/jackc/pgx/v5/pgxpool"
	_ "github.com/pashagolub/pgxmock/v4"
	_ "github.com/pganalyze/pg_query_go/v6"
)
