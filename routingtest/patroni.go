package routingtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrNoPatroni is returned when the binaries of the Patroni harness (patroni,
// patronictl and etcd) cannot be found. Its message says what to install.
var ErrNoPatroni = errors.New("routingtest: patroni, patronictl or etcd not found (install them: apt-get install -y patroni etcd-server, or run .ci/install.d/patroni.sh)")

// PatroniOptions configures StartPatroni and NewPatroni. The zero value is
// three members with the shortest timings Patroni 3.0 works with: TTL 5 s,
// LoopWait 1 s, RetryTimeout 2 s.
type PatroniOptions struct {
	// Members is the number of Patroni members: 0 means 3; at least 2.
	Members int
	// TTL is Patroni's leader-key time to live (ttl), in whole seconds: how
	// long a dead leader keeps the leader key. 0 means 5 s.
	TTL time.Duration
	// LoopWait is Patroni's loop_wait, in whole seconds: the pause between
	// two runs of each member's HA loop. 0 means 1 s, the smallest Patroni
	// accepts.
	LoopWait time.Duration
	// RetryTimeout is Patroni's retry_timeout, in whole seconds: how long a
	// member retries the DCS and PostgreSQL before demoting itself. 0 means
	// 2 s, the least with which a member can take the leader key from etcd.
	// Patroni needs LoopWait + 2*RetryTimeout <= TTL.
	RetryTimeout time.Duration
	// Parameters holds extra postgresql.conf settings for every member, as
	// Patroni's postgresql.parameters (name to value).
	Parameters map[string]string
	// Log receives the output of etcd, of each Patroni and of its PostgreSQL,
	// and the harness's steps, each line prefixed with its source. Nil
	// discards it (NewPatroni keeps it and prints its end when the test
	// fails).
	Log io.Writer
	// BinDir is the folder of PostgreSQL's server binaries, as in
	// ClusterOptions.BinDir.
	BinDir string
	// Tags maps a member's name ("member2") to its Patroni tags, such as
	// {"noloadbalance": true}, which GET /cluster shows.
	Tags map[string]map[string]any
	// User is the account etcd, Patroni and PostgreSQL run as when the
	// process is root, as in ClusterOptions.User.
	User string
	// Stopped names members ("member4") that StartPatroni leaves stopped,
	// never started: StartMember starts one later, and Patroni makes it a
	// new replica (pg_basebackup from the leader), as when a member joins
	// the cluster. member1, which bootstraps the cluster, cannot be one.
	Stopped []string
}

// Patroni is a running Patroni cluster: one etcd (its DCS) and Patroni
// members, each managing one PostgreSQL server, all on 127.0.0.1, with their
// files in a fresh temporary folder. Its methods are safe for concurrent use.
// Close it to stop every process and remove its files.
//
// Patroni starts each PostgreSQL as a detached process, so the parent-death
// signal that kills etcd and Patroni with the harness cannot reach the
// PostgreSQL servers; a small watcher process does: it waits on a pipe the
// harness holds, and when the harness dies it kills the servers and removes
// the folder.
type Patroni struct {
	opts     PatroniOptions
	binDir   string
	cred     *syscall.Credential
	base     string
	log      io.Writer
	spawner  *spawner
	etcdPort int
	etcdPeer int
	etcd     *process
	members  []*PatroniMember
	watcher  *exec.Cmd
	watchFd  *os.File // write end of the watcher's pipe
	http     *http.Client

	closeOnce sync.Once
	closeErr  error
}

// PatroniMember is one member of a Patroni cluster: a Patroni process and the
// PostgreSQL server it manages. Its role (leader or replica) is whatever
// Patroni decided: ask Patroni.Leader.
type PatroniMember struct {
	p        *Patroni
	name     string
	pgPort   int
	restPort int
	dataDir  string
	config   string

	mu   sync.Mutex
	proc *process // the Patroni process; nil before the first start
}

// process is one child process started through the spawner.
type process struct {
	cmd    *exec.Cmd
	exited chan struct{}
	tail   *tailBuffer
}

func (pr *process) running() bool { return pr != nil && !isClosed(pr.exited) }

// Name returns the member's name ("member1", "member2"...), which is also its
// Patroni name and the application_name it streams with.
func (m *PatroniMember) Name() string { return m.name }

// Port returns the TCP port of the member's PostgreSQL on 127.0.0.1. It stays
// the same across KillMember and StartMember.
func (m *PatroniMember) Port() int { return m.pgPort }

// RESTPort returns the TCP port of the member's Patroni REST API on
// 127.0.0.1.
func (m *PatroniMember) RESTPort() int { return m.restPort }

// RESTURL returns the base URL of the member's Patroni REST API.
func (m *PatroniMember) RESTURL() string { return "http://127.0.0.1:" + strconv.Itoa(m.restPort) }

// DataDir returns the member's PostgreSQL data directory.
func (m *PatroniMember) DataDir() string { return m.dataDir }

// ConfigFile returns the path of the member's Patroni configuration, which
// patronictl -c accepts too.
func (m *PatroniMember) ConfigFile() string { return m.config }

// ConnString returns a postgres:// URL for the member's "postgres" database as
// the "postgres" superuser (trusted on loopback), which pgx accepts.
func (m *PatroniMember) ConnString() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", m.pgPort)
}

