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
	"github.com/pgxroute/pgxroute/internal/probe"
)

const checkAbout = `
Check connects to every node of a deployment, one connection each, and
reports per node: its group, name and address (never the password), whether
it is reachable, its role (primary or replica) and the role its group expects
(the default group's nodes are primaries, the read group's replicas), its WAL
position, its replay lag in time and in bytes behind the primary, the round
trip time of the check query and the server version.

It exits 1 when a node is unreachable or in the wrong role.`

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

// nodeProbe is one node's answer to the router's probe (internal/probe).
type nodeProbe struct {
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
	probes := map[string]*nodeProbe{}
	var wg sync.WaitGroup
	for _, m := range members {
		if probes[m.conn] != nil {
			continue
		}
		p := &nodeProbe{connString: m.conn}
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

// run connects to the node and probes it, within timeout.
func (p *nodeProbe) run(ctx context.Context, timeout time.Duration) {
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
	start := time.Now()
	res, err := probe.Run(ctx, conn) // the router's own probe
	p.rtt = time.Since(start)
	if err == nil {
		err = conn.QueryRow(ctx, "SELECT version()", pgx.QueryExecModeSimpleProtocol).Scan(&p.version)
	}
	if err != nil {
		p.err = redact(err.Error())
		return
	}
	p.reachable, p.recovery, p.lag = true, res.Recovery, res.Lag
	if f := strings.Fields(p.version); len(f) >= 2 {
		p.version = f[0] + " " + f[1]
	}
	if !res.NoPosition {
		p.lsn, p.lsnParsed = res.LSN, true
		p.position = pgtext.FormatLSN(res.LSN)
	}
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
