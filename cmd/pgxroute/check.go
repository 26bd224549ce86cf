package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgxroute/pgxroute/internal/pgtext"
)

const checkAbout = `
Check connects to every node of a deployment, one connection each, and
reports per node: its group, name and address (never the password), whether
it is reachable, its role (primary or replica) and the role its group expects
(the default group's nodes are primaries, the read group's replicas), its WAL
position, its replay lag in time and in bytes behind the primary, the round
trip time of the check query and the server version.

It exits 1 when a node is unreachable or in the wrong role.`

// checkSQL asks a node its role, WAL position (replayed on a replica, written
// on a primary), replay delay and version. The delay counts only while the
// replica has received WAL it has not replayed: an idle, caught-up replica
// has none however old its last transaction.
const checkSQL = `SELECT r,
  (CASE WHEN r THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END)::text,
  CASE WHEN r AND COALESCE(pg_last_wal_receive_lsn() > pg_last_wal_replay_lsn(), true)
    THEN COALESCE(EXTRACT(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp()), 0) ELSE 0 END::float8,
  version()
FROM pg_is_in_recovery() AS r`

// nodeReport is what check found of one node of one group.
type nodeReport struct {
	Group     string
	Name      string
	Addr      string
	Expected  string // "primary", "replica" or "" (any)
	Reachable bool
	Role      string // "primary" or "replica"; "" when unreachable
	Mismatch  bool
	Position  string
	Lag       time.Duration
	LagBytes  int64 // -1: unknown
	RTT       time.Duration
	Version   string
	Err       string // redacted
}

// OK reports whether the node is reachable and in its expected role.
func (r nodeReport) OK() bool { return r.Reachable && !r.Mismatch }

func runCheck(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cf configFlags
	fs := newFlagSet("check", "[-config FILE | -primary URL -replica URL...] [-timeout 3s]", checkAbout, stdout)
	cf.register(fs)
	timeout := fs.Duration("timeout", 3*time.Second, "time allowed per node to connect and answer")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	if *timeout <= 0 {
		return usagef("-timeout must be positive")
	}
	fc, _, err := cf.load(nil)
	if err != nil {
		return err
	}
	if len(fc.members()) == 0 {
		return usagef("the configuration has no node")
	}
	reports := checkNodes(ctx, fc, *timeout)
	writeCheckTable(stdout, reports)
	var bad []string
	for _, r := range reports {
		switch {
		case !r.Reachable:
			bad = append(bad, r.Name+" unreachable")
		case r.Mismatch:
			bad = append(bad, fmt.Sprintf("%s is a %s in group %s, which expects a %s", r.Name, r.Role, r.Group, r.Expected))
		}
	}
	fmt.Fprintln(stdout)
	if len(bad) > 0 {
		fmt.Fprintf(stdout, "FAIL: %d of %d nodes have a problem: %s\n", len(bad), len(reports), strings.Join(bad, "; "))
		return errSilent
	}
	fmt.Fprintf(stdout, "OK: %d nodes reachable, each in its expected role\n", len(reports))
	return nil
}

// probe is one node's answer to checkSQL.
type probe struct {
	reachable  bool
	recovery   bool
	position   string
	lag        time.Duration
	rtt        time.Duration
	version    string
	err        string
	lsn        uint64
	lsnParsed  bool
	connString string
}

