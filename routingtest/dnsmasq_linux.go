package routingtest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// errNoDnsmasq is the message of the tests skipped (or failed, with
// PGXROUTE_REQUIRE_PG=1) for want of dnsmasq: it says what to install.
const errNoDnsmasq = "dnsmasq not found (install it: apt-get install -y dnsmasq-base, or run .ci/install.d/dnsmasq.sh)"

// Dnsmasq is a real DNS server on loopback for a test: dnsmasq,
// authoritative for the zone "test.", with SRV records from its command
// line and A and AAAA records from a hosts file it reads again on SIGHUP.
// Its methods are safe for concurrent use. Start it with StartDnsmasq.
type Dnsmasq struct {
	t     testing.TB
	bin   string
	port  int
	hosts string // the hosts file
	log   string // the file of dnsmasq's output

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	srv  []string
}

// SkipWithoutDnsmasq returns dnsmasq's path, or skips tb (fails it with
// PGXROUTE_REQUIRE_PG=1) when it is missing.
func SkipWithoutDnsmasq(tb testing.TB) string {
	tb.Helper()
	if p, err := exec.LookPath("dnsmasq"); err == nil {
		return p
	}
	if st, err := os.Stat("/usr/sbin/dnsmasq"); err == nil && !st.IsDir() {
		return "/usr/sbin/dnsmasq"
	}
	if os.Getenv(RequirePGEnv) == "1" {
		tb.Fatalf("%s (%s=1)", errNoDnsmasq, RequirePGEnv)
	}
	tb.Skip(errNoDnsmasq)
	return ""
}

// StartDnsmasq starts dnsmasq on a free port of 127.0.0.1 with the given
// --srv-host values ("_pg._tcp.pg.test,a.pg.test,5432") and hosts file
// lines ("127.0.0.1 a.pg.test"), and returns once it answers. It skips tb
// without dnsmasq (see SkipWithoutDnsmasq); tb.Cleanup stops it, and prints
// its log when tb failed.
func StartDnsmasq(tb testing.TB, srv, hosts []string) *Dnsmasq {
	tb.Helper()
	bin := SkipWithoutDnsmasq(tb)
	dir := tb.TempDir()
	// Readable by all, in case dnsmasq started as root runs as another
	// user when it reads the hosts file again.
	if err := os.Chmod(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	d := &Dnsmasq{t: tb, bin: bin, hosts: filepath.Join(dir, "hosts"), log: filepath.Join(dir, "log")}
	d.writeHosts(hosts)
	tb.Cleanup(func() {
		d.Stop()
		if tb.Failed() {
			tb.Logf("dnsmasq's log:\n%s", d.Output())
		}
	})
	for attempt := 0; ; attempt++ {
		d.port = freeUDPPort(tb)
		err := d.start(srv)
		if err == nil {
			return d
		}
		if attempt == 5 {
			tb.Fatalf("start dnsmasq: %v\n%s", err, d.Output())
		}
	}
}

// freeUDPPort returns a port of 127.0.0.1 free a moment ago for UDP and TCP.
func freeUDPPort(tb testing.TB) int {
	tb.Helper()
	for range 20 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		port := pc.LocalAddr().(*net.UDPAddr).Port
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		pc.Close()
		if err == nil {
			l.Close()
			return port
		}
	}
	tb.Fatal("no free port for dnsmasq")
	return 0
}

func (d *Dnsmasq) writeHosts(lines []string) {
	d.t.Helper()
	if err := os.WriteFile(d.hosts, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		d.t.Fatal(err)
	}
}

// start runs dnsmasq with srv and waits until it answers.
func (d *Dnsmasq) start(srv []string) error {
	args := []string{"--no-daemon", "--port=" + strconv.Itoa(d.port), "--listen-address=127.0.0.1",
		"--bind-interfaces", "--no-resolv", "--no-hosts", "--conf-file=/dev/null", "--pid-file=",
		"--log-facility=-", "--log-queries", "--local=/test/", "--addn-hosts=" + d.hosts}
	for _, s := range srv {
		args = append(args, "--srv-host="+s)
	}
	out, err := os.OpenFile(d.log, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer out.Close() // the child has its own copy
	cmd := exec.Command(d.bin, args...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	d.mu.Lock()
	d.cmd, d.done, d.srv = cmd, done, srv
	d.mu.Unlock()
	// Ready when it answers a query for a name it does not know.
	r := d.Resolver()
	for i := 0; ; i++ {
		select {
		case <-done:
			return fmt.Errorf("dnsmasq exited: %v", cmd.ProcessState)
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := r.LookupNetIP(ctx, "ip4", "ready.pgxroute.test.")
		cancel()
		if de, ok := err.(*net.DNSError); ok && de.IsNotFound {
			return nil
		}
		if i == 100 {
			d.Stop()
			return fmt.Errorf("dnsmasq does not answer on port %d: %v", d.port, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop stops dnsmasq (SIGTERM, SIGKILL after 5 s) and waits for it to exit;
// queries then fail. Stopping a stopped dnsmasq does nothing.
func (d *Dnsmasq) Stop() {
	d.mu.Lock()
	cmd, done := d.cmd, d.done
	d.cmd = nil
	d.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// SetHosts replaces the A and AAAA records: dnsmasq reads its hosts file
// again on SIGHUP.
func (d *Dnsmasq) SetHosts(lines []string) {
	d.t.Helper()
	d.writeHosts(lines)
	d.mu.Lock()
	cmd := d.cmd
	d.mu.Unlock()
	if cmd == nil {
		return // read at the next start
	}
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		d.t.Fatal(err)
	}
}

// SetSRV replaces the SRV records: dnsmasq takes them from its command line,
// so it restarts on the same port (it answers no query for a moment).
func (d *Dnsmasq) SetSRV(srv []string) {
	d.t.Helper()
	d.Stop()
	if err := d.start(srv); err != nil {
		d.t.Fatal(err)
	}
}

// Port returns the port dnsmasq listens on, on 127.0.0.1 (UDP and TCP).
func (d *Dnsmasq) Port() int { return d.port }

// Output returns what dnsmasq wrote (every start's, appended).
func (d *Dnsmasq) Output() string {
	b, _ := os.ReadFile(d.log)
	return string(b)
}

// Queries counts the queries dnsmasq logged.
func (d *Dnsmasq) Queries() int { return strings.Count(d.Output(), ": query[") }

// Resolver returns a Go resolver that asks this dnsmasq only.
func (d *Dnsmasq) Resolver() *net.Resolver {
	addr := "127.0.0.1:" + strconv.Itoa(d.port)
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var dialer net.Dialer
		return dialer.DialContext(ctx, network, addr)
	}}
}
