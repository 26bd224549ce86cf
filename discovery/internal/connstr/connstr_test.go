package connstr

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5/pgconn"
)

// parsed is what pgx reads from a connection string, the parts With must
// keep or replace.
type parsed struct {
	Hosts    []string // the first host, then its fallbacks', without repeats
	Ports    []uint16
	User     string
	Password string
	Database string
	Params   map[string]string
}

func read(t *testing.T, cs string) parsed {
	t.Helper()
	cfg, err := pgconn.ParseConfig(cs)
	if err != nil {
		t.Fatalf("pgx refuses the made string: %v", err)
	}
	p := parsed{User: cfg.User, Password: cfg.Password, Database: cfg.Database, Params: cfg.RuntimeParams}
	add := func(h string, port uint16) {
		if n := len(p.Hosts); n > 0 && p.Hosts[n-1] == h && p.Ports[n-1] == port {
			return // the same host's TLS and plain attempts
		}
		p.Hosts, p.Ports = append(p.Hosts, h), append(p.Ports, port)
	}
	add(cfg.Host, cfg.Port)
	for _, f := range cfg.Fallbacks {
		add(f.Host, f.Port)
	}
	return p
}

func TestWith(t *testing.T) {
	t.Setenv("PGPORT", "")
	t.Setenv("PGHOST", "")
	t.Setenv("PGUSER", "")
	t.Setenv("PGPASSWORD", "")
	t.Setenv("PGDATABASE", "")
	cases := []struct {
		name     string
		in       string
		hosts    []string
		port     uint16
		wantPort uint16 // Template.Port
		want     parsed
	}{
		{
			name: "URL", in: "postgres://app:s3cret@old.example:5432/shop?sslmode=disable&application_name=api",
			hosts: []string{"10.0.0.5"}, port: 6543, wantPort: 5432,
			want: parsed{Hosts: []string{"10.0.0.5"}, Ports: []uint16{6543}, User: "app", Password: "s3cret", Database: "shop",
				Params: map[string]string{"application_name": "api"}},
		},
		{
			name: "postgresql URL with host and port in the query", in: "postgresql://app:pw@/shop?host=/tmp&port=7000&sslmode=disable",
			hosts: []string{"db1"}, port: 5433, wantPort: 7000,
			want: parsed{Hosts: []string{"db1"}, Ports: []uint16{5433}, User: "app", Password: "pw", Database: "shop", Params: map[string]string{}},
		},
		{
			name: "URL with a password needing escapes", in: "postgres://app:p%40ss%2Fw%3Ard@h:1/d?sslmode=disable",
			hosts: []string{"::1"}, port: 5432, wantPort: 1,
			want: parsed{Hosts: []string{"::1"}, Ports: []uint16{5432}, User: "app", Password: "p@ss/w:rd", Database: "d", Params: map[string]string{}},
		},
		{
			name: "URL, several hosts, one IPv6", in: "postgres://app:pw@a:1,b:2/d?sslmode=disable",
			hosts: []string{"10.0.0.1", "fd00::1"}, port: 5432, wantPort: 1,
			want: parsed{Hosts: []string{"10.0.0.1", "fd00::1"}, Ports: []uint16{5432, 5432}, User: "app", Password: "pw", Database: "d", Params: map[string]string{}},
		},
		{
			name: "keyword/value", in: "host=old port=5432 user=app password=s3cret dbname=shop sslmode=disable application_name=api",
			hosts: []string{"10.0.0.5"}, port: 6543, wantPort: 5432,
			want: parsed{Hosts: []string{"10.0.0.5"}, Ports: []uint16{6543}, User: "app", Password: "s3cret", Database: "shop",
				Params: map[string]string{"application_name": "api"}},
		},
		{
			name: "keyword/value, quoted password with spaces, quotes and backslashes", in: `user = app  password = 'a b\'c\\d' dbname=shop hostaddr=1.2.3.4 sslmode=disable port=6000`,
			hosts: []string{"db.internal"}, port: 5432, wantPort: 6000,
			want: parsed{Hosts: []string{"db.internal"}, Ports: []uint16{5432}, User: "app", Password: `a b'c\d`, Database: "shop",
				Params: map[string]string{}}, // hostaddr (a runtime parameter to pgx) is dropped

		},
		{
			name: "keyword/value, a password that holds host= and port=", in: `password='p host=evil port=1' user=app host=old sslmode=disable`,
			hosts: []string{"10.0.0.9"}, port: 5432, wantPort: 5432,
			want: parsed{Hosts: []string{"10.0.0.9"}, Ports: []uint16{5432}, User: "app", Password: "p host=evil port=1", Params: map[string]string{}},
		},
		{
			name: "keyword/value, escaped password unquoted", in: `user=app password=x\'y sslmode=disable`,
			hosts: []string{"h1", "h2"}, port: 5432, wantPort: 5432,
			want: parsed{Hosts: []string{"h1", "h2"}, Ports: []uint16{5432, 5432}, User: "app", Password: `x'y`, Database: "", Params: map[string]string{}},
		},
		{
			name: "empty", in: "",
			hosts: []string{"10.1.1.1"}, port: 5432, wantPort: 5432,
			want: parsed{Hosts: []string{"10.1.1.1"}, Ports: []uint16{5432}, Params: map[string]string{}},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tmpl, err := Parse(c.in)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if tmpl.Port() != c.wantPort {
				t.Errorf("Port() = %d, want %d", tmpl.Port(), c.wantPort)
			}
			out := tmpl.With(c.hosts, c.port)
			if again := tmpl.With(c.hosts, c.port); again != out {
				t.Errorf("With is not deterministic: %q then %q", out, again)
			}
			got := read(t, out)
			want := c.want
			if want.User == "" {
				got.User = "" // pgx fills in the OS user
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("With(%v, %d) = %q; pgx reads (-want +got):\n%s", c.hosts, c.port, out, diff)
			}
		})
	}
}

// TestParseErrors checks that strings pgx refuses are refused, and that no
// error holds the password.
func TestParseErrors(t *testing.T) {
	cases := []struct {
		name, in string
	}{
		{"unterminated quote", "user=app password='hunter2 dbname=d"},
		{"keyword without value", "user=app password=hunter2 dbname"},
		{"bad URL port", "postgres://app:hunter2@h:notaport/d"},
		{"bad URL escape", "postgres://app:hunter2%zz@h:5432/d"},
		{"bad connect_timeout", "postgres://app:hunter2@h:5432/d?connect_timeout=soon"},
		{"bad port", "user=app password=hunter2 port=huge"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse(c.in)
			if err == nil {
				t.Fatalf("Parse(%q) accepted it", c.in)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("the error shows the password: %v", err)
			}
			if !strings.Contains(err.Error(), "unparsable connection string") {
				t.Fatalf("the error does not say what is wrong: %v", err)
			}
		})
	}
}

// TestSplitPairs checks the tokenizer on what pgx accepts: each pair's text
// kept as written.
func TestSplitPairs(t *testing.T) {
	got, err := splitPairs(`  a=1  b = 'x y\'z'	c=\\d e= `)
	if err != nil {
		t.Fatal(err)
	}
	want := []pair{{"a", "a=1"}, {"b", `b='x y\'z'`}, {"c", `c=\\d`}, {"e", "e="}}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(pair{})); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
}