// String returns the member's name and PostgreSQL address.
func (m *PatroniMember) String() string { return fmt.Sprintf("%s (127.0.0.1:%d)", m.name, m.pgPort) }

// PatroniPID returns the process id of the member's Patroni, or 0 when it is
// not running.
func (m *PatroniMember) PatroniPID() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.proc.running() {
		return 0
	}
	return m.proc.cmd.Process.Pid
}

// PostgresPID returns the process id of the member's postmaster (from its
// postmaster.pid), or 0 when it is not running.
func (m *PatroniMember) PostgresPID() int { return livePostmaster(m.dataDir) }

// Running reports whether the member's Patroni process is running.
func (m *PatroniMember) Running() bool { return m.PatroniPID() != 0 }

// Members returns the members, in order of their names.
func (p *Patroni) Members() []*PatroniMember { return append([]*PatroniMember(nil), p.members...) }

// Member returns the member of that name, or nil.
func (p *Patroni) Member(name string) *PatroniMember {
	for _, m := range p.members {
		if m.name == name {
			return m
		}
	}
	return nil
}

// Dir returns the temporary folder that holds every file of the cluster.
func (p *Patroni) Dir() string { return p.base }

// EtcdURL returns the client URL of the cluster's etcd.
func (p *Patroni) EtcdURL() string { return "http://127.0.0.1:" + strconv.Itoa(p.etcdPort) }

// Settings returns Patroni's ttl, loop_wait and retry_timeout as the cluster
// runs with them.
func (p *Patroni) Settings() (ttl, loopWait, retryTimeout time.Duration) {
	return p.opts.TTL, p.opts.LoopWait, p.opts.RetryTimeout
}

// findPatroniBinaries returns the paths of patroni, patronictl and etcd.
func findPatroniBinaries() (patroni, patronictl, etcd string, err error) {
	look := func(name string) string {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
		for _, dir := range []string{"/usr/bin", "/usr/local/bin", "/usr/sbin"} {
			if p := filepath.Join(dir, name); isExecutable(p) {
				return p
			}
		}
		return ""
	}
	patroni, patronictl, etcd = look("patroni"), look("patronictl"), look("etcd")
	var missing []string
	for _, b := range []struct{ name, path string }{{"patroni", patroni}, {"patronictl", patronictl}, {"etcd", etcd}} {
		if b.path == "" {
			missing = append(missing, b.name)
		}
	}
	if len(missing) > 0 {
		return "", "", "", fmt.Errorf("%w (missing: %s)", ErrNoPatroni, strings.Join(missing, ", "))
	}
	return patroni, patronictl, etcd, nil
}

func isExecutable(path string) bool {
	st, err := os.Stat(path)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

// patroniPrefix starts the name of every Patroni cluster's folder. It also
// matches the cluster harness's "pgxroute-*", whose reaper spares a folder
// while a postmaster in it lives.
const patroniPrefix = "pgxroute-patroni-"

func (o *PatroniOptions) fill() error {
	if o.Members == 0 {
		o.Members = 3
	}
	if o.Members < 2 {
		return fmt.Errorf("routingtest: PatroniOptions.Members is %d; want 0 (three) or at least 2", o.Members)
	}
	if o.TTL == 0 {
		o.TTL = 5 * time.Second
	}
	if o.LoopWait == 0 {
		o.LoopWait = time.Second
	}
	if o.RetryTimeout == 0 {
		o.RetryTimeout = 2 * time.Second
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"TTL", o.TTL}, {"LoopWait", o.LoopWait}, {"RetryTimeout", o.RetryTimeout}} {
		if d.v < time.Second || d.v%time.Second != 0 {
			return fmt.Errorf("routingtest: PatroniOptions.%s is %v; Patroni wants whole seconds, at least 1", d.name, d.v)
		}
	}
	// Patroni 3.0's etcd3 client refreshes its lease before taking the
	// leader key and then wants at least 1 s of retry_timeout left: with
	// retry_timeout 1 no member can ever become leader.
	if o.RetryTimeout < 2*time.Second {
		return fmt.Errorf("routingtest: PatroniOptions.RetryTimeout is %v; Patroni 3.0 with etcd3 never takes the leader key below 2s", o.RetryTimeout)
	}
	for _, name := range o.Stopped {
		n, err := strconv.Atoi(strings.TrimPrefix(name, "member"))
		if !strings.HasPrefix(name, "member") || err != nil || n < 2 || n > o.Members {
			return fmt.Errorf("routingtest: PatroniOptions.Stopped holds %q; want member2 to member%d (member1 bootstraps the cluster)", name, o.Members)
		}
	}
	if o.LoopWait+2*o.RetryTimeout > o.TTL {
		return fmt.Errorf("routingtest: PatroniOptions: LoopWait (%v) + 2*RetryTimeout (%v) exceeds TTL (%v); Patroni needs it within", o.LoopWait, o.RetryTimeout, o.TTL)
	}
	return nil
}

