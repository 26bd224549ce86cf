package classify

import (
	"strings"
	"testing"
	"unsafe"
)

// TestCacheIdentity checks the cache's front, which finds a statement by
// its string's address and length: strings that share their first byte's
// address but not their length are told apart, the same text in another
// string gets the same answer, and MarkWrite reaches statements found by
// identity.
func TestCacheIdentity(t *testing.T) {
	c := New(Options{CacheSize: 64})
	text := strings.Clone("SELECT 1; DELETE FROM t") // on the heap: its slices share its address
	prefix := text[:len("SELECT 1")]                 // same address, shorter
	if unsafe.StringData(prefix) != unsafe.StringData(text) {
		t.Fatal("the prefix does not share the text's address")
	}
	for range 3 { // the second and third find them by identity
		if got := c.Classify(prefix); got.Kind != Read {
			t.Fatalf("%q: %v", prefix, got)
		}
		if got := c.Classify(text); got.Kind != Write {
			t.Fatalf("%q: %v", text, got)
		}
	}
	copied := strings.Clone(prefix) // same text, another address
	if got := c.Classify(copied); got.Kind != Read {
		t.Fatalf("copy of %q: %v", prefix, got)
	}
	c.MarkWrite(copied, "marked")
	if got := c.Classify(prefix); got.Kind != Write || got.Reason != "marked" {
		t.Fatalf("%q after MarkWrite: %v", prefix, got)
	}
}

// TestCacheIdentityAllocations checks that a statement found by identity,
// or by its text from another string, costs no allocation.
func TestCacheIdentityAllocations(t *testing.T) {
	c := New(Options{})
	sql := "SELECT * FROM t WHERE id = $1"
	other := strings.Clone(sql)
	c.Classify(sql)
	if n := testing.AllocsPerRun(100, func() { c.Classify(sql); c.Classify(other) }); n != 0 {
		t.Errorf("%v allocations", n)
	}
}
