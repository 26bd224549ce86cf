package pgxroute_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgxroute/pgxroute"
	"github.com/pgxroute/pgxroute/internal/costbench"
	"github.com/pgxroute/pgxroute/routingtest"
)

// namedPool makes a RoutedPool over the cluster whose nodes are named as the
// cluster names them ("primary", "replica1", ...): the primary in the
// default group, the replicas in the read group. suffix is added to every
// connection string.
func namedPool(t testing.TB, c *routingtest.Cluster, cfg pgxroute.Config, suffix string) *pgxroute.RoutedPool {
	t.Helper()
	cfg.Groups = map[string][]pgxroute.Node{
		pgxroute.DefaultGroupName: {{Name: c.Primary().Name(), ConnString: c.Primary().ConnString() + suffix}},
	}
	for _, r := range c.Replicas() {
		cfg.Groups[pgxroute.ReadGroupName] = append(cfg.Groups[pgxroute.ReadGroupName],
			pgxroute.Node{Name: r.Name(), ConnString: r.ConnString() + suffix})
	}
	return newPool(t, c, cfg)
}

// waitProbed waits until every member's role is known.
func waitProbed(t *testing.T, pool *pgxroute.RoutedPool) {
	t.Helper()
	routingtest.WaitFor(t, "every member probed", func() bool {
		for _, m := range pool.Stat().Members {
			if m.Role == "unknown" {
				return false
			}
		}
		return true
	})
}

// get serves one request to h and returns the response and its body.
func get(t testing.TB, h http.Handler, method, target string, header map[string]string) (*http.Response, string) {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	res := rec.Result()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, string(body)
}

// statusJSON mirrors the handler's JSON (docs/status.md).
type statusJSON struct {
	Time           time.Time `json:"time"`
	Primary        string    `json:"primary"`
	PrimaryChanges int64     `json:"primary_changes"`
	SplitBrain     []string  `json:"split_brain"`
	StalePrimaries []string  `json:"stale_primaries"`
	Members        []struct {
		Name, Role, State, Address, Position string
		Timeline                             uint32
		Primary, Stale                       bool
		LastError                            string `json:"last_error"`
	} `json:"members"`
	Groups []struct {
		Name  string `json:"name"`
		Nodes []struct {
			Name, State, Role, Address string
			Calls                      map[string]int64 `json:"calls"`
			Total                      int64            `json:"total"`
			LastError                  string           `json:"last_error"`
			Pool                       *struct {
				MaxConns     int32 `json:"max_conns"`
				AcquireCount int64 `json:"acquire_count"`
			} `json:"pool"`
		} `json:"nodes"`
	} `json:"groups"`
	Events []struct {
		Kind, Node, Group, Previous, State, Role, Detail string
		Err                                              string    `json:"error"`
		At                                               time.Time `json:"at"`
	} `json:"events"`
	EventsTotal uint64 `json:"events_total"`
	Draining    []struct {
		Name     string    `json:"name"`
		Since    time.Time `json:"since"`
		InFlight int64     `json:"in_flight"`
		Acquired int32     `json:"acquired"`
	} `json:"draining"`
	Membership struct {
		Added         int64      `json:"added"`
		Removed       int64      `json:"removed"`
		Drained       int64      `json:"drained"`
		DrainTimeouts int64      `json:"drain_timeouts"`
		LastChange    *time.Time `json:"last_change"`
	} `json:"membership"`
	Discovery *struct {
		Calls         int64      `json:"calls"`
		Failures      int64      `json:"failures"`
		Failing       bool       `json:"failing"`
		LastError     string     `json:"last_error"`
		LastErrorAt   *time.Time `json:"last_error_at"`
		LastSuccessAt *time.Time `json:"last_success_at"`
		Members       []string   `json:"members"`
	} `json:"discovery"`
}

func decodeStatus(t testing.TB, body string) statusJSON {
	t.Helper()
	var s statusJSON
	if err := json.Unmarshal([]byte(body), &s); err != nil {
		t.Fatalf("status JSON: %v\n%s", err, body)
	}
	return s
}

