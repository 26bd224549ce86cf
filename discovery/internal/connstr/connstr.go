// Package connstr makes the connection strings of discovered members: the
// user's connection string (user, password, database, parameters) with each
// member's host and port in place of its own. It is shared by the built-in
// discoverers (discovery/patroni and discovery/dns).
//
// Nothing here ever puts a connection string, or a part of one, in an error:
// a connection string may hold a password.
package connstr

import (
	"errors"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgxroute/pgxroute/internal/pgtext"
)

// Template is a parsed connection string whose host and port are replaced
// for each member. It is immutable and safe for concurrent use.
type Template struct {
	url   *url.URL // the URL form, host, hostaddr and port taken out; nil for keyword/value
	pairs []string // the keyword/value form: each "key=value" as written, but host, hostaddr and port
	port  uint16   // the port the string gives, as pgx reads it (PGPORT, then 5432, when it gives none)
}

// replaced are the keywords a member's address replaces: hostaddr too, which
// libpq would prefer over host.
var replaced = map[string]bool{"host": true, "hostaddr": true, "port": true}

// Parse parses a pgx connection string (a postgres:// or postgresql:// URL,
// or keyword/value pairs; empty is allowed). The string is checked with
// pgconn.ParseConfig, so a string pgx refuses is refused here. The error
// never holds the string.
func Parse(cs string) (*Template, error) {
	cfg, err := pgconn.ParseConfig(cs)
	if err != nil {
		return nil, parseError(err)
	}
	t := &Template{port: cfg.Port}
	if strings.HasPrefix(cs, "postgres://") || strings.HasPrefix(cs, "postgresql://") {
		u, err := url.Parse(cs)
		if err != nil { // pgx parsed it: not expected
			return nil, errors.New("unparsable connection string URL")
		}
		q := u.Query()
		drop := false
		for k := range replaced {
			if q.Has(k) {
				q.Del(k)
				drop = true
			}
		}
		if drop {
			u.RawQuery = q.Encode()
		}
		u.Host = ""
		t.url = u
		return t, nil
	}
	pairs, err := splitPairs(cs)
	if err != nil {
		return nil, err
	}
	for _, p := range pairs {
		if !replaced[p.key] {
			t.pairs = append(t.pairs, p.raw)
		}
	}
	return t, nil
}

// parseError is pgx's parse error without the connection string: its cause,
// with any password in it hidden.
func parseError(err error) error {
	var pe *pgconn.ParseConfigError
	if errors.As(err, &pe) {
		if cause := pe.Unwrap(); cause != nil {
			return errors.New("unparsable connection string: " + pgtext.Redact(cause.Error()))
		}
		return errors.New("unparsable connection string")
	}
	return errors.New("unparsable connection string: " + pgtext.Redact(err.Error()))
}

// Port returns the port the connection string gives (for several hosts, the
// first one's), or pgx's default when it gives none: PGPORT, then 5432.
func (t *Template) Port() uint16 { return t.port }

// With returns the connection string with hosts and port in place of its
// hosts and ports. Several hosts make a multi-host connection string (one
// server with several addresses): pgx tries them in order, all on port. The
// result is deterministic: the same hosts and port give the same string.
func (t *Template) With(hosts []string, port uint16) string {
	ps := strconv.Itoa(int(port))
	if t.url != nil {
		u := *t.url
		if len(hosts) == 1 {
			u.Host = net.JoinHostPort(hosts[0], ps)
			return u.String()
		}
		// Several hosts go in the query: "h1:p,h2:p" in the authority is
		// not a valid URL host when an address is IPv6.
		q := u.Query()
		q.Set("host", strings.Join(hosts, ","))
		q.Set("port", ps)
		u.RawQuery = q.Encode()
		return u.String()
	}
	var b strings.Builder
	for _, p := range t.pairs {
		b.WriteString(p)
		b.WriteByte(' ')
	}
	b.WriteString("host=")
	b.WriteString(quote(strings.Join(hosts, ",")))
	b.WriteString(" port=")
	b.WriteString(ps)
	return b.String()
}

// quote writes a keyword/value value: bare when it can be, else in single
// quotes with ' and \ escaped.
func quote(v string) string {
	if v != "" && !strings.ContainsAny(v, " \t\n\r\v\f'\\") {
		return v
	}
	r := strings.NewReplacer(`\`, `\\`, `'`, `\'`)
	return "'" + r.Replace(v) + "'"
}

// pair is one keyword/value pair: its keyword and its text as written.
type pair struct {
	key, raw string
}

const spaces = " \t\n\r\v\f"

// splitPairs splits a keyword/value connection string the way pgx reads it:
// "key = value" or "key = 'quoted value'", a backslash escaping the next
// character. Each pair keeps its text as written, so that a password is
// passed on byte for byte.
func splitPairs(s string) ([]pair, error) {
	var out []pair
	for {
		s = strings.TrimLeft(s, spaces)
		if s == "" {
			return out, nil
		}
		eq := strings.IndexByte(s, '=')
		if eq < 0 {
			return nil, errors.New("unparsable connection string: a keyword without a value")
		}
		key := strings.Trim(s[:eq], spaces)
		if key == "" {
			return nil, errors.New("unparsable connection string: a value without a keyword")
		}
		rest := strings.TrimLeft(s[eq+1:], spaces)
		end := 0
		if strings.HasPrefix(rest, "'") {
			end = 1
			for ; end < len(rest) && rest[end] != '\''; end++ {
				if rest[end] == '\\' {
					end++
				}
			}
			if end >= len(rest) {
				return nil, errors.New("unparsable connection string: an unterminated quoted value")
			}
			end++ // the closing quote
		} else {
			for ; end < len(rest) && !strings.ContainsRune(spaces, rune(rest[end])); end++ {
				if rest[end] == '\\' {
					end++
				}
			}
			if end > len(rest) {
				return nil, errors.New("unparsable connection string: a backslash at the end")
			}
		}
		out = append(out, pair{key: key, raw: key + "=" + rest[:end]})
		s = rest[end:]
	}
}