// StartPatroni starts an etcd and o.Members Patroni members on loopback, in a
// fresh temporary folder. The first member bootstraps the cluster (Patroni
// runs initdb); the others (but o.Stopped) are created by Patroni with
// pg_basebackup.
// use_pg_rewind is on (with wal_log_hints), so that a former leader rejoins
// as a replica. It returns once member1 is the leader, accepts writes, and
// every other started member streams from it. On error nothing is left behind. Every
// process dies with the calling process even if it never calls Close.
func StartPatroni(ctx context.Context, o PatroniOptions) (_ *Patroni, err error) {
	if err := o.fill(); err != nil {
		return nil, err
	}
	patroniBin, _, etcdBin, err := findPatroniBinaries()
	if err != nil {
		return nil, err
	}
	binDir, err := FindBinDir(o.BinDir)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(binDir, "pg_rewind")); err != nil {
		return nil, fmt.Errorf("%w: %s has no pg_rewind", ErrNoServer, binDir)
	}
	cred, err := serverAccount(o.User)
	if err != nil {
		return nil, err
	}
	reapStalePatroni(os.TempDir())
	base, err := os.MkdirTemp("", patroniPrefix)
	if err != nil {
		return nil, fmt.Errorf("routingtest: %w", err)
	}
	if err := os.WriteFile(filepath.Join(base, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		os.RemoveAll(base)
		return nil, fmt.Errorf("routingtest: %w", err)
	}
	p := &Patroni{opts: o, binDir: binDir, cred: cred, base: base, spawner: newSpawner(),
		http: &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}}
	if o.Log != nil {
		p.log = &syncWriter{w: o.Log}
	}
	defer func() {
		if err != nil {
			p.kill()
			p.Close()
		}
	}()
	if err := p.startWatcher(); err != nil {
		return nil, err
	}
	if cred != nil {
		if err := os.Chown(base, int(cred.Uid), int(cred.Gid)); err != nil {
			return nil, fmt.Errorf("routingtest: %w", err)
		}
	}
	if p.binDir, err = p.wrapBinDir(binDir); err != nil {
		return nil, err
	}
	ports, err := freePorts(2 + 2*o.Members)
	if err != nil {
		return nil, fmt.Errorf("routingtest: %w", err)
	}
	p.etcdPort, p.etcdPeer = ports[0], ports[1]
	for i := 0; i < o.Members; i++ {
		name := "member" + strconv.Itoa(i+1)
		m := &PatroniMember{p: p, name: name, pgPort: ports[2+2*i], restPort: ports[3+2*i],
			dataDir: filepath.Join(base, name), config: filepath.Join(base, name+".yml")}
		if err := p.writeConfig(m); err != nil {
			return nil, err
		}
		p.members = append(p.members, m)
	}
	if err := p.startEtcd(ctx, etcdBin); err != nil {
		return nil, err
	}
	p.logf("etcd on %s; Patroni ttl=%v loop_wait=%v retry_timeout=%v", p.EtcdURL(), o.TTL, o.LoopWait, o.RetryTimeout)
	// member1 bootstraps alone, so that it is the first leader; the others
	// then clone it at the same time.
	first := p.members[0]
	if err := p.startPatroni(first, patroniBin); err != nil {
		return nil, err
	}
	leader, err := p.WaitLeader(ctx, "")
	if err != nil {
		return nil, err
	}
	if leader != first {
		return nil, fmt.Errorf("routingtest: Patroni elected %s, not %s, while it was alone", leader.name, first.name)
	}
	started := []*PatroniMember{first}
	for _, m := range p.members[1:] {
		if slices.Contains(o.Stopped, m.name) {
			continue
		}
		if err := p.startPatroni(m, patroniBin); err != nil {
			return nil, err
		}
		started = append(started, m)
	}
	if err := p.waitStreaming(ctx, started); err != nil {
		return nil, err
	}
	return p, nil
}