// TestStatusHandlerMethods: GET and HEAD only; HEAD has GET's headers and no
// body; every other method is refused with 405 and an Allow header.
func TestStatusHandlerMethods(t *testing.T) {
	c := sharedCluster(t)
	h := pgxroute.StatusHandler(namedPool(t, c, pgxroute.Config{}, ""))
	_, getBody := get(t, h, http.MethodGet, "/", nil)
	tests := []struct {
		method     string
		wantStatus int
		wantAllow  string
		wantBody   bool
	}{
		{http.MethodGet, http.StatusOK, "", true},
		{http.MethodHead, http.StatusOK, "", false},
		{http.MethodPost, http.StatusMethodNotAllowed, "GET, HEAD", true},
		{http.MethodPut, http.StatusMethodNotAllowed, "GET, HEAD", true},
		{http.MethodPatch, http.StatusMethodNotAllowed, "GET, HEAD", true},
		{http.MethodDelete, http.StatusMethodNotAllowed, "GET, HEAD", true},
		{http.MethodOptions, http.StatusMethodNotAllowed, "GET, HEAD", true},
	}
	for _, tt := range tests {
		t.Run(tt.method, func(t *testing.T) {
			res, body := get(t, h, tt.method, "/", nil)
			if res.StatusCode != tt.wantStatus || res.Header.Get("Allow") != tt.wantAllow {
				t.Fatalf("status %d, Allow %q; want %d, %q", res.StatusCode, res.Header.Get("Allow"), tt.wantStatus, tt.wantAllow)
			}
			if (body != "") != tt.wantBody {
				t.Fatalf("body %q, want one: %v", body, tt.wantBody)
			}
			if tt.method == http.MethodHead {
				// The length of the page GET returned (give or take the
				// digits of the figures that changed in between).
				if n := res.ContentLength; n < int64(len(getBody))-200 || n > int64(len(getBody))+200 {
					t.Fatalf("HEAD Content-Length %d, GET's body %d bytes", n, len(getBody))
				}
			}
		})
	}
}

// TestStatusHandlerFormats: JSON for ?format=json or an Accept header that
// asks for it first; the page otherwise.
func TestStatusHandlerFormats(t *testing.T) {
	c := sharedCluster(t)
	h := pgxroute.StatusHandler(namedPool(t, c, pgxroute.Config{}, ""))
	const browser = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"
	tests := []struct {
		name, target, accept string
		wantJSON             bool
	}{
		{"no accept", "/", "", false},
		{"browser", "/", browser, false},
		{"format=json", "/?format=json", "", true},
		{"format=json beats a browser", "/?format=json", browser, true},
		{"accept json", "/", "application/json", true},
		{"accept json first", "/", "application/json, text/html;q=0.5", true},
		{"accept html first", "/", "text/html, application/json", false},
		{"json refused", "/", "application/json;q=0, text/plain", false},
		{"format=html beats accept", "/?format=html", "application/json", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, body := get(t, h, http.MethodGet, tt.target, map[string]string{"Accept": tt.accept})
			if res.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", res.StatusCode, body)
			}
			ct := res.Header.Get("Content-Type")
			if tt.wantJSON {
				if ct != "application/json; charset=utf-8" {
					t.Fatalf("Content-Type %q, want JSON", ct)
				}
				if s := decodeStatus(t, body); s.Primary != c.Primary().Name() {
					t.Fatalf("JSON names %q as the primary, want %q", s.Primary, c.Primary().Name())
				}
				return
			}
			if ct != "text/html; charset=utf-8" {
				t.Fatalf("Content-Type %q, want HTML", ct)
			}
			for _, want := range []string{"<!doctype html>", `<meta http-equiv="refresh" content="1">`, `<strong id="primary">primary</strong>`} {
				if !strings.Contains(body, want) {
					t.Fatalf("page lacks %q", want)
				}
			}
			if strings.Contains(body, "<script") {
				t.Fatal("page has a script")
			}
			if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
				t.Fatalf("Content-Security-Policy %q lets scripts run", csp)
			}
		})
	}
}

