package patroni_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/pgxroute/pgxroute"
	"github.com/pgxroute/pgxroute/discovery/patroni"
	"github.com/pgxroute/pgxroute/routingtest"
)

// template is the connection string the discoverer is given: every member's
// host and port replace its placeholder ones; the rest must reach the server.
const template = "postgres://postgres@placeholder:1/postgres?sslmode=disable&application_name=pgxroute-discovery&connect_timeout=5"

// answer is what the server behind a discovered connection string says of
// itself.
type answer struct {
	Port       int
	InRecovery bool
	AppName    string
}

// ask connects with cs and asks the server that answers where it is.
func ask(ctx context.Context, t *testing.T, cs string) answer {
	t.Helper()
	conn, err := pgx.Connect(ctx, cs)
	if err != nil {
		t.Fatalf("connect with a discovered connection string: %v", err)
	}
	defer conn.Close(context.Background())
	var a answer
	if err := conn.QueryRow(ctx, "SELECT inet_server_port(), pg_is_in_recovery(), current_setting('application_name')").Scan(&a.Port, &a.InRecovery, &a.AppName); err != nil {
		t.Fatalf("ask the server: %v", err)
	}
	return a
}

// summary is a discovered node without its connection string, for diffs.
type summary struct {
	Name    string
	NoReads bool
}

func summarize(nodes []pgxroute.Node) []summary {
	out := make([]summary, len(nodes))
	for i, n := range nodes {
		out[i] = summary{n.Name, n.NoReads}
	}
	return out
}

