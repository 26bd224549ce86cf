package pgxroute_test

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pgxroute/pgxroute"
	"github.com/pgxroute/pgxroute/routingtest"
)

// The recorder of routed calls that the membership and discovery tests run
// in the background: each call in a scope of its own, each asking the
// server that answered where it ran.

// The statements of a callLoad. Each returns the address and port of the
// server that ran it (a SharedPort cluster's nodes share their port and
// differ by address; an ordinary cluster's share 127.0.0.1 and differ by
// port), whether it was in recovery, and the connection's
// application_name. The write inserts into items, which every cluster the
// loads run on has (setupSchema; the Patroni cluster's bootstrap).
const (
	callLoadRead  = "SELECT coalesce(host(inet_server_addr()), ''), inet_server_port(), pg_is_in_recovery(), current_setting('application_name')"
	callLoadWrite = "INSERT INTO items (id, note) VALUES ($1, $2) RETURNING coalesce(host(inet_server_addr()), ''), inet_server_port(), pg_is_in_recovery(), current_setting('application_name')"
)

// loadCall is one call of a callLoad: when it started and ended, whether it
// was a write, the address, port, recovery state and application_name of
// the server that answered, and its error.
type loadCall struct {
	start, end time.Time
	write      bool
	addr       string
	port       int
	inRecovery bool
	app        string
	err        error
	// noReplica (recorded with loadOptions.WatchReplicas): Stat showed no
	// replica taking reads just before or just after the call (a replica
	// suspected for a moment on a loaded machine, another one removed, a
	// new one joining): a read then falls back to the primary by design
	// (FallbackToPrimary).
	noReplica bool
}

// loadOptions says what a callLoad sends.
type loadOptions struct {
	// Readers and Writers are the numbers of goroutines sending reads
	// (callLoadRead) and writes (callLoadWrite).
	Readers, Writers int
	// Group, unless empty, is the bind group of every call
	// (WithBindGroup).
	Group string
	// Pause is how long each goroutine waits after each call; with Every
	// set instead, a goroutine starts a call at most once every Every (a
	// ticker: the wait is what is left of it after the call). Either keeps
	// the client process from starving on a shared machine, which the
	// stall watch would take for hung servers.
	Pause, Every time.Duration
	// Note is the note of the rows the writes insert ("load" when empty).
	Note string
	// WatchReplicas records loadCall.noReplica, asking Stat before and
	// after each call.
	WatchReplicas bool
}

// callLoad sends routed calls, each in a scope of its own (so that the
// writes beside the reads, which the pool's own scope would send unscoped
// reads after to the primary, do not hold them back) and with a 30 s
// deadline, from its goroutines until ended, and records every call.
type callLoad struct {
	pool *pgxroute.RoutedPool
	opts loadOptions

	stop chan struct{}
	once sync.Once
	wg   sync.WaitGroup

	mu    sync.Mutex
	calls []loadCall
}

// startCallLoad starts a callLoad as opts says. The load ends at the end of
// the test at the latest (before the pool closes, the cleanup being
// registered after the pool's), also when the test stops early.
func startCallLoad(t *testing.T, pool *pgxroute.RoutedPool, opts loadOptions) *callLoad {
	if opts.Note == "" {
		opts.Note = "load"
	}
	l := &callLoad{pool: pool, opts: opts, stop: make(chan struct{})}
	for i := range opts.Readers + opts.Writers {
		l.wg.Add(1)
		go l.run(i >= opts.Readers)
	}
	t.Cleanup(l.end)
	return l
}

// run is one goroutine of the load: a call, then the wait, until stopped.
func (l *callLoad) run(write bool) {
	defer l.wg.Done()
	var tick <-chan time.Time
	if l.opts.Every > 0 {
		ticker := time.NewTicker(l.opts.Every)
		defer ticker.Stop()
		tick = ticker.C
	}
	for {
		l.call(write)
		wait := tick
		if wait == nil {
			wait = time.After(l.opts.Pause)
		}
		select {
		case <-l.stop:
			return
		case <-wait:
		}
	}
}

// call sends one call, a write or a read, records it and returns it.
func (l *callLoad) call(write bool) loadCall {
	ctx, cancel := scoped()
	defer cancel()
	if l.opts.Group != "" {
		ctx = pgxroute.WithBindGroup(ctx, l.opts.Group)
	}
	before := true
	if l.opts.WatchReplicas {
		before = replicaTakesReads(l.pool.Stat())
	}
	c := loadCall{start: time.Now(), write: write}
	dest := []any{&c.addr, &c.port, &c.inRecovery, &c.app}
	if write {
		c.err = l.pool.QueryRow(ctx, callLoadWrite, nextID(), l.opts.Note).Scan(dest...)
	} else {
		c.err = l.pool.QueryRow(ctx, callLoadRead).Scan(dest...)
	}
	c.end = time.Now()
	if l.opts.WatchReplicas {
		c.noReplica = !before || !replicaTakesReads(l.pool.Stat())
	}
	l.mu.Lock()
	l.calls = append(l.calls, c)
	l.mu.Unlock()
	return c
}

// readOnce sends one read as the load's readers do, records it and
// returns it (a test's own reads, checked where they ran, among the
// load's).
func (l *callLoad) readOnce() loadCall {
	return l.call(false)
}

