// Package stickiness holds what a unit of work (a scope: an HTTP request, a
// job) remembers of its own writes, and the consistency modes that decide,
// from that memory, whether the scope's next read may go to a replica.
//
// A Scope is shared by pointer by every goroutine of its unit of work; every
// method is safe for concurrent use and takes no lock.
package stickiness

import (
	"fmt"
	"math"
	"sync/atomic"
	"time"
)

// Mode is a consistency mode: how long a scope's reads avoid replicas after
// the scope wrote. The zero value is Sticky.
type Mode int64

const (
	// Sticky sends every read of a scope to the primary once the scope has
	// written, until the scope ends or is reset. It is the zero value.
	Sticky Mode = 0
	// Off remembers nothing: reads go to replicas right after a write and may
	// not see it.
	Off Mode = -1
	// ReadYourWrites lets a replica serve a scope's reads as soon as it is
	// known to have replayed the scope's last write (by WAL position), and
	// sends them to the primary until then.
	ReadYourWrites Mode = -2

	invalid Mode = math.MinInt64
)

// For returns the mode that sends a scope's reads to the primary for d after
// each of its writes, then to replicas again. d must be positive; otherwise
// the mode is invalid and Validate reports it.
func For(d time.Duration) Mode {
	if d <= 0 {
		return invalid
	}
	return Mode(d)
}

// Window returns the duration of a For mode, and whether m is one.
func (m Mode) Window() (time.Duration, bool) {
	if m > 0 {
		return time.Duration(m), true
	}
	return 0, false
}

// Validate reports whether m is one of the modes.
func (m Mode) Validate() error {
	switch {
	case m >= 0, m == Off, m == ReadYourWrites:
		return nil
	case m == invalid:
		return fmt.Errorf("stickiness: StickyFor needs a positive duration")
	default:
		return fmt.Errorf("stickiness: unknown mode %d", int64(m))
	}
}

// String names the mode: "sticky-scope", "off", "read-your-writes" or
// "sticky-for(1s)".
func (m Mode) String() string {
	switch {
	case m == Sticky:
		return "sticky-scope"
	case m == Off:
		return "off"
	case m == ReadYourWrites:
		return "read-your-writes"
	case m > 0:
		return "sticky-for(" + time.Duration(m).String() + ")"
	default:
		return "invalid"
	}
}

// Scope is the memory of one unit of work. The zero value is an empty scope
// ready to use. Share it by pointer.
type Scope struct {
	sticky    atomic.Bool
	lastWrite atomic.Int64 // unix nanoseconds of the end of the last write

	// Read-your-writes state: WAL positions.
	need    atomic.Uint64 // a replica must have replayed this position
	pending atomic.Uint64 // the position is that of the first primary probe with this sequence number or later; 0: none
	origin  atomic.Pointer[Origin]
	token   atomic.Pointer[Token] // a token not yet checked against the primary
}

// Token is a position carried from another scope (another request, another
// process): what Scope.Position returns and a new scope starts from.
type Token struct {
	Origin Origin
	// LSN is the position a replica must have replayed; 0 with Pending.
	LSN uint64
	// Pending means the other scope wrote but its position was not known
	// yet: any primary position read after the token was made covers it.
	Pending bool
}

// Origin identifies the WAL history a position belongs to: the system
// identifier of the cluster and the timeline. Positions of different origins
// cannot be compared.
type Origin struct {
	SystemID uint64
	Timeline uint32
}

// NewScope returns an empty scope.
func NewScope() *Scope { return new(Scope) }

// NoteWrite records that the scope wrote, ending at now.
func (s *Scope) NoteWrite(now time.Time) {
	s.sticky.Store(true)
	ns := now.UnixNano()
	for {
		old := s.lastWrite.Load()
		if old >= ns || s.lastWrite.CompareAndSwap(old, ns) {
			return
		}
	}
}

// Wrote reports whether the scope wrote since it began or was last reset.
func (s *Scope) Wrote() bool { return s.sticky.Load() }

// Sticky reports whether mode m sends the scope's reads to the primary at
// time now. For ReadYourWrites it reports whether the scope has a write whose
// position a replica must reach first (see Need and Pending).
func (s *Scope) Sticky(m Mode, now time.Time) bool {
	switch {
	case m == Sticky:
		return s.sticky.Load()
	case m > 0:
		last := s.lastWrite.Load()
		return last != 0 && now.UnixNano()-last < int64(m)
	case m == ReadYourWrites:
		return s.need.Load() != 0 || s.pending.Load() != 0
	default:
		return false
	}
}

// Reset forgets the scope's writes and positions.
func (s *Scope) Reset() {
	s.sticky.Store(false)
	s.lastWrite.Store(0)
	s.need.Store(0)
	s.pending.Store(0)
}

// Need returns the WAL position a replica must have replayed to serve the
// scope, or 0.
func (s *Scope) Need() uint64 { return s.need.Load() }

// Require raises the position a replica must have replayed to at least lsn.
func (s *Scope) Require(lsn uint64) { maxStore(&s.need, lsn) }

// Pending returns the sequence number of the primary probe whose position
// the scope waits for, or 0.
func (s *Scope) Pending() uint64 { return s.pending.Load() }

// Await records that the scope's position is that of the first primary
// probe numbered seq or later (a probe that started after the write ended).
func (s *Scope) Await(seq uint64) { maxStore(&s.pending, seq) }

// Resolve tells the scope that probe seq (or a later one) read position lsn:
// if the scope waited for probe seq or an earlier one, it now needs lsn.
func (s *Scope) Resolve(seq, lsn uint64) {
	p := s.pending.Load()
	if p == 0 || p > seq {
		return
	}
	s.Require(lsn)
	s.pending.CompareAndSwap(p, 0)
}

// Origin returns the WAL history the scope's positions belong to, or nil.
func (s *Scope) Origin() *Origin { return s.origin.Load() }

// SetOrigin sets the WAL history of the scope's positions.
func (s *Scope) SetOrigin(o *Origin) { s.origin.Store(o) }

// SetToken gives the scope a position carried from elsewhere, to be checked
// against the primary before it is trusted (see TakeToken).
func (s *Scope) SetToken(t *Token) { s.token.Store(t) }

// TakeToken returns the scope's unchecked token, once, or nil.
func (s *Scope) TakeToken() *Token {
	if s.token.Load() == nil {
		return nil
	}
	return s.token.Swap(nil)
}

// Position returns what a token of the scope carries: its origin, the
// position replicas must reach, and whether a write's position is still
// unknown. ok is false when the scope has nothing to carry.
func (s *Scope) Position() (t Token, ok bool) {
	if tok := s.token.Load(); tok != nil {
		return *tok, true // not yet checked: pass it on as it came
	}
	t.LSN, t.Pending = s.need.Load(), s.pending.Load() != 0
	if o := s.origin.Load(); o != nil {
		t.Origin = *o
	}
	return t, t.LSN != 0 || t.Pending
}

// maxStore raises v to x.
func maxStore(v *atomic.Uint64, x uint64) {
	for {
		old := v.Load()
		if old >= x || v.CompareAndSwap(old, x) {
			return
		}
	}
}
