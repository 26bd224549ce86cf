package pgxroute

import (
	"context"
	"errors"
	"net"
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

// minProbeGap bounds how often a requested probe may follow the previous
// one: it starts at least minProbeGap after the previous probe started.
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
	var pc probeConn
	var sysid uint64
	defer pc.close()
	tick := time.NewTimer(p.healthCfg.Interval)
	defer tick.Stop()
	watch := time.NewTicker(stallWatch)
	defer watch.Stop()
	var st stall
	var took time.Duration    // a recent answered probe's time (an average)
	var silence time.Duration // a stall probe's: see stallTimeout
	for {
		if pc.conn != nil {
			if s := &p.pub.snap.Load().nodes[n.index]; s.down && pc.opened <= s.downAt {
				// Opened before a call's failure ejected the node: that
				// the server still answers its old sessions says nothing
				// of new ones (a server shutting down serves the sessions
				// it has and refuses new connections). Re-admission needs
				// a connection opened since.
				pc.close()
			}
		}
		start := time.Now()
		r, err := p.probeOnce(ctx, n, &pc, &sysid, silence)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			took = (3*took + time.Since(start)) / 4
		}
		silence = 0
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
					// judge the probe by a shorter silence of the server
					// than usual (stallTimeout), so that a node that froze
					// under calls is suspect (and its calls interrupted,
					// its reads run again elsewhere) in a few hundred
					// milliseconds rather than a whole Timeout.
					if pc.conn != nil && took > 0 {
						silence = p.stallTimeout(took)
					}
					break wait
				}
			case <-n.kick:
				// At once, unless the last probe started less than
				// minProbeGap ago: a burst of requests shares the probe in
				// flight (kick holds one request) and the next one.
				gap := minProbeGap - time.Since(start)
				if p.fullProbeGap.Load() {
					gap = minProbeGap
				}
				if gap > 0 {
					select {
					case <-ctx.Done():
						return
					case <-time.After(gap):
					}
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

// probeOnce runs one probe of n on pc, connecting first (within
// Health.Timeout) when pc has no connection. The probe's query fails, as
// unanswered, once the server has left it unanswered for silence (a stall
// probe's, or Health.Timeout when silence is 0: see watchSilence), and in
// any case after twice Health.Timeout. It returns what the probe saw;
// after a failure pc has no connection.
func (p *RoutedPool) probeOnce(ctx context.Context, n *node, pc *probeConn, sysid *uint64, silence time.Duration) (*probeResult, error) {
	seq := n.probesStarted.Add(1)
	if pc.conn == nil {
		if err := p.probeConnect(ctx, n, pc, sysid); err != nil {
			return nil, err
		}
		pc.opened = seq
	}
	if silence <= 0 {
		silence = p.healthCfg.Timeout
	}
	ctx, cancel := context.WithTimeout(ctx, 2*p.healthCfg.Timeout)
	defer cancel()
	if pc.wire != nil {
		var stop context.CancelCauseFunc
		ctx, stop = context.WithCancelCause(ctx)
		defer stop(nil)
		go pc.wire.watchSilence(ctx, stop, silence, pc.wire.arm())
	}
	pr, err := probe.Run(ctx, pc.conn)
	if err != nil {
		if cause := context.Cause(ctx); errors.Is(cause, errSilent) {
			err = cause
		}
		pc.close()
		return nil, err
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
	return r, nil
}

// probeConn is a prober's own connection to its node, and the socket under
// it (watched by stall probes).
type probeConn struct {
	conn   *pgx.Conn
	wire   *wire
	opened uint64 // the number of the probe that opened it
}

// probeConnect connects pc to n within Health.Timeout, and reads the
// node's system identifier (which fences read-your-writes tokens; a role
// without the right to read it leaves it unknown: 0).
func (p *RoutedPool) probeConnect(ctx context.Context, n *node, pc *probeConn, sysid *uint64) error {
	ctx, cancel := context.WithTimeout(ctx, p.healthCfg.Timeout)
	defer cancel()
	cc := n.pool.Config().ConnConfig.Copy()
	cc.ConnectTimeout = p.healthCfg.Timeout
	cc.RuntimeParams["application_name"] = "pgxroute-probe"
	if n.dial != nil {
		cc.DialFunc = n.dial // probes dial a suspect node too: they re-admit it
	}
	var w *wire
	dial := cc.DialFunc
	cc.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		w = newWire(c)
		return w, nil
	}
	conn, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		return err
	}
	pc.conn, pc.wire = conn, w
	var id int64
	if conn.QueryRow(ctx, "SELECT system_identifier FROM pg_control_system()", pgx.QueryExecModeSimpleProtocol).Scan(&id) == nil {
		*sysid = uint64(id)
	}
	return nil
}

// close closes pc's connection, if it has one.
func (pc *probeConn) close() {
	if pc.conn != nil {
		pc.conn.Close(context.Background())
	}
	pc.conn, pc.wire = nil, nil
}
