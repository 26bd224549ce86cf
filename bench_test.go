package pgxroute_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgxroute/pgxroute"
	"github.com/pgxroute/pgxroute/internal/costbench"
	"github.com/pgxroute/pgxroute/routingtest"
)

// benchPool makes a RoutedPool over unreachable addresses: pgxpool connects
// lazily and health checks are off, so only the routing decision runs.
func benchPool(b *testing.B, groups, nodes int) *pgxroute.RoutedPool {
	b.Helper()
	cfg := pgxroute.Config{Groups: map[string][]pgxroute.Node{}, Health: pgxroute.HealthConfig{Disabled: true}}
	port := 10000
	for g := 0; g < groups; g++ {
		name := benchGroup(g)
		for n := 0; n < nodes; n++ {
			port++
			cfg.Groups[name] = append(cfg.Groups[name], pgxroute.Node{ConnString: fmt.Sprintf("postgres://u@127.0.0.1:%d/db", port)})
		}
	}
	p, err := pgxroute.New(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(p.Close)
	return p
}

// benchGroup names the g-th group of benchPool.
func benchGroup(g int) string {
	switch g {
	case 0:
		return pgxroute.DefaultGroupName
	case 1:
		return pgxroute.ReadGroupName
	}
	return fmt.Sprintf("g%d", g)
}

const benchSQL = "SELECT id, note FROM items WHERE id = $1"

func benchRoute(b *testing.B, p *pgxroute.RoutedPool, ctx context.Context, sql string) {
	if _, err := p.Route(ctx, sql); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		p.Route(ctx, sql)
	}
}

// BenchmarkRoute is the routing decision for a cached statement.
func BenchmarkRoute(b *testing.B) {
	p := benchPool(b, 2, 2)
	scope := pgxroute.WithScope(context.Background())
	b.Run("read", func(b *testing.B) { benchRoute(b, p, scope, benchSQL) })
	b.Run("read-no-scope", func(b *testing.B) { benchRoute(b, p, context.Background(), benchSQL) })
	b.Run("write", func(b *testing.B) { benchRoute(b, p, scope, "UPDATE items SET note = $2 WHERE id = $1") })
	b.Run("bind-group", func(b *testing.B) { benchRoute(b, p, pgxroute.WithBindGroup(scope, "read"), benchSQL) })
}

// BenchmarkRouteParallel: the same decision from many goroutines at once.
func BenchmarkRouteParallel(b *testing.B) {
	p := benchPool(b, 2, 2)
	ctx := context.Background()
	for _, g := range []int{2, 8, 64} {
		b.Run(fmt.Sprintf("goroutines=%d", g), func(b *testing.B) {
			b.SetParallelism(max(1, g/runtime.GOMAXPROCS(0)))
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					p.Route(ctx, benchSQL)
				}
			})
		})
	}
}

// BenchmarkRouteNodes: the decision as the read group grows.
func BenchmarkRouteNodes(b *testing.B) {
	for _, n := range []int{1, 8, 64} {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			benchRoute(b, benchPool(b, 2, n), context.Background(), benchSQL)
		})
	}
}

// BenchmarkRouteGroups: the decision as the number of groups grows.
func BenchmarkRouteGroups(b *testing.B) {
	for _, g := range []int{2, 100} {
		b.Run(fmt.Sprintf("groups=%d", g), func(b *testing.B) {
			p := benchPool(b, g, 2)
			benchRoute(b, p, pgxroute.WithBindGroup(context.Background(), benchGroup(g-1)), benchSQL)
		})
	}
}