// TestStatusJSON: the JSON's fields, and its figures against the servers'
// own answers: the member the JSON calls primary is the one not in
// recovery, and each node's calls by reason are the calls its server
// answered.
func TestStatusJSON(t *testing.T) {
	c := sharedCluster(t)
	pool := namedPool(t, c, pgxroute.Config{Health: fastHealth}, "")
	waitProbed(t, pool)
	ctx := context.Background()
	served := map[string]map[string]int64{} // group -> node -> calls
	count := func(group, node string) {
		if served[group] == nil {
			served[group] = map[string]int64{}
		}
		served[group][node]++
	}
	for range 12 {
		count(pgxroute.ReadGroupName, routingtest.ServedBy(t, ctx, c, pool, "SELECT inet_server_port() FROM marker"))
	}
	for range 3 {
		count(pgxroute.DefaultGroupName, routingtest.ServedBy(t, ctx, c, pool, "INSERT INTO items (id) VALUES ($1) RETURNING port", nextID()))
	}
	_, body := get(t, pgxroute.StatusHandler(pool), http.MethodGet, "/?format=json", nil)

	// Its shape: the keys of every level.
	var raw map[string]any
	if err := json.Unmarshal([]byte(body), &raw); err != nil {
		t.Fatal(err)
	}
	keysOf := func(v any) []string {
		m, _ := v.(map[string]any)
		var ks []string
		for k := range m {
			ks = append(ks, k)
		}
		slices.Sort(ks)
		return ks
	}
	first := func(v any) any {
		l, _ := v.([]any)
		if len(l) == 0 {
			t.Fatalf("empty list in %s", body)
		}
		return l[0]
	}
	group := first(raw["groups"]).(map[string]any)
	node := first(group["nodes"]).(map[string]any)
	shape := map[string][]string{
		"top":        keysOf(raw),
		"member":     keysOf(first(raw["members"])),
		"group":      keysOf(group),
		"node":       keysOf(node),
		"pool":       keysOf(node["pool"]),
		"membership": keysOf(raw["membership"]),
	}
	// No membership change yet (no last_change), no Config.Discovery (no
	// discovery), nothing draining (an empty list).
	wantShape := map[string][]string{
		"top": {"draining", "events", "events_total", "groups", "hedge_wins", "hedges", "members", "membership", "primary",
			"primary_changes", "retries", "split_brain", "stale_primaries", "time"},
		"membership": {"added", "drain_timeouts", "drained", "removed"},
		"member":     {"address", "lag_bytes", "lag_seconds", "name", "position", "primary", "role", "stale", "state", "timeline"},
		"group":      {"all_lagging", "name", "nodes"},
		"node": {"address", "calls", "ejections", "hedge_wins", "hedges", "in_flight", "lag_bytes", "lag_seconds", "name",
			"no_reads", "pool", "position", "readmissions", "retries", "role", "role_mismatch", "state", "total", "weight"},
		"pool": {"acquire_count", "acquire_seconds", "acquired_conns", "canceled_acquire_count", "constructing_conns",
			"empty_acquire_count", "idle_conns", "max_conns", "max_idle_destroy_count", "max_lifetime_destroy_count",
			"new_conns_count", "total_conns"},
	}
	if diff := cmp.Diff(wantShape, shape); diff != "" {
		t.Errorf("JSON keys (-want +got):\n%s", diff)
	}

	if d, ok := raw["draining"].([]any); !ok || len(d) != 0 {
		t.Errorf("draining is %#v, want []", raw["draining"])
	}

	s := decodeStatus(t, body)
	// Roles and where writes go, as the servers say.
	wantRoles, gotRoles := map[string]string{}, map[string]string{}
	for _, n := range c.Nodes() {
		var inRecovery bool
		ask(t, n, &inRecovery, "SELECT pg_is_in_recovery()")
		wantRoles[n.Name()] = map[bool]string{false: "primary", true: "replica"}[inRecovery]
	}
	for _, m := range s.Members {
		gotRoles[m.Name] = m.Role
		if m.State != "up" || m.Timeline == 0 || m.Position == "" || m.Primary != (m.Role == "primary") {
			t.Errorf("member %+v: want up, a timeline, a position, and primary when its role is", m)
		}
		if want := fmt.Sprintf("127.0.0.1:%d", nodePort(c, m.Name)); m.Address != want {
			t.Errorf("member %s at %q, want %q", m.Name, m.Address, want)
		}
	}
	if diff := cmp.Diff(wantRoles, gotRoles); diff != "" {
		t.Errorf("member roles (-servers +JSON):\n%s", diff)
	}
	if s.Primary != "primary" || wantRoles[s.Primary] != "primary" {
		t.Errorf("writes go to %q; the servers: %v", s.Primary, wantRoles)
	}
	// Calls by reason: reads without a scope on the read group's nodes,
	// writes on the default group's, as many as each server answered.
	got := map[string]map[string]int64{}
	for _, g := range s.Groups {
		for _, n := range g.Nodes {
			for reason, k := range n.Calls {
				want := map[string]string{pgxroute.ReadGroupName: "read_no_scope", pgxroute.DefaultGroupName: "write_no_scope"}[g.Name]
				if reason != want {
					t.Errorf("group %s node %s: %d calls for %q, want only %q", g.Name, n.Name, k, reason, want)
				}
				if got[g.Name] == nil {
					got[g.Name] = map[string]int64{}
				}
				got[g.Name][n.Name] += k
			}
			if n.Pool == nil || n.Pool.MaxConns == 0 {
				t.Errorf("group %s node %s: no pool statistics", g.Name, n.Name)
			}
		}
	}
	if diff := cmp.Diff(served, got); diff != "" {
		t.Errorf("calls by node (-servers +JSON):\n%s", diff)
	}
}

