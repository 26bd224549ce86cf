// Package routingtest starts real PostgreSQL clusters (a primary and streaming
// replicas) from the local server binaries, and offers fakes, so that code
// using pgxroute can be tested against real replication or without a database.
//
// The cluster harness needs PostgreSQL's server binaries (initdb, postgres,
// pg_basebackup); it needs no Docker. Servers listen on loopback only, trust
// local connections, keep their data in a fresh temporary folder and die with
// the process that started them.
package routingtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// NoReplicas asks for a cluster with a primary alone (ClusterOptions.Replicas).
const NoReplicas = -1

// ClusterOptions configures StartCluster and NewCluster. The zero value is a
// primary with two replicas and no apply delay.
type ClusterOptions struct {
	// Replicas is the number of streaming replicas: 0 means 2, NoReplicas
	// means none.
	Replicas int
	// ApplyDelay[i] is replica i's recovery_min_apply_delay: the replica
	// receives WAL at once but applies each commit only after that delay, so
	// it lags on purpose. Missing entries mean no delay.
	ApplyDelay []time.Duration
	// ExtraConf holds extra postgresql.conf lines for every node, such as
	// "max_connections = 50".
	ExtraConf []string
	// Log receives the servers' output and the harness's steps, each line
	// prefixed with the node's name. Nil discards it (NewCluster keeps it and
	// prints its end when the test fails).
	Log io.Writer
	// BinDir is the folder of the server binaries. Empty: PGXROUTE_PG_BIN,
	// then `pg_config --bindir`, then PATH, then the newest
	// /usr/lib/postgresql/*/bin (see FindBinDir).
	BinDir string
	// User is the account the servers run as when the process is root
	// (PostgreSQL refuses root). Empty: PGXROUTE_PG_USER, then "postgres".
	User string
	// SharedPort puts every node on a loopback address of its own and all
	// of them on one port, as the pods of a Kubernetes headless service
	// are: the node started as the primary listens on 127.0.0.2, replica i
	// on 127.0.0.(2+i) (so at most 252 replicas), each with its own Unix
	// socket folder; Node.Host tells which. The port is one that was free on
	// every one of those addresses. Linux routes all of 127.0.0.0/8 to the
	// loopback interface, so no setup is needed. The listen address is
	// given on the server's command line: a listen_addresses line in
	// ExtraConf has no effect. What finds a node by its port alone does not
	// work on such a cluster: Blackhole returns ErrSharedPort, NodeAt finds
	// no node and ServedBy fails the test (ask the server for
	// host(inet_server_addr()) and use NodeAtHost instead). False: every
	// node on 127.0.0.1, each on a port of its own.
	SharedPort bool
}

// ErrSharedPort is returned (wrapped) by the methods that tell the nodes
// apart by their port alone, which every node of a ClusterOptions.SharedPort
// cluster shares.
var ErrSharedPort = errors.New("routingtest: not possible on a SharedPort cluster, whose nodes share one port")

// defaultHost is the address every node of an ordinary cluster listens on.
const defaultHost = "127.0.0.1"

// maxSharedReplicas is how many replicas a SharedPort cluster may have:
// 127.0.0.3 to 127.0.0.254.
const maxSharedReplicas = 252

// sharedHost returns the loopback address of the i-th node (0: the
// primary) of a SharedPort cluster.
func sharedHost(i int) string { return "127.0.0." + strconv.Itoa(2+i) }

// Cluster is a running PostgreSQL primary with its streaming replicas. Its
// methods are safe for concurrent use. Close it to stop every server and
// remove its files.
type Cluster struct {
	opts    ClusterOptions
	binDir  string
	cred    *syscall.Credential
	base    string
	log     io.Writer
	spawner *spawner
	nodes   []*Node // every node, in creation order
	// hosts are the addresses of every node of a SharedPort cluster (the
	// port must be free on all of them); nil otherwise.
	hosts []string

	mu       sync.Mutex // guards the roles below and bouncers
	primary  *Node      // the current primary (follows Promote)
	bouncers []*PgBouncer

	closeOnce sync.Once
	closeErr  error
}

