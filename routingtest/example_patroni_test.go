package routingtest_test

import (
	"context"
	"fmt"
	"time"

	"github.com/pgxroute/pgxroute/routingtest"
)

// ExampleStartPatroni starts etcd and three Patroni members, kills the
// leader's host, waits for Patroni to elect another leader, and brings the
// old one back as a replica. It needs patroni, etcd and PostgreSQL's server
// binaries, so it has no Output to check.
func ExampleStartPatroni() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p, err := routingtest.StartPatroni(ctx, routingtest.PatroniOptions{})
	if err != nil {
		fmt.Println(err) // says what to install when the binaries are missing
		return
	}
	defer p.Close()
	old, err := p.Leader(ctx)
	if err != nil {
		panic(err)
	}
	if err := p.KillMember(old); err != nil { // SIGKILL to Patroni and PostgreSQL
		panic(err)
	}
	leader, err := p.WaitLeader(ctx, old.Name()) // a new leader that accepts writes
	if err != nil {
		panic(err)
	}
	fmt.Println("new leader:", leader.Name(), leader.ConnString())
	if err := p.StartMember(ctx, old); err != nil { // rejoins as a replica (pg_rewind)
		panic(err)
	}
}