// nodePort is the port of the cluster's node called name.
func nodePort(c *routingtest.Cluster, name string) int {
	for _, n := range c.Nodes() {
		if n.Name() == name {
			return n.Port()
		}
	}
	return 0
}

// TestStatusEscaping: names and errors are text on the page, never markup.
func TestStatusEscaping(t *testing.T) {
	c := sharedCluster(t)
	const evil = `<img src=x onerror="alert(1)">&'`
	closed := routingtest.ClosedPort(t)
	pool := newPool(t, c, pgxroute.Config{Groups: map[string][]pgxroute.Node{
		pgxroute.DefaultGroupName: {{Name: c.Primary().Name(), ConnString: c.Primary().ConnString()}},
		pgxroute.ReadGroupName:    {{Name: evil, ConnString: fmt.Sprintf("host=127.0.0.1 port=%d user=postgres connect_timeout=1", closed)}},
	}, Health: fastHealth})
	routingtest.WaitFor(t, "the unreachable node's error", func() bool { return nodeStat(pool, pgxroute.ReadGroupName, evil).LastError != "" })
	h := pgxroute.StatusHandler(pool)
	_, page := get(t, h, http.MethodGet, "/", nil)
	if strings.Contains(page, "<img") || strings.Contains(page, `onerror="`) {
		t.Fatalf("the node's name is markup on the page:\n%s", page)
	}
	if want := "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;&amp;&#39;"; !strings.Contains(page, want) {
		t.Fatalf("page lacks the escaped name %s", want)
	}
	_, body := get(t, h, http.MethodGet, "/?format=json", nil)
	s := decodeStatus(t, body)
	names := []string{}
	for _, m := range s.Members {
		names = append(names, m.Name)
	}
	if !slices.Contains(names, evil) {
		t.Fatalf("JSON members %q lack %q", names, evil)
	}
}

// TestStatusShowsNoPassword: every node's connection string has a password
// (the harness's servers trust local connections, so the good ones still
// connect); the page and the JSON show the unreachable node's error, and
// never the password.
func TestStatusShowsNoPassword(t *testing.T) {
	c := sharedCluster(t)
	const secret = "Sw0rdf1sh-status-page"
	closed := routingtest.ClosedPort(t)
	pool := newPool(t, c, pgxroute.Config{Groups: map[string][]pgxroute.Node{
		pgxroute.DefaultGroupName: {{Name: "primary", ConnString: c.Primary().ConnString() + "&password=" + secret}},
		pgxroute.ReadGroupName: {
			{Name: "replica1", ConnString: c.Replicas()[0].ConnString() + "&password=" + secret},
			{Name: "gone", ConnString: fmt.Sprintf("postgres://postgres:%s@127.0.0.1:%d/postgres?connect_timeout=1", secret, closed)},
		},
	}, Health: fastHealth})
	routingtest.WaitFor(t, "the unreachable node ejected with an error", func() bool {
		n := nodeStat(pool, pgxroute.ReadGroupName, "gone")
		return n.State == pgxroute.StateDown && n.LastError != ""
	})
	if err := pool.QueryRow(context.Background(), "SELECT 1").Scan(new(int)); err != nil {
		t.Fatal(err)
	}
	lastErr := nodeStat(pool, pgxroute.ReadGroupName, "gone").LastError
	h := pgxroute.StatusHandler(pool)
	_, page := get(t, h, http.MethodGet, "/", nil)
	_, body := get(t, h, http.MethodGet, "/?format=json", nil)
	for what, text := range map[string]string{"page": page, "JSON": body} {
		if strings.Contains(text, secret) {
			t.Errorf("the %s shows the password:\n%s", what, text)
		}
	}
	// Not vacuous: the error is there (the page escapes it as HTML text).
	s := decodeStatus(t, body)
	g := s.Groups[1]
	if g.Name != pgxroute.ReadGroupName || g.Nodes[1].Name != "gone" || g.Nodes[1].LastError == "" || g.Nodes[1].State != "down" {
		t.Fatalf("JSON's read group: %+v", g)
	}
	if !strings.Contains(page, "gone") || !strings.Contains(page, `<span class="st st-down">down</span>`) {
		t.Fatalf("page does not show the node down")
	}
	t.Logf("the node's last error: %s", lastErr)
}

