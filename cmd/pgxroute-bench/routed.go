package main

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgxroute/pgxroute"
)

// routedHealth is the -health flag: RoutedPool's health checks as configured
// by default, or off.
var routedHealth = true

func routedConfig(s servers, conns int, replicas bool) pgxroute.Config {
	cfg := pgxroute.Config{
		Primary:  s.primary,
		Strategy: pgxroute.RoundRobin,
		Health:   pgxroute.HealthConfig{Disabled: !routedHealth},
		ConfigurePool: func(_, _ string, pc *pgxpool.Config) {
			sizePool(pc, conns)
		},
	}
	if replicas {
		for i, r := range s.replicas {
			cfg.Replicas = append(cfg.Replicas, pgxroute.Node{Name: fmt.Sprintf("replica%d", i+1), ConnString: r})
		}
	}
	return cfg
}

func openRoutedWith(ctx context.Context, cfg pgxroute.Config, conns int) (target, error) {
	p, err := pgxroute.New(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := fillRouted(ctx, p, conns); err != nil {
		p.Close()
		return nil, err
	}
	return &pgxTarget{r: p, w: p, closers: []func(){p.Close}}, nil
}

// openRouted is RoutedPool over the primary and the replicas: reads to the
// replicas round-robin, writes to the primary.
func openRouted(ctx context.Context, s servers, conns int) (target, error) {
	return openRoutedWith(ctx, routedConfig(s, conns, true), conns)
}

// openRoutedSingle is RoutedPool with the primary alone: every call is
// classified and routed, and lands where raw-primary's do.
func openRoutedSingle(ctx context.Context, s servers, conns int) (target, error) {
	return openRoutedWith(ctx, routedConfig(s, conns, false), conns)
}

// fillRouted waits until every node's pool holds its MinConns connections.
func fillRouted(ctx context.Context, p *pgxroute.RoutedPool, conns int) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		full := true
		for _, g := range p.Stat().Groups {
			for _, n := range g.Nodes {
				if n.Pool != nil && n.Pool.TotalConns() < int32(conns) {
					full = false
				}
			}
		}
		if full {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the pools did not fill to %d connections in 15s", conns)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// measureDecision times RoutedPool.Route, the routing decision alone
// (classification, cached, and the pick of a node), for the point select and
// for the update, on a pool over the primary and the replicas.
func measureDecision(ctx context.Context, s servers) (*decisionInfo, error) {
	cfg := routedConfig(s, 1, true)
	cfg.ConfigurePool = nil // lazy pools: Route opens no connection
	cfg.Health = pgxroute.HealthConfig{Disabled: true}
	p, err := pgxroute.New(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer p.Close()
	timeRoute := func(sql string) (float64, error) {
		const n = 1_000_000
		for range n / 10 { // warm the classifier's cache
			if _, err := p.Route(ctx, sql); err != nil {
				return 0, err
			}
		}
		best := 0.0
		for range 3 {
			t0 := time.Now()
			for range n {
				_, _ = p.Route(ctx, sql)
			}
			ns := float64(time.Since(t0).Nanoseconds()) / n
			if best == 0 || ns < best {
				best = ns
			}
		}
		return best, nil
	}
	d := &decisionInfo{}
	if d.ReadNs, err = timeRoute(sqlPoint); err != nil {
		return nil, err
	}
	if d.WriteNs, err = timeRoute(sqlWrite); err != nil {
		return nil, err
	}
	return d, nil
}
