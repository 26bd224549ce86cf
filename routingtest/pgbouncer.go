package routingtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrNoPgBouncer is returned when the pgbouncer program is not installed.
// Its message says what to install.
var ErrNoPgBouncer = errors.New("routingtest: pgbouncer not found (install it: apt-get install -y pgbouncer, or set PGXROUTE_PGBOUNCER to the program)")

// PgBouncerDatabase is one entry of a PgBouncer's [databases] section: the
// database name clients ask for, and the node (and its database) it leads to.
type PgBouncerDatabase struct {
	// Name is the database name clients connect to, such as "app" or
	// "app_r1".
	Name string
	// Node is the server behind it.
	Node *Node
	// DBName is the database on Node. Empty: "postgres".
	DBName string
}

// PgBouncerOptions configures Cluster.StartPgBouncer.
type PgBouncerOptions struct {
	// Databases are the databases the PgBouncer serves; at least one. One
	// PgBouncer may serve several nodes under different names.
	Databases []PgBouncerDatabase
	// PoolMode is pool_mode: empty means "transaction", as most deployments
	// in front of replicas use it.
	PoolMode string
	// PoolSize is default_pool_size, the server connections per database
	// and user: 0 means 20.
	PoolSize int
	// MaxClientConn is max_client_conn: 0 means 500.
	MaxClientConn int
	// ExtraConf holds extra lines for the [pgbouncer] section, written after
	// the harness's own (for PgBouncer the last value of a setting wins),
	// such as "query_wait_timeout = 5" or "server_login_retry = 1".
	ExtraConf []string
	// Bin is the pgbouncer program. Empty: PGXROUTE_PGBOUNCER, then PATH,
	// then /usr/sbin/pgbouncer.
	Bin string
}

// PgBouncer is a running PgBouncer started by Cluster.StartPgBouncer, on
// 127.0.0.1, as the cluster's server account, with its files in a folder of
// the cluster's. Authentication is trust for the user "postgres", which is
// also an admin of the admin console (database "pgbouncer"). Close (or the
// cluster's Close) stops it and removes its folder; like the servers, it
// dies with the process that started it.
type PgBouncer struct {
	c    *Cluster
	name string
	dir  string
	bin  string
	port int
	tail tailBuffer

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	closed bool
}

// FindPgBouncer returns the pgbouncer program: explicit when not empty, then
// the PGXROUTE_PGBOUNCER environment variable, the PATH, /usr/sbin/pgbouncer.
// The error wraps ErrNoPgBouncer.
func FindPgBouncer(explicit string) (string, error) {
	for _, p := range []string{explicit, os.Getenv("PGXROUTE_PGBOUNCER")} {
		if p == "" {
			continue
		}
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%w: %s: %v", ErrNoPgBouncer, p, err)
		}
		return p, nil
	}
	if p, err := exec.LookPath("pgbouncer"); err == nil {
		return p, nil
	}
	if _, err := os.Stat("/usr/sbin/pgbouncer"); err == nil {
		return "/usr/sbin/pgbouncer", nil
	}
	return "", ErrNoPgBouncer
}

// SkipWithoutPgBouncer skips tb, with one line saying what to install, when
// pgbouncer is missing, or fails it when PGXROUTE_REQUIRE_PG=1.
func SkipWithoutPgBouncer(tb testing.TB) {
	tb.Helper()
	if _, err := FindPgBouncer(""); err != nil {
		if os.Getenv(RequirePGEnv) == "1" {
			tb.Fatalf("%v (%s=1)", err, RequirePGEnv)
		}
		tb.Skip(err.Error())
	}
}