// Node is one server of a Cluster.
type Node struct {
	c          *Cluster
	name       string
	dir        string
	host       string // the address it listens on
	sockDir    string // the folder of its Unix socket
	port       int
	applyDelay time.Duration
	tail       tailBuffer

	// role and upstream are guarded by c.mu.
	role     Role
	upstream *Node // the node a replica streams from

	mu         sync.Mutex
	cmd        *exec.Cmd
	exited     chan struct{} // closed when cmd has exited; nil when never started
	frozen     []int         // processes stopped by Freeze, postmaster first
	blackholed bool          // Blackhole's rules are in place
}

// Name returns the node's name: "primary", "replica1", "replica2"...
func (n *Node) Name() string { return n.name }

// Host returns the loopback address the node listens on: 127.0.0.1 in an
// ordinary cluster, its own address in a ClusterOptions.SharedPort one.
func (n *Node) Host() string { return n.host }

// Port returns the TCP port the node listens on (on Host). It stays the
// same across Stop and Start. Every node of a ClusterOptions.SharedPort
// cluster has the same.
func (n *Node) Port() int { return n.port }

// DataDir returns the node's data directory.
func (n *Node) DataDir() string { return n.dir }

// ConnString returns a postgres:// URL for the node's "postgres" database as
// the "postgres" superuser, which pgx accepts.
func (n *Node) ConnString() string {
	return fmt.Sprintf("postgres://postgres@%s:%d/postgres?sslmode=disable", n.host, n.port)
}

// SocketConnString returns a connection string for the node's "postgres"
// database through its Unix socket (in the cluster's folder; in a folder of
// its own there in a SharedPort cluster), which a Blackhole of its TCP port
// does not affect.
func (n *Node) SocketConnString() string {
	return fmt.Sprintf("host=%s port=%d user=postgres dbname=postgres", n.sockDir, n.port)
}

// PID returns the process id of the node's postmaster, or 0 when it is not
// running.
func (n *Node) PID() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil || n.cmd.Process == nil || isClosed(n.exited) {
		return 0
	}
	return n.cmd.Process.Pid
}

// Running reports whether the node's server process is running.
func (n *Node) Running() bool { return n.PID() != 0 }

// String returns the node's name, address and port.
func (n *Node) String() string {
	return fmt.Sprintf("%s (%s)", n.name, net.JoinHostPort(n.host, strconv.Itoa(n.port)))
}