// wrapBinDir makes the folder Patroni takes PostgreSQL's binaries from: a
// symbolic link to each of binDir's, but pg_rewind, which is a script adding
// --no-sync (Patroni 3.0 has no setting for pg_rewind's options; the servers
// run with fsync off anyway, and syncing the data directory makes a rejoin
// seconds slower on a busy machine).
func (p *Patroni) wrapBinDir(binDir string) (string, error) {
	dir := filepath.Join(p.base, "bin")
	if err := os.Mkdir(dir, 0o755); err != nil {
		return "", fmt.Errorf("routingtest: %w", err)
	}
	entries, err := os.ReadDir(binDir)
	if err != nil {
		return "", fmt.Errorf("routingtest: %w", err)
	}
	for _, e := range entries {
		if e.Name() == "pg_rewind" {
			continue
		}
		if err := os.Symlink(filepath.Join(binDir, e.Name()), filepath.Join(dir, e.Name())); err != nil {
			return "", fmt.Errorf("routingtest: %w", err)
		}
	}
	// --help and --version must stay the first argument: add --no-sync to
	// rewinds only.
	real := "'" + filepath.Join(binDir, "pg_rewind") + "'"
	script := "#!/bin/sh\ncase \" $* \" in *\" -D \"*) exec " + real + " --no-sync \"$@\" ;; esac\nexec " + real + " \"$@\"\n"
	if strings.Contains(binDir, "'") {
		return "", fmt.Errorf("routingtest: the binaries' folder %q holds a quote", binDir)
	}
	if err := os.WriteFile(filepath.Join(dir, "pg_rewind"), []byte(script), 0o755); err != nil {
		return "", fmt.Errorf("routingtest: %w", err)
	}
	return dir, nil
}

// freePorts returns n distinct TCP ports on 127.0.0.1 that were free a moment
// ago: all are held until the last is found.
func freePorts(n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// startWatcher starts the process that kills the PostgreSQL servers and
// removes the folder when the harness dies. It is not started through the
// spawner: it must outlive the harness. Its stdin is a pipe whose only write
// end the harness holds; EOF means the harness is gone or Close is done.
func (p *Patroni) startWatcher() error {
	r, w, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("routingtest: %w", err)
	}
	cmd := exec.Command("/bin/sh", "-c", watcherScript, "pgxroute-patroni-watcher", p.base)
	cmd.Stdin = r
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err = cmd.Start()
	r.Close()
	if err != nil {
		w.Close()
		return fmt.Errorf("routingtest: start the watcher: %w", err)
	}
	p.watcher, p.watchFd = cmd, w
	return nil
}

// watcherScript runs in /bin/sh with the cluster's folder as $1. It kills a
// postmaster only if its command line names its own data directory, so a
// reused pid is never hit.
const watcherScript = `
cat >/dev/null
[ -f "$1/` + ownerFile + `" ] || exit 0
for f in "$1"/*/postmaster.pid; do
	[ -f "$f" ] || continue
	pid=$(head -n 1 "$f")
	case "$pid" in ''|*[!0-9]*) continue ;; esac
	if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$(dirname "$f")"; then
		kill -KILL "$pid" 2>/dev/null
	fi
done
sleep 1
rm -rf "$1"
`

