package dns_test

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgxroute/pgxroute"
	"github.com/pgxroute/pgxroute/discovery/dns"
	"github.com/pgxroute/pgxroute/routingtest"
)

// member is a discovered node as pgx reads its connection string.
type member struct {
	Name     string
	Hosts    []string // the host, then the fallbacks' (pgx's multi-host order)
	Port     uint16
	Password string
}

func members(t *testing.T, nodes []pgxroute.Node) []member {
	t.Helper()
	out := make([]member, len(nodes))
	for i, n := range nodes {
		cfg, err := pgconn.ParseConfig(n.ConnString)
		if err != nil {
			t.Fatalf("%s: pgx refuses the discovered connection string: %v", n.Name, err)
		}
		m := member{Name: n.Name, Hosts: []string{cfg.Host}, Port: cfg.Port, Password: cfg.Password}
		for _, f := range cfg.Fallbacks {
			if f.Host != m.Hosts[len(m.Hosts)-1] {
				m.Hosts = append(m.Hosts, f.Host)
			}
		}
		out[i] = m
	}
	return out
}

// TestDNSRecords checks the discoverer against a real dnsmasq: A and AAAA
// records sorted by address, SRV targets with their addresses (several make
// a multi-host string), targets without an address left out, and the
// errors: every one names the name looked up.
func TestDNSRecords(t *testing.T) {
	d := routingtest.StartDnsmasq(t, []string{
		"_pg._tcp.pg.test,two.pg.test,6000",
		"_pg._tcp.pg.test,one.pg.test,5432",
		"_pg._tcp.pg.test,gone.pg.test,5432",
		"_pg._tcp.pg.test,one.pg.test,5432,10,5",
		"_gone._tcp.pg.test,gone.pg.test,5432",
	}, []string{
		"127.0.0.1 one.pg.test",
		"127.0.0.3 two.pg.test",
		"::1 two.pg.test",
		"127.0.0.2 two.pg.test",
		"10.0.0.10 multi.pg.test",
		"fd00::1 multi.pg.test",
		"10.0.0.2 multi.pg.test",
	})
	const url = "postgres://app:hunter2@placeholder:6543/shop?sslmode=disable"
	const kv = "user=app password='hunter 2' dbname=shop port=7000 sslmode=disable"
	cases := []struct {
		name, lookup, conn string
		want               []member
		wantErr            string
		wantNoMembers      bool
	}{
		{
			name: "A and AAAA, sorted by address, on the connection string's port", lookup: "multi.pg.test.", conn: url,
			want: []member{
				{"10.0.0.2:6543", []string{"10.0.0.2"}, 6543, "hunter2"},
				{"10.0.0.10:6543", []string{"10.0.0.10"}, 6543, "hunter2"},
				{"[fd00::1]:6543", []string{"fd00::1"}, 6543, "hunter2"},
			},
		},
		{
			name: "A, keyword/value connection string", lookup: "one.pg.test", conn: kv,
			want: []member{{"127.0.0.1:7000", []string{"127.0.0.1"}, 7000, "hunter 2"}},
		},
		{
			name: "SRV: targets with their ports and addresses, the one without address left out", lookup: "_pg._tcp.pg.test.", conn: url,
			want: []member{
				{"one.pg.test:5432", []string{"127.0.0.1"}, 5432, "hunter2"},
				{"two.pg.test:6000", []string{"127.0.0.2", "127.0.0.3", "::1"}, 6000, "hunter2"},
			},
		},
		{
			name: "SRV, not fully qualified, keyword/value", lookup: "_pg._tcp.pg.test", conn: kv,
			want: []member{
				{"one.pg.test:5432", []string{"127.0.0.1"}, 5432, "hunter 2"},
				{"two.pg.test:6000", []string{"127.0.0.2", "127.0.0.3", "::1"}, 6000, "hunter 2"},
			},
		},
		{name: "SRV, no target has an address", lookup: "_gone._tcp.pg.test.", conn: url, wantErr: "dns: SRV _gone._tcp.pg.test.: no target has an address (gone.pg.test)", wantNoMembers: true},
		{name: "SRV, no such name", lookup: "_none._tcp.pg.test.", conn: url, wantErr: "dns: SRV _none._tcp.pg.test.: lookup _none._tcp.pg.test."},
		{name: "A, no such name", lookup: "none.pg.test.", conn: url, wantErr: "dns: A/AAAA none.pg.test.: lookup none.pg.test"},
		{name: "A, the name has SRV records only", lookup: "pg.test.", conn: url, wantErr: "dns: A/AAAA pg.test.:"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			nodes, err := dns.New(dns.Config{Name: c.lookup, ConnString: c.conn, Resolver: d.Resolver()}).Discover(t.Context())
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("Discover: %v, %v; want an error saying %q", nodes, err, c.wantErr)
				}
				if errors.Is(err, dns.ErrNoMembers) != c.wantNoMembers {
					t.Fatalf("Discover: %v: wraps ErrNoMembers: %v, want %v", err, !c.wantNoMembers, c.wantNoMembers)
				}
				if strings.Contains(err.Error(), "hunter") {
					t.Fatalf("the error shows the password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Discover: %v", err)
			}
			if diff := cmp.Diff(c.want, members(t, nodes)); diff != "" {
				t.Fatalf("Discover (-want +got):\n%s", diff)
			}
		})
	}
}

