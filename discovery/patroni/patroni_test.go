package patroni

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/pgxroute/pgxroute"
)

// connString is the template of the unit tests: its password must never
// show in an error.
const connString = "postgres://app:hunter2@placeholder:1/shop?sslmode=disable"

// serve starts an HTTP server answering GET /cluster with status and body,
// counting the requests.
func serve(t *testing.T, status int, body string) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		if r.URL.Path != "/cluster" || r.Method != http.MethodGet {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(s.Close)
	return s, &n
}

// closedURL returns the URL of a port that was just closed: connections to
// it are refused.
func closedURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}

func cs(host string, port string) string {
	return "postgres://app:hunter2@" + net.JoinHostPort(host, port) + "/shop?sslmode=disable"
}

// TestDiscoverJSON checks the reading of GET /cluster answers, as Patroni
// 3.0 and later write them.
func TestDiscoverJSON(t *testing.T) {
	cases := []struct {
		name    string
		body    string
		want    []pgxroute.Node
		wantErr string // part of the error; "" for none
	}{
		{
			name: "leader first, then replicas by name, whatever the order listed",
			body: `{"members": [
				{"name": "pg-c", "role": "replica", "state": "streaming", "api_url": "http://10.0.0.3:8008/patroni", "host": "10.0.0.3", "port": 5432, "timeline": 4, "lag": 0},
				{"name": "pg-a", "role": "sync_standby", "state": "running", "host": "10.0.0.1", "port": 5432, "timeline": 4, "lag": "unknown"},
				{"name": "pg-b", "role": "leader", "state": "running", "host": "10.0.0.2", "port": 5433, "timeline": 4}
			], "scope": "main"}`,
			want: []pgxroute.Node{
				{Name: "pg-b", ConnString: cs("10.0.0.2", "5433")},
				{Name: "pg-a", ConnString: cs("10.0.0.1", "5432")},
				{Name: "pg-c", ConnString: cs("10.0.0.3", "5432")},
			},
		},
		{
			name: "members not running nor streaming are left out",
			body: `{"members": [
				{"name": "m1", "role": "leader", "state": "running", "host": "h1", "port": 5432},
				{"name": "m2", "role": "replica", "state": "stopped", "host": "h2", "port": 5432},
				{"name": "m3", "role": "replica", "state": "starting", "host": "h3", "port": 5432},
				{"name": "m4", "role": "replica", "state": "creating replica", "host": "h4", "port": 5432},
				{"name": "m5", "role": "replica", "state": "in archive recovery", "host": "h5", "port": 5432},
				{"name": "m6", "role": "replica", "state": "start failed", "host": "h6", "port": 5432},
				{"name": "m7", "role": "replica", "state": "", "host": "h7", "port": 5432},
				{"name": "m8", "role": "replica", "state": "streaming", "host": "h8", "port": 5432}
			]}`,
			want: []pgxroute.Node{{Name: "m1", ConnString: cs("h1", "5432")}, {Name: "m8", ConnString: cs("h8", "5432")}},
		},
		{
			name: "members without an address are left out",
			body: `{"members": [
				{"name": "m1", "role": "leader", "state": "running", "host": "h1", "port": 5432},
				{"name": "m2", "role": "replica", "state": "running"},
				{"name": "m3", "role": "replica", "state": "running", "host": "h3"},
				{"name": "m4", "role": "replica", "state": "running", "host": "h4", "port": 70000}
			]}`,
			want: []pgxroute.Node{{Name: "m1", ConnString: cs("h1", "5432")}},
		},
		{
			name: "noloadbalance takes reads away, as Patroni reads the tag",
			body: `{"members": [
				{"name": "a", "role": "replica", "state": "streaming", "host": "ha", "port": 1, "tags": {"noloadbalance": true, "nofailover": true}},
				{"name": "b", "role": "replica", "state": "streaming", "host": "hb", "port": 1, "tags": {"noloadbalance": false}},
				{"name": "c", "role": "replica", "state": "streaming", "host": "hc", "port": 1, "tags": {"noloadbalance": "on"}},
				{"name": "d", "role": "replica", "state": "streaming", "host": "hd", "port": 1, "tags": {"noloadbalance": "false"}},
				{"name": "e", "role": "replica", "state": "streaming", "host": "he", "port": 1, "tags": {"noloadbalance": 1}},
				{"name": "f", "role": "replica", "state": "streaming", "host": "hf", "port": 1, "tags": {"nosync": true}},
				{"name": "g", "role": "leader", "state": "running", "host": "hg", "port": 1, "tags": {"noloadbalance": true}}
			]}`,
			want: []pgxroute.Node{
				{Name: "g", ConnString: cs("hg", "1"), NoReads: true},
				{Name: "a", ConnString: cs("ha", "1"), NoReads: true},
				{Name: "b", ConnString: cs("hb", "1")},
				{Name: "c", ConnString: cs("hc", "1"), NoReads: true},
				{Name: "d", ConnString: cs("hd", "1")},
				{Name: "e", ConnString: cs("he", "1"), NoReads: true},
				{Name: "f", ConnString: cs("hf", "1")},
			},
		},
		{
			name: "a standby cluster's leader comes first",
			body: `{"members": [
				{"name": "a", "role": "replica", "state": "streaming", "host": "ha", "port": 1},
				{"name": "b", "role": "standby_leader", "state": "running", "host": "hb", "port": 1}
			]}`,
			want: []pgxroute.Node{{Name: "b", ConnString: cs("hb", "1")}, {Name: "a", ConnString: cs("ha", "1")}},
		},
		{
			name: "no leader (a failover going on): replicas by name",
			body: `{"members": [
				{"name": "b", "role": "replica", "state": "running", "host": "::1", "port": 2},
				{"name": "a", "role": "replica", "state": "running", "host": "ha", "port": 1}
			]}`,
			want: []pgxroute.Node{{Name: "a", ConnString: cs("ha", "1")}, {Name: "b", ConnString: cs("::1", "2")}},
		},
		{
			name:    "no usable member",
			body:    `{"members": [{"name": "a", "role": "leader", "state": "stopped", "host": "ha", "port": 1}]}`,
			wantErr: "no usable member",
		},
		{name: "empty members", body: `{"members": []}`, wantErr: "no usable member"},
		{name: "no members list", body: `{"scope": "x"}`, wantErr: "no members list"},
		{name: "not JSON", body: `<html>proxy error</html>`, wantErr: "not Patroni's /cluster JSON"},
		{name: "a wrong type", body: `{"members": [{"name": "a", "port": "5432"}]}`, wantErr: "not Patroni's /cluster JSON"},
		{
			name:    "a member twice",
			body:    `{"members": [{"name": "a", "state": "running", "host": "h", "port": 1}, {"name": "a", "state": "running", "host": "h", "port": 2}]}`,
			wantErr: `member "a" is listed twice`,
		},
		{name: "a member without a name", body: `{"members": [{"state": "running", "host": "h", "port": 1}]}`, wantErr: "without a name"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, _ := serve(t, http.StatusOK, c.body)
			got, err := New(Config{URLs: []string{s.URL}, ConnString: connString}).Discover(t.Context())
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) || !strings.Contains(err.Error(), s.URL) {
					t.Fatalf("Discover: %v, %v; want an error naming %s and saying %q", got, err, s.URL, c.wantErr)
				}
				if c.wantErr == "no usable member" && !errors.Is(err, ErrNoMembers) {
					t.Fatalf("Discover: %v does not wrap ErrNoMembers", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Discover: %v", err)
			}
			if diff := cmp.Diff(c.want, got); diff != "" {
				t.Fatalf("Discover (-want +got):\n%s", diff)
			}
		})
	}
}

