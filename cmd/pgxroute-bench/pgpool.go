package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// pgpoolProc is a pgpool-II started by the tool: loopback only, files in a
// temporary folder, in streaming-replication mode with statement-level load
// balancing of reads over the replicas.
type pgpoolProc struct {
	bin     string
	dir     string
	port    int
	user    string
	cmd     *exec.Cmd
	exited  chan struct{}
	version string
}

// findPgpool returns the pgpool binary: the flag, else PATH, else Debian's.
func findPgpool(explicit string) (string, error) {
	if explicit != "" {
		return explicit, nil
	}
	if p, err := exec.LookPath("pgpool"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/sbin/pgpool", "/usr/local/sbin/pgpool", "/usr/local/bin/pgpool"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("pgpool not found: apt-get install -y pgpool2, or give -pgpool-bin")
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// pgpoolConf writes the configuration: the primary is backend 0 with weight
// 0 (it takes writes only, like the other targets), each replica weight 1.
func pgpoolConf(dir string, port, pcpPort int, s servers, children int, user string) (string, error) {
	backends := append([]string{s.primary}, s.replicas...)
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("# written by pgxroute-bench")
	w("backend_clustering_mode = 'streaming_replication'")
	w("listen_addresses = '127.0.0.1'")
	w("port = %d", port)
	w("socket_dir = '%s'", dir)
	w("pcp_listen_addresses = ''")
	w("pcp_port = %d", pcpPort)
	w("pcp_socket_dir = '%s'", dir)
	w("pid_file_name = '%s'", filepath.Join(dir, "pgpool.pid"))
	w("logdir = '%s'", dir)
	w("memqcache_oiddir = '%s'", filepath.Join(dir, "oiddir"))
	w("log_destination = 'stderr'")
	w("logging_collector = off")
	w("log_min_messages = warning")
	w("enable_pool_hba = off")
	w("pool_passwd = ''")
	w("use_watchdog = off")
	w("num_init_children = %d", children)
	w("max_pool = 1")
	w("reserved_connections = 0")
	w("child_life_time = 0")
	w("child_max_connections = 0")
	w("connection_life_time = 0")
	w("client_idle_limit = 0")
	// Backends close with their client, so that their statistics are
	// flushed when a run ends (the pgx targets close their pools too).
	w("connection_cache = off")
	w("load_balance_mode = on")
	w("statement_level_load_balance = on")
	w("disable_load_balance_on_write = 'transaction'")
	w("sr_check_period = 10")
	w("sr_check_user = '%s'", user)
	w("sr_check_password = ''")
	w("sr_check_database = 'postgres'")
	w("health_check_period = 0")
	w("failover_on_backend_error = off")
	w("failover_command = ''")
	w("memory_cache_enabled = off")
	for i, conn := range backends {
		cfg, err := pgconn.ParseConfig(conn)
		if err != nil {
			return "", fmt.Errorf("backend %d: %w", i, err)
		}
		weight := 1
		if i == 0 {
			weight = 0
		}
		w("backend_hostname%d = '%s'", i, cfg.Host)
		w("backend_port%d = %d", i, cfg.Port)
		w("backend_weight%d = %d", i, weight)
		w("backend_flag%d = 'DISALLOW_TO_FAILOVER'", i)
	}
	return b.String(), nil
}

// startPgpool writes the files and starts pgpool in the foreground (-n),
// then waits until it accepts connections.
func startPgpool(ctx context.Context, bin string, s servers, children int, log io.Writer) (*pgpoolProc, error) {
	pcfg, err := pgconn.ParseConfig(s.primary)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "pgxroute-bench-pgpool-")
	if err != nil {
		return nil, err
	}
	p := &pgpoolProc{bin: bin, dir: dir, user: pcfg.User, exited: make(chan struct{})}
	fail := func(err error) (*pgpoolProc, error) {
		p.stop()
		return nil, fmt.Errorf("pgpool: %w", err)
	}
	if p.port, err = freePort(); err != nil {
		return fail(err)
	}
	pcpPort, err := freePort()
	if err != nil {
		return fail(err)
	}
	conf, err := pgpoolConf(dir, p.port, pcpPort, s, children, pcfg.User)
	if err != nil {
		return fail(err)
	}
	files := map[string]string{"pgpool.conf": conf, "pcp.conf": "", "pool_hba.conf": "host all all 127.0.0.1/32 trust\n"}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			return fail(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "oiddir"), 0o755); err != nil {
		return fail(err)
	}
	if out, err := exec.Command(bin, "--version").CombinedOutput(); err == nil {
		p.version = strings.TrimSpace(string(out))
	}
	cmd := exec.Command(bin, "-n", "-f", filepath.Join(dir, "pgpool.conf"),
		"-F", filepath.Join(dir, "pcp.conf"), "-a", filepath.Join(dir, "pool_hba.conf"))
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if os.Geteuid() == 0 {
		// pgpool runs as the servers' account, like the cluster does.
		cred, err := osAccount("postgres")
		if err != nil {
			return fail(err)
		}
		cmd.SysProcAttr.Credential = cred
		if err := chownTree(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return fail(err)
		}
	}
	if err := cmd.Start(); err != nil {
		return fail(err)
	}
	p.cmd = cmd
	go func() { _ = cmd.Wait(); close(p.exited) }()

	deadline := time.Now().Add(30 * time.Second)
	for {
		err := p.ping(ctx)
		if err == nil {
			return p, nil
		}
		select {
		case <-p.exited:
			return fail(fmt.Errorf("exited at start: %v", err))
		case <-ctx.Done():
			return fail(ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fail(fmt.Errorf("not ready after 30s: %w", err))
		}
	}
}

func (p *pgpoolProc) ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, p.url())
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	var one int
	return conn.QueryRow(ctx, "SELECT 1").Scan(&one)
}

// url is pgpool's address, for pgx.
func (p *pgpoolProc) url() string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/postgres?sslmode=disable", p.user, p.port)
}

// stop shuts pgpool down (fast mode: SIGINT), kills its process group if it
// lingers, and removes its folder.
func (p *pgpoolProc) stop() {
	if p.cmd != nil && p.cmd.Process != nil {
		_ = p.cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-p.exited:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			<-p.exited
		}
	}
	if p.dir != "" {
		_ = os.RemoveAll(p.dir)
	}
}

func osAccount(name string) (*syscall.Credential, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("running as root needs the %q account: %w", name, err)
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return nil, err
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		return nil, err
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

func chownTree(dir string, uid, gid int) error {
	return filepath.Walk(dir, func(path string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Chown(path, uid, gid)
	})
}
