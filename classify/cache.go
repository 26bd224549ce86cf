package classify

import (
	"hash/maphash"
	"math/bits"
	"sync/atomic"
	"unsafe"
)

// ways is the associativity of the cache: a statement can live in any of
// the ways slots of its set.
const ways = 4

// entry is one cached decision. Entries are immutable once published.
type entry struct {
	sql string // the caller's string, as pgx's statement cache keeps it
	res Result
	gen uint64 // Classifier.gen when the decision was made
}

// cache is a bounded, lock-free, set-associative map from SQL text to
// decision. A lookup is a hash and at most ways atomic loads and string
// comparisons; it takes no lock and allocates nothing. An insert allocates
// one entry and overwrites a slot of the set: old statements are evicted
// without bookkeeping.
//
// In front of it, recent maps a string's identity (the address of its
// bytes and its length) to its entry: a statement passed again as the same
// string, as a constant in the program's code always is, is found with no
// hash of its text and no comparison of its bytes. The entry holds that
// very string, so its bytes cannot be freed and reused while the entry
// names them: the same address and length are the same text (Go strings
// are immutable).
type cache struct {
	seed   maphash.Seed
	slots  []atomic.Pointer[entry]
	mask   uint64 // number of sets - 1
	tick   atomic.Uint32
	recent []atomic.Pointer[entry]
	shift  uint // 64 - log2(len(recent))
}

// recentSlot is the slot of recent for sql's identity.
func (c *cache) recentSlot(sql string) *atomic.Pointer[entry] {
	a := uint64(uintptr(unsafe.Pointer(unsafe.StringData(sql))))
	return &c.recent[(a*0x9e3779b97f4a7c15)>>c.shift] // Fibonacci hashing of the address
}

// same reports whether a and b are the same string: the same bytes at the
// same address.
func same(a, b string) bool {
	return len(a) == len(b) && unsafe.StringData(a) == unsafe.StringData(b)
}

func newCache(size int) *cache {
	if size < ways {
		size = ways
	}
	if size > 1<<24 {
		size = 1 << 24
	}
	n := 1 << bits.Len(uint(size-1)) // power of two >= size
	return &cache{
		seed:   maphash.MakeSeed(),
		slots:  make([]atomic.Pointer[entry], n),
		mask:   uint64(n/ways - 1),
		recent: make([]atomic.Pointer[entry], n),
		shift:  uint(64 - bits.Len(uint(n-1))),
	}
}

func (c *cache) set(h uint64) []atomic.Pointer[entry] {
	i := (h & c.mask) * ways
	return c.slots[i : i+ways : i+ways]
}

// get returns the entry for sql, whatever its generation.
func (c *cache) get(sql string, h uint64) *entry {
	set := c.set(h)
	for i := range set {
		if e := set[i].Load(); e != nil && e.sql == sql {
			return e
		}
	}
	return nil
}

// put stores a decision, replacing the entry of the same text, else an empty
// slot, else a rotating victim, and returns the new entry.
func (c *cache) put(sql string, h uint64, res Result, gen uint64) *entry {
	set := c.set(h)
	victim := -1
	for i := range set {
		e := set[i].Load()
		if e == nil {
			if victim < 0 {
				victim = i
			}
			continue
		}
		if e.sql == sql {
			victim = i
			break
		}
	}
	if victim < 0 {
		victim = int(c.tick.Add(1) % ways)
	}
	e := &entry{sql: sql, res: res, gen: gen}
	set[victim].Store(e)
	return e
}
