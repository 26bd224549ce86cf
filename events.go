package pgxroute

import (
	"context"
	"sync"
)

// eventLogSize is how many health events a pool keeps for its status page.
const eventLogSize = 50

// eventLog keeps the last health events of a pool, for StatusHandler: a
// HealthTracer (and a RouteTracer that does nothing with calls) that New
// chains after Config.Tracer. Health events are rare (an ejection, a
// re-admission, a new primary), so its mutex is taken by the prober or the
// failing call that reports one, and by the status page: never on the path
// of a call that succeeds.
type eventLog struct {
	mu    sync.Mutex
	buf   [eventLogSize]HealthEvent
	total uint64 // events seen; the newest is buf[(total-1)%eventLogSize]
}

// newEventLog returns an empty log.
func newEventLog() *eventLog { return &eventLog{} }

// TraceRouteStart implements RouteTracer: calls are not logged.
func (l *eventLog) TraceRouteStart(ctx context.Context, _ TraceRouteStartData) context.Context {
	return ctx
}

// TraceRouteEnd implements RouteTracer: calls are not logged.
func (l *eventLog) TraceRouteEnd(context.Context, TraceRouteEndData) {}

// TraceHealth implements HealthTracer: it keeps ev, dropping the oldest
// event when the log is full.
func (l *eventLog) TraceHealth(_ context.Context, ev HealthEvent) {
	l.mu.Lock()
	l.buf[l.total%eventLogSize] = ev
	l.total++
	l.mu.Unlock()
}

// recent returns a copy of the kept events, newest first, and how many
// events the log has seen in all (more than it returns once it is full).
// A nil log has none.
func (l *eventLog) recent() ([]HealthEvent, uint64) {
	if l == nil {
		return nil, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	n := min(l.total, eventLogSize)
	out := make([]HealthEvent, n)
	for i := range n {
		out[i] = l.buf[(l.total-1-i)%eventLogSize]
	}
	return out, l.total
}
