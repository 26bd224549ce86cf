package pgxroute

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"
)

// Discovery: Config.Discovery's loop. It asks the discoverer for the
// cluster's members every DiscoveryInterval (jittered), and sooner when the
// primary is lost or a member is ejected (discoverSoon), and makes them the
// default and read groups' nodes (setGroups): the first member in the
// default group, the others in the read group. A failure keeps the members.

// maxSoonSpread bounds the random delay of a call asked for at once.
const maxSoonSpread = 5 * time.Second

// defaultDiscoveryInterval is Config.DiscoveryInterval's default: with
// 1,000 application instances, about 33 requests a second to the source.
const defaultDiscoveryInterval = 30 * time.Second

// discovery is the state of Config.Discovery's loop.
type discovery struct {
	d        Discoverer
	interval time.Duration
	soon     chan struct{} // discoverSoon's
	mu       sync.Mutex    // guards stat
	stat     DiscoveryStat
}

// discoverStart makes the members Discovery reports the start when the
// configuration names no node of the default group (New fails when it
// cannot), and reports whether it did.
func (cfg *Config) discoverStart(ctx context.Context) (bool, error) {
	if cfg.Discovery == nil {
		return false, nil
	}
	def, read := cfg.DefaultGroup, cfg.ReadGroup
	if def == "" {
		def = DefaultGroupName
	}
	if read == "" {
		read = ReadGroupName
	}
	if cfg.Primary != "" || len(cfg.Groups[def]) > 0 {
		return false, nil
	}
	nodes, err := discover(ctx, cfg.Discovery, discoverTimeout(cfg.DiscoveryInterval))
	if err != nil {
		return false, fmt.Errorf("pgxroute: discovery of the cluster's members: %w", err)
	}
	groups := make(map[string][]Node, len(cfg.Groups)+2)
	for name, ns := range cfg.Groups {
		groups[name] = ns
	}
	groups[def] = nodes[:1]
	groups[read] = append(slices.Clone(nodes[1:]), groups[read]...)
	cfg.Groups = groups
	return true, nil
}

// discoverTimeout bounds one Discover call: the interval, at least 5s.
func discoverTimeout(interval time.Duration) time.Duration {
	return max(cmpOr(interval, defaultDiscoveryInterval), 5*time.Second)
}

func cmpOr(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// errNoMember is a discoverer's answer with no member: discovery never
// empties the cluster.
var errNoMember = errors.New("the discoverer returned no member")

// discover asks d for the members, within timeout.
func discover(ctx context.Context, d Discoverer, timeout time.Duration) ([]Node, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	nodes, err := d.Discover(ctx)
	if err == nil && len(nodes) == 0 {
		err = errNoMember
	}
	return nodes, err
}

// startDiscovery starts Config.Discovery's loop; its first call comes at
// once unless New just asked (discovered).
func (p *RoutedPool) startDiscovery(cfg Config, discovered bool) {
	p.discovery = &discovery{d: cfg.Discovery, interval: cmpOr(cfg.DiscoveryInterval, defaultDiscoveryInterval), soon: make(chan struct{}, 1)}
	if discovered {
		p.discovery.stat = DiscoveryStat{Calls: 1, LastSuccessAt: time.Now(), Members: memberNames(p.pub.snap.Load().mem)}
	}
	p.bg.Add(1)
	go p.runDiscovery(p.bgCtx, p.discovery, !discovered)
}

// discoverSoon asks the discovery loop, if any, for a call soon: after a
// random delay of up to a tenth of the interval (3s by default; at most
// maxSoonSpread), and at most one per tenth of the interval, so that a thousand instances that
// lose the primary at once do not ask at once (Patroni's REST API refused
// about a tenth of 1,000 requests spread over 1s, none over 5s: see
// docs/membership.md). Routing does not wait for it: the probes find a new
// primary among the members already known. It never blocks.
func (p *RoutedPool) discoverSoon() {
	if p.discovery == nil {
		return
	}
	select {
	case p.discovery.soon <- struct{}{}:
	default:
	}
}

// jitter returns d changed by up to a fifth either way, at random.
func jitter(d time.Duration) time.Duration {
	return d*4/5 + rand.N(d*2/5+1)
}

// runDiscovery is the discovery loop.
func (p *RoutedPool) runDiscovery(ctx context.Context, ds *discovery, now bool) {
	defer p.bg.Done()
	gap := ds.interval / 10
	spread := min(gap, maxSoonSpread)
	first := jitter(ds.interval)
	if now {
		first = 0
	}
	timer := time.NewTimer(first)
	defer timer.Stop()
	var last time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-ds.soon:
			wait := rand.N(spread + 1)
			if since := time.Since(last); since < gap {
				wait = max(wait, gap-since)
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
		}
		last = time.Now()
		p.discoverOnce(ctx, ds)
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(jitter(ds.interval))
	}
}

// discoverOnce asks the discoverer once and applies its answer.
func (p *RoutedPool) discoverOnce(ctx context.Context, ds *discovery) {
	nodes, err := discover(ctx, ds.d, discoverTimeout(ds.interval))
	if ctx.Err() != nil {
		return
	}
	if err == nil {
		lists := map[*group][]Node{p.defaultGroup: nodes[:1]}
		if p.readGroup != nil {
			lists[p.readGroup] = nodes[1:]
		} else if len(nodes) > 1 {
			err = fmt.Errorf("%w: %d members but no read group", ErrConfig, len(nodes))
		}
		if err == nil {
			err = p.setGroups(ctx, lists)
		}
		if ctx.Err() != nil || errors.Is(err, ErrClosed) {
			return // the pool is closing
		}
	}
	now := time.Now()
	ds.mu.Lock()
	ds.stat.Calls++
	if err != nil {
		ds.stat.Failures++
		ds.stat.LastError, ds.stat.LastErrorAt = redactedError(err), now
	} else {
		ds.stat.LastSuccessAt = now
		ds.stat.Members = memberNames(p.pub.snap.Load().mem)
	}
	ds.mu.Unlock()
	if err != nil {
		p.report(HealthEvent{Kind: EventDiscoveryFailed, Err: redactedError(err), Detail: "the members stay as they were", At: now})
	}
}

// discoveryStat returns a copy of the discovery's state, or nil.
func (p *RoutedPool) discoveryStat() *DiscoveryStat {
	ds := p.discovery
	if ds == nil {
		return nil
	}
	ds.mu.Lock()
	defer ds.mu.Unlock()
	st := ds.stat
	st.Members = slices.Clone(st.Members)
	return &st
}

// memberNames names the cluster's members in mem.
func memberNames(mem *membership) []string {
	out := make([]string, 0, len(mem.topo.members))
	for _, i := range mem.topo.members {
		out = append(out, mem.nodes[i].name)
	}
	return out
}
