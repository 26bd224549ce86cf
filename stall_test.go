package pgxroute

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"
)

// socketPair returns the two ends of a loopback TCP connection: the
// client's, watched as a prober's wire, and the server's.
func socketPair(t *testing.T) (*wire, net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			t.Error(err)
		}
		accepted <- c
	}()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s := <-accepted
	if s == nil {
		t.FailNow()
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	return newWire(c), s
}

// watch runs watchSilence on w as a stall probe would, and returns a
// channel that gives the probe's cause once the watch returned (nil: it
// did not end the probe).
func watch(ctx context.Context, w *wire, silence time.Duration) (context.Context, <-chan error) {
	ctx, stop := context.WithCancelCause(ctx)
	done := make(chan error, 1)
	reads := w.arm()
	go func() {
		w.watchSilence(ctx, stop, silence, reads)
		done <- context.Cause(ctx)
		stop(nil)
	}()
	return ctx, done
}

// TestWatchSilence: a stall probe ends as unanswered when the server is
// silent, and not when the client is late: before it wrote its query, or
// after the answer arrived but before it read it.
func TestWatchSilence(t *testing.T) {
	const silence = 20 * time.Millisecond
	query, answer := []byte("SELECT 1"), []byte("1")

	t.Run("the server is silent", func(t *testing.T) {
		w, _ := socketPair(t)
		_, done := watch(context.Background(), w, silence)
		if _, err := w.Write(query); err != nil {
			t.Fatal(err)
		}
		err := <-done
		if !errors.Is(err, errSilent) || !isTimeout(err) {
			t.Fatalf("cause %v, want errSilent, counted as a probe's timeout", err)
		}
	})

	// The server answers; the client reads the answer, or not (a starved
	// prober: the kernel holds it). Either way the watch ends without ending
	// the probe.
	for _, read := range []bool{false, true} {
		t.Run(map[bool]string{false: "the answer waits unread", true: "the answer was read"}[read], func(t *testing.T) {
			w, s := socketPair(t)
			_, done := watch(context.Background(), w, silence)
			if _, err := w.Write(query); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Write(answer); err != nil {
				t.Fatal(err)
			}
			if read {
				if _, err := w.Read(make([]byte, 8)); err != nil {
					t.Fatal(err)
				}
			}
			if err := <-done; err != nil {
				t.Fatalf("the server answered, and the watch ended the probe: %v", err)
			}
		})
	}

	t.Run("the query is written late", func(t *testing.T) {
		w, _ := socketPair(t)
		ctx, done := watch(context.Background(), w, silence)
		// Several silences pass before the client writes: its lateness,
		// not the server's silence.
		time.Sleep(5 * silence)
		if err := context.Cause(ctx); err != nil {
			t.Fatalf("the probe ended before its query was written: %v", err)
		}
		if _, err := w.Write(query); err != nil {
			t.Fatal(err)
		}
		if err := <-done; !errors.Is(err, errSilent) {
			t.Fatalf("cause %v, want errSilent once the written query went unanswered", err)
		}
	})

	t.Run("the probe ends first", func(t *testing.T) {
		w, _ := socketPair(t)
		ctx, cancel := context.WithCancel(context.Background())
		_, done := watch(ctx, w, time.Hour)
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("cause %v, want the probe's own end", err)
		}
	})
}
