package stickiness_test

import (
	"sync"
	"testing"
	"time"

	"github.com/pgxroute/pgxroute/stickiness"
)

func TestModes(t *testing.T) {
	t0 := time.Unix(1000, 0)
	tests := []struct {
		mode   stickiness.Mode
		name   string
		before bool          // sticky before any write
		after  bool          // sticky right after a write
		later  time.Duration // when to look again
		still  bool          // sticky then
	}{
		{stickiness.Sticky, "sticky-scope", false, true, time.Hour, true},
		{stickiness.Off, "off", false, false, time.Hour, false},
		{stickiness.For(time.Second), "sticky-for(1s)", false, true, 999 * time.Millisecond, true},
		{stickiness.For(time.Second), "sticky-for(1s)", false, true, time.Second, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.mode.String(); got != tc.name {
				t.Errorf("String() = %q, want %q", got, tc.name)
			}
			if err := tc.mode.Validate(); err != nil {
				t.Fatal(err)
			}
			s := stickiness.NewScope()
			if got := s.Sticky(tc.mode, t0); got != tc.before {
				t.Errorf("before a write: %v, want %v", got, tc.before)
			}
			s.NoteWrite(t0)
			if got := s.Sticky(tc.mode, t0); got != tc.after {
				t.Errorf("right after a write: %v, want %v", got, tc.after)
			}
			if got := s.Sticky(tc.mode, t0.Add(tc.later)); got != tc.still {
				t.Errorf("%v after a write: %v, want %v", tc.later, got, tc.still)
			}
			s.Reset()
			if s.Sticky(tc.mode, t0) || s.Wrote() {
				t.Error("sticky after Reset")
			}
		})
	}
}

func TestInvalidModes(t *testing.T) {
	for _, m := range []stickiness.Mode{stickiness.For(0), stickiness.For(-time.Second), stickiness.Mode(-7)} {
		if m.Validate() == nil {
			t.Errorf("mode %d validated", int64(m))
		}
	}
	if d, ok := stickiness.For(2 * time.Second).Window(); !ok || d != 2*time.Second {
		t.Errorf("Window() = %v, %v", d, ok)
	}
	if _, ok := stickiness.ReadYourWrites.Window(); ok {
		t.Error("ReadYourWrites has a window")
	}
}

func TestReadYourWritesPositions(t *testing.T) {
	s := stickiness.NewScope()
	m := stickiness.ReadYourWrites
	if s.Sticky(m, time.Time{}) {
		t.Fatal("fresh scope waits for a position")
	}
	s.Await(5)
	if !s.Sticky(m, time.Time{}) || s.Pending() != 5 {
		t.Fatalf("after Await(5): pending %d", s.Pending())
	}
	s.Resolve(4, 100) // an older probe: started before the write
	if s.Pending() != 5 || s.Need() != 0 {
		t.Fatalf("probe 4 resolved a wait for probe 5: pending %d need %d", s.Pending(), s.Need())
	}
	s.Resolve(6, 200) // a later probe is as good
	if s.Pending() != 0 || s.Need() != 200 {
		t.Fatalf("after probe 6: pending %d need %d", s.Pending(), s.Need())
	}
	s.Require(150) // never lowers
	if s.Need() != 200 {
		t.Fatalf("Require lowered the position to %d", s.Need())
	}
	s.Require(300)
	if s.Need() != 300 {
		t.Fatalf("Require(300) gave %d", s.Need())
	}
	s.Await(7)
	s.Await(6) // never lowers
	if s.Pending() != 7 {
		t.Fatalf("Await lowered the probe to %d", s.Pending())
	}
}

func TestScopeConcurrent(t *testing.T) {
	s := stickiness.NewScope()
	var wg sync.WaitGroup
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 1000; i++ {
				s.NoteWrite(time.Unix(int64(g*1000+i), 0))
				s.Require(uint64(g*1000 + i))
				s.Await(uint64(i))
				_ = s.Sticky(stickiness.ReadYourWrites, time.Now())
			}
		}()
	}
	wg.Wait()
	if s.Need() != 15999 || s.Pending() != 999 || !s.Wrote() {
		t.Fatalf("need %d pending %d wrote %v", s.Need(), s.Pending(), s.Wrote())
	}
}
