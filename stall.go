package pgxroute

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"time"
)

// The stall watch: a node that froze while serving calls (a stopped
// server, a blackholed path) answers nothing, and its calls would wait for
// ever. Between two probes each prober looks at its node's calls every
// stallWatch; when calls are in flight and none ends for two looks in a
// row, it probes at once, and judges that probe by a shorter silence of
// the server than Health.Timeout (stallTimeout). A node that leaves it
// unanswered that long is suspect: its calls are interrupted (interrupt.go)
// and its reads run again elsewhere, a few hundred milliseconds after it
// froze rather than a whole Timeout.
//
// The silence is the server's alone (watchSilence), for a stall probe as
// for a regular one (whose silence is Health.Timeout): it counts from the
// moment the probe's query was written to the socket, and ends when
// anything comes back, whether the prober has read it or it still waits in
// the socket's receive queue. A client that is late itself (a starved
// process, a CPU-throttled container, a long pause) is not taken for a
// frozen server; every probe is bounded by twice Health.Timeout.

// stallWatch is how often a prober looks for stalled calls between probes.
const stallWatch = 25 * time.Millisecond

// stallTimeout is the silence that makes a stall probe's node suspect: ten
// times the node's recent probe time, at least minStallTimeout, at most half
// of Health.Timeout. A healthy node, even one busy with long queries or
// merely slower, answers a probe on its own connection in milliseconds; a
// frozen or blackholed one does not answer at all.
func (p *RoutedPool) stallTimeout(took time.Duration) time.Duration {
	return min(max(10*took, minStallTimeout), p.healthCfg.Timeout/2)
}

// minStallTimeout is the least silence a stall probe allows: far above a
// healthy probe's few milliseconds, on a loaded machine too.
const minStallTimeout = 250 * time.Millisecond

// stall watches a node between two probes: calls in flight while none ended
// for two looks in a row (50-75 ms) is the sign of a node that hangs.
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

// wire is the socket under a prober's connection. It records when the
// prober last wrote to it and counts the reads that returned data, so that
// a probe can tell the server's silence from its own lateness. Only
// the prober's connection has one: calls' connections are the sockets
// their dialer returned (interrupt.go).
type wire struct {
	net.Conn
	born  time.Time
	sent  atomic.Int64  // time of the last write since arm, from born (+1); 0: none
	reads atomic.Uint64 // reads that returned data
}

func newWire(c net.Conn) *wire { return &wire{Conn: c, born: time.Now()} }

// Write records the time of the write, then writes.
func (w *wire) Write(b []byte) (int, error) {
	w.sent.Store(int64(time.Since(w.born)) + 1)
	return w.Conn.Write(b)
}

// Read reads, and counts a read that returned data.
func (w *wire) Read(b []byte) (int, error) {
	n, err := w.Conn.Read(b)
	if n > 0 {
		w.reads.Add(1)
	}
	return n, err
}

// arm forgets the writes before a probe and returns the reads so far, for
// watchSilence; the prober calls it before the probe writes anything.
func (w *wire) arm() uint64 {
	w.sent.Store(0)
	return w.reads.Load()
}

// errSilent is the cause of a probe ended by the server's silence.
var errSilent = errors.New("pgxroute: probe unanswered")

// watchSilence ends ctx (stop, with an error wrapping errSilent and
// context.DeadlineExceeded: an unanswered probe) once the server has left
// the probe's query unanswered for silence: nothing read since the query
// was written (reads is the count before it, from arm), and nothing waiting
// in the socket's receive queue. It returns when ctx ends, when the server
// answered (twice Health.Timeout bounds the rest: probeOnce), or when it
// stops ctx.
func (w *wire) watchSilence(ctx context.Context, stop context.CancelCauseFunc, silence time.Duration, reads uint64) {
	t := time.NewTimer(silence)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if w.reads.Load() != reads || pendingInput(w.Conn) {
			return // the server answered: the rest is the client's
		}
		sent := w.sent.Load()
		if sent == 0 {
			t.Reset(silence) // not written yet: the client is late, not the server
			continue
		}
		quiet := time.Since(w.born) - time.Duration(sent-1)
		if quiet < silence {
			t.Reset(silence - quiet)
			continue
		}
		stop(fmt.Errorf("%w for %v: %w", errSilent, quiet.Round(time.Millisecond), context.DeadlineExceeded))
		return
	}
}