// StartCluster creates and starts a primary and its replicas in a fresh
// temporary folder, and returns once every server accepts connections and
// every replica streams from the primary. On error nothing is left behind.
// The servers die with the calling process even if it never calls Close.
func StartCluster(ctx context.Context, opts ClusterOptions) (_ *Cluster, err error) {
	binDir, err := FindBinDir(opts.BinDir)
	if err != nil {
		return nil, err
	}
	cred, err := serverAccount(opts.User)
	if err != nil {
		return nil, err
	}
	nReplicas := opts.Replicas
	switch {
	case nReplicas == 0:
		nReplicas = 2
	case nReplicas == NoReplicas:
		nReplicas = 0
	case nReplicas < 0:
		return nil, fmt.Errorf("routingtest: Replicas is %d; want 0 (two), NoReplicas or a positive number", opts.Replicas)
	}
	if opts.SharedPort && nReplicas > maxSharedReplicas {
		return nil, fmt.Errorf("routingtest: Replicas is %d; a SharedPort cluster has at most %d (127.0.0.3 to 127.0.0.254)", nReplicas, maxSharedReplicas)
	}
	reapStale(os.TempDir())
	// Rules of a harness that died without Close would blackhole whatever
	// listens on their port now.
	cleanErr := CleanStaleBlackholes()
	base, err := os.MkdirTemp("", "pgxroute-")
	if err != nil {
		return nil, fmt.Errorf("routingtest: %w", err)
	}
	// The harness's pid marks the folder as in use; a folder whose harness
	// died without Close (SIGKILL, a test timeout) is removed by a later
	// StartCluster.
	if err := os.WriteFile(filepath.Join(base, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		os.RemoveAll(base)
		return nil, fmt.Errorf("routingtest: %w", err)
	}
	c := &Cluster{opts: opts, binDir: binDir, cred: cred, base: base, spawner: newSpawner()}
	if opts.Log != nil {
		c.log = &syncWriter{w: opts.Log}
	}
	if cleanErr != nil && !errors.Is(cleanErr, ErrNoIptables) {
		c.logf("cleaning stale iptables rules: %v", cleanErr)
	}
	defer func() {
		if err != nil {
			c.Close()
		}
	}()
	if cred != nil {
		if err := os.Chown(base, int(cred.Uid), int(cred.Gid)); err != nil {
			return nil, fmt.Errorf("routingtest: %w", err)
		}
	}

	if opts.SharedPort {
		for i := 0; i <= nReplicas; i++ {
			c.hosts = append(c.hosts, sharedHost(i))
		}
	}
	c.primary = &Node{c: c, name: "primary", dir: filepath.Join(base, "primary"), role: RolePrimary}
	if err := c.placeNode(c.primary, 0); err != nil {
		return nil, err
	}
	c.nodes = []*Node{c.primary}
	c.logf("initdb in %s (binaries in %s)", c.primary.dir, binDir)
	if err := c.spawner.run(exec.CommandContext(ctx, filepath.Join(binDir, "initdb"),
		"-D", c.primary.dir, "-U", "postgres", "--auth=trust", "--no-sync",
		"-E", "UTF8", "--locale=C", "--no-instructions"), cred); err != nil {
		return nil, fmt.Errorf("routingtest: initdb: %w", err)
	}
	if err := c.writeConf(c.primary.dir, "postgresql.conf", c.baseConf()); err != nil {
		return nil, err
	}
	if opts.SharedPort {
		// The harness's clients connect from 127.0.0.1 (the kernel's
		// source for any loopback destination); trust the whole loopback
		// network in case a client binds another address.
		if err := c.writeConf(c.primary.dir, "pg_hba.conf", []string{
			"# added by pgxroute/routingtest (SharedPort)",
			"host all all 127.0.0.0/8 trust",
			"host replication all 127.0.0.0/8 trust",
		}); err != nil {
			return nil, err
		}
	}
	if err := c.startNew(ctx, c.primary); err != nil {
		return nil, err
	}

	var replicas []*Node
	for i := 0; i < nReplicas; i++ {
		r := &Node{c: c, name: "replica" + strconv.Itoa(i+1), dir: filepath.Join(base, "replica"+strconv.Itoa(i+1)),
			role: RoleReplica, upstream: c.primary}
		if i < len(opts.ApplyDelay) {
			r.applyDelay = opts.ApplyDelay[i]
		}
		if err := c.placeNode(r, i+1); err != nil {
			return nil, err
		}
		replicas = append(replicas, r)
	}
	c.nodes = append(c.nodes, replicas...)
	// Base backups and starts run in parallel: each replica is independent.
	errs := make([]error, len(replicas))
	var wg sync.WaitGroup
	for i, r := range replicas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = c.createReplica(ctx, r, c.primary)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return c, nil
}

// placeNode sets the address and the Unix socket folder of n, the i-th
// node (0: the primary): in an ordinary cluster 127.0.0.1 and the cluster's
// folder; in a SharedPort cluster its own address and a folder of its own
// (every node's socket file has the same name, after the shared port).
func (c *Cluster) placeNode(n *Node, i int) error {
	if !c.opts.SharedPort {
		n.host, n.sockDir = defaultHost, c.base
		return nil
	}
	n.host, n.sockDir = c.hosts[i], filepath.Join(c.base, "socket-"+n.name)
	if err := os.Mkdir(n.sockDir, 0o700); err != nil {
		return fmt.Errorf("routingtest: %s: %w", n.name, err)
	}
	return c.chown(n.sockDir)
}

// baseConf returns the postgresql.conf lines every node shares.
func (c *Cluster) baseConf() []string {
	conf := []string{
		"# added by pgxroute/routingtest",
		"listen_addresses = '127.0.0.1'",
		"unix_socket_directories = '" + c.base + "'",
		"wal_level = replica",
		"fsync = off",
		// pg_rewind (Rejoin) needs both on every node that may become a
		// source or a target.
		"full_page_writes = on",
		"wal_log_hints = on",
		"max_wal_senders = 16",
		"wal_keep_size = '512MB'",
		"hot_standby = on",
		"hot_standby_feedback = on",
		"max_connections = 300",
		"shared_buffers = '32MB'",
		"wal_receiver_status_interval = '1s'",
		"wal_retrieve_retry_interval = '100ms'",
		"log_min_messages = warning",
		"log_line_prefix = '%m [%p] '",
	}
	return append(conf, c.opts.ExtraConf...)
}

// writeConf appends lines to a configuration file of a data directory.
func (c *Cluster) writeConf(dir, file string, lines []string) error {
	f, err := os.OpenFile(filepath.Join(dir, file), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("routingtest: %w", err)
	}
	_, err = io.WriteString(f, "\n"+strings.Join(lines, "\n")+"\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("routingtest: %w", err)
	}
	return nil
}

// createReplica takes a base backup of primary into r's folder and starts r
// for the first time as a streaming replica of it.
func (c *Cluster) createReplica(ctx context.Context, r, primary *Node) error {
	if err := c.baseBackup(ctx, r, primary); err != nil {
		return err
	}
	if err := c.startNew(ctx, r); err != nil {
		return err
	}
	return c.waitStreaming(ctx, r, primary)
}

// baseBackup takes a base backup of primary into r's (absent) folder and
// configures it as a standby of primary.
func (c *Cluster) baseBackup(ctx context.Context, r, primary *Node) error {
	c.logf("pg_basebackup of %s into %s", primary.name, r.dir)
	if err := c.spawner.run(exec.CommandContext(ctx, filepath.Join(c.binDir, "pg_basebackup"),
		"-D", r.dir, "-h", primary.host, "-p", strconv.Itoa(primary.port), "-U", "postgres",
		"-R", "-X", "stream", "--no-sync", "--checkpoint=fast"), c.cred); err != nil {
		return fmt.Errorf("routingtest: %s: pg_basebackup: %w", r.name, err)
	}
	return c.configureStandby(r, primary)
}

// startNew starts a node for the first time on a free loopback port. A port
// found free can be taken by another process before the server binds it, so
// a failed bind is retried on a new port. In a SharedPort cluster the first
// node (the primary) looks for a port free on every node's address and the
// others take the same: a replica that finds it taken fails.
func (c *Cluster) startNew(ctx context.Context, n *Node) error {
	if c.opts.SharedPort && n != c.nodes[0] {
		n.port = c.nodes[0].port
		if err := c.start(ctx, n); err != nil {
			return fmt.Errorf("%w (the shared port %d on %s)", err, n.port, n.host)
		}
		return nil
	}
	hosts := c.hosts
	if hosts == nil {
		hosts = []string{defaultHost}
	}
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		if n.port, err = freePortOn(hosts); err != nil {
			return fmt.Errorf("routingtest: %s: %w", n.name, err)
		}
		if err = c.start(ctx, n); err == nil || !strings.Contains(n.tail.String(), "could not bind") {
			return err
		}
		c.logf("%s: port %d was taken, trying another", n.name, n.port)
	}
	return err
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) { return freePortOn([]string{defaultHost}) }