// writeConfig writes m's Patroni configuration. It is JSON, which YAML
// parsers (Patroni's included) read as YAML.
func (p *Patroni) writeConfig(m *PatroniMember) error {
	params := map[string]any{
		"unix_socket_directories":      p.base,
		"fsync":                        "off",
		"hot_standby_feedback":         "on",
		"wal_receiver_status_interval": "1s",
		"wal_retrieve_retry_interval":  "100ms",
		"shared_buffers":               "32MB",
		"log_min_messages":             "warning",
		"log_line_prefix":              "%m [%p] ",
	}
	for k, v := range p.opts.Parameters {
		params[k] = v
	}
	hba := []string{
		"local all all trust",
		"local replication all trust",
		"host all all 127.0.0.1/32 trust",
		"host replication all 127.0.0.1/32 trust",
	}
	pgAddr := "127.0.0.1:" + strconv.Itoa(m.pgPort)
	restAddr := "127.0.0.1:" + strconv.Itoa(m.restPort)
	user := map[string]any{"username": "postgres"}
	conf := map[string]any{
		"scope":     "pgxroute",
		"namespace": "/pgxroute/",
		"name":      m.name,
		"log":       map[string]any{"level": "INFO", "format": "%(asctime)s %(levelname)s: %(message)s"},
		"restapi":   map[string]any{"listen": restAddr, "connect_address": restAddr},
		"etcd3":     map[string]any{"hosts": []string{"127.0.0.1:" + strconv.Itoa(p.etcdPort)}},
		"bootstrap": map[string]any{
			"dcs": map[string]any{
				"ttl":                     int(p.opts.TTL / time.Second),
				"loop_wait":               int(p.opts.LoopWait / time.Second),
				"retry_timeout":           int(p.opts.RetryTimeout / time.Second),
				"maximum_lag_on_failover": 16 << 20,
				"postgresql": map[string]any{
					"use_pg_rewind": true,
					"use_slots":     true,
					"parameters": map[string]any{
						"wal_level":       "replica",
						"wal_log_hints":   "on",
						"hot_standby":     "on",
						"max_connections": 200,
						"max_wal_senders": 10,
						"wal_keep_size":   "256MB",
					},
				},
			},
			"initdb": []any{map[string]any{"encoding": "UTF8"}, map[string]any{"locale": "C"}},
		},
		"postgresql": map[string]any{
			"listen":          pgAddr,
			"connect_address": pgAddr,
			"data_dir":        m.dataDir,
			"bin_dir":         p.binDir,
			"pgpass":          filepath.Join(p.base, m.name+".pgpass"),
			"authentication":  map[string]any{"superuser": user, "replication": user, "rewind": user},
			"parameters":      params,
			"pg_hba":          hba,
			"basebackup":      []any{map[string]any{"checkpoint": "fast"}, "no-sync"},
			"remove_data_directory_on_rewind_failure":     true,
			"remove_data_directory_on_diverged_timelines": true,
		},
	}
	if tags := p.opts.Tags[m.name]; len(tags) > 0 {
		conf["tags"] = tags
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(conf); err != nil {
		return fmt.Errorf("routingtest: %s: %w", m.name, err)
	}
	if err := os.WriteFile(m.config, b.Bytes(), 0o644); err != nil {
		return fmt.Errorf("routingtest: %w", err)
	}
	return nil
}

// env is the environment of etcd, Patroni and patronictl: no PATRONI_* or
// ETCD_* variable of the harness's reaches them, and HOME is the cluster's
// folder so that nothing is written elsewhere.
func (p *Patroni) env() []string {
	return []string{"PATH=" + os.Getenv("PATH"), "HOME=" + p.base, "LC_ALL=C", "PYTHONDONTWRITEBYTECODE=1"}
}

// spawn starts a long-running child through the spawner, its output copied
// to the log under name.
func (p *Patroni) spawn(name string, tail *tailBuffer, args ...string) (*process, error) {
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = p.env()
	cmd.Dir = p.base
	out, err := logPipe(name, p.log, tail)
	if err != nil {
		return nil, fmt.Errorf("routingtest: %s: %w", name, err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	err = p.spawner.start(cmd, p.cred)
	out.Close()
	if err != nil {
		return nil, fmt.Errorf("routingtest: start %s: %w", name, err)
	}
	pr := &process{cmd: cmd, exited: make(chan struct{}), tail: tail}
	go func() {
		_ = cmd.Wait()
		close(pr.exited)
	}()
	return pr, nil
}

func (p *Patroni) startEtcd(ctx context.Context, etcdBin string) error {
	client := "http://127.0.0.1:" + strconv.Itoa(p.etcdPort)
	peer := "http://127.0.0.1:" + strconv.Itoa(p.etcdPeer)
	pr, err := p.spawn("etcd", &tailBuffer{}, etcdBin,
		"--name", "etcd", "--data-dir", filepath.Join(p.base, "etcd"),
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "etcd="+peer, "--initial-cluster-state", "new",
		"--listen-metrics-urls", "", "--logger", "zap", "--log-level", "warn")
	if err != nil {
		return err
	}
	p.etcd = pr
	return p.pollUntil(ctx, 20*time.Millisecond, func() (bool, error) {
		if !pr.running() {
			time.Sleep(50 * time.Millisecond)
			return false, fmt.Errorf("routingtest: etcd exited during start-up: %s", pr.tail)
		}
		var h struct {
			Health string `json:"health"`
		}
		if err := p.getJSON(ctx, client+"/health", &h); err != nil {
			return false, nil
		}
		return h.Health == "true", nil
	}, "etcd did not become healthy")
}

// startPatroni starts m's Patroni (which starts its PostgreSQL).
func (p *Patroni) startPatroni(m *PatroniMember, patroniBin string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.proc.running() {
		return fmt.Errorf("routingtest: %s: Patroni is already running", m.name)
	}
	pr, err := p.spawn(m.name, &tailBuffer{}, patroniBin, m.config)
	if err != nil {
		return err
	}
	m.proc = pr
	p.logf("%s: patroni started, pid %d, postgres port %d, REST port %d", m.name, pr.cmd.Process.Pid, m.pgPort, m.restPort)
	return nil
}

// pollUntil calls f every interval until it answers true or an error, or ctx
// ends.
func (p *Patroni) pollUntil(ctx context.Context, interval time.Duration, f func() (bool, error), what string) error {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		ok, err := f()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("routingtest: %s: %w", what, ctx.Err())
		case <-tick.C:
		}
	}
}

func (p *Patroni) getJSON(ctx context.Context, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := p.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("GET %s: %s: %w", url, resp.Status, err)
	}
	return nil
}