// NewPgBouncer starts a PgBouncer for a test (StartPgBouncer) and registers
// its Close with tb.Cleanup. Without pgbouncer it skips the test, or fails it
// when PGXROUTE_REQUIRE_PG=1.
func (c *Cluster) NewPgBouncer(tb testing.TB, opts PgBouncerOptions) *PgBouncer {
	tb.Helper()
	if opts.Bin == "" {
		SkipWithoutPgBouncer(tb)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := c.StartPgBouncer(ctx, opts)
	if err != nil {
		tb.Fatalf("routingtest: start pgbouncer: %v", err)
	}
	tb.Cleanup(func() {
		if err := b.Close(); err != nil {
			tb.Errorf("routingtest: close pgbouncer: %v", err)
		}
	})
	return b
}

// StartPgBouncer starts a PgBouncer in front of the cluster's nodes and
// returns once its admin console answers. The PgBouncer runs in the
// foreground of its own process, with its log in the cluster's log under
// the name "pgbouncerN".
func (c *Cluster) StartPgBouncer(ctx context.Context, opts PgBouncerOptions) (*PgBouncer, error) {
	bin, err := FindPgBouncer(opts.Bin)
	if err != nil {
		return nil, err
	}
	if len(opts.Databases) == 0 {
		return nil, errors.New("routingtest: StartPgBouncer: no databases")
	}
	c.mu.Lock()
	name := "pgbouncer" + strconv.Itoa(len(c.bouncers)+1)
	c.mu.Unlock()
	dir := filepath.Join(c.base, name)
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, fmt.Errorf("routingtest: %s: %w", name, err)
	}
	b := &PgBouncer{c: c, name: name, dir: dir, bin: bin}
	if err := b.writeFiles(opts); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	// A port found free may be taken before PgBouncer binds it: retry.
	for attempt := 0; ; attempt++ {
		if b.port, err = freePort(); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("routingtest: %s: %w", name, err)
		}
		if err = b.writePortConf(); err == nil {
			err = b.Start(ctx)
		}
		if err == nil {
			break
		}
		if attempt == 4 || !strings.Contains(b.tail.String(), "bind") {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	c.mu.Lock()
	c.bouncers = append(c.bouncers, b)
	c.mu.Unlock()
	return b, nil
}

// writeFiles writes the configuration (but the port) and the user list.
func (b *PgBouncer) writeFiles(opts PgBouncerOptions) error {
	var dbs []string
	for _, d := range opts.Databases {
		if d.Name == "" || d.Node == nil || strings.ContainsAny(d.Name, " =\n") {
			return fmt.Errorf("routingtest: %s: bad database entry %q", b.name, d.Name)
		}
		dbname := d.DBName
		if dbname == "" {
			dbname = "postgres"
		}
		dbs = append(dbs, fmt.Sprintf("%s = host=%s port=%d dbname=%s user=postgres", d.Name, d.Node.host, d.Node.port, dbname))
	}
	mode, size, maxClient := opts.PoolMode, opts.PoolSize, opts.MaxClientConn
	if mode == "" {
		mode = "transaction"
	}
	if size == 0 {
		size = 20
	}
	if maxClient == 0 {
		maxClient = 500
	}
	conf := append([]string{
		"; written by pgxroute/routingtest",
		"[databases]"}, dbs...)
	conf = append(conf,
		"[pgbouncer]",
		"%include "+filepath.Join(b.dir, "port.ini"),
		"listen_addr = 127.0.0.1",
		"unix_socket_dir =",
		"auth_type = trust",
		"auth_file = "+filepath.Join(b.dir, "userlist.txt"),
		"admin_users = postgres",
		"stats_users = postgres",
		"pool_mode = "+mode,
		"default_pool_size = "+strconv.Itoa(size),
		"max_client_conn = "+strconv.Itoa(maxClient),
		"pidfile = "+filepath.Join(b.dir, "pgbouncer.pid"),
		"log_connections = 0",
		"log_disconnections = 0",
		// pgx sends no startup parameter PgBouncer refuses; other drivers'
		// extra_float_digits is accepted for tests that use them.
		"ignore_startup_parameters = extra_float_digits",
	)
	conf = append(conf, opts.ExtraConf...)
	files := map[string]string{
		"pgbouncer.ini": strings.Join(conf, "\n") + "\n",
		"userlist.txt":  "\"postgres\" \"\"\n",
	}
	for f, text := range files {
		if err := b.writeOwned(f, text); err != nil {
			return err
		}
	}
	return b.c.chown(b.dir)
}

// writePortConf writes the included file that holds listen_port.
func (b *PgBouncer) writePortConf() error {
	return b.writeOwned("port.ini", "listen_port = "+strconv.Itoa(b.port)+"\n")
}

func (b *PgBouncer) writeOwned(file, text string) error {
	p := filepath.Join(b.dir, file)
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		return fmt.Errorf("routingtest: %s: %w", b.name, err)
	}
	return b.c.chown(p)
}

// chown gives path to the servers' account when the harness runs as root.
func (c *Cluster) chown(path string) error {
	if c.cred == nil {
		return nil
	}
	if err := os.Chown(path, int(c.cred.Uid), int(c.cred.Gid)); err != nil {
		return fmt.Errorf("routingtest: %w", err)
	}
	return nil
}

// Name returns the PgBouncer's name in the cluster's log: "pgbouncer1"...
func (b *PgBouncer) Name() string { return b.name }