// freePortOn returns a TCP port that was free a moment ago on every one of
// hosts: one the kernel handed out on the first, that the others could bind
// too.
func freePortOn(hosts []string) (int, error) {
	var lastErr error
	for attempt := 0; attempt < 20; attempt++ {
		l, err := net.Listen("tcp", net.JoinHostPort(hosts[0], "0"))
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		held := []net.Listener{l}
		lastErr = nil
		for _, h := range hosts[1:] {
			o, err := net.Listen("tcp", net.JoinHostPort(h, strconv.Itoa(port)))
			if err != nil {
				lastErr = err
				break
			}
			held = append(held, o)
		}
		for _, o := range held {
			o.Close()
		}
		if lastErr == nil {
			return port, nil
		}
	}
	return 0, fmt.Errorf("no port free on every one of %s: %w", strings.Join(hosts, ", "), lastErr)
}

// start starts n's postmaster and waits until it accepts connections.
func (c *Cluster) start(ctx context.Context, n *Node) error {
	n.mu.Lock()
	if n.cmd != nil && !isClosed(n.exited) {
		n.mu.Unlock()
		return fmt.Errorf("routingtest: %s is already running", n.name)
	}
	args := []string{"-D", n.dir, "-p", strconv.Itoa(n.port)}
	if c.opts.SharedPort {
		// Its own address, and its own socket folder: the socket's name
		// comes from the port, which every node shares.
		args = append(args, "-h", n.host, "-k", n.sockDir)
	}
	cmd := exec.Command(filepath.Join(c.binDir, "postgres"), args...)
	exited, err := c.spawn(n.name, "postgres", &n.tail, cmd)
	if err != nil {
		n.mu.Unlock()
		return err
	}
	n.cmd, n.exited = cmd, exited
	n.mu.Unlock()
	c.logf("%s: postgres started, pid %d, port %d", n.name, cmd.Process.Pid, n.port)
	return c.waitReady(ctx, n, exited)
}

