package dns_test

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

	"github.com/pgxroute/pgxroute/routingtest"
)

// dnsmasq is a real DNS server on loopback for a test: dnsmasq, authoritative
// for the zone "test.", with SRV records from its command line and A and
// AAAA records from a hosts file it reads again on SIGHUP.
type dnsmasq struct {
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

// findDnsmasq returns dnsmasq's path, or skips the test (fails it with
// PGXROUTE_REQUIRE_PG=1) when it is missing.
func findDnsmasq(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("dnsmasq"); err == nil {
		return p
	}
	if st, err := os.Stat("/usr/sbin/dnsmasq"); err == nil && !st.IsDir() {
		return "/usr/sbin/dnsmasq"
	}
	const msg = "dnsmasq not found (install it: apt-get install -y dnsmasq-base, or run .ci/install.d/dnsmasq.sh)"
	if os.Getenv(routingtest.RequirePGEnv) == "1" {
		t.Fatalf("%s (%s=1)", msg, routingtest.RequirePGEnv)
	}
	t.Skip(msg)
	return ""
}

// startDnsmasq starts dnsmasq on a free port of 127.0.0.1 with the given
// --srv-host values ("_pg._tcp.pg.test,a.pg.test,5432") and hosts file
// lines ("127.0.0.1 a.pg.test"). It is stopped by t.Cleanup.
func startDnsmasq(t testing.TB, srv, hosts []string) *dnsmasq {
	t.Helper()
	bin := findDnsmasq(t)
	dir := t.TempDir()
	// Readable by all, in case dnsmasq started as root runs as another
	// user when it reads the hosts file again.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	d := &dnsmasq{t: t, bin: bin, hosts: filepath.Join(dir, "hosts"), log: filepath.Join(dir, "log")}
	d.writeHosts(hosts)
	t.Cleanup(func() {
		d.stop()
		if t.Failed() {
			t.Logf("dnsmasq's log:\n%s", d.output())
		}
	})
	for attempt := 0; ; attempt++ {
		d.port = freeUDPPort(t)
		err := d.start(srv)
		if err == nil {
			return d
		}
		if attempt == 5 {
			t.Fatalf("start dnsmasq: %v\n%s", err, d.output())
		}
	}
}

// freeUDPPort returns a port of 127.0.0.1 free a moment ago for UDP and TCP.
func freeUDPPort(t testing.TB) int {
	t.Helper()
	for range 20 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := pc.LocalAddr().(*net.UDPAddr).Port
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		pc.Close()
		if err == nil {
			l.Close()
			return port
		}
	}
	t.Fatal("no free port for dnsmasq")
	return 0
}

func (d *dnsmasq) writeHosts(lines []string) {
	d.t.Helper()
	if err := os.WriteFile(d.hosts, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		d.t.Fatal(err)
	}
}

// start runs dnsmasq with srv and waits until it answers.
func (d *dnsmasq) start(srv []string) error {
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
			d.stop()
			return fmt.Errorf("dnsmasq does not answer on port %d: %v", d.port, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop stops dnsmasq and waits for it to exit.
func (d *dnsmasq) stop() {
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
func (d *dnsmasq) SetHosts(lines []string) {
	d.t.Helper()
	d.writeHosts(lines)
	d.mu.Lock()
	cmd := d.cmd
	d.mu.Unlock()
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		d.t.Fatal(err)
	}
}

// SetSRV replaces the SRV records: dnsmasq takes them from its command line,
// so it restarts on the same port.
func (d *dnsmasq) SetSRV(srv []string) {
	d.t.Helper()
	d.stop()
	if err := d.start(srv); err != nil {
		d.t.Fatal(err)
	}
}

// output returns what dnsmasq wrote (every start's, appended).
func (d *dnsmasq) output() string {
	b, _ := os.ReadFile(d.log)
	return string(b)
}

// Queries counts the queries dnsmasq logged.
func (d *dnsmasq) Queries() int { return strings.Count(d.output(), ": query[") }

// Resolver returns a Go resolver that asks this dnsmasq only.
func (d *dnsmasq) Resolver() *net.Resolver {
	addr := "127.0.0.1:" + strconv.Itoa(d.port)
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var dialer net.Dialer
		return dialer.DialContext(ctx, network, addr)
	}}
}