// TestDiscoverFailover checks the walk over the URLs: a URL that fails (no
// server, an error status, a redirect, bad JSON from a non-Patroni server) is
// given up for the next, the last one that answered is asked first next
// time, and every error names each URL without its credentials.
func TestDiscoverFailover(t *testing.T) {
	good := `{"members": [{"name": "m1", "role": "leader", "state": "running", "host": "h1", "port": 5432}]}`
	want := []pgxroute.Node{{Name: "m1", ConnString: cs("h1", "5432")}}
	down := closedURL(t)
	bad, badN := serve(t, http.StatusServiceUnavailable, `{"state": "stopped"}`)
	redirect := httptest.NewServer(http.RedirectHandler("http://example.invalid/cluster", http.StatusFound))
	t.Cleanup(redirect.Close)
	ok, okN := serve(t, http.StatusOK, good)

	withCreds := func(u string) string { return strings.Replace(u, "http://", "http://admin:t0psecret@", 1) }
	d := New(Config{URLs: []string{withCreds(down), bad.URL + "/", redirect.URL, withCreds(ok.URL)}, ConnString: connString})
	for i := range 3 {
		got, err := d.Discover(t.Context())
		if err != nil {
			t.Fatalf("Discover %d: %v", i, err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("Discover %d (-want +got):\n%s", i, diff)
		}
	}
	if badN.Load() != 1 || okN.Load() != 3 {
		t.Fatalf("the failing URL was asked %d times and the good one %d; want 1 and 3 (the good one first once found)", badN.Load(), okN.Load())
	}

	// Every URL down: one error naming each, without credentials.
	ok.Close()
	_, err := d.Discover(t.Context())
	if err == nil {
		t.Fatal("Discover with every URL down succeeded")
	}
	msg := err.Error()
	for _, u := range []string{down, bad.URL, redirect.URL, ok.URL} {
		if !strings.Contains(msg, "GET "+u+"/cluster") {
			t.Errorf("the error does not name %s: %v", u, err)
		}
	}
	for _, secret := range []string{"t0psecret", "admin", "hunter2"} {
		if strings.Contains(msg, secret) {
			t.Errorf("the error shows %q: %v", secret, err)
		}
	}
	for _, part := range []string{"connection refused", "503 Service Unavailable", "302 Found"} {
		if !strings.Contains(msg, part) {
			t.Errorf("the error does not say %q: %v", part, err)
		}
	}
}

// TestDiscoverContext checks that a canceled context stops Discover at once
// with an error that wraps the context's.
func TestDiscoverContext(t *testing.T) {
	s, n := serve(t, http.StatusOK, `{"members": []}`)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := New(Config{URLs: []string{s.URL, s.URL}, ConnString: connString}).Discover(ctx)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Discover with a canceled context: %v; want context.Canceled", err)
	}
	if n.Load() != 0 {
		t.Fatalf("%d requests made with a canceled context", n.Load())
	}
}

