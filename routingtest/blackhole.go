package routingtest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// ErrNoIptables is returned by Blackhole when the iptables command is not
// installed. Its message says what to install.
var ErrNoIptables = errors.New("routingtest: iptables not found (install it: apt-get install -y iptables)")

// blackholeTag is the prefix of the iptables comment on every rule Blackhole
// adds: pgxroute-<harness pid>-<port>.
const blackholeTag = "pgxroute-"

// iptablesPath returns the iptables command, or ErrNoIptables.
func iptablesPath() (string, error) {
	if p, err := exec.LookPath("iptables"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/sbin/iptables", "/sbin/iptables"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", ErrNoIptables
}

// iptables runs iptables with args (waiting for its lock) and returns its
// output; the error carries the output.
func iptables(args ...string) (string, error) {
	bin, err := iptablesPath()
	if err != nil {
		return "", err
	}
	var out bytes.Buffer
	cmd := exec.Command(bin, append([]string{"-w", "5"}, args...)...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("routingtest: iptables %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}

// blackholeRules returns the iptables rule specifications (without the
// -I/-D and chain) that drop every TCP packet to or from port on loopback.
func blackholeRules(port int) [][]string {
	p := strconv.Itoa(port)
	tag := blackholeTag + strconv.Itoa(os.Getpid()) + "-" + p
	var rules [][]string
	for _, chain := range []string{"INPUT", "OUTPUT"} {
		iface := "-i"
		if chain == "OUTPUT" {
			iface = "-o"
		}
		for _, dir := range []string{"--dport", "--sport"} {
			rules = append(rules, []string{chain, iface, "lo", "-p", "tcp", dir, p,
				"-m", "comment", "--comment", tag, "-j", "DROP"})
		}
	}
	return rules
}

// Blackhole makes n's TCP port a black hole, as a dead switch port or a
// security group change does: iptables drops every packet to or from the
// port on loopback (INPUT and OUTPUT, destination and source port), without
// a reset. Connections already open stall (what they send is retransmitted
// until Unblackhole or TCP gives up), and new connections hang in the
// handshake. The server itself keeps running, and so does replication
// whose connections do not use n's port: a replica's own WAL receiver
// connects to its upstream's port, so blackholing a replica leaves the
// primary and the replica's streaming intact, while blackholing the primary
// stalls every replica's streaming too (the replicas see no error until
// wal_receiver_timeout, 60 s by default, and then fail to reconnect until
// Unblackhole).
//
// The rules carry the comment pgxroute-<pid>-<port>; Unblackhole and Close
// remove them, and CleanStaleBlackholes (run by StartCluster) removes those
// of harness processes that died. It needs iptables (ErrNoIptables) and root.
// On a ClusterOptions.SharedPort cluster, whose nodes share their port, it
// returns an error wrapping ErrSharedPort and changes nothing.
func (c *Cluster) Blackhole(n *Node) error {
	if c.opts.SharedPort {
		return fmt.Errorf("routingtest: blackhole %s: it works by port: %w", n.name, ErrSharedPort)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.blackholed {
		return nil
	}
	for i, r := range blackholeRules(n.port) {
		if _, err := iptables(append([]string{"-I"}, r...)...); err != nil {
			for _, done := range blackholeRules(n.port)[:i] {
				_, _ = iptables(append([]string{"-D"}, done...)...)
			}
			return fmt.Errorf("routingtest: blackhole %s: %w", n.name, err)
		}
	}
	n.blackholed = true
	c.logf("%s: port %d blackholed", n.name, n.port)
	return nil
}

// Unblackhole removes the rules Blackhole added for n. Stalled connections
// resume with TCP's next retransmission. Unblackholing a node that is not
// blackholed does nothing.
func (c *Cluster) Unblackhole(n *Node) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.blackholed {
		return nil
	}
	var errs []error
	for _, r := range blackholeRules(n.port) {
		if _, err := iptables(append([]string{"-D"}, r...)...); err != nil {
			errs = append(errs, err)
		}
	}
	n.blackholed = false
	c.logf("%s: port %d reachable again", n.name, n.port)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("routingtest: unblackhole %s: %w", n.name, err)
	}
	return nil
}

// Blackholed reports whether n's port is blackholed by Blackhole.
func (n *Node) Blackholed() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.blackholed
}

// CleanStaleBlackholes removes the iptables rules that Blackhole added in
// harness processes that are gone (killed before Close). Rules of living
// processes stay. It returns ErrNoIptables when iptables is missing, and
// does nothing when the process is not root (it could have added no rule).
func CleanStaleBlackholes() error {
	if _, err := iptablesPath(); err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return nil
	}
	var errs []error
	for _, chain := range []string{"INPUT", "OUTPUT"} {
		out, err := iptables("-S", chain)
		if err != nil {
			return err
		}
		for _, line := range strings.Split(out, "\n") {
			pid, ok := staleRuleOwner(line)
			if !ok || ProcessAlive(pid) {
				continue
			}
			// "-A CHAIN spec..." deletes as "-D CHAIN spec...".
			spec := strings.Fields(strings.TrimPrefix(line, "-A "))
			for i, f := range spec {
				spec[i] = strings.Trim(f, `"`)
			}
			if _, err := iptables(append([]string{"-D"}, spec...)...); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// staleRuleOwner returns the harness pid in an iptables -S line that carries
// a Blackhole comment.
func staleRuleOwner(line string) (int, bool) {
	if !strings.HasPrefix(line, "-A ") {
		return 0, false
	}
	_, rest, ok := strings.Cut(line, "--comment ")
	if !ok {
		return 0, false
	}
	rest = strings.Trim(strings.Fields(rest)[0], `"`)
	tag, ok := strings.CutPrefix(rest, blackholeTag)
	if !ok {
		return 0, false
	}
	pidText, _, ok := strings.Cut(tag, "-")
	if !ok {
		return 0, false
	}
	pid, err := strconv.Atoi(pidText)
	return pid, err == nil
}

// SkipWithoutIptables skips tb, with one line saying what to install, when
// iptables is missing or the process is not root; it fails tb instead when
// PGXROUTE_REQUIRE_PG=1. An installed iptables that refuses to work (no
// kernel support, no privilege) fails tb under PGXROUTE_REQUIRE_PG=1 and
// skips it otherwise.
func SkipWithoutIptables(tb testing.TB) {
	tb.Helper()
	required := os.Getenv(RequirePGEnv) == "1"
	skipOrFail := func(msg string) {
		tb.Helper()
		if required {
			tb.Fatalf("%s (%s=1)", msg, RequirePGEnv)
		}
		tb.Skip(msg)
	}
	if _, err := iptablesPath(); err != nil {
		skipOrFail(err.Error())
		return
	}
	if os.Geteuid() != 0 {
		skipOrFail("routingtest: Blackhole needs root for iptables")
		return
	}
	if _, err := iptables("-S", "INPUT"); err != nil {
		skipOrFail(fmt.Sprintf("routingtest: iptables is installed but refuses to work: %v", err))
	}
}