// PatroniMemberState is one member as Patroni's GET /cluster shows it.
type PatroniMemberState struct {
	Name     string `json:"name"`
	Role     string `json:"role"`  // "leader", "replica", "sync_standby"...
	State    string `json:"state"` // "running", "starting", "stopped", "creating replica"...
	Host     string `json:"host"`
	Port     int    `json:"port"`
	Timeline int    `json:"timeline"`
	Lag      any    `json:"lag"` // bytes behind the leader, or "unknown"; nil for the leader
}

// ClusterState returns the members as Patroni sees them (GET /cluster),
// asked of the first member whose REST API answers.
func (p *Patroni) ClusterState(ctx context.Context) ([]PatroniMemberState, error) {
	var errs []error
	for _, m := range p.members {
		if !m.Running() {
			continue
		}
		var c struct {
			Members []PatroniMemberState `json:"members"`
		}
		if err := p.getJSON(ctx, m.RESTURL()+"/cluster", &c); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", m.name, err))
			continue
		}
		return c.Members, nil
	}
	if len(errs) == 0 {
		return nil, errors.New("routingtest: no Patroni member is running")
	}
	return nil, fmt.Errorf("routingtest: no Patroni REST API answered: %w", errors.Join(errs...))
}

// Leader returns the member that holds Patroni's leader key now, as GET
// /cluster on a running member reports it, or nil when there is none. The
// leader's PostgreSQL may still be promoting: WaitLeader waits for writes.
func (p *Patroni) Leader(ctx context.Context) (*PatroniMember, error) {
	states, err := p.ClusterState(ctx)
	if err != nil {
		return nil, err
	}
	for _, s := range states {
		if s.Role == "leader" {
			return p.Member(s.Name), nil
		}
	}
	return nil, nil
}

// WaitLeader waits until a member other than the one named exceptName
// (empty: any member) holds the leader key and its PostgreSQL accepts writes
// (pg_is_in_recovery() is false), and returns it.
func (p *Patroni) WaitLeader(ctx context.Context, exceptName string) (*PatroniMember, error) {
	var found *PatroniMember
	var last error
	err := p.pollUntil(ctx, 25*time.Millisecond, func() (bool, error) {
		l, err := p.Leader(ctx)
		if err != nil || l == nil || l.name == exceptName {
			last = err
			return false, nil
		}
		primary, err := isPrimary(ctx, l)
		if err != nil || !primary {
			last = err
			return false, nil
		}
		found = l
		return true, nil
	}, "no new Patroni leader accepting writes")
	if err != nil {
		if last != nil {
			err = fmt.Errorf("%w (last error: %v)", err, last)
		}
		return nil, err
	}
	return found, nil
}

// isPrimary reports whether m's PostgreSQL answers and is not in recovery.
func isPrimary(ctx context.Context, m *PatroniMember) (bool, error) {
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	conn, err := pgx.Connect(cctx, m.ConnString()+"&connect_timeout=2")
	if err != nil {
		return false, err
	}
	defer conn.Close(context.Background())
	var inRecovery bool
	if err := conn.QueryRow(cctx, "SELECT pg_is_in_recovery()").Scan(&inRecovery); err != nil {
		return false, err
	}
	return !inRecovery, nil
}

// WaitStreaming waits until every member's Patroni runs, a leader accepts
// writes, every other member's PostgreSQL streams from it (the leader's
// pg_stat_replication lists it as streaming), and Patroni's GET /cluster
// lists every member as running, the leader as leader.
func (p *Patroni) WaitStreaming(ctx context.Context) error {
	return p.waitStreaming(ctx, p.members)
}

