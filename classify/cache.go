package classify

import (
	"hash/maphash"
	"math/bits"
	"strings"
	"sync/atomic"
)

// ways is the associativity of the cache: a statement can live in any of
// the ways slots of its set.
const ways = 4

// entry is one cached decision. Entries are immutable once published.
type entry struct {
	sql string
	res Result
	gen uint64 // Classifier.gen when the decision was made
}

// cache is a bounded, lock-free, set-associative map from SQL text to
// decision. A lookup is a hash and at most ways atomic loads and string
// comparisons; it takes no lock and allocates nothing. An insert allocates
// one entry and overwrites a slot of the set: old statements are evicted
// without bookkeeping.
type cache struct {
	seed  maphash.Seed
	slots []atomic.Pointer[entry]
	mask  uint64 // number of sets - 1
	tick  atomic.Uint32
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
		seed:  maphash.MakeSeed(),
		slots: make([]atomic.Pointer[entry], n),
		mask:  uint64(n/ways - 1),
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
// slot, else a rotating victim.
func (c *cache) put(sql string, h uint64, res Result, gen uint64) {
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
	set[victim].Store(&entry{sql: strings.Clone(sql), res: res, gen: gen})
}