// BenchmarkQueryRow compares a routed point select with raw pgxpool on the
// same single server (the primary): the cost of routing on a real round trip.
// raw-query is raw pgxpool through Query and Scan, the path RoutedPool takes.
func BenchmarkQueryRow(b *testing.B) {
	c := sharedCluster(b)
	ctx := context.Background()
	size := func(cfg *pgxpool.Config) { cfg.MaxConns, cfg.MinConns = 8, 8 }
	pc, err := pgxpool.ParseConfig(c.Primary().ConnString())
	if err != nil {
		b.Fatal(err)
	}
	size(pc)
	raw, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		b.Fatal(err)
	}
	defer raw.Close()
	routed, err := pgxroute.New(ctx, pgxroute.Config{
		Primary:       c.Primary().ConnString(),
		ConfigurePool: func(_, _ string, cfg *pgxpool.Config) { size(cfg) },
	})
	if err != nil {
		b.Fatal(err)
	}
	defer routed.Close()
	for _, t := range []struct {
		name string
		q    routingtest.QueryRower
	}{{"raw", raw}, {"routed", routed}, {"raw-query", rawQuery{raw}}} {
		b.Run(t.name, func(b *testing.B) {
			b.SetParallelism(4)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				var n int
				for pb.Next() {
					if err := t.q.QueryRow(ctx, "SELECT 1").Scan(&n); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkWriteCost measures a write in a scope under each consistency
// mode on a real primary: ReadYourWrites adds no round trip, only a request
// for an early probe on the prober's own connection.
func BenchmarkWriteCost(b *testing.B) {
	c := sharedCluster(b)
	for _, mode := range []pgxroute.Stickiness{pgxroute.StickyScope, pgxroute.ReadYourWrites} {
		b.Run(mode.String(), func(b *testing.B) {
			pool := newPool(b, c, pgxroute.Config{Stickiness: mode})
			ctx := pgxroute.WithScope(context.Background())
			b.ReportAllocs()
			for b.Loop() {
				if _, err := pool.Exec(ctx, "UPDATE marker SET id = id WHERE id = 1"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// rawQuery answers QueryRow through pgxpool's Query, as RoutedPool does.
type rawQuery struct{ p *pgxpool.Pool }

func (r rawQuery) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	rows, _ := r.p.Query(ctx, sql, args...)
	return rowOf{rows}
}

type rowOf struct{ rows pgx.Rows }

func (r rowOf) Scan(dest ...any) error {
	defer r.rows.Close()
	if !r.rows.Next() {
		if err := r.rows.Err(); err != nil {
			return err
		}
		return pgx.ErrNoRows
	}
	if err := r.rows.Scan(dest...); err != nil {
		return err
	}
	r.rows.Close()
	return r.rows.Err()
}

// BenchmarkCostOfRouting runs the same calls on a raw *pgxpool.Pool and on a
// RoutedPool whose only node is that same server, side by side in one b.Run
// tree (benchstat shows the ratio): 8 goroutines, pools of 8 connections.
// Routed "disabled" is Config.Disabled. "pair" compares a RoutedPool over
// two replicas with two raw pools alternated by hand. Skipped without the
// PostgreSQL binaries.
func BenchmarkCostOfRouting(b *testing.B) {
	const conns = 8
	ctx := context.Background()
	targets := costTargets(b, conns)
	for _, k := range costbench.Kinds {
		for _, t := range targets {
			b.Run(k.Name+"/"+t.name, func(b *testing.B) { runParallel(ctx, b, conns, k, t.q) })
		}
	}
}

// costTarget is a target of the cost benchmarks.
type costTarget struct {
	name string
	q    costbench.Querier
}

// costTargets are the cost benchmarks' targets on the shared cluster, each
// with pools of conns connections: raw pgxpool on the primary, a RoutedPool
// with the primary as its only node, the same with Disabled, two raw pools
// over the replicas alternated by hand, and a RoutedPool over them.
func costTargets(b *testing.B, conns int32) []costTarget {
	c := sharedCluster(b)
	ctx := context.Background()
	poolCfg := func(conn string) *pgxpool.Config {
		pc, err := pgxpool.ParseConfig(conn)
		if err != nil {
			b.Fatal(err)
		}
		pc.MaxConns, pc.MinConns = conns, conns
		return pc
	}
	raw, err := pgxpool.NewWithConfig(ctx, poolCfg(c.Primary().ConnString()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(raw.Close)
	routed := func(cfg pgxroute.Config) *pgxroute.RoutedPool {
		cfg.ConfigurePool = func(_, _ string, pc *pgxpool.Config) { pc.MaxConns, pc.MinConns = conns, conns }
		p, err := pgxroute.New(ctx, cfg)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(p.Close)
		return p
	}
	single := routed(pgxroute.Config{Primary: c.Primary().ConnString()})
	disabled := routed(pgxroute.Config{Primary: c.Primary().ConnString(), Disabled: true})
	reps := c.Replicas()
	two := routed(pgxroute.Config{Primary: c.Primary().ConnString(), Replicas: []pgxroute.Node{
		{Name: "r1", ConnString: reps[0].ConnString()}, {Name: "r2", ConnString: reps[1].ConnString()}}})
	pair := &costbench.Pair{}
	for i := range pair.Pools {
		pair.Pools[i], err = pgxpool.NewWithConfig(ctx, poolCfg(reps[i].ConnString()))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(pair.Pools[i].Close)
	}
	return []costTarget{{"raw", raw}, {"routed", single}, {"disabled", disabled}, {"pair-raw", pair}, {"pair-routed", two}}
}

// The client's path alone: BenchmarkCallPath runs the calls of
// BenchmarkCostOfRouting on raw pgxpool and on RoutedPool over a fake
// server that answers in memory (fakePG), one goroutine, one connection:
// no system call, no scheduling, no server sharing the cores. What it
// measures is the CPU a call costs in pgx, pgxpool and pgxroute; on a
// shared machine it stays within a few percent from run to run, where
// the real-server figures move by tens of percent (docs/benchmarks.md).
// It needs no PostgreSQL.
func BenchmarkCallPath(b *testing.B) {
	ctx := context.Background()
	for _, k := range costbench.Kinds {
		for _, t := range fakeTargets(b, 1) {
			b.Run(k.Name+"/"+t.name, func(b *testing.B) {
				b.ReportAllocs()
				i := 0
				var cpu0 int64
				for b.Loop() {
					if i == 0 {
						cpu0 = costbench.ProcessCPU()
					}
					i++
					if err := k.Run(ctx, t.q, i); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(costbench.ProcessCPU()-cpu0)/float64(i), "cpu-ns/op")
			})
		}
	}
}

// BenchmarkCallPathParallel is BenchmarkCallPath from 8 goroutines on
// pools of 8 connections: what the call path costs when the cores share
// its counters (cache lines that move between cores do not show in one
// goroutine).
func BenchmarkCallPathParallel(b *testing.B) {
	ctx := context.Background()
	const conns = 8
	for _, k := range costbench.Kinds {
		for _, t := range fakeTargets(b, conns) {
			b.Run(k.Name+"/"+t.name, func(b *testing.B) { runParallel(ctx, b, conns, k, t.q) })
		}
	}
}

// runParallel runs k on q from conns goroutines in all (a pool of conns
// connections each), reporting allocations and the process's CPU per call.
func runParallel(ctx context.Context, b *testing.B, conns int, k costbench.Kind, q costbench.Querier) {
	b.SetParallelism(max(1, conns/runtime.GOMAXPROCS(0)))
	b.ReportAllocs()
	cpu0 := costbench.ProcessCPU()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i++
			if err := k.Run(ctx, q, i); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(costbench.ProcessCPU()-cpu0)/float64(b.N), "cpu-ns/op")
}

// fakeTarget is a pool over fakePG servers.
type fakeTarget struct {
	name string
	q    costbench.Querier
}

// fakeTargets returns raw pgxpool, RoutedPool and RoutedPool with
// Disabled, each with pools of conns connections to fakePG.
func fakeTargets(b *testing.B, conns int32) []fakeTarget {
	b.Helper()
	ctx := context.Background()
	const conn = "host=127.0.0.1 port=5432 user=bench dbname=bench sslmode=disable"
	fakeCfg := func(pc *pgxpool.Config) {
		pc.MaxConns, pc.MinConns = conns, conns
		pc.ConnConfig.DialFunc = dialFakePG
	}
	pc, err := pgxpool.ParseConfig(conn)
	if err != nil {
		b.Fatal(err)
	}
	fakeCfg(pc)
	raw, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(raw.Close)
	routed := func(cfg pgxroute.Config) *pgxroute.RoutedPool {
		cfg.Primary = conn
		cfg.Health = pgxroute.HealthConfig{Disabled: true} // the fake answers no probe
		cfg.ConfigurePool = func(_, _ string, pc *pgxpool.Config) { fakeCfg(pc) }
		p, err := pgxroute.New(ctx, cfg)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(p.Close)
		return p
	}
	return []fakeTarget{{"raw", raw}, {"routed", routed(pgxroute.Config{})}, {"disabled", routed(pgxroute.Config{Disabled: true})}}
}

// fakePG is a PostgreSQL server in memory for the client's path alone: a
// net.Conn that answers each message pgx writes as it is written. It knows
// the startup, the extended protocol (Parse, Describe, Bind, Execute,
// Close, Sync, Flush) and the simple query (for pings); every statement
// has one int4 parameter and returns one int4 row. It is a syscall.Conn
// (whose Control fails once closed), as a socket is.
type fakePG struct {
	mu       sync.Mutex
	in, out  []byte
	started  bool
	closed   bool
	deadline time.Time
	ready    chan struct{} // a message to read, or closed
	be       *pgproto3.Backend
	sink     *bytes.Buffer
}

func dialFakePG(context.Context, string, string) (net.Conn, error) {
	f := &fakePG{ready: make(chan struct{}, 1), sink: new(bytes.Buffer)}
	f.be = pgproto3.NewBackend(nil, f.sink)
	return f, nil
}

var fakeInt4 = []pgproto3.FieldDescription{{Name: []byte("?column?"), DataTypeOID: 23, DataTypeSize: 4, TypeModifier: -1}}

// Write takes the client's messages (pgx writes whole messages) and queues
// the answers.
func (f *fakePG) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return 0, net.ErrClosed
	}
	f.in = append(f.in, p...)
	for {
		if !f.started {
			if len(f.in) < 4 {
				break
			}
			n := int(binary.BigEndian.Uint32(f.in))
			if len(f.in) < n {
				break
			}
			f.in = f.in[n:]
			f.started = true
			f.be.Send(&pgproto3.AuthenticationOk{})
			for _, ps := range [][2]string{{"server_version", "15.0"}, {"client_encoding", "UTF8"}, {"standard_conforming_strings", "on"}, {"DateStyle", "ISO, MDY"}, {"integer_datetimes", "on"}, {"TimeZone", "UTC"}} {
				f.be.Send(&pgproto3.ParameterStatus{Name: ps[0], Value: ps[1]})
			}
			// No BackendKeyData: pgx does not need one, and its SecretKey
			// changed type in pgx v5.8 (uint32 to []byte).
			f.be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
			continue
		}
		if len(f.in) < 5 {
			break
		}
		n := 1 + int(binary.BigEndian.Uint32(f.in[1:]))
		if len(f.in) < n {
			break
		}
		typ, body := f.in[0], f.in[5:n]
		f.in = f.in[n:]
		switch typ {
		case 'P':
			f.be.Send(&pgproto3.ParseComplete{})
		case 'D':
			if len(body) > 0 && body[0] == 'S' {
				f.be.Send(&pgproto3.ParameterDescription{ParameterOIDs: []uint32{23}})
				f.be.Send(&pgproto3.RowDescription{Fields: fakeInt4})
			} else {
				f.be.Send(&pgproto3.RowDescription{Fields: []pgproto3.FieldDescription{{Name: fakeInt4[0].Name, DataTypeOID: 23, DataTypeSize: 4, TypeModifier: -1, Format: 1}}})
			}
		case 'B':
			f.be.Send(&pgproto3.BindComplete{})
		case 'E':
			f.be.Send(&pgproto3.DataRow{Values: [][]byte{{0, 0, 0, 2}}})
			f.be.Send(&pgproto3.CommandComplete{CommandTag: []byte("SELECT 1")})
		case 'C':
			f.be.Send(&pgproto3.CloseComplete{})
		case 'S':
			f.be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
		case 'Q':
			f.be.Send(&pgproto3.EmptyQueryResponse{})
			f.be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
		case 'X':
			f.closed = true
		}
	}
	if err := f.be.Flush(); err != nil {
		return 0, err
	}
	if f.sink.Len() > 0 {
		f.out = append(f.out, f.sink.Bytes()...)
		f.sink.Reset()
		select {
		case f.ready <- struct{}{}:
		default:
		}
	}
	return len(p), nil
}

// Read returns the queued answers; with none, it waits for the deadline.
func (f *fakePG) Read(p []byte) (int, error) {
	for {
		f.mu.Lock()
		if len(f.out) > 0 {
			n := copy(p, f.out)
			f.out = f.out[:copy(f.out, f.out[n:])]
			f.mu.Unlock()
			return n, nil
		}
		closed, dl := f.closed, f.deadline
		f.mu.Unlock()
		if closed {
			return 0, io.EOF
		}
		var expire <-chan time.Time
		if !dl.IsZero() {
			d := time.Until(dl)
			if d <= 0 {
				return 0, os.ErrDeadlineExceeded
			}
			t := time.NewTimer(d)
			expire = t.C
			defer t.Stop()
		}
		select {
		case <-f.ready:
		case <-expire:
		}
	}
}

func (f *fakePG) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return net.ErrClosed
	}
	f.closed = true
	select {
	case f.ready <- struct{}{}:
	default:
	}
	return nil
}

func (f *fakePG) LocalAddr() net.Addr  { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000} }
func (f *fakePG) RemoteAddr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5432} }

func (f *fakePG) SetDeadline(t time.Time) error { return f.SetReadDeadline(t) }

func (f *fakePG) SetReadDeadline(t time.Time) error {
	f.mu.Lock()
	f.deadline = t
	f.mu.Unlock()
	select {
	case f.ready <- struct{}{}:
	default:
	}
	return nil
}

func (f *fakePG) SetWriteDeadline(time.Time) error { return nil }

// SyscallConn makes fakePG a syscall.Conn, as sockets are: Control fails
// once the connection is closed.
func (f *fakePG) SyscallConn() (syscall.RawConn, error) { return fakeRaw{f}, nil }

type fakeRaw struct{ f *fakePG }

func (r fakeRaw) Control(fn func(fd uintptr)) error {
	r.f.mu.Lock()
	closed := r.f.closed
	r.f.mu.Unlock()
	if closed {
		return net.ErrClosed
	}
	fn(^uintptr(0))
	return nil
}

func (r fakeRaw) Read(func(fd uintptr) bool) error  { return syscall.EINVAL }
func (r fakeRaw) Write(func(fd uintptr) bool) error { return syscall.EINVAL }
