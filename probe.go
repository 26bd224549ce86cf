package pgxroute

import (
	"context"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgxroute/pgxroute/internal/probe"
	"github.com/pgxroute/pgxroute/stickiness"
)

// The probers: one goroutine per node with a pgxpool, probing it every
// Health.Interval (FailoverInterval while no primary is known) on a
// connection of its own, sooner when asked (requestProbe) or when its calls
// stall, and handing each outcome to the publisher (cluster.go).

// probers runs the pool's probers; ctx ends them all (Close), and each
// node's own stopProbe ends its prober (a removed node).
type probers struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// minProbeGap bounds how often a requested probe may follow the previous one.
const minProbeGap = 2 * time.Millisecond

// startProbers starts a prober for every node of nodes with a pgxpool (a
// Backend is never probed: it is always up).
func (p *RoutedPool) startProbers(nodes []*node) {
	p.probers.ctx, p.probers.cancel = context.WithCancel(context.Background())
	for _, n := range nodes {
		if n.pool != nil {
			p.startProber(n)
		}
	}
}

// startProber starts node n's prober (newNode made its channels).
func (p *RoutedPool) startProber(n *node) {
	var ctx context.Context
	ctx, n.stopProbe = context.WithCancel(p.probers.ctx)
	p.probers.wg.Add(1)
	go func() {
		defer close(n.proberExited)
		p.runProber(ctx, n)
	}()
}

// stopProber stops node n's prober, if it has one, without waiting.
func (n *node) stopProber() {
	if n.stopProbe != nil {
		n.stopProbe()
	}
}

// waitProber waits for node n's prober, if it has one, to return.
func (n *node) waitProber() {
	if n.proberExited != nil {
		<-n.proberExited
	}
}

// stopProbers stops the probers and waits for them.
func (p *RoutedPool) stopProbers() {
	if p.probers.cancel != nil {
		p.probers.cancel()
		p.probers.wg.Wait()
	}
}

// requestProbe asks n's prober for a probe as soon as its minimum gap
// allows. It never blocks.
func (n *node) requestProbe() {
	if n.kick == nil {
		return
	}
	select {
	case n.kick <- struct{}{}:
	default:
	}
}

// runProber probes n every interval, and sooner when asked, on a connection
// of its own.
func (p *RoutedPool) runProber(ctx context.Context, n *node) {
	defer p.probers.wg.Done()
	var conn *pgx.Conn
	var sysid uint64
	defer func() {
		if conn != nil {
			conn.Close(context.Background())
		}
	}()
	tick := time.NewTimer(p.healthCfg.Interval)
	defer tick.Stop()
	watch := time.NewTicker(stallWatch)
	defer watch.Stop()
	var st stall
	var took time.Duration // a recent answered probe's time (an average)
	timeout := p.healthCfg.Timeout
	for {
		var r *probeResult
		var err error
		start := time.Now()
		conn, r, err = p.probeOnce(ctx, n, conn, &sysid, timeout)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			took = (3*took + time.Since(start)) / 4
		}
		timeout = p.healthCfg.Timeout
		if err != nil {
			p.apply(n, outcome{kind: probeFailed, err: err})
		} else {
			p.apply(n, outcome{kind: probeAnswered, probe: r})
		}
		tick.Reset(p.probeInterval())
	wait:
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				break wait
			case <-watch.C:
				if st.stalled(n) {
					// Calls wait and none ends: probe now, and, on the
					// prober's open connection (no connect to pay for),
					// give the probe less time than usual (stallTimeout),
					// so that a node that froze under calls is suspect (and
					// its calls interrupted, its reads run again elsewhere)
					// in a few hundred milliseconds rather than a whole
					// Timeout.
					if conn != nil && took > 0 {
						timeout = p.stallTimeout(took)
					}
					break wait
				}
			case <-n.kick:
				select {
				case <-ctx.Done():
					return
				case <-time.After(minProbeGap):
				}
				break wait
			}
		}
	}
}