// TestConfigErrors checks that a bad configuration fails every Discover with
// ErrConfig, without showing a password.
func TestConfigErrors(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no URL", Config{ConnString: connString}, "Config.URLs is empty"},
		{"not a URL", Config{URLs: []string{"10.0.0.1:8008"}, ConnString: connString}, "Config.URLs[0] is not an http or https URL"},
		{"not HTTP", Config{URLs: []string{"http://h:8008", "ftp://h/x"}, ConnString: connString}, "Config.URLs[1] is not"},
		{"bad connection string", Config{URLs: []string{"http://h:8008"}, ConnString: "user=app password='hunter2"}, "Config.ConnString: unparsable"},
		{"bad URL connection string", Config{URLs: []string{"http://h:8008"}, ConnString: "postgres://app:hunter2@h:port/d"}, "Config.ConnString: unparsable"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := New(c.cfg).Discover(t.Context())
			if !errors.Is(err, pgxroute.ErrConfig) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Discover: %v; want ErrConfig saying %q", err, c.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("the error shows the password: %v", err)
			}
		})
	}
}

// TestURLs checks which endpoint each configured URL asks.
func TestURLs(t *testing.T) {
	d := New(Config{URLs: []string{"http://h:8008", "https://u:p@h:8008/", "http://h/patroni/cluster", "http://h:1/api?x=1"}})
	if d.err != nil {
		t.Fatal(d.err)
	}
	want := []string{"http://h:8008/cluster", "https://u:p@h:8008/cluster", "http://h/patroni/cluster", "http://h:1/api/cluster"}
	if diff := cmp.Diff(want, d.urls); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"http://h:8008/cluster", "https://h:8008/cluster", "http://h/patroni/cluster", "http://h:1/api/cluster"}, d.shown); diff != "" {
		t.Fatalf("shown (-want +got):\n%s", diff)
	}
}
