package dns_test

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/pgxroute/pgxroute/discovery/dns"
)

// Example discovers a cluster's members from Consul's DNS interface: an SRV
// name, whose targets (node names only Consul knows) are looked up through
// the same resolver, which asks Consul's DNS port. It needs Consul, so it has
// no Output to check.
func Example() {
	consul := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, "127.0.0.1:8600")
	}}
	d := dns.New(dns.Config{
		Name:       "_postgresql._tcp.pg.service.consul.",
		ConnString: "postgres://app:secret@placeholder/shop?sslmode=require",
		Resolver:   consul,
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	nodes, err := d.Discover(ctx) // or pgxroute.Config{Discovery: d}
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, n := range nodes { // sorted by name: "pg-1.node.dc1.consul:5432"...
		fmt.Println(n.Name)
	}
}

// Example_headless discovers the pods of a Kubernetes headless service from
// its A records: each address is a member, on the connection string's port.
func Example_headless() {
	d := dns.New(dns.Config{
		Name:       "pg.prod.svc.cluster.local.",
		ConnString: "host=placeholder port=5432 user=app dbname=shop sslmode=require",
	})
	nodes, err := d.Discover(context.Background())
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, n := range nodes { // "10.1.2.3:5432"...
		fmt.Println(n.Name)
	}
}
