// Command sqlbench measures package stdlib's cost: a *sql.DB from
// stdlib.OpenDB over a RoutedPool against pgx's own stdlib.OpenDBFromPool
// over a pgxpool, on one server; and gorm over OpenDB (a primary and two
// replicas) against gorm with dbresolver on the same servers.
//
// It starts its own local servers (the routingtest harness) and runs the
// targets in ABBA order (odd rounds reverse it), each for -calls calls per
// kind from -workers goroutines, and reports per kind and target the median
// client CPU per call (getrusage of this process: user and system, every
// goroutine: pools, probes, GC), allocations per call and throughput, and
// the median of the per-round ratios B/A. Both targets of a comparison stay
// open for the whole run.
//
//	cd stdlib/frameworktest && go run ./sqlbench -rounds 10
package main

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	pgxstdlib "github.com/jackc/pgx/v5/stdlib"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"gorm.io/plugin/dbresolver"

	"github.com/pgxroute/pgxroute"
	"github.com/pgxroute/pgxroute/routingtest"
	"github.com/pgxroute/pgxroute/stdlib"
)

const (
	table    = "sqlbench"
	rowCount = 10_000
	sqlPoint = "SELECT id, balance, note FROM " + table + " WHERE id = $1"
	sqlWrite = "UPDATE " + table + " SET balance = balance + 1 WHERE id = $1"
)

// account is the table's row, for gorm.
type account struct {
	ID      int64 `gorm:"primaryKey"`
	Balance int64
	Note    string
}

func (account) TableName() string { return table }

// op is one call of a kind on a target.
type op func(ctx context.Context, id int64) error

// target is a way of making the calls of each kind.
type target struct {
	name string
	ops  map[string]op
}

// sample is one target's run of one kind in one round.
type sample struct {
	cpuPerCall   time.Duration
	allocPerCall float64
	perSec       float64
}

func main() {
	var (
		rounds  = flag.Int("rounds", 10, "ABBA rounds (odd rounds run B first)")
		calls   = flag.Int("calls", 20_000, "calls per kind per target per round")
		workers = flag.Int("workers", 4, "concurrent goroutines; also the pools' size")
		which   = flag.String("compare", "all", "all, sql or gorm")
		kinds   = flag.String("kinds", "", "a comma list of the kinds to run (default all: Exec, Query, QueryRow; First, Update)")
		serve   = flag.Bool("serve", false, "run nothing: start one local server, print its connection string, and keep it until interrupted (for stdlib's BenchmarkDatabaseSQL under valgrind: PGXROUTE_BENCH_DSN)")
	)
	flag.Parse()
	if *serve {
		if err := serveOne(); err != nil {
			log.Fatal(err)
		}
		return
	}
	only = map[string]bool{}
	for _, k := range strings.Split(*kinds, ",") {
		if k = strings.TrimSpace(k); k != "" {
			only[k] = true
		}
	}
	if err := run(*rounds, *calls, *workers, *which); err != nil {
		log.Fatal(err)
	}
}

// only holds the kinds -kinds names; empty: every kind.
var only map[string]bool

func run(rounds, calls, workers int, which string) error {
	// Stop at SIGINT or SIGTERM between measurements, closing the servers.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	c, err := routingtest.StartCluster(sctx, routingtest.ClusterOptions{})
	if err != nil {
		return err
	}
	defer c.Close()
	if err := setup(sctx, c); err != nil {
		return err
	}
	fmt.Printf("sqlbench: %d rounds, %d calls per kind per target per round, %d workers, GOMAXPROCS %d, %s\n",
		rounds, calls, workers, runtime.GOMAXPROCS(0), time.Now().UTC().Format(time.RFC3339))
	if which == "all" || which == "sql" {
		a, b, closeAll, err := sqlTargets(ctx, c, workers)
		if err != nil {
			return err
		}
		compare(ctx, a, b, rounds, calls, workers)
		closeAll()
	}
	if which == "all" || which == "gorm" {
		a, b, closeAll, err := gormTargets(ctx, c, workers)
		if err != nil {
			return err
		}
		compare(ctx, a, b, rounds, calls, workers)
		closeAll()
	}
	return nil
}

// serveOne starts a local server and keeps it until SIGINT or SIGTERM.
func serveOne() error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	c, err := routingtest.StartCluster(sctx, routingtest.ClusterOptions{Replicas: routingtest.NoReplicas})
	if err != nil {
		return err
	}
	defer c.Close()
	fmt.Println(c.Primary().ConnString())
	<-ctx.Done()
	return nil
}

// setup creates and fills the table and waits for the replicas.
func setup(ctx context.Context, c *routingtest.Cluster) error {
	conn, err := pgx.Connect(ctx, c.Primary().ConnString())
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, fmt.Sprintf(`CREATE TABLE %s (id bigint PRIMARY KEY, balance bigint NOT NULL, note text NOT NULL);
INSERT INTO %[1]s SELECT g, 0, 'note ' || g FROM generate_series(1, %d) g; ANALYZE %[1]s`, table, rowCount))
	if err != nil {
		return err
	}
	return c.WaitReplay(ctx)
}