// waitReady waits until n accepts connections (a replica: once it reached a
// consistent state and allows read-only connections).
func (c *Cluster) waitReady(ctx context.Context, n *Node, exited chan struct{}) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		conn, err := pgx.Connect(cctx, n.ConnString()+"&connect_timeout=2")
		cancel()
		if err == nil {
			conn.Close(context.Background())
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("routingtest: %s did not become ready: %w (last error: %v)", n.name, ctx.Err(), err)
		case <-exited:
			// Let the log copier catch up before reading the tail.
			time.Sleep(50 * time.Millisecond)
			return fmt.Errorf("routingtest: %s exited during start-up: %s", n.name, n.tail.String())
		case <-tick.C:
		}
	}
}

// waitStreaming waits until upstream lists r as a streaming replica.
func (c *Cluster) waitStreaming(ctx context.Context, r, upstream *Node) error {
	return c.poll(ctx, upstream, "SELECT count(*) > 0 FROM pg_stat_replication WHERE application_name = $1 AND state = 'streaming'", []any{r.name},
		func(err error) error {
			return fmt.Errorf("routingtest: %s does not stream from %s: %w", r.name, upstream.name, err)
		})
}

// poll runs a boolean query on n until it answers true or ctx ends.
func (c *Cluster) poll(ctx context.Context, n *Node, query string, args []any, wrap func(error) error) error {
	conn, err := pgx.Connect(ctx, n.ConnString())
	if err != nil {
		return wrap(err)
	}
	defer conn.Close(context.Background())
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		var ok bool
		if err := conn.QueryRow(ctx, query, args...).Scan(&ok); err != nil {
			return wrap(err)
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return wrap(ctx.Err())
		case <-tick.C:
		}
	}
}

func (c *Cluster) logf(format string, args ...any) {
	if c.log != nil {
		fmt.Fprintf(c.log, "[routingtest] "+format+"\n", args...)
	}
}

// Primary returns the current primary: the node started as the primary
// until Promote (or Switchover) makes another node the primary. A former
// primary started again without Rejoin (split brain) does not become
// Primary again.
func (c *Cluster) Primary() *Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.primary
}

// Replicas returns the nodes whose role is RoleReplica, in creation order:
// at first every node but the primary. A promoted replica leaves the list; a
// former primary joins it at its place once Rejoin made it a replica.
func (c *Cluster) Replicas() []*Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	var rs []*Node
	for _, n := range c.nodes {
		if n.role == RoleReplica {
			rs = append(rs, n)
		}
	}
	return rs
}

