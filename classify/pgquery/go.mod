module github.com/pgxroute/pgxroute/classify/pgquery

go 1.26.0

require (
	github.com/google/go-cmp v0.7.0
	github.com/pganalyze/pg_query_go/v6 v6.2.5
	github.com/pgxroute/pgxroute v0.0.0
	google.golang.org/protobuf v1.36.12
)

replace github.com/pgxroute/pgxroute => ../..