// end stops the load and waits for its last calls; it is safe to call more
// than once.
func (l *callLoad) end() {
	l.once.Do(func() { close(l.stop) })
	l.wg.Wait()
}

// snapshot returns a copy of the calls recorded so far.
func (l *callLoad) snapshot() []loadCall {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.calls)
}

// readOn matches the reads that port answered.
func readOn(port int) func(loadCall) bool {
	return func(c loadCall) bool { return !c.write && c.port == port }
}

// readAt matches the reads that the server at address addr answered.
func readAt(addr string) func(loadCall) bool {
	return func(c loadCall) bool { return !c.write && c.addr == addr }
}

// writeAt matches the writes that the server at address addr answered.
func writeAt(addr string) func(loadCall) bool {
	return func(c loadCall) bool { return c.write && c.addr == addr }
}

// startedAfter returns the successful calls that started after at and
// that match.
func (l *callLoad) startedAfter(at time.Time, match func(loadCall) bool) []loadCall {
	var out []loadCall
	for _, c := range l.snapshot() {
		if c.err == nil && c.start.After(at) && match(c) {
			out = append(out, c)
		}
	}
	return out
}

// count counts the successful calls that started after since and that
// match.
func (l *callLoad) count(since time.Time, match func(loadCall) bool) int {
	return len(l.startedAfter(since, match))
}

// started counts every call, failed or not, that started after since.
func (l *callLoad) started(since time.Time) int {
	n := 0
	for _, c := range l.snapshot() {
		if c.start.After(since) {
			n++
		}
	}
	return n
}

// firstEnd returns when the first successful call that started after
// since and that matches ended, or the zero time.
func (l *callLoad) firstEnd(since time.Time, match func(loadCall) bool) time.Time {
	var first time.Time
	for _, c := range l.startedAfter(since, match) {
		if first.IsZero() || c.end.Before(first) {
			first = c.end
		}
	}
	return first
}

// served counts the successful reads port answered.
func (l *callLoad) served(port int) int {
	return l.count(time.Time{}, readOn(port))
}

// waitServed waits (bounded) until port answered n more reads.
func (l *callLoad) waitServed(t *testing.T, what string, port, n int) {
	t.Helper()
	base := l.served(port)
	routingtest.WaitFor(t, fmt.Sprintf("%d reads of the load on %s", n, what), func() bool { return l.served(port) >= base+n })
}

// check fails the test on every failed call (naming the first five) and
// logs the calls by kind and by server, as server names the server that
// answered a call.
func (l *callLoad) check(t *testing.T, server func(loadCall) string) {
	t.Helper()
	byServer := map[string]int{}
	var failed []loadCall
	calls := l.snapshot()
	for _, c := range calls {
		if c.err != nil {
			failed = append(failed, c)
			continue
		}
		kind := "reads"
		if c.write {
			kind = "writes"
		}
		byServer[kind+" on "+server(c)]++
	}
	t.Logf("load: %d calls, %d failed; %v", len(calls), len(failed), byServer)
	for i, c := range failed {
		if i == 5 {
			break
		}
		t.Errorf("call failed (write %v, started %s): %v", c.write, c.start.Format("15:04:05.000"), c.err)
	}
}

// checkReads fails the test on every successful read that a server out of
// recovery (the primary) answered while a replica took reads, and logs the
// counts. A scoped read without writes goes to a replica while one takes
// reads; when Stat showed none (loadCall.noReplica: the load must watch
// replicas), it falls back to the primary by design.
func (l *callLoad) checkReads(t *testing.T) {
	t.Helper()
	reads, onPrimary, fallbacks := 0, 0, 0
	for _, c := range l.snapshot() {
		switch {
		case c.write || c.err != nil:
			continue
		case !c.inRecovery && c.noReplica:
			fallbacks++
		case !c.inRecovery:
			if onPrimary++; onPrimary <= 5 {
				t.Errorf("a read started at %s ran on the primary (%s port %d) while a replica took reads", c.start.Format("15:04:05.000"), c.addr, c.port)
			}
		}
		reads++
	}
	t.Logf("successful reads: %d; on a primary %d while a replica took reads, %d while none did", reads, onPrimary, fallbacks)
}

// checkWritesAt fails the test on every successful write that the server
// at address primary did not answer.
func (l *callLoad) checkWritesAt(t *testing.T, primary string) {
	t.Helper()
	bad := 0
	for _, c := range l.snapshot() {
		if c.write && c.err == nil && c.addr != primary {
			if bad++; bad <= 5 {
				t.Errorf("a write started at %s ran on %s, not on the primary (%s)", c.start.Format("15:04:05.000"), c.addr, primary)
			}
		}
	}
}

// byPort names the server that answered a call by its port.
func byPort(c loadCall) string { return fmt.Sprint("port ", c.port) }

// byAddr names the server that answered a call by its address.
func byAddr(c loadCall) string { return c.addr }

// byNode names the server that answered a call by its node of c (the
// node's name, found by port).
func byNode(c *routingtest.Cluster) func(loadCall) string {
	names := nodeNames(c)
	return func(call loadCall) string { return names[call.port] }
}
