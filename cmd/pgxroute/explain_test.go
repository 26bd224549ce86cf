package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// runCmd runs a command line and returns its exit code and outputs.
func runCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

// field returns the value of the "name:" line of explain's output.
func field(t *testing.T, out, name string) string {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(line, name+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("no %q line in:\n%s", name, out)
	return ""
}

func TestExplainDefault(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		class  string
		route  string
		reason string
	}{
		{"read", []string{"SELECT * FROM users WHERE id = 1"}, "read (SELECT)", `group "read", node "replica-1"`, "read"},
		{"write", []string{"INSERT INTO users (name) VALUES ('x')"}, "write (INSERT)", `group "default", node "primary:5432"`, "write"},
		{"for update", []string{"SELECT * FROM users WHERE id = 1 FOR UPDATE"}, "locking read (FOR UPDATE)", `group "default", node "primary:5432"`, "locking read"},
		{"no scope", []string{"-no-scope", "SELECT 1"}, "read (SELECT)", `group "read", node "replica-1"`, "read (no scope)"},
		{"sticky", []string{"SELECT 1", "-sticky"}, "read (SELECT)", `group "default", node "primary:5432"`, "sticky: the scope wrote"},
		{"primary ctx", []string{"-primary-ctx", "SELECT 1"}, "read (SELECT)", `group "default", node "primary:5432"`, "WithPrimary"},
		{"replica ctx write", []string{"-replica-ctx", "DELETE FROM t"}, "write (DELETE)", `group "read", node "replica-1"`, "WithReplica"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCmd(t, append([]string{"explain"}, tt.args...)...)
			if code != 0 {
				t.Fatalf("exit %d, stderr %q", code, errOut)
			}
			if got := field(t, out, "config"); !strings.HasPrefix(got, "embedded default") {
				t.Errorf("config = %q", got)
			}
			if got := field(t, out, "class"); got != tt.class {
				t.Errorf("class = %q, want %q", got, tt.class)
			}
			if got := field(t, out, "route"); got != tt.route {
				t.Errorf("route = %q, want %q", got, tt.route)
			}
			if got := field(t, out, "reason"); got != tt.reason {
				t.Errorf("reason = %q, want %q", got, tt.reason)
			}
		})
	}
}

func TestExplainUnknownGroup(t *testing.T) {
	code, out, errOut := runCmd(t, "explain", "-group", "analytics", "SELECT 1")
	if code != 1 {
		t.Fatalf("exit %d, want 1; stdout %q", code, out)
	}
	if !strings.Contains(errOut, `unknown bind group "analytics"`) {
		t.Errorf("stderr = %q", errOut)
	}
}

func TestExplainConfigFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "route.json")
	cfg := `{
  "primary": "postgres://app:topsecret@db1:5432/app",
  "replicas": [{"name": "r1", "conn_string": "postgres://app:topsecret@db2:5432/app", "weight": 2}],
  "groups": {"analytics": [{"name": "olap", "conn_string": "host=db3 user=app password=topsecret dbname=app"}]},
  "strategy": "least-busy",
  "stickiness": "sticky-for:2s",
  "write_functions": ["audit.log_event"]
}`
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	check := func(args []string, route, reason string) string {
		t.Helper()
		code, out, errOut := runCmd(t, append([]string{"explain", "-config", file}, args...)...)
		if code != 0 {
			t.Fatalf("%v: exit %d, stderr %q", args, code, errOut)
		}
		if got := field(t, out, "route"); got != route {
			t.Errorf("%v: route = %q, want %q", args, got, route)
		}
		if got := field(t, out, "reason"); got != reason {
			t.Errorf("%v: reason = %q, want %q", args, got, reason)
		}
		if strings.Contains(out, "topsecret") {
			t.Errorf("%v: the output shows a password:\n%s", args, out)
		}
		return out
	}
	out := check([]string{"SELECT count(*) FROM events"}, `group "read", node "r1"`, "read")
	if got := field(t, out, "config"); got != file+" (strategy least-busy, stickiness sticky-for(2s))" {
		t.Errorf("config = %q", got)
	}
	check([]string{"-group", "analytics", "SELECT count(*) FROM events"}, `group "analytics", node "olap"`, "bind group from context")
	out = check([]string{"SELECT audit.log_event('login')"}, `group "default", node "db1:5432"`, "write")
	if got := field(t, out, "class"); !strings.HasPrefix(got, "write") {
		t.Errorf("class = %q, want a write (a configured write function)", got)
	}
	out = check([]string{"-sticky", "SELECT 1"}, `group "default", node "db1:5432"`, "sticky: the scope wrote")
	if got := field(t, out, "note"); !strings.Contains(got, "sticky-for(2s)") {
		t.Errorf("note = %q", got)
	}
}

func TestExplainUsage(t *testing.T) {
	for _, args := range [][]string{
		{"explain"},
		{"explain", "SELECT 1", "SELECT 2"},
		{"explain", "-primary-ctx", "-replica-ctx", "SELECT 1"},
		{"explain", "-sticky", "-no-scope", "SELECT 1"},
		{"explain", "-nope", "SELECT 1"},
		{"explain", "-replica", "postgres://x@y/z", "SELECT 1"},
		{"nosuchcommand"},
		{},
	} {
		if code, _, errOut := runCmd(t, args...); code != 2 || errOut == "" {
			t.Errorf("%q: exit %d (stderr %q), want 2 and a message", args, code, errOut)
		}
	}
	for _, cmd := range []string{"demo", "explain", "check", "consistency"} {
		code, out, _ := runCmd(t, cmd, "-h")
		if code != 0 || !strings.HasPrefix(out, "Usage: pgxroute "+cmd) || strings.Count(out, "Usage:") != 1 {
			t.Errorf("%s -h: exit %d, output %q", cmd, code, out)
		}
	}
}

// writeJSON writes v to file as JSON.
func writeJSON(t *testing.T, file string, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
