package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgxroute/pgxroute/routingtest"
)

func TestCheckCluster(t *testing.T) {
	routingtest.SkipWithoutPostgres(t, "")
	t.Parallel()
	c := routingtest.NewCluster(t, routingtest.ClusterOptions{})
	const pw1, pw2 = "primary-pw-7f3a", "replica-pw-91c2"
	p, r := c.Primary(), c.Replicas()
	// Trust authentication ignores the passwords; they must never show.
	fc := fileConfig{
		Primary: fmt.Sprintf("postgres://postgres:%s@127.0.0.1:%d/postgres?sslmode=disable", pw1, p.Port()),
		Replicas: []fileNode{
			{Name: "r1", ConnString: fmt.Sprintf("host=127.0.0.1 port=%d user=postgres password=%s dbname=postgres sslmode=disable", r[0].Port(), pw2)},
			{Name: "r2", ConnString: fmt.Sprintf("postgres://postgres:%s@127.0.0.1:%d/postgres?sslmode=disable", pw2, r[1].Port())},
		},
	}
	file := filepath.Join(t.TempDir(), "deploy.json")
	writeJSON(t, file, fc)
	noPasswords := func(s string) {
		t.Helper()
		if strings.Contains(s, pw1) || strings.Contains(s, pw2) {
			t.Errorf("the output shows a password:\n%s", s)
		}
	}

	reports := checkNodes(context.Background(), fc, 3*time.Second)
	want := []struct{ group, name, role string }{
		{"default", fmt.Sprintf("127.0.0.1:%d", p.Port()), "primary"},
		{"read", "r1", "replica"},
		{"read", "r2", "replica"},
	}
	if len(reports) != len(want) {
		t.Fatalf("got %d reports, want %d: %+v", len(reports), len(want), reports)
	}
	for i, w := range want {
		got := reports[i]
		if got.Group != w.group || got.Name != w.name || got.Role != w.role || !got.OK() || got.Position == "" {
			t.Errorf("report %d = %+v, want %s/%s reachable as a %s", i, got, w.group, w.name, w.role)
		}
		if w.role == "replica" && got.LagBytes < 0 {
			t.Errorf("%s: lag in bytes unknown", got.Name)
		}
	}

	code, out, errOut := runCmd(t, "check", "-config", file)
	if code != 0 {
		t.Fatalf("check: exit %d\nstdout:\n%s\nstderr: %s", code, out, errOut)
	}
	t.Logf("check, all up:\n%s", out)
	noPasswords(out + errOut)
	if !strings.Contains(out, "OK: 3 nodes reachable") {
		t.Errorf("no OK line:\n%s", out)
	}

	// A replica named as the primary is a mismatch.
	code, out, errOut = runCmd(t, "check", "-primary", fc.Replicas[0].ConnString, "-replica", fc.Primary)
	noPasswords(out + errOut)
	if code != 1 || !strings.Contains(out, "MISMATCH") || !strings.Contains(out, "expects a primary") {
		t.Errorf("swapped roles: exit %d, output:\n%s", code, out)
	}

	// A stopped node is unreachable, and check fails.
	if err := c.Stop(r[1]); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = runCmd(t, "check", "-config", file, "-timeout", "2s")
	t.Logf("check, r2 stopped:\n%s", out)
	noPasswords(out + errOut)
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	if !strings.Contains(out, "r2 unreachable") {
		t.Errorf("r2 not reported unreachable:\n%s", out)
	}
	reports = checkNodes(context.Background(), fc, 2*time.Second)
	if !reports[0].OK() || !reports[1].OK() || reports[2].Reachable || reports[2].Err == "" {
		t.Errorf("after stopping r2: %+v", reports)
	}
}

func TestCheckUsage(t *testing.T) {
	for _, args := range [][]string{
		{"check"},
		{"check", "-timeout", "0s", "-primary", "postgres://x@y/z"},
		{"check", "-config", "a.json", "-primary", "postgres://x@y/z"},
		{"check", "-primary", "postgres://x@y/z", "extra"},
	} {
		if code, _, errOut := runCmd(t, args...); code != 2 {
			t.Errorf("%q: exit %d (stderr %q), want 2", args, code, errOut)
		}
	}
	file := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(file, []byte(`{"primary": "postgres://x@y/z", "replica": []}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := runCmd(t, "check", "-config", file); code != 1 || !strings.Contains(errOut, `unknown field "replica"`) {
		t.Errorf("unknown field: exit %d, stderr %q", code, errOut)
	}
}
