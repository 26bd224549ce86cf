package pgxroute

import (
	"context"
	"errors"
	"sync"
	"testing"
)

// TestSlabsHandOutEachValueOnce takes values from one slabs from several
// goroutines across many slabs' worth and checks that no value is handed
// out twice and that each comes zeroed.
func TestSlabsHandOutEachValueOnce(t *testing.T) {
	var s slabs[[4]int]
	const workers, each = 8, 5*slabSize + 3
	got := make([][]*[4]int, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				v := s.get()
				if *v != [4]int{} {
					t.Errorf("value not zeroed: %v", *v)
				}
				v[0] = w + 1 // a second holder of v would see it
				got[w] = append(got[w], v)
			}
		}()
	}
	wg.Wait()
	seen := map[*[4]int]int{}
	for w, vs := range got {
		for _, v := range vs {
			if prev, dup := seen[v]; dup {
				t.Fatalf("value %p handed to workers %d and %d", v, prev, w)
			}
			seen[v] = w
			if v[0] != w+1 {
				t.Fatalf("value of worker %d overwritten by worker %d", w, v[0]-1)
			}
		}
	}
	if len(seen) != workers*each {
		t.Fatalf("%d distinct values, want %d", len(seen), workers*each)
	}
}

// TestWrappersOutliveTheirCall keeps a call's rows past their end, as
// callers may: they keep answering for their own call however many calls
// came after. A QueryRow's row scanned again (before another call took it
// from the pool) fails instead of scanning nothing.
func TestWrappersOutliveTheirCall(t *testing.T) {
	p, _ := scripted(t, nil)
	ctx := context.Background()
	row := p.QueryRow(ctx, "SELECT 1")
	var v int
	if err := row.Scan(&v); err != nil || v != 7 {
		t.Fatalf("Scan: %v, %d", err, v)
	}
	if err := row.Scan(&v); !errors.Is(err, errScannedTwice) {
		t.Errorf("second Scan: %v, want errScannedTwice", err)
	}
	rows, err := p.Query(ctx, "SELECT 1")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
	}
	rows.Close()
	// Many calls later (more than a slab), the first rows are intact.
	for range 3 * slabSize {
		if err := p.QueryRow(ctx, "SELECT 1").Scan(&v); err != nil {
			t.Fatal(err)
		}
		r, _ := p.Query(ctx, "SELECT 1")
		r.Close()
	}
	if err := rows.Err(); err != nil || rows.Next() || rows.CommandTag().String() != "SELECT 1" {
		t.Errorf("closed rows: Err %v, CommandTag %q", err, rows.CommandTag())
	}
	for _, n := range p.listedNodes() {
		if f := n.inFlight(); f != 0 {
			t.Errorf("%s: %d calls in flight", n.name, f)
		}
	}
}
