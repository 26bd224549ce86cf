package patroni_test

import (
	"context"
	"fmt"
	"time"

	"github.com/pgxroute/pgxroute/discovery/patroni"
)

// Example reads the members of a Patroni cluster from its REST API, asking
// each member's API in turn until one answers. The connection string gives
// the user, password, database and parameters; each member's address
// replaces its host and port. It needs a running Patroni cluster, so it has
// no Output to check.
func Example() {
	d := patroni.New(patroni.Config{
		URLs:       []string{"http://10.0.0.1:8008", "http://10.0.0.2:8008", "http://10.0.0.3:8008"},
		ConnString: "postgres://app:secret@placeholder/shop?sslmode=require",
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nodes, err := d.Discover(ctx) // or pgxroute.Config{Discovery: d}
	if err != nil {
		fmt.Println(err) // names each URL tried, never a password
		return
	}
	for _, n := range nodes { // the leader first
		fmt.Println(n.Name, n.NoReads)
	}
}