// TestStatusReadOnly: requests (in both formats, from several goroutines,
// while reads run) route no call: every node's calls are the reads'.
func TestStatusReadOnly(t *testing.T) {
	c := sharedCluster(t)
	pool := namedPool(t, c, pgxroute.Config{}, "")
	h := pgxroute.StatusHandler(pool)
	srv := httptest.NewServer(h)
	defer srv.Close()
	calls := func() map[string]int64 {
		out := map[string]int64{}
		for _, g := range pool.Stat().Groups {
			for _, n := range g.Nodes {
				out[g.Name+"/"+n.Name] += n.Total
			}
		}
		return out
	}
	before := calls()
	const reads = 40
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range reads {
			if err := pool.QueryRow(context.Background(), "SELECT 1").Scan(new(int)); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 10 {
				url := srv.URL + "/"
				if (w+i)%2 == 0 {
					url += "?format=json"
				}
				res, err := http.Get(url)
				if err != nil {
					t.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode != http.StatusOK {
					t.Errorf("GET %s: %s", url, res.Status)
				}
			}
		}()
	}
	wg.Wait()
	after := calls()
	var diff int64
	for k, v := range after {
		diff += v - before[k]
	}
	if diff != reads {
		t.Fatalf("calls before %v, after %v: %d more, want the %d reads", before, after, diff, reads)
	}
}

// chromium returns the path of a Chromium binary, skipping the test
// without one (failing it when PGXROUTE_REQUIRE_PG=1: CI installs it).
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv(routingtest.RequirePGEnv) == "1" {
		t.Fatalf("no chromium on PATH (%s=1; .ci/install.d/chromium.sh installs it)", routingtest.RequirePGEnv)
	}
	t.Skip("no chromium on PATH: install Debian's chromium package (.ci/install.d/chromium.sh)")
	return ""
}

// browse runs headless Chromium on url with args (--dump-dom, or
// --screenshot=FILE) and returns its standard output, within two minutes
// (a loaded machine starts it in 3 to 20 s).
func browse(t *testing.T, bin, url string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--no-proxy-server", "--no-first-run",
		"--disable-extensions", "--disable-dev-shm-usage", "--user-data-dir=" + t.TempDir()}
	cmd := exec.CommandContext(ctx, bin, append(append(base, args...), url)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, stderr.String())
	}
	return string(out)
}

var (
	tagRE   = regexp.MustCompile(`<[^>]*>`)
	spaceRE = regexp.MustCompile(`\s+`)
)

// rowText returns the text of the table row whose attribute attr is value
// in dom (a DOM Chromium dumped), cells separated by " | ", or "".
func rowText(dom, attr, value string) string {
	re := regexp.MustCompile(`(?s)<tr ` + regexp.QuoteMeta(attr) + `="` + regexp.QuoteMeta(value) + `"[^>]*>(.*?)</tr>`)
	m := re.FindStringSubmatch(dom)
	if m == nil {
		return ""
	}
	cells := strings.Split(m[1], "</td>")
	for i, c := range cells {
		cells[i] = strings.TrimSpace(spaceRE.ReplaceAllString(tagRE.ReplaceAllString(c, " "), " "))
	}
	return strings.Join(slices.DeleteFunc(cells, func(s string) bool { return s == "" }), " | ")
}