// TestDNSConfigErrors checks that a bad configuration fails every Discover
// with ErrConfig, without a password.
func TestDNSConfigErrors(t *testing.T) {
	for _, c := range []struct{ name, lookup, conn, want string }{
		{"no name", "", "", "Config.Name is empty"},
		{"only a dot", ".", "", "Config.Name is empty"},
		{"bad connection string", "db.example.", "user=app password='hunter2", "dns: db.example.: Config.ConnString: unparsable"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := dns.New(dns.Config{Name: c.lookup, ConnString: c.conn}).Discover(t.Context())
			if !errors.Is(err, pgxroute.ErrConfig) || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("Discover: %v; want ErrConfig saying %q, without the password", err, c.want)
			}
		})
	}
}

// answer is what the server behind a discovered connection string says of
// itself.
type answer struct {
	Addr       string
	Port       int
	InRecovery bool
}

func ask(ctx context.Context, t *testing.T, cs string) answer {
	t.Helper()
	conn, err := pgx.Connect(ctx, cs)
	if err != nil {
		t.Fatalf("connect with a discovered connection string: %v", err)
	}
	defer conn.Close(context.Background())
	var a answer
	if err := conn.QueryRow(ctx, "SELECT host(inet_server_addr()), inet_server_port(), pg_is_in_recovery()").Scan(&a.Addr, &a.Port, &a.InRecovery); err != nil {
		t.Fatalf("ask the server: %v", err)
	}
	return a
}