// Nodes returns every node in creation order, whatever its role: the node
// started as the primary first, then replica1, replica2... The order does
// not change when roles do.
func (c *Cluster) Nodes() []*Node { return append([]*Node(nil), c.nodes...) }

// Dir returns the temporary folder that holds every node's files.
func (c *Cluster) Dir() string { return c.base }

// Stop shuts n down cleanly (PostgreSQL's fast shutdown) and waits for it to
// exit. Stopping a stopped node does nothing.
func (c *Cluster) Stop(n *Node) error {
	n.mu.Lock()
	cmd, exited := n.cmd, n.exited
	n.mu.Unlock()
	if cmd == nil || isClosed(exited) {
		return nil
	}
	// A frozen server cannot shut down.
	if err := c.Thaw(n); err != nil {
		return err
	}
	c.logf("%s: stop", n.name)
	_ = cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-exited:
		return nil
	case <-time.After(30 * time.Second):
	}
	c.logf("%s: did not stop in 30s, killing it", n.name)
	return c.Kill(n)
}

// Kill crashes n: SIGKILL to its postmaster and to every child process of
// it, as when the machine loses power. It returns once they are gone.
// Killing a stopped node does nothing.
func (c *Cluster) Kill(n *Node) error {
	n.mu.Lock()
	cmd, exited := n.cmd, n.exited
	n.mu.Unlock()
	if cmd == nil || isClosed(exited) {
		return nil
	}
	c.logf("%s: kill", n.name)
	pid := cmd.Process.Pid
	// PostgreSQL's children put themselves in their own process groups, so
	// kill them one by one, and the postmaster first so it forks no more.
	kids := childPIDs(pid)
	_ = syscall.Kill(pid, syscall.SIGKILL)
	for _, k := range append(kids, childPIDs(pid)...) {
		_ = syscall.Kill(k, syscall.SIGKILL)
	}
	<-exited
	// SIGKILL ends stopped processes too: nothing is left frozen.
	n.mu.Lock()
	n.frozen = nil
	n.mu.Unlock()
	// The children were re-parented; wait until they are gone so that a
	// restart does not find its shared memory still attached.
	deadline := time.Now().Add(30 * time.Second)
	for _, k := range kids {
		for ProcessAlive(k) && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if ProcessAlive(k) {
			return fmt.Errorf("routingtest: %s: child process %d survived SIGKILL", n.name, k)
		}
	}
	return nil
}

// Start starts a stopped or killed node again on its port and waits until it
// accepts connections. A replica resumes streaming on its own.
func (c *Cluster) Start(ctx context.Context, n *Node) error {
	return c.start(ctx, n)
}

// Promote turns replica n into a primary that accepts writes, and waits for
// the promotion to finish. The other replicas keep following the old primary
// (Repoint moves them). From then on Primary returns n, and the old primary
// has RoleFormerPrimary: if it still runs, or is started again, it is a
// second primary (split brain) until Rejoin makes it a replica of n.
func (c *Cluster) Promote(ctx context.Context, n *Node) error {
	conn, err := pgx.Connect(ctx, n.ConnString())
	if err != nil {
		return fmt.Errorf("routingtest: promote %s: %w", n.name, err)
	}
	defer conn.Close(context.Background())
	var ok bool
	if err := conn.QueryRow(ctx, "SELECT pg_promote(true, 60)").Scan(&ok); err != nil {
		return fmt.Errorf("routingtest: promote %s: %w", n.name, err)
	}
	if !ok {
		return fmt.Errorf("routingtest: promote %s: not promoted within 60s", n.name)
	}
	c.mu.Lock()
	old := c.primary
	if old != n {
		old.role = RoleFormerPrimary
	}
	n.role, n.upstream, c.primary = RolePrimary, nil, n
	c.mu.Unlock()
	c.logf("%s: promoted", n.name)
	return nil
}

