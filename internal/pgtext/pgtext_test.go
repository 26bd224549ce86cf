package pgtext

import "testing"

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://app:s3cret@db:5432/app":            "postgres://app:xxxxx@db:5432/app",
		"host=db user=app password=s3cret dbname=app":  "host=db user=app password=xxxxx dbname=app",
		"host=db password='s 3cret' dbname=app":        "host=db password=xxxxx dbname=app",
		"postgres://app@db/app?password=s3cret&x=1":    "postgres://app@db/app?password=xxxxx&x=1",
		"failed to connect to `user=app database=app`": "failed to connect to `user=app database=app`",
	} {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestLSN(t *testing.T) {
	for _, s := range []string{"0/0", "16/B374D848", "FFFFFFFF/FFFFFFFF"} {
		lsn, err := ParseLSN(s)
		if err != nil || FormatLSN(lsn) != s {
			t.Errorf("ParseLSN(%q) = %x, %v; formats back as %q", s, lsn, err, FormatLSN(lsn))
		}
	}
	for _, bad := range []string{"", "16", "x/1", "1/100000000", "/1"} {
		if _, err := ParseLSN(bad); err == nil {
			t.Errorf("ParseLSN(%q) accepted", bad)
		}
	}
}
