package pgxroute_test

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pgxroute/pgxroute"
	"github.com/pgxroute/pgxroute/internal/experiment"
	"github.com/pgxroute/pgxroute/routingtest"
)

// TestReadYourWritesExperiment runs the experiment briefly: ReadYourWrites
// has no stale read and serves more reads from replicas than StickyScope and
// StickyFor(1s). NoStickiness is run too, to show that the experiment can see
// stale reads at all.
func TestReadYourWritesExperiment(t *testing.T) {
	routingtest.SkipWithoutPostgres(t, "")
	c, err := experiment.StartCluster(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	results, err := experiment.Run(context.Background(), c, experiment.Options{Duration: 2 * time.Second, Workers: 8})
	if err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	experiment.WriteTable(&sb, results)
	t.Logf("\n%s", sb.String())
	by := map[string]experiment.Result{}
	for _, r := range results {
		by[r.Mode.String()] = r
		if r.Errors != 0 {
			t.Errorf("%s: %d errors, first: %s", r.Mode, r.Errors, r.FirstErr)
		}
	}
	ryw := by[pgxroute.ReadYourWrites.String()]
	if ryw.Reads == 0 || ryw.Stale != 0 {
		t.Fatalf("ReadYourWrites: %d stale of %d reads, want 0", ryw.Stale, ryw.Reads)
	}
	if by["off"].Stale == 0 {
		t.Errorf("NoStickiness had no stale read: the experiment cannot tell")
	}
	for _, m := range []string{pgxroute.StickyScope.String(), pgxroute.StickyFor(time.Second).String()} {
		if by[m].Stale != 0 {
			t.Errorf("%s: %d stale reads", m, by[m].Stale)
		}
		if ryw.ReplicaShare <= by[m].ReplicaShare {
			t.Errorf("ReadYourWrites replica share %.3f not above %s's %.3f", ryw.ReplicaShare, m, by[m].ReplicaShare)
		}
	}
}

// TestTokenAcrossRequests: a POST writes, a redirected GET carries the
// token in a cookie and sees the write, though both replicas lag.
func TestTokenAcrossRequests(t *testing.T) {
	c := ownCluster(t, routingtest.ClusterOptions{ApplyDelay: []time.Duration{time.Second, time.Second}})
	pool := newPool(t, c, pgxroute.Config{Stickiness: pgxroute.ReadYourWrites, Health: fastHealth})
	mux := http.NewServeMux()
	mux.HandleFunc("POST /items", func(w http.ResponseWriter, r *http.Request) {
		id := r.URL.Query().Get("id")
		if _, err := pool.Exec(r.Context(), "INSERT INTO items (id) VALUES ($1::bigint)", id); err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		http.Redirect(w, r, "/items?id="+id, http.StatusSeeOther)
	})
	mux.HandleFunc("GET /items", func(w http.ResponseWriter, r *http.Request) {
		var found bool
		var port int
		err := pool.QueryRow(r.Context(), "SELECT inet_server_port(), EXISTS (SELECT 1 FROM items WHERE id = $1::bigint)", r.URL.Query().Get("id")).Scan(&port, &found)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		if !found {
			http.Error(w, "stale", http.StatusNotFound)
		}
	})
	srv := httptest.NewServer(pgxroute.MiddlewareWith(pgxroute.MiddlewareOptions{Cookie: "pgxroute"})(mux))
	defer srv.Close()
	routingtest.WaitFor(t, "the first probes", func() bool { return nodeStat(pool, "default", primaryName(c)).Position != "" })

	post := func(client *http.Client) *http.Response {
		t.Helper()
		resp, err := client.Post(srv.URL+"/items?id="+itoa(nextID()), "text/plain", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	// With the cookie: the GET after the redirect sees the write.
	jar, _ := cookiejar.New(nil)
	withCookies := &http.Client{Jar: jar}
	for i := 0; i < 5; i++ {
		if resp := post(withCookies); resp.StatusCode != http.StatusOK {
			t.Fatalf("POST+GET with the token: %s", resp.Status)
		}
	}
	u, _ := url.Parse(srv.URL)
	if cs := jar.Cookies(u); len(cs) != 1 || !strings.HasPrefix(cs[0].Value, "v1.") {
		t.Fatalf("no token cookie set: %v", cs)
	}
	// Without it, the GET goes to a lagging replica and misses the write:
	// the test can tell.
	if resp := post(&http.Client{}); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("POST+GET without the token: %s, want 404 (stale)", resp.Status)
	}
}

func TestTokens(t *testing.T) {
	c := sharedCluster(t)
	pool := newPool(t, c, pgxroute.Config{Stickiness: pgxroute.ReadYourWrites, Health: fastHealth})
	bg := context.Background()
	routingtest.WaitFor(t, "the first probes", func() bool { return nodeStat(pool, "default", primaryName(c)).Position != "" })

	if tok := pgxroute.Token(bg); tok != "" {
		t.Fatalf("token without scope: %q", tok)
	}
	ctx := pgxroute.WithScope(bg)
	if tok := pgxroute.Token(ctx); tok != "" {
		t.Fatalf("token of a scope that did nothing: %q", tok)
	}
	if _, err := pool.Exec(ctx, "INSERT INTO items (id) VALUES ($1)", nextID()); err != nil {
		t.Fatal(err)
	}
	tok := pgxroute.Token(ctx)
	if !strings.HasPrefix(tok, "v1.") {
		t.Fatalf("token after a write: %q", tok)
	}
	// A genuine token: the new scope's reads wait for that position.
	ctx2, err := pgxroute.WithToken(bg, tok)
	if err != nil {
		t.Fatal(err)
	}
	routingtest.WaitFor(t, "reads of the token's scope to reach a replica", func() bool {
		r, err := pool.Route(ctx2, whoami)
		return err == nil && r.Group == "read"
	})

	for _, bad := range []string{"garbage", "v1.", "v2.AAAAAAAAAAAAAAAAAAAAAAAAAAA", "v1.!!!!!!!!!!!!!!!!!!!!!!!!!!!!"} {
		ctx, err := pgxroute.WithToken(bg, bad)
		if !errors.Is(err, pgxroute.ErrBadToken) {
			t.Errorf("WithToken(%q) = %v, want ErrBadToken", bad, err)
		}
		if !pgxroute.HasScope(ctx) {
			t.Errorf("WithToken(%q) gave no scope", bad)
		}
	}

	// A token far ahead of the primary (forged) or from another system
	// cannot keep reads on the primary: after one probe they return.
	for name, forged := range map[string]string{
		"ahead":        forgeToken(t, tok, func(b []byte) { b[12] = 0x7f }),
		"other system": forgeToken(t, tok, func(b []byte) { b[0] ^= 0xff }),
		"pending":      forgeToken(t, tok, func(b []byte) { b[20] = 1 }),
	} {
		ctx, err := pgxroute.WithToken(bg, forged)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		r, err := pool.Route(ctx, whoami)
		if err != nil || r.Group != "default" || r.Reason != pgxroute.ReasonReplicasBehind {
			t.Fatalf("%s: first read routed %v, %v; want the default group while it waits", name, r, err)
		}
		routingtest.WaitFor(t, name+" token's reads to reach a replica", func() bool {
			r, err := pool.Route(ctx, whoami)
			return err == nil && r.Group == "read"
		})
	}
}

// TestMonotonicReads: once a scope read from a replica at some position, a
// later read never goes to a replica known to be behind it.
func TestMonotonicReads(t *testing.T) {
	c := ownCluster(t, routingtest.ClusterOptions{ApplyDelay: []time.Duration{0, 2 * time.Second}})
	pool := newPool(t, c, pgxroute.Config{Stickiness: pgxroute.ReadYourWrites, Health: fastHealth, Strategy: pgxroute.RoundRobin})
	ctx := context.Background()
	routingtest.WaitFor(t, "the first probes", func() bool { return nodeStat(pool, "read", "replica2").Position != "" })
	// Writes outside any scope advance replica1 at once and replica2 two
	// seconds later.
	for i := 0; i < 3; i++ {
		if _, err := pool.Exec(ctx, "INSERT INTO items (id) VALUES ($1)", nextID()); err != nil {
			t.Fatal(err)
		}
	}
	pos := func(node string) uint64 { return lsn(t, nodeStat(pool, "read", node).Position) }
	routingtest.WaitFor(t, "replica1 to be known ahead of replica2", func() bool { return pos("replica1") > pos("replica2") })
	scope := pgxroute.WithScope(ctx)
	// Read until replica1 serves once; from then on replica2 must not serve
	// while it is known to be behind the position replica1 had.
	var p1 uint64
	routingtest.WaitFor(t, "a read from replica1", func() bool {
		p1 = pos("replica1")
		return routingtest.ServedBy(t, scope, c, pool, whoami) == "replica1"
	})
	served := map[string]int{}
	for i := 0; i < 20; i++ {
		got := routingtest.ServedBy(t, scope, c, pool, whoami)
		served[got]++
		if got == "replica2" && pos("replica2") < p1 {
			t.Fatalf("read %d went back in time to replica2 (%d < %d)", i, pos("replica2"), p1)
		}
	}
	if served["replica1"] == 0 {
		t.Fatalf("no read after the first on replica1: %v", served)
	}
	t.Logf("reads after the first replica1 read: %v", served)
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// lsn parses a pg_lsn text form.
func lsn(t *testing.T, s string) uint64 {
	t.Helper()
	hi, lo, ok := strings.Cut(s, "/")
	h, err1 := strconv.ParseUint(hi, 16, 32)
	l, err2 := strconv.ParseUint(lo, 16, 32)
	if !ok || err1 != nil || err2 != nil {
		t.Fatalf("bad position %q", s)
	}
	return h<<32 | l
}

// forgeToken changes the bytes of a genuine token.
func forgeToken(t *testing.T, tok string, change func([]byte)) string {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(tok, "v1."))
	if err != nil {
		t.Fatal(err)
	}
	change(b)
	return "v1." + base64.RawURLEncoding.EncodeToString(b)
}