// WaitReplay returns once every running replica (RoleReplica) that is still
// in recovery has replayed the current primary's WAL position (as of the
// call), or when ctx ends. A replica with an apply delay takes at least that
// long; one that streams from a former primary never gets there.
func (c *Cluster) WaitReplay(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, c.Primary().ConnString())
	if err != nil {
		return fmt.Errorf("routingtest: WaitReplay: primary: %w", err)
	}
	var lsn string
	err = conn.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&lsn)
	conn.Close(context.Background())
	if err != nil {
		return fmt.Errorf("routingtest: WaitReplay: primary: %w", err)
	}
	for _, r := range c.Replicas() {
		if !r.Running() {
			continue
		}
		err := c.poll(ctx, r, "SELECT NOT pg_is_in_recovery() OR pg_last_wal_replay_lsn() >= $1::pg_lsn", []any{lsn},
			func(err error) error {
				return fmt.Errorf("routingtest: WaitReplay: %s did not replay %s: %w", r.name, lsn, err)
			})
		if err != nil {
			return err
		}
	}
	return nil
}

// Close stops every PgBouncer and every server (thawing frozen ones, killing
// those that do not stop in time), removes the cluster's iptables rules and
// every folder the cluster made. It is safe to call more than once.
func (c *Cluster) Close() error {
	c.closeOnce.Do(func() {
		var errs []error
		c.mu.Lock()
		bouncers := c.bouncers
		c.mu.Unlock()
		for _, b := range bouncers {
			if err := b.Close(); err != nil {
				errs = append(errs, err)
			}
		}
		for _, n := range c.nodes {
			if err := c.Unblackhole(n); err != nil {
				errs = append(errs, err)
			}
		}
		errs = append(errs, inParallel(c.nodes, c.Stop)...)
		c.spawner.close()
		if err := os.RemoveAll(c.base); err != nil {
			errs = append(errs, fmt.Errorf("routingtest: %w", err))
		}
		c.closeErr = errors.Join(errs...)
	})
	return c.closeErr
}

// ownerFile, in a cluster's folder, holds the pid of the harness process.
const ownerFile = "harness.pid"

// reapStale removes the cluster folders in dir whose harness process is gone
// and whose servers are therefore gone too (they die with the harness).
func reapStale(dir string) {
	matches, _ := filepath.Glob(filepath.Join(dir, "pgxroute-*", ownerFile))
	for _, m := range matches {
		b, err := os.ReadFile(m)
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || ProcessAlive(pid) {
			continue
		}
		folder := filepath.Dir(m)
		if postmasterAlive(folder) {
			continue
		}
		os.RemoveAll(folder)
	}
}

// postmasterAlive reports whether a postmaster.pid in a node folder of a
// cluster folder names a living process.
func postmasterAlive(folder string) bool {
	pids, _ := filepath.Glob(filepath.Join(folder, "*", "postmaster.pid"))
	for _, p := range pids {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		first, _, _ := strings.Cut(string(b), "\n")
		if pid, err := strconv.Atoi(strings.TrimSpace(first)); err == nil && ProcessAlive(pid) {
			return true
		}
	}
	return false
}

func isClosed(ch chan struct{}) bool {
	if ch == nil {
		return false
	}
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// spawn starts cmd as the cluster's server account, its output in the log
// under name, and returns a channel closed when it exits. what names the
// program in the error.
func (c *Cluster) spawn(name, what string, tail *tailBuffer, cmd *exec.Cmd) (chan struct{}, error) {
	out, err := logPipe(name, c.log, tail)
	if err != nil {
		return nil, fmt.Errorf("routingtest: %s: %w", name, err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	err = c.spawner.start(cmd, c.cred)
	out.Close()
	if err != nil {
		return nil, fmt.Errorf("routingtest: %s: start %s: %w", name, what, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	return exited, nil
}

// inParallel calls f on every item at once and returns the errors.
func inParallel[T any](items []T, f func(T) error) []error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, it := range items {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(it); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errs
}