// TestStatusPageInBrowser loads the page in headless Chromium before and
// after a replica is killed: the page the browser rendered shows the
// replica up, then down (or suspect) with an ejection among the events.
// Then SetGroup replaces the dead replica with a node that listens nowhere:
// the page shows the membership counts, the new member joining, the dead
// one gone, and its removal among the events.
// With PGXROUTE_STATUS_SCREENSHOT=FILE it also saves a screenshot of the
// page after the kill (docs/status.png is one).
func TestStatusPageInBrowser(t *testing.T) {
	bin := chromium(t)
	c := ownCluster(t, routingtest.ClusterOptions{})
	// Hedged reads on, so that the page has hedges to show.
	health := fastHealth
	health.HedgeAfter = 5 * time.Millisecond
	pool := namedPool(t, c, pgxroute.Config{Health: health}, "")
	waitProbed(t, pool)
	srv := httptest.NewServer(pgxroute.StatusHandler(pool))
	defer srv.Close()
	ctx := context.Background()
	for i := range 30 {
		if i%5 == 0 {
			if _, err := pool.Exec(ctx, "INSERT INTO items (id) VALUES ($1)", nextID()); err != nil {
				t.Fatal(err)
			}
		}
		if err := pool.QueryRow(ctx, "SELECT 1 FROM marker").Scan(new(int)); err != nil {
			t.Fatal(err)
		}
	}
	victim := c.Replicas()[0].Name()

	dom := browse(t, bin, srv.URL, "--dump-dom")
	row := rowText(dom, "data-member", victim)
	t.Logf("before: %s", row)
	if !strings.Contains(row, "| up |") || !strings.Contains(row, "| replica |") {
		t.Fatalf("before the kill the page shows %s as %q, want a replica up", victim, row)
	}
	if p := rowText(dom, "data-member", "primary"); !strings.Contains(p, "writes") || !strings.Contains(p, "| primary |") {
		t.Fatalf("the page shows the primary as %q", p)
	}
	if !strings.Contains(dom, `Writes go to <strong id="primary">primary</strong>`) {
		t.Fatal("the page does not say where writes go")
	}

	// The kill under reads from 4 goroutines (what the page shows of
	// retries and hedges; TestKillReplicaDuringReads checks the reads).
	stop := make(chan struct{})
	load, wg := runReads(t, c, pool, 4, stop)
	time.Sleep(200 * time.Millisecond)
	if err := c.Kill(c.Replicas()[0]); err != nil {
		t.Fatal(err)
	}
	routingtest.WaitFor(t, "the killed replica out", func() bool {
		s := nodeStat(pool, pgxroute.ReadGroupName, victim).State
		return s == pgxroute.StateDown
	})
	time.Sleep(200 * time.Millisecond)
	close(stop)
	wg.Wait()
	t.Logf("reads during the kill: %d, failed %d", load.attempted.Load(), load.failed.Load())
	dom = browse(t, bin, srv.URL, "--dump-dom")
	row = rowText(dom, "data-member", victim)
	t.Logf("after: %s", row)
	if !strings.Contains(row, "| down |") && !strings.Contains(row, "| suspect |") {
		t.Fatalf("after the kill the page shows %s as %q, want down or suspect", victim, row)
	}
	ev := rowText(dom, `data-event="ejected" data-node`, victim)
	t.Logf("event: %s", ev)
	if !strings.Contains(ev, "ejected") {
		t.Fatalf("the page's events lack the ejection of %s:\n%s", victim, dom)
	}
	if file := os.Getenv("PGXROUTE_STATUS_SCREENSHOT"); file != "" {
		browse(t, bin, srv.URL, "--screenshot="+file, "--window-size=1280,900", "--hide-scrollbars")
		t.Logf("screenshot in %s", file)
	}

	// Membership: the killed replica removed from the read group, a node
	// that listens nowhere added in its place. Once the removed node is
	// drained, the page Chromium rendered shows the counts, the new member
	// joining, and the removal among the events.
	keep := c.Replicas()[1]
	if err := pool.SetGroup(ctx, pgxroute.ReadGroupName, []pgxroute.Node{
		{Name: keep.Name(), ConnString: keep.ConnString()},
		{Name: "joiner", ConnString: fmt.Sprintf("host=127.0.0.1 port=%d user=postgres connect_timeout=1", routingtest.ClosedPort(t))},
	}); err != nil {
		t.Fatal(err)
	}
	routingtest.WaitFor(t, victim+" drained", func() bool { return pool.Stat().Membership.Drained == 1 })
	dom = browse(t, bin, srv.URL, "--dump-dom")
	line := ""
	if m := regexp.MustCompile(`(?s)<p class="line" id="membership">(.*?)</p>`).FindStringSubmatch(dom); m != nil {
		line = strings.TrimSpace(spaceRE.ReplaceAllString(tagRE.ReplaceAllString(m[1], ""), " "))
	}
	t.Logf("membership: %s", line)
	if !strings.HasPrefix(line, "added 1 · removed 1 · drained 1 (cut short by DrainTimeout 0) · draining now 0 · last change") {
		t.Errorf("the page's membership line is %q", line)
	}
	if row := rowText(dom, "data-member", "joiner"); !strings.Contains(row, "| joining |") {
		t.Errorf("the page shows the new member as %q, want joining", row)
	}
	if row := rowText(dom, "data-member", victim); row != "" {
		t.Errorf("the page still lists the removed %s as a member: %q", victim, row)
	}
	ev = rowText(dom, `data-event="node_removed" data-node`, victim)
	t.Logf("event: %s", ev)
	if !strings.Contains(ev, "node_removed") || !strings.Contains(ev, "group: read") {
		t.Errorf("the page's events lack the removal of %s from the read group: %q", victim, ev)
	}
}