// checkNodes probes every distinct node of fc concurrently and returns a
// report per node and group.
func checkNodes(ctx context.Context, fc fileConfig, timeout time.Duration) []nodeReport {
	members := fc.members()
	probes := map[string]*probe{}
	var wg sync.WaitGroup
	for _, m := range members {
		if probes[m.conn] != nil {
			continue
		}
		p := &probe{connString: m.conn}
		probes[m.conn] = p
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.run(ctx, timeout)
		}()
	}
	wg.Wait()

	// The primary's position: the first node of the default group that
	// answered as a primary.
	var primaryLSN uint64
	var havePrimary bool
	for _, m := range members {
		if p := probes[m.conn]; m.group == fc.defaultGroup() && p.reachable && !p.recovery && p.lsnParsed {
			primaryLSN, havePrimary = p.lsn, true
			break
		}
	}

	var out []nodeReport
	for _, m := range members {
		p := probes[m.conn]
		r := nodeReport{Group: m.group, Name: m.name, Addr: hostPort(m.conn), LagBytes: -1, Err: p.err}
		switch m.group {
		case fc.defaultGroup():
			r.Expected = "primary"
		case fc.readGroup():
			r.Expected = "replica"
		}
		if p.reachable {
			r.Reachable, r.Position, r.Lag, r.RTT, r.Version = true, p.position, p.lag, p.rtt, p.version
			r.Role = "primary"
			if p.recovery {
				r.Role = "replica"
			}
			r.Mismatch = r.Expected != "" && r.Expected != r.Role
			if p.lsnParsed && havePrimary {
				r.LagBytes = 0
				if p.recovery && primaryLSN > p.lsn {
					r.LagBytes = int64(primaryLSN - p.lsn)
				}
			}
		}
		out = append(out, r)
	}
	return out
}

// run connects to the node and runs checkSQL, within timeout.
func (p *probe) run(ctx context.Context, timeout time.Duration) {
	cfg, err := pgx.ParseConfig(p.connString)
	if err != nil {
		p.err = redact(err.Error())
		return
	}
	cfg.ConnectTimeout = timeout
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	cfg.RuntimeParams["application_name"] = "pgxroute check"
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		p.err = redact(err.Error())
		return
	}
	defer conn.Close(context.Background())
	var pos *string
	var lagSec float64
	start := time.Now()
	err = conn.QueryRow(ctx, checkSQL).Scan(&p.recovery, &pos, &lagSec, &p.version)
	p.rtt = time.Since(start)
	if err != nil {
		p.err = redact(err.Error())
		return
	}
	p.reachable = true
	p.lag = time.Duration(lagSec * float64(time.Second))
	if f := strings.Fields(p.version); len(f) >= 2 {
		p.version = f[0] + " " + f[1]
	}
	if pos != nil {
		p.position = *pos
		p.lsn, p.lsnParsed = parseLSN(*pos)
	}
}

// parseLSN parses pg_lsn's text form, as "16/B374D848".
func parseLSN(s string) (uint64, bool) {
	lsn, err := pgtext.ParseLSN(s)
	return lsn, err == nil
}

// writeCheckTable prints the reports as a table, then the errors.
func writeCheckTable(w io.Writer, reports []nodeReport) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "GROUP\tNODE\tADDRESS\tREACHABLE\tROLE\tEXPECTED\tWAL POSITION\tLAG\tLAG BYTES\tRTT\tVERSION")
	for _, r := range reports {
		reach, role, expected, pos, lag, lagBytes, rtt, version := "no", "-", "any", "-", "-", "-", "-", "-"
		if r.Expected != "" {
			expected = r.Expected
		}
		if r.Reachable {
			reach, role, pos, rtt, version = "yes", r.Role, r.Position, roundDur(r.RTT).String(), r.Version
			if r.Mismatch {
				role += " (MISMATCH)"
			}
			if r.Role == "replica" {
				lag = roundDur(r.Lag).String()
			}
			if r.LagBytes >= 0 && r.Role == "replica" {
				lagBytes = strconv.FormatInt(r.LagBytes, 10)
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
			r.Group, r.Name, r.Addr, reach, role, expected, pos, lag, lagBytes, rtt, version)
	}
	tw.Flush()
	seen := map[string]bool{}
	for _, r := range reports {
		if r.Err != "" && !seen[r.Name] {
			seen[r.Name] = true
			fmt.Fprintf(w, "%s: %s\n", r.Name, r.Err)
		}
	}
}

// roundDur rounds d for display.
func roundDur(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(10 * time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	}
	return d.Round(time.Microsecond)
}