// probeInterval is the time to the next regular probe: Interval, or
// FailoverInterval while the cluster has no known primary.
func (p *RoutedPool) probeInterval() time.Duration {
	if p.followsRoles && p.pub.snap.Load().primary < 0 {
		return p.healthCfg.FailoverInterval
	}
	return p.healthCfg.Interval
}

// stallWatch is how often a prober looks for stalled calls between probes.
const stallWatch = 25 * time.Millisecond

// stallTimeout is the timeout of a probe the stall watch starts: ten times
// the node's recent probe time, at least minStallTimeout, at most half of
// Health.Timeout. A healthy node, even one busy with long queries or merely
// slower, answers a probe on its own connection in milliseconds; a frozen
// or blackholed one does not answer at all.
func (p *RoutedPool) stallTimeout(took time.Duration) time.Duration {
	return min(max(10*took, minStallTimeout), p.healthCfg.Timeout/2)
}

// minStallTimeout is the least time a stall probe gets: far above a healthy
// probe's few milliseconds, on a loaded machine too.
const minStallTimeout = 250 * time.Millisecond

// stall watches a node between two probes: calls in flight while none ended
// for two looks in a row (50-75 ms) is the sign of a node that hangs, and
// starts a probe at once rather than at the next interval, with a shorter
// timeout (stallTimeout), so that a node that froze while serving calls is
// suspect a few hundred milliseconds later.
// It fires once per quiet spell: a long query alone on a node costs one
// early probe, not one every look.
type stall struct {
	ended uint64
	quiet int
	fired bool
}

func (s *stall) stalled(n *node) bool {
	ended := n.ended.Load()
	if ended != s.ended || n.inFlight() == 0 {
		s.ended, s.quiet, s.fired = ended, 0, false
		return false
	}
	s.quiet++
	if s.quiet < 2 || s.fired {
		return false
	}
	s.fired = true
	return true
}

// probeOnce runs one probe of n within timeout, connecting first when conn
// is nil. It returns the connection to reuse (nil after a failure) and what
// the probe saw.
func (p *RoutedPool) probeOnce(ctx context.Context, n *node, conn *pgx.Conn, sysid *uint64, timeout time.Duration) (*pgx.Conn, *probeResult, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	seq := n.probesStarted.Add(1)
	if conn == nil {
		cc := n.pool.Config().ConnConfig.Copy()
		cc.ConnectTimeout = timeout
		cc.RuntimeParams["application_name"] = "pgxroute-probe"
		if n.dial != nil {
			cc.DialFunc = n.dial // probes dial a suspect node too: they re-admit it
		}
		var err error
		if conn, err = pgx.ConnectConfig(ctx, cc); err != nil {
			return nil, nil, err
		}
		// The system identifier fences read-your-writes tokens; a role
		// without the right to read it leaves it unknown (0).
		var id int64
		if conn.QueryRow(ctx, "SELECT system_identifier FROM pg_control_system()", pgx.QueryExecModeSimpleProtocol).Scan(&id) == nil {
			*sysid = uint64(id)
		}
	}
	pr, err := probe.Run(ctx, conn)
	if err != nil {
		conn.Close(context.Background())
		return nil, nil, err
	}
	r := &probeResult{seq: seq, recovery: pr.Recovery, lsn: pr.LSN, timeline: pr.Timeline, lag: pr.Lag, noPosition: pr.NoPosition}
	if !r.recovery {
		o := stickiness.Origin{SystemID: *sysid, Timeline: r.timeline}
		// The same origin keeps its pointer: scopes compare origins by it.
		if prev := p.pub.snap.Load().nodes[n.index].probe; prev != nil && prev.origin != nil && *prev.origin == o {
			r.origin = prev.origin
		} else {
			r.origin = &o
		}
	}
	return conn, r, nil
}
