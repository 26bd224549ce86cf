package pgxroute

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// TestEventLog keeps the newest events, newest first, and counts them all.
func TestEventLog(t *testing.T) {
	ev := func(i int) HealthEvent { return HealthEvent{Kind: EventEjected, Node: fmt.Sprint("n", i)} }
	// want returns the events from..to (inclusive, newest first).
	want := func(from, to int) []HealthEvent {
		var out []HealthEvent
		for i := to; i >= from; i-- {
			out = append(out, ev(i))
		}
		return out
	}
	tests := []struct {
		name string
		n    int // events traced: ev(0) .. ev(n-1)
		want []HealthEvent
	}{
		{"empty", 0, nil},
		{"one", 1, want(0, 0)},
		{"below the size", 7, want(0, 6)},
		{"exactly full", eventLogSize, want(0, eventLogSize-1)},
		{"wrapped once", eventLogSize + 3, want(3, eventLogSize+2)},
		{"wrapped many times", 5*eventLogSize + 11, want(4*eventLogSize+11, 5*eventLogSize+10)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newEventLog()
			for i := range tt.n {
				l.TraceHealth(context.Background(), ev(i))
			}
			got, total := l.recent()
			if total != uint64(tt.n) {
				t.Errorf("total = %d, want %d", total, tt.n)
			}
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("recent() (-want +got):\n%s", diff)
			}
		})
	}
}

// TestEventLogCopies: what recent returns is the caller's: later events do
// not change it.
func TestEventLogCopies(t *testing.T) {
	l := newEventLog()
	l.TraceHealth(context.Background(), HealthEvent{Node: "a"})
	got, _ := l.recent()
	for range eventLogSize {
		l.TraceHealth(context.Background(), HealthEvent{Node: "b"})
	}
	if got[0].Node != "a" {
		t.Fatalf("recent's copy changed to %q", got[0].Node)
	}
	var nilLog *eventLog
	if evs, total := nilLog.recent(); evs != nil || total != 0 {
		t.Fatalf("nil log: %v, %d", evs, total)
	}
}

// TestEventLogConcurrent traces from many goroutines while others read (run
// with -race): every event is counted and the log stays bounded.
func TestEventLogConcurrent(t *testing.T) {
	l := newEventLog()
	var wg sync.WaitGroup
	const writers, each = 8, 200
	for w := range writers {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for i := range each {
				l.TraceHealth(context.Background(), HealthEvent{Node: fmt.Sprint(w, "/", i)})
			}
		}()
		go func() {
			defer wg.Done()
			for range each {
				if evs, _ := l.recent(); len(evs) > eventLogSize {
					t.Errorf("recent returned %d events, more than %d", len(evs), eventLogSize)
					return
				}
			}
		}()
	}
	wg.Wait()
	evs, total := l.recent()
	if total != writers*each || len(evs) != eventLogSize {
		t.Fatalf("total %d, kept %d; want %d, %d", total, len(evs), writers*each, eventLogSize)
	}
}