// haveIPv6Loopback reports whether ::1 can be listened on here.
func haveIPv6Loopback() bool {
	l, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// discoverUntil calls Discover until the members' names are want (the
// server reads its new records a moment after it is told), bounded.
func discoverUntil(ctx context.Context, t *testing.T, d *dns.Discoverer, want []string) []pgxroute.Node {
	t.Helper()
	var names []string
	for i := 0; ; i++ {
		nodes, err := d.Discover(ctx)
		if err == nil {
			names = names[:0]
			for _, n := range nodes {
				names = append(names, n.Name)
			}
			if cmp.Equal(want, names) {
				return nodes
			}
		}
		if i == 250 || ctx.Err() != nil {
			t.Fatalf("Discover: %v, %v; want %v", names, err, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestDNSCluster serves the nodes of a real harness cluster in dnsmasq
// records, changes the records, and checks that Discover follows and that
// each discovered connection string reaches the right server, asking the
// server for its address, port and recovery state.
func TestDNSCluster(t *testing.T) {
	routingtest.SkipWithoutDnsmasq(t)
	v6 := haveIPv6Loopback()
	opts := routingtest.ClusterOptions{}
	if v6 {
		opts.ExtraConf = []string{"listen_addresses = '127.0.0.1,::1'"}
	}
	c := routingtest.NewCluster(t, opts)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	primary, reps := c.Primary(), c.Replicas()
	srvOf := func(host string, n *routingtest.Node) string {
		return "_postgresql._tcp.pg.test," + host + "," + strconv.Itoa(n.Port())
	}
	nameOf := func(host string, n *routingtest.Node) string { return host + ":" + strconv.Itoa(n.Port()) }
	hosts := []string{"127.0.0.1 primary.pg.test", "127.0.0.1 replica1.pg.test", "127.0.0.1 replica2.pg.test"}
	d := routingtest.StartDnsmasq(t, []string{srvOf("primary.pg.test", primary), srvOf("replica1.pg.test", reps[0])}, hosts)
	const template = "postgres://postgres@placeholder/postgres?sslmode=disable&connect_timeout=5"
	srv := dns.New(dns.Config{Name: "_postgresql._tcp.pg.test.", ConnString: template, Resolver: d.Resolver()})

	check := func(nodes []pgxroute.Node, want map[string]*routingtest.Node, addr string) {
		t.Helper()
		for _, n := range nodes {
			a := ask(ctx, t, n.ConnString)
			w := answer{Addr: addr, Port: want[n.Name].Port(), InRecovery: want[n.Name] != primary}
			if diff := cmp.Diff(w, a); diff != "" {
				t.Errorf("%s: the server that answered (-want +got):\n%s", n.Name, diff)
			}
		}
	}

	t.Run("SRV", func(t *testing.T) {
		p, r1, r2 := nameOf("primary.pg.test", primary), nameOf("replica1.pg.test", reps[0]), nameOf("replica2.pg.test", reps[1])
		nodes := discoverUntil(ctx, t, srv, []string{p, r1})
		check(nodes, map[string]*routingtest.Node{p: primary, r1: reps[0]}, "127.0.0.1")

		// A member added, one removed: the SRV records change.
		d.SetSRV([]string{srvOf("replica1.pg.test", reps[0]), srvOf("replica2.pg.test", reps[1])})
		nodes = discoverUntil(ctx, t, srv, []string{r1, r2})
		check(nodes, map[string]*routingtest.Node{r1: reps[0], r2: reps[1]}, "127.0.0.1")

		// A target's address record goes away: the target is left out.
		d.SetHosts([]string{"127.0.0.1 primary.pg.test", "127.0.0.1 replica2.pg.test"})
		nodes = discoverUntil(ctx, t, srv, []string{r2})
		check(nodes, map[string]*routingtest.Node{r2: reps[1]}, "127.0.0.1")

		if v6 { // the target moves to another address
			d.SetHosts([]string{"::1 replica2.pg.test"})
			for i := 0; ; i++ {
				nodes = discoverUntil(ctx, t, srv, []string{r2})
				if strings.Contains(nodes[0].ConnString, "::1") {
					break
				}
				if i == 250 {
					t.Fatalf("replica2's address did not change: %s", nodes[0].ConnString)
				}
				time.Sleep(20 * time.Millisecond)
			}
			check(nodes, map[string]*routingtest.Node{r2: reps[1]}, "::1")
		}
		d.SetHosts(hosts)
	})

	t.Run("A and AAAA", func(t *testing.T) {
		// Every harness node is on 127.0.0.1: the name's addresses reach
		// replica1 on the connection string's port.
		port := strconv.Itoa(reps[0].Port())
		a := dns.New(dns.Config{Name: "db.pg.test.", ConnString: "host=placeholder user=postgres dbname=postgres sslmode=disable port=" + port, Resolver: d.Resolver()})
		_, err := a.Discover(ctx)
		if err == nil || !strings.Contains(err.Error(), "db.pg.test.") {
			t.Fatalf("Discover before the name exists: %v; want an error naming it", err)
		}
		d.SetHosts(append(hosts, "127.0.0.1 db.pg.test"))
		nodes := discoverUntil(ctx, t, a, []string{"127.0.0.1:" + port})
		check(nodes, map[string]*routingtest.Node{"127.0.0.1:" + port: reps[0]}, "127.0.0.1")
		if v6 {
			d.SetHosts(append(hosts, "127.0.0.1 db.pg.test", "::1 db.pg.test"))
			nodes = discoverUntil(ctx, t, a, []string{"127.0.0.1:" + port, "[::1]:" + port})
			check(nodes[:1], map[string]*routingtest.Node{"127.0.0.1:" + port: reps[0]}, "127.0.0.1")
			check(nodes[1:], map[string]*routingtest.Node{"[::1]:" + port: reps[0]}, "::1")
		} else {
			t.Log("no IPv6 loopback here: AAAA records not checked against a server")
		}
	})
}

// BenchmarkDNSDiscover measures one Discover call against a real dnsmasq on
// loopback: an A/AAAA name with three addresses, and an SRV name with three
// targets of one address each. queries/op counts the queries dnsmasq logged.
func BenchmarkDNSDiscover(b *testing.B) {
	d := routingtest.StartDnsmasq(b, []string{
		"_pg._tcp.pg.test,m1.pg.test,5432", "_pg._tcp.pg.test,m2.pg.test,5432", "_pg._tcp.pg.test,m3.pg.test,5432",
	}, []string{
		"10.0.0.1 m1.pg.test", "10.0.0.2 m2.pg.test", "10.0.0.3 m3.pg.test",
		"10.0.0.1 db.pg.test", "10.0.0.2 db.pg.test", "10.0.0.3 db.pg.test",
	})
	const template = "postgres://app:secret@placeholder:5432/shop?sslmode=disable"
	for _, name := range []string{"db.pg.test.", "_pg._tcp.pg.test."} {
		b.Run(strings.Trim(name, "."), func(b *testing.B) {
			disc := dns.New(dns.Config{Name: name, ConnString: template, Resolver: d.Resolver()})
			ctx := context.Background()
			before := d.Queries()
			b.ReportAllocs()
			b.ResetTimer()
			n := 0
			for b.Loop() {
				nodes, err := disc.Discover(ctx)
				if err != nil || len(nodes) != 3 {
					b.Fatal(len(nodes), err)
				}
				n++
			}
			b.StopTimer()
			// dnsmasq logs a moment after it answers.
			time.Sleep(100 * time.Millisecond)
			b.ReportMetric(float64(d.Queries()-before)/float64(n), "queries/op")
		})
	}
}