// BenchmarkStatusHandler measures one request of the page and of the JSON
// on a pool of a primary and two replicas that has served calls: the time
// and allocations it costs the process (none of it on the calls' path but
// the node pools' Stat).
func BenchmarkStatusHandler(b *testing.B) {
	c := sharedCluster(b)
	pool := namedPool(b, c, pgxroute.Config{}, "")
	ctx := context.Background()
	for range 30 {
		if err := pool.QueryRow(ctx, "SELECT 1").Scan(new(int)); err != nil {
			b.Fatal(err)
		}
		if _, err := pool.Exec(ctx, "SELECT 1 FROM marker FOR UPDATE"); err != nil {
			b.Fatal(err)
		}
	}
	h := pgxroute.StatusHandler(pool)
	for _, bc := range []struct{ name, target string }{{"html", "/"}, {"json", "/?format=json"}} {
		b.Run(bc.name, func(b *testing.B) {
			req := httptest.NewRequest(http.MethodGet, bc.target, nil)
			b.ReportAllocs()
			var n int
			cpu0 := costbench.ProcessCPU()
			for b.Loop() {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				n = rec.Body.Len()
			}
			// CPU time, which a machine shared with other jobs does not
			// stretch as it stretches ns/op (the probers' few probes
			// included).
			b.ReportMetric(float64(costbench.ProcessCPU()-cpu0)/float64(b.N), "cpu-ns/op")
			b.ReportMetric(float64(n), "bytes/page")
		})
	}
	b.Run("stat", func(b *testing.B) {
		b.ReportAllocs()
		cpu0 := costbench.ProcessCPU()
		for b.Loop() {
			_ = pool.Stat()
		}
		b.ReportMetric(float64(costbench.ProcessCPU()-cpu0)/float64(b.N), "cpu-ns/op")
	})
	// What Stat costs each node's pool: pgxpool's Stat holds the pool's
	// mutex while it counts the connections (here 4, all open).
	b.Run("pgxpool.Stat", func(b *testing.B) {
		pp, err := pgxpool.New(ctx, c.Primary().ConnString()+"&pool_max_conns=4&pool_min_conns=4")
		if err != nil {
			b.Fatal(err)
		}
		defer pp.Close()
		if err := pp.Ping(ctx); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			_ = pp.Stat()
		}
	})
}