// Port returns the TCP port the PgBouncer listens on (on 127.0.0.1). It stays
// the same across Stop and Start.
func (b *PgBouncer) Port() int { return b.port }

// Dir returns the PgBouncer's folder (pgbouncer.ini, userlist.txt).
func (b *PgBouncer) Dir() string { return b.dir }

// ConnString returns a postgres:// URL for database (a name of
// PgBouncerOptions.Databases) through the PgBouncer, as user postgres.
// Behind a transaction-pooling PgBouncer older than 1.21, pgx needs a
// default_query_exec_mode other than its default cache_statement (see
// docs/testing.md): add it to the URL or the parsed config.
func (b *PgBouncer) ConnString(database string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", b.port, database)
}

// AdminConnString returns a URL for PgBouncer's admin console (database
// "pgbouncer"; SHOW POOLS, SHOW SERVERS, PAUSE, RECONNECT...). The console
// speaks the simple query protocol only, which the URL asks pgx for.
func (b *PgBouncer) AdminConnString() string {
	return b.ConnString("pgbouncer") + "&default_query_exec_mode=simple_protocol"
}

// PID returns the PgBouncer's process id, or 0 when it is not running.
func (b *PgBouncer) PID() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cmd == nil || isClosed(b.exited) {
		return 0
	}
	return b.cmd.Process.Pid
}

// Start starts a stopped PgBouncer again on its port and waits until its
// admin console answers.
func (b *PgBouncer) Start(ctx context.Context) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return fmt.Errorf("routingtest: %s is closed", b.name)
	}
	if b.cmd != nil && !isClosed(b.exited) {
		b.mu.Unlock()
		return fmt.Errorf("routingtest: %s is already running", b.name)
	}
	cmd := exec.Command(b.bin, filepath.Join(b.dir, "pgbouncer.ini"))
	cmd.Dir = b.dir
	exited, err := b.c.spawn(b.name, "pgbouncer", &b.tail, cmd)
	if err != nil {
		b.mu.Unlock()
		return err
	}
	b.cmd, b.exited = cmd, exited
	b.mu.Unlock()
	b.c.logf("%s: pgbouncer started, pid %d, port %d", b.name, cmd.Process.Pid, b.port)

	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		conn, err := pgx.Connect(cctx, b.AdminConnString())
		if err == nil {
			_, err = conn.Exec(cctx, "SHOW VERSION")
			conn.Close(context.Background())
		}
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			_ = b.Stop()
			return fmt.Errorf("routingtest: %s did not become ready: %w (last error: %v)", b.name, ctx.Err(), err)
		case <-exited:
			time.Sleep(50 * time.Millisecond)
			return fmt.Errorf("routingtest: %s exited during start-up: %s", b.name, b.tail.String())
		case <-tick.C:
		}
	}
}

// Stop stops the PgBouncer at once (SIGINT: its immediate shutdown, which
// closes every client and server connection) and waits for it to exit.
// Its files stay: Start starts it again on the same port.
func (b *PgBouncer) Stop() error {
	b.mu.Lock()
	cmd, exited := b.cmd, b.exited
	b.mu.Unlock()
	if cmd == nil || isClosed(exited) {
		return nil
	}
	b.c.logf("%s: stop", b.name)
	_ = cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-exited:
		return nil
	case <-time.After(10 * time.Second):
	}
	_ = cmd.Process.Kill()
	select {
	case <-exited:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("routingtest: %s (pid %d) survived SIGKILL", b.name, cmd.Process.Pid)
	}
}

// Close stops the PgBouncer and removes its folder. It is safe to call more
// than once.
func (b *PgBouncer) Close() error {
	err := b.Stop()
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	if rerr := os.RemoveAll(b.dir); rerr != nil && err == nil {
		err = fmt.Errorf("routingtest: %w", rerr)
	}
	return err
}

// Version asks the admin console for PgBouncer's version (SHOW VERSION), such
// as "1.18.0".
func (b *PgBouncer) Version(ctx context.Context) (string, error) {
	conn, err := pgx.Connect(ctx, b.AdminConnString())
	if err != nil {
		return "", fmt.Errorf("routingtest: %s: %w", b.name, err)
	}
	defer conn.Close(context.Background())
	var v string
	if err := conn.QueryRow(ctx, "SHOW VERSION").Scan(&v); err != nil {
		return "", fmt.Errorf("routingtest: %s: SHOW VERSION: %w", b.name, err)
	}
	return strings.TrimPrefix(strings.TrimSpace(v), "PgBouncer "), nil
}