// waitStreaming waits until a leader accepts writes and every member of
// these but the leader streams from it, Patroni agreeing.
func (p *Patroni) waitStreaming(ctx context.Context, these []*PatroniMember) error {
	leader, err := p.WaitLeader(ctx, "")
	if err != nil {
		return err
	}
	var others []string
	for _, m := range these {
		if !m.Running() {
			return fmt.Errorf("routingtest: WaitStreaming: %s is not running", m.name)
		}
		if m != leader {
			others = append(others, m.name)
		}
	}
	var last error
	err = p.pollUntil(ctx, 50*time.Millisecond, func() (bool, error) {
		for _, m := range these {
			if !m.Running() {
				return false, fmt.Errorf("routingtest: WaitStreaming: %s's Patroni exited: %s", m.name, m.proc.tail)
			}
		}
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		conn, err := pgx.Connect(cctx, leader.ConnString())
		if err != nil {
			last = err
			return false, nil
		}
		defer conn.Close(context.Background())
		var n int
		err = conn.QueryRow(cctx, "SELECT count(DISTINCT application_name) FROM pg_stat_replication WHERE state = 'streaming' AND application_name = ANY($1)", others).Scan(&n)
		if err != nil {
			last = err
			return false, nil
		}
		if n != len(others) {
			last = fmt.Errorf("%d of %d replicas stream from %s", n, len(others), leader.name)
			return false, nil
		}
		// Patroni's own view lags behind the servers' by up to a loop.
		states, err := p.ClusterState(ctx)
		if err != nil {
			last = err
			return false, nil
		}
		want := map[string]bool{leader.name: true}
		for _, name := range others {
			want[name] = true
		}
		running := 0
		for _, s := range states {
			if want[s.Name] && s.State == "running" && (s.Role == "leader") == (s.Name == leader.name) {
				running++
			}
		}
		last = fmt.Errorf("Patroni lists %d of %d members running in their roles: %+v", running, len(want), states)
		return running == len(want), nil
	}, "replicas do not stream")
	if err != nil && last != nil {
		err = fmt.Errorf("%w (%v)", err, last)
	}
	return err
}

// KillMember crashes m as when its host dies: SIGKILL to its Patroni (and
// whatever Patroni was running), then to its postmaster and every child of
// it. It returns once they are all gone. Killing a dead member does nothing.
func (p *Patroni) KillMember(m *PatroniMember) error {
	m.mu.Lock()
	pr := m.proc
	m.mu.Unlock()
	p.logf("%s: kill (host death)", m.name)
	var pids []int
	if pr.running() {
		pid := pr.cmd.Process.Pid
		kids := descendants(pid)
		_ = syscall.Kill(pid, syscall.SIGKILL)
		pids = append(pids, kids...)
		<-pr.exited
	}
	if pm := livePostmaster(m.dataDir); pm != 0 {
		// The postmaster first, so that it forks no more.
		kids := descendants(pm)
		_ = syscall.Kill(pm, syscall.SIGKILL)
		pids = append(pids, pm)
		pids = append(pids, kids...)
	}
	for _, k := range pids {
		_ = syscall.Kill(k, syscall.SIGKILL)
	}
	// The postmaster and its children were re-parented; wait until they are
	// gone so that a restart finds no shared memory still attached.
	deadline := time.Now().Add(30 * time.Second)
	for _, k := range pids {
		for ProcessAlive(k) && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if ProcessAlive(k) {
			return fmt.Errorf("routingtest: %s: process %d survived SIGKILL", m.name, k)
		}
	}
	return nil
}

// descendants returns the living children of pid, their children, and so on.
func descendants(pid int) []int {
	var out []int
	queue := []int{pid}
	for len(queue) > 0 && len(out) < 1000 {
		kids := childPIDs(queue[0])
		queue = append(queue[1:], kids...)
		out = append(out, kids...)
	}
	return out
}

// livePostmaster returns the pid in dataDir's postmaster.pid when that
// process lives and its command line names dataDir, else 0.
func livePostmaster(dataDir string) int {
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return 0
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil || pid <= 0 || !ProcessAlive(pid) {
		return 0
	}
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil || !bytes.Contains(cmdline, []byte(dataDir)) {
		return 0
	}
	return pid
}

// StartMember starts m's Patroni again after KillMember or StopMember (or
// for the first time, for a member of PatroniOptions.Stopped), and returns once
// m's PostgreSQL streams from the leader, Patroni agreeing (or once m is the
// leader, when Patroni made it one). With a leader in place, Patroni makes m
// a replica of it: after a crash it runs crash recovery, then pg_rewind if
// m's timeline diverged (or a new base backup if that fails).
func (p *Patroni) StartMember(ctx context.Context, m *PatroniMember) error {
	patroniBin, _, _, err := findPatroniBinaries()
	if err != nil {
		return err
	}
	if err := p.startPatroni(m, patroniBin); err != nil {
		return err
	}
	return p.waitStreaming(ctx, []*PatroniMember{m})
}