// TestStatusNoPrimary: while no member is a primary (the configured one is
// unreachable), the page says so where it names the writes' node, and the
// JSON's primary is empty.
func TestStatusNoPrimary(t *testing.T) {
	c := sharedCluster(t)
	closed := routingtest.ClosedPort(t)
	pool := newPool(t, c, pgxroute.Config{Groups: map[string][]pgxroute.Node{
		pgxroute.DefaultGroupName: {{Name: "gone", ConnString: fmt.Sprintf("host=127.0.0.1 port=%d user=postgres connect_timeout=1", closed)}},
		pgxroute.ReadGroupName:    {{Name: "replica1", ConnString: c.Replicas()[0].ConnString()}},
	}, Health: fastHealth})
	routingtest.WaitFor(t, "no primary known", func() bool {
		st := pool.Stat()
		return st.Primary == "" && nodeStat(pool, pgxroute.DefaultGroupName, "gone").State == pgxroute.StateDown
	})
	h := pgxroute.StatusHandler(pool)
	_, page := get(t, h, http.MethodGet, "/", nil)
	if !strings.Contains(page, `<strong id="primary" class="tag bad">No primary known</strong>`) {
		t.Fatalf("the page does not say that no primary is known:\n%s", page)
	}
	_, body := get(t, h, http.MethodGet, "/?format=json", nil)
	s := decodeStatus(t, body)
	if s.Primary != "" {
		t.Fatalf("JSON's primary %q, want none", s.Primary)
	}
	for _, m := range s.Members {
		if m.Name == "gone" && (m.State != "down" || m.Primary || m.LastError == "") {
			t.Fatalf("the unreachable member: %+v", m)
		}
	}
	// The events say why: the member was ejected, and writes lost it.
	var kinds []string
	for _, ev := range s.Events {
		kinds = append(kinds, ev.Kind+" "+ev.Node+" (previous "+ev.Previous+") "+ev.State)
	}
	for _, want := range []string{"ejected gone (previous ) down", "primary_changed  (previous gone) "} {
		if !slices.Contains(kinds, want) {
			t.Errorf("events %q lack %q", kinds, want)
		}
	}
	if !strings.Contains(page, `<span class="mute">previous: gone</span>`) {
		t.Errorf("the page's events do not name the former primary")
	}
}

// TestStatusNoPoolAndClosedPool: a handler given no pool answers 500
// rather than panic; a closed pool's page is still served.
func TestStatusNoPoolAndClosedPool(t *testing.T) {
	res, body := get(t, pgxroute.StatusHandler(nil), http.MethodGet, "/", nil)
	if res.StatusCode != http.StatusInternalServerError || !strings.Contains(body, "no pool") {
		t.Fatalf("nil pool: %d %q", res.StatusCode, body)
	}
	c := sharedCluster(t)
	pool := namedPool(t, c, pgxroute.Config{}, "")
	if err := pool.QueryRow(context.Background(), "SELECT 1").Scan(new(int)); err != nil {
		t.Fatal(err)
	}
	pool.Close()
	for _, target := range []string{"/", "/?format=json"} {
		if res, body := get(t, pgxroute.StatusHandler(pool), http.MethodGet, target, nil); res.StatusCode != http.StatusOK {
			t.Fatalf("closed pool, %s: %d %q", target, res.StatusCode, body)
		}
	}
}

func ExampleStatusHandler() {
	ctx := context.Background()
	pool, err := pgxroute.New(ctx, pgxroute.Config{
		Primary:  "postgres://app@primary.internal:5432/app",
		Replicas: []pgxroute.Node{{Name: "replica-1", ConnString: "postgres://app@replica1.internal:5432/app"}},
		Health:   pgxroute.HealthConfig{Disabled: true}, // no probes in this example
	})
	if err != nil {
		panic(err)
	}
	defer pool.Close()

	// On the service's admin listener, beside net/http/pprof:
	//	admin.Handle("/debug/pgxroute", pgxroute.StatusHandler(pool))
	h := pgxroute.StatusHandler(pool)

	req := httptest.NewRequest(http.MethodGet, "/debug/pgxroute", nil)
	req.Header.Set("Accept", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var status struct {
		Primary string
		Members []struct{ Name, Role, State string }
	}
	if err := json.NewDecoder(rec.Body).Decode(&status); err != nil {
		panic(err)
	}
	fmt.Println("writes go to", status.Primary)
	for _, m := range status.Members {
		fmt.Println(m.Name, m.Role, m.State)
	}
	// Output:
	// writes go to primary.internal:5432
	// primary.internal:5432 primary up
	// replica-1 replica up
}