// sqlOps are the calls on a *sql.DB: QueryRow of one row, Query of the same
// row through rows, Exec of an update.
func sqlOps(db *sql.DB) map[string]op {
	return map[string]op{
		"QueryRow": func(ctx context.Context, id int64) error {
			var got, balance int64
			var note string
			if err := db.QueryRowContext(ctx, sqlPoint, id).Scan(&got, &balance, &note); err != nil {
				return err
			}
			if got != id {
				return fmt.Errorf("asked for %d, got %d", id, got)
			}
			return nil
		},
		"Query": func(ctx context.Context, id int64) error {
			rows, err := db.QueryContext(ctx, sqlPoint, id)
			if err != nil {
				return err
			}
			defer rows.Close()
			n := 0
			for rows.Next() {
				var got, balance int64
				var note string
				if err := rows.Scan(&got, &balance, &note); err != nil {
					return err
				}
				n++
			}
			if n != 1 {
				return fmt.Errorf("row %d: %d rows", id, n)
			}
			return rows.Err()
		},
		"Exec": func(ctx context.Context, id int64) error {
			res, err := db.ExecContext(ctx, sqlWrite, id)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n != 1 {
				return fmt.Errorf("update of %d touched %d rows", id, n)
			}
			return nil
		},
	}
}

// sqlTargets: pgx's stdlib over a pgxpool of the primary (A) and OpenDB
// over a RoutedPool of the primary alone (B): one server, the same pool
// size and database/sql settings.
func sqlTargets(ctx context.Context, c *routingtest.Cluster, workers int) (target, target, func(), error) {
	cfg, err := pgxpool.ParseConfig(c.Primary().ConnString())
	if err != nil {
		return target{}, target{}, nil, err
	}
	cfg.MaxConns = int32(workers)
	raw, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return target{}, target{}, nil, err
	}
	routed, err := pgxroute.New(ctx, pgxroute.Config{
		Primary:       c.Primary().ConnString(),
		ConfigurePool: func(_, _ string, pc *pgxpool.Config) { pc.MaxConns = int32(workers) },
	})
	if err != nil {
		raw.Close()
		return target{}, target{}, nil, err
	}
	rawDB, routedDB := pgxstdlib.OpenDBFromPool(raw), stdlib.OpenDB(routed)
	for _, db := range []*sql.DB{rawDB, routedDB} {
		db.SetMaxOpenConns(workers)
		db.SetMaxIdleConns(workers)
	}
	closeAll := func() {
		rawDB.Close()
		routedDB.Close()
		raw.Close()
		routed.Close()
	}
	return target{"pgx stdlib.OpenDBFromPool", sqlOps(rawDB)}, target{"pgxroute stdlib.OpenDB", sqlOps(routedDB)}, closeAll, nil
}

// gormOps are gorm's calls: First by primary key (a read) and an update.
func gormOps(db *gorm.DB) map[string]op {
	return map[string]op{
		"First": func(ctx context.Context, id int64) error {
			var a account
			if err := db.WithContext(ctx).First(&a, id).Error; err != nil {
				return err
			}
			if a.ID != id {
				return fmt.Errorf("asked for %d, got %d", id, a.ID)
			}
			return nil
		},
		"Update": func(ctx context.Context, id int64) error {
			res := db.WithContext(ctx).Model(&account{ID: id}).Update("balance", gorm.Expr("balance + 1"))
			if res.Error == nil && res.RowsAffected != 1 {
				return fmt.Errorf("update of %d touched %d rows", id, res.RowsAffected)
			}
			return res.Error
		},
	}
}

// gormTargets: gorm with dbresolver (the primary the source, the two
// replicas round-robin: A) and gorm over OpenDB over a RoutedPool of the
// same servers (B). Both skip gorm's default transaction around writes.
func gormTargets(ctx context.Context, c *routingtest.Cluster, workers int) (target, target, func(), error) {
	gcfg := func() *gorm.Config {
		return &gorm.Config{SkipDefaultTransaction: true, Logger: logger.Discard}
	}
	resolved, err := gorm.Open(postgres.Open(c.Primary().ConnString()), gcfg())
	if err != nil {
		return target{}, target{}, nil, err
	}
	var replicas []gorm.Dialector
	var nodes []pgxroute.Node
	for _, r := range c.Replicas() {
		replicas = append(replicas, postgres.Open(r.ConnString()))
		nodes = append(nodes, pgxroute.Node{Name: r.Name(), ConnString: r.ConnString()})
	}
	res := dbresolver.Register(dbresolver.Config{Replicas: replicas, Policy: dbresolver.StrictRoundRobinPolicy()}).
		SetMaxOpenConns(workers).SetMaxIdleConns(workers)
	if err := resolved.Use(res); err != nil {
		return target{}, target{}, nil, err
	}
	if sqlDB, err := resolved.DB(); err == nil {
		sqlDB.SetMaxOpenConns(workers)
		sqlDB.SetMaxIdleConns(workers)
	}
	routed, err := pgxroute.New(ctx, pgxroute.Config{
		Primary:       c.Primary().ConnString(),
		Replicas:      nodes,
		ConfigurePool: func(_, _ string, pc *pgxpool.Config) { pc.MaxConns = int32(workers) },
	})
	if err != nil {
		return target{}, target{}, nil, err
	}
	routedDB := stdlib.OpenDB(routed)
	routedDB.SetMaxOpenConns(workers)
	routedDB.SetMaxIdleConns(workers)
	overOpenDB, err := gorm.Open(postgres.New(postgres.Config{Conn: routedDB}), gcfg())
	if err != nil {
		return target{}, target{}, nil, err
	}
	closeAll := func() {
		if sqlDB, err := resolved.DB(); err == nil {
			sqlDB.Close()
		}
		routedDB.Close()
		routed.Close()
	}
	return target{"gorm + dbresolver", gormOps(resolved)}, target{"gorm over stdlib.OpenDB", gormOps(overOpenDB)}, closeAll, nil
}