// TestPatroniDiscover runs the discoverer against a real Patroni cluster of
// three members, member3 tagged noloadbalance: the leader comes first, every
// connection string reaches its member's server (asked for its port and
// recovery state), the tag gives NoReads, a killed member leaves the list and
// comes back when it rejoins, and a REST URL that is down is passed over.
func TestPatroniDiscover(t *testing.T) {
	p := routingtest.NewPatroni(t, routingtest.PatroniOptions{
		Tags: map[string]map[string]any{"member3": {"noloadbalance": true}},
	})
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	m1, m2, m3 := p.Member("member1"), p.Member("member2"), p.Member("member3")
	d := patroni.New(patroni.Config{URLs: []string{m2.RESTURL(), m1.RESTURL(), m3.RESTURL()}, ConnString: template})

	t.Run("leader first, replicas, tags, and where each string connects", func(t *testing.T) {
		nodes, err := d.Discover(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := []summary{{"member1", false}, {"member2", false}, {"member3", true}}
		if diff := cmp.Diff(want, summarize(nodes)); diff != "" {
			t.Fatalf("Discover (-want +got):\n%s", diff)
		}
		for i, n := range nodes {
			m := p.Member(n.Name)
			got := ask(ctx, t, n.ConnString)
			want := answer{Port: m.Port(), InRecovery: i > 0, AppName: "pgxroute-discovery"}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("%s: the server that answered (-want +got):\n%s", n.Name, diff)
			}
		}
	})

	t.Run("a killed member leaves, then rejoins", func(t *testing.T) {
		if err := p.KillMember(m2); err != nil {
			t.Fatal(err)
		}
		killed := time.Now()
		// Patroni keeps a dead member's key until its TTL runs out: poll,
		// bounded. d's first URL (member2's) is down now: it must pass on.
		ttl, _, _ := p.Settings()
		want := []summary{{"member1", false}, {"member3", true}}
		var got []summary
		for i := 0; ; i++ {
			nodes, err := d.Discover(ctx)
			if err != nil {
				t.Fatalf("Discover with member2 dead: %v", err)
			}
			if got = summarize(nodes); cmp.Equal(want, got) {
				t.Logf("member2 left the list %v after its kill (Patroni ttl %v)", time.Since(killed).Round(time.Millisecond), ttl)
				break
			}
			if i == 200 || ctx.Err() != nil {
				t.Fatalf("member2 still listed after %d tries: (-want +got):\n%s", i, cmp.Diff(want, got))
			}
			time.Sleep(ttl / 20)
		}
		// Only member2's URL: the error names it.
		_, err := patroni.New(patroni.Config{URLs: []string{m2.RESTURL()}, ConnString: template}).Discover(ctx)
		if err == nil || !strings.Contains(err.Error(), "GET "+m2.RESTURL()+"/cluster") {
			t.Fatalf("Discover from a dead member only: %v; want an error naming its URL", err)
		}

		restart := time.Now()
		if err := p.StartMember(ctx, m2); err != nil {
			t.Fatal(err)
		}
		want = []summary{{"member1", false}, {"member2", false}, {"member3", true}}
		for i := 0; ; i++ {
			nodes, err := d.Discover(ctx)
			if err != nil {
				t.Fatalf("Discover: %v", err)
			}
			if got = summarize(nodes); cmp.Equal(want, got) {
				if a := ask(ctx, t, nodes[1].ConnString); a.Port != m2.Port() || !a.InRecovery {
					t.Fatalf("member2's string reached %+v; want port %d in recovery", a, m2.Port())
				}
				t.Logf("member2 listed again %v after its restart", time.Since(restart).Round(time.Millisecond))
				break
			}
			if i == 200 || ctx.Err() != nil {
				t.Fatalf("member2 not listed again after %d tries: (-want +got):\n%s", i, cmp.Diff(want, got))
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
}

// cpuTime returns the CPU time (user and system) the process pid has used,
// from /proc (Linux), or false elsewhere.
func cpuTime(pid int) (time.Duration, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	// The fields after the command name, which is in parentheses: utime
	// and stime are the 12th and 13th, in clock ticks (100 a second).
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0, false
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return time.Duration(u+s) * 10 * time.Millisecond, true
}

// etcdPID returns the process id of the etcd whose data is in dir, found in
// /proc, or 0.
func etcdPID(dir string) int {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmd, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && filepath.Base(string(bytes.SplitN(cmd, []byte{0}, 2)[0])) == "etcd" && bytes.Contains(cmd, []byte(dir)) {
			return pid
		}
	}
	return 0
}

// BenchmarkPatroniDiscover measures one Discover call against a real Patroni
// cluster of three members: one GET /cluster on a new connection (no
// keep-alive), its JSON decoded and three connection strings made.
// patroni-cpu-µs/op is the CPU time the answering Patroni spent per call (in
// 10 ms ticks: run a thousand calls or more), etcd-cpu-µs/op the same for
// etcd: Patroni 3.0 reads the cluster from its DCS for every GET /cluster.
// Both are net of what the process spends idle over as long a time.
//
// The burst runs make k calls at once, as k application instances do when
// they all lose the primary at the same moment: each op is one burst, and
// reports its slowest call and how many failed (RequestTimeout passed).
// Patroni's REST API listens with a backlog of 5 connections: past it,
// connections wait for the client's SYN retransmission (1 s, then 3 s).
func BenchmarkPatroniDiscover(b *testing.B) {
	p := routingtest.NewPatroni(b, routingtest.PatroniOptions{})
	m1 := p.Member("member1")
	d := patroni.New(patroni.Config{URLs: []string{m1.RESTURL()}, ConnString: template})
	ctx := context.Background()
	b.Run("serial", func(b *testing.B) {
		etcd := etcdPID(p.Dir())
		cpu := func() (patroni, etcdCPU time.Duration, ok bool) {
			p1, ok1 := cpuTime(m1.PatroniPID())
			e1, ok2 := cpuTime(etcd)
			return p1, e1, ok1 && ok2 && etcd != 0
		}
		// The processes' own work (Patroni's HA loop, etcd's leases) over
		// as long as the run takes is taken off.
		p0, e0, ok := cpu()
		start := time.Now()
		b.ReportAllocs()
		for b.Loop() {
			nodes, err := d.Discover(ctx)
			if err != nil || len(nodes) != 3 {
				b.Fatal(fmt.Sprint(len(nodes), err))
			}
		}
		b.StopTimer()
		elapsed := time.Since(start)
		p1, e1, ok1 := cpu()
		time.Sleep(elapsed)
		p2, e2, ok2 := cpu()
		if ok && ok1 && ok2 {
			perOp := func(busy, idle time.Duration) float64 {
				return float64((busy - idle).Microseconds()) / float64(b.N)
			}
			b.ReportMetric(perOp(p1-p0, p2-p1), "patroni-cpu-µs/op")
			b.ReportMetric(perOp(e1-e0, e2-e1), "etcd-cpu-µs/op")
		}
	})
	// calls makes n Discover calls, each after delay(), and reports the
	// slowest and how many failed, per op.
	calls := func(b *testing.B, n int, delay func() time.Duration) {
		var slowest time.Duration
		failed := 0
		for b.Loop() {
			var wg sync.WaitGroup
			var mu sync.Mutex
			start := make(chan struct{})
			for range n {
				wait := delay()
				wg.Go(func() {
					<-start
					time.Sleep(wait)
					t0 := time.Now()
					_, err := d.Discover(ctx)
					el := time.Since(t0)
					mu.Lock()
					defer mu.Unlock()
					slowest = max(slowest, el)
					if err != nil {
						failed++
					}
				})
			}
			close(start)
			wg.Wait()
		}
		b.ReportMetric(float64(slowest.Milliseconds()), "slowest-ms")
		b.ReportMetric(float64(failed)/float64(b.N), "failed/op")
	}
	for _, k := range []int{4, 16, 64, 256} {
		b.Run("burst="+strconv.Itoa(k), func(b *testing.B) {
			calls(b, k, func() time.Duration { return 0 })
		})
	}
	// 1,000 calls spread at random over 5 s: what a router that delays its
	// calls "at once" by a random 0 to 5 s makes of 1,000 instances.
	b.Run("spread=1000/5s", func(b *testing.B) {
		calls(b, 1000, func() time.Duration { return time.Duration(rand.Int64N(int64(5 * time.Second))) })
	})
	// 1,000 calls spread at random over 1 s (the router's own spread of the
	// calls it makes "at once": DiscoveryInterval/10, at most 1 s) and over
	// 3 s (DiscoveryInterval/10 with the default interval).
	for _, over := range []time.Duration{time.Second, 3 * time.Second} {
		b.Run("spread=1000/"+over.String(), func(b *testing.B) {
			calls(b, 1000, func() time.Duration { return time.Duration(rand.Int64N(int64(over))) })
		})
	}
}