// Switchover asks Patroni for a planned switchover from the current leader
// to candidate (nil: a replica Patroni picks) with `patronictl switchover
// --force`, and returns once candidate's PostgreSQL accepts writes. The old
// leader is restarted by Patroni as a replica; use WaitStreaming to wait
// until it streams.
func (p *Patroni) Switchover(ctx context.Context, candidate *PatroniMember) (*PatroniMember, error) {
	_, patronictl, _, err := findPatroniBinaries()
	if err != nil {
		return nil, err
	}
	leader, err := p.WaitLeader(ctx, "")
	if err != nil {
		return nil, err
	}
	if candidate == leader {
		return nil, fmt.Errorf("routingtest: switchover: %s is already the leader", leader.name)
	}
	var via *PatroniMember
	for _, m := range p.members {
		if m.Running() {
			via = m
			break
		}
	}
	if via == nil {
		return nil, errors.New("routingtest: switchover: no Patroni member is running")
	}
	args := []string{"-c", via.config, "switchover", "--force", "--leader", leader.name}
	if candidate != nil {
		args = append(args, "--candidate", candidate.name)
	}
	p.logf("patronictl %s", strings.Join(args, " "))
	cmd := exec.CommandContext(ctx, patronictl, args...)
	cmd.Env, cmd.Dir = p.env(), p.base
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := p.spawner.start(cmd, p.cred); err != nil {
		return nil, fmt.Errorf("routingtest: patronictl switchover: %w", err)
	}
	err = cmd.Wait()
	if p.log != nil {
		for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
			fmt.Fprintf(p.log, "[patronictl] %s\n", line)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("routingtest: patronictl switchover: %w: %s", err, lastLines(out.String(), 8))
	}
	if !strings.Contains(out.String(), "Successfully") {
		return nil, fmt.Errorf("routingtest: patronictl switchover did not succeed: %s", lastLines(out.String(), 8))
	}
	newLeader, err := p.WaitLeader(ctx, leader.name)
	if err != nil {
		return nil, err
	}
	if candidate != nil && newLeader != candidate {
		return nil, fmt.Errorf("routingtest: switchover to %s made %s the leader", candidate.name, newLeader.name)
	}
	return newLeader, nil
}

func (p *Patroni) logf(format string, args ...any) {
	if p.log != nil {
		fmt.Fprintf(p.log, "[routingtest] "+format+"\n", args...)
	}
}

// kill kills every process of the cluster at once (a failed start).
func (p *Patroni) kill() {
	for _, m := range p.members {
		_ = p.KillMember(m)
	}
}

// Close stops every member (SIGTERM to each Patroni, which stops its
// PostgreSQL; SIGKILL after 30 s), then etcd, and removes the cluster's
// folder. It is safe to call more than once.
func (p *Patroni) Close() error {
	p.closeOnce.Do(func() {
		errs := inParallel(p.members, p.stopMember)
		if p.etcd.running() {
			_ = p.etcd.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-p.etcd.exited:
			case <-time.After(10 * time.Second):
				_ = p.etcd.cmd.Process.Kill()
				<-p.etcd.exited
			}
		}
		p.spawner.close()
		if err := os.RemoveAll(p.base); err != nil {
			errs = append(errs, fmt.Errorf("routingtest: %w", err))
		}
		if p.watcher != nil {
			p.watchFd.Close()
			_ = p.watcher.Wait()
		}
		p.closeErr = errors.Join(errs...)
	})
	return p.closeErr
}

// StopMember stops m cleanly, as an operator taking it out of the cluster:
// SIGTERM to its Patroni, which stops its PostgreSQL (fast shutdown),
// releases the leader key if it held it, and marks itself stopped in the
// DCS before it exits (SIGKILL to what is left after 30 s). It returns once
// its processes are gone; StartMember starts it again. Stopping a stopped
// member does nothing.
func (p *Patroni) StopMember(m *PatroniMember) error {
	p.logf("%s: stop", m.name)
	return p.stopMember(m)
}

// stopMember stops m's Patroni and PostgreSQL cleanly, or kills them.
func (p *Patroni) stopMember(m *PatroniMember) error {
	m.mu.Lock()
	pr := m.proc
	m.mu.Unlock()
	if pr.running() {
		_ = pr.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-pr.exited:
		case <-time.After(30 * time.Second):
			p.logf("%s: Patroni did not stop in 30s, killing it", m.name)
		}
	}
	// Patroni stops its PostgreSQL before it exits; whatever is left
	// (a killed Patroni's server) is killed.
	return p.KillMember(m)
}

// reapStalePatroni kills the PostgreSQL servers of Patroni folders in dir
// whose harness process is gone (and whose watcher did not run, say because
// it was killed too), then removes those folders. etcd and Patroni died with
// their harness.
func reapStalePatroni(dir string) {
	matches, _ := filepath.Glob(filepath.Join(dir, patroniPrefix+"*", ownerFile))
	for _, f := range matches {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || ProcessAlive(pid) {
			continue
		}
		folder := filepath.Dir(f)
		pids, _ := filepath.Glob(filepath.Join(folder, "*", "postmaster.pid"))
		alive := false
		for _, pf := range pids {
			if pm := livePostmaster(filepath.Dir(pf)); pm != 0 {
				_ = syscall.Kill(pm, syscall.SIGKILL)
				for i := 0; i < 200 && ProcessAlive(pm); i++ {
					time.Sleep(10 * time.Millisecond)
				}
				alive = alive || ProcessAlive(pm)
			}
		}
		if !alive {
			os.RemoveAll(folder)
		}
	}
}