// cpu returns the process's user+system CPU time.
func cpu() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// measure makes calls calls of o from workers goroutines.
func measure(ctx context.Context, o op, calls, workers int, seed int64) (sample, error) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	mallocs := ms.Mallocs
	var next atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	c0, t0 := cpu(), time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(calls) {
					return
				}
				id := (i*7919+seed)%rowCount + 1
				if err := o(ctx, id); err != nil {
					once.Do(func() { firstErr = err })
					return
				}
			}
		}()
	}
	wg.Wait()
	wall, used := time.Since(t0), cpu()-c0
	runtime.ReadMemStats(&ms)
	if firstErr != nil {
		return sample{}, firstErr
	}
	return sample{
		cpuPerCall:   used / time.Duration(calls),
		allocPerCall: float64(ms.Mallocs-mallocs) / float64(calls),
		perSec:       float64(calls) / wall.Seconds(),
	}, nil
}

// compare runs a and b in ABBA rounds per kind and prints the medians.
func compare(ctx context.Context, a, b target, rounds, calls, workers int) {
	kinds := make([]string, 0, len(a.ops))
	for k := range a.ops {
		if len(only) == 0 || only[k] {
			kinds = append(kinds, k)
		}
	}
	slices.Sort(kinds)
	fmt.Printf("\nA: %s\nB: %s\n\n", a.name, b.name)
	fmt.Println("| kind | A CPU/call | B CPU/call | B/A CPU (median of rounds) | A allocs/call | B allocs/call | A calls/s | B calls/s | B/A throughput (median of rounds) |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|")
	for _, k := range kinds {
		// Warm both up: connections opened, statements prepared.
		for _, t := range []target{a, b} {
			if _, err := measure(ctx, t.ops[k], calls/4, workers, 0); err != nil {
				fmt.Fprintf(os.Stderr, "%s %s: %v\n", t.name, k, err)
				return
			}
		}
		var as, bs []sample
		var cpuRatio, tputRatio []float64
		for r := range rounds {
			if ctx.Err() != nil {
				return
			}
			order := []*target{&a, &b}
			if r%2 == 1 {
				order = []*target{&b, &a}
			}
			got := map[*target]sample{}
			for _, t := range order {
				s, err := measure(ctx, t.ops[k], calls, workers, int64(r))
				if err != nil {
					fmt.Fprintf(os.Stderr, "%s %s: %v\n", t.name, k, err)
					return
				}
				got[t] = s
			}
			sa, sb := got[&a], got[&b]
			as, bs = append(as, sa), append(bs, sb)
			cpuRatio = append(cpuRatio, float64(sb.cpuPerCall)/float64(sa.cpuPerCall))
			tputRatio = append(tputRatio, sb.perSec/sa.perSec)
		}
		field := func(ss []sample, f func(sample) float64) float64 {
			v := make([]float64, len(ss))
			for i, s := range ss {
				v[i] = f(s)
			}
			return median(v)
		}
		cpuOf := func(s sample) float64 { return float64(s.cpuPerCall) }
		allocOf := func(s sample) float64 { return s.allocPerCall }
		tputOf := func(s sample) float64 { return s.perSec }
		fmt.Printf("| %s | %v | %v | %.3f | %.1f | %.1f | %.0f | %.0f | %.3f |\n", k,
			time.Duration(field(as, cpuOf)).Round(100*time.Nanosecond), time.Duration(field(bs, cpuOf)).Round(100*time.Nanosecond), median(cpuRatio),
			field(as, allocOf), field(bs, allocOf), field(as, tputOf), field(bs, tputOf), median(tputRatio))
		fmt.Printf("|   | rounds' B/A CPU: %s; throughput: %s |\n", fmtRatios(cpuRatio), fmtRatios(tputRatio))
	}
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func fmtRatios(v []float64) string {
	s := slices.Clone(v)
	slices.Sort(s)
	out := ""
	for i, x := range s {
		if i > 0 {
			out += " "
		}
		out += fmt.Sprintf("%.3f", x)
	}
	return out
}
