// Package classify decides, for any PostgreSQL statement, whether it is safe
// to send to a read replica.
//
// The classifier is asymmetric: it answers [Read] only when the statement is
// provably read-only and [Write] for everything else, including everything
// it does not understand. A write sent to a replica fails, or worse runs a
// side effect (nextval, an advisory lock, a data-modifying CTE) in the wrong
// place; a read sent to the primary only costs capacity.
//
// Read: SELECT, VALUES, TABLE, SHOW, WITH ... SELECT, EXPLAIN of a read
// (also EXPLAIN ANALYZE) and parenthesised forms of these, unless
//
//   - a locking clause (FOR UPDATE, FOR NO KEY UPDATE, FOR SHARE, FOR KEY
//     SHARE) appears anywhere, also in subqueries and CTEs: [LockingRead];
//   - it is SELECT ... INTO, which creates a table: Write;
//   - a CTE at any depth is INSERT, UPDATE, DELETE or MERGE: Write;
//   - it calls a function with side effects (nextval, setval,
//     pg_advisory_*, set_config, pg_notify, ... and [Options.WriteFunctions]):
//     Write;
//   - it is one of several statements of which any is not a Read: Write.
//
// Everything else is Write: DML, DDL, CALL, DO, COPY, LOCK, SET, LISTEN,
// NOTIFY, PREPARE, transaction control, VACUUM, an empty string, and
// whatever is not recognised.
//
// The decision is lexical and exact for PostgreSQL's lexical rules: line and
// nested block comments, '...' with doubled quotes, E'...' with backslash
// escapes, U&'...', dollar quoting, "quoted identifiers" and
// case-insensitive keywords. A keyword inside a string, a comment or a
// quoted identifier changes nothing. Classification never panics, takes
// time linear in the input and allocates nothing. Subpackage pgquery makes
// the same decisions on PostgreSQL's own parse tree; the tests check the
// lexical classifier against it on PostgreSQL's regression suite.
//
// The package function [Classify] is pure. A [Classifier] made by [New] adds
// user write functions, a lock-free bounded cache keyed by the SQL text, and
// [Classifier.MarkWrite] to remember statements a replica refused.
package classify

import (
	"fmt"
	"hash/maphash"
	"strings"
	"sync"
	"sync/atomic"
)

// Kind is where a statement may run.
type Kind uint8

const (
	// Write must run on the primary. It is the zero value: what is not
	// known to be a read is a write.
	Write Kind = iota
	// Read is safe for a read replica.
	Read
	// LockingRead is a SELECT with a locking clause (FOR UPDATE, FOR NO KEY
	// UPDATE, FOR SHARE, FOR KEY SHARE): it writes no data but takes row
	// locks, so it must run on the primary.
	LockingRead
)

// String returns "write", "read" or "locking read".
func (k Kind) String() string {
	switch k {
	case Write:
		return "write"
	case Read:
		return "read"
	case LockingRead:
		return "locking read"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// ReplicaSafe reports whether a statement of this kind may run on a read
// replica: only a Read may.
func (k Kind) ReplicaSafe() bool { return k == Read }

// Result is the decision on a statement.
type Result struct {
	Kind Kind
	// Reason is short and human: "SELECT", "INSERT", "data-modifying CTE",
	// "calls nextval", "FOR UPDATE", "2 statements", "unrecognized". It is
	// a static string: producing it allocates nothing.
	Reason string
}

// String returns the kind and the reason, as in "write (calls nextval)".
func (r Result) String() string { return r.Kind.String() + " (" + r.Reason + ")" }

// StatementClassifier is what decides statements: [*Classifier], the
// parser-based classifier of subpackage pgquery, and [Func]([Classify]).
type StatementClassifier interface {
	Classify(sql string) Result
}

// Func adapts a function to [StatementClassifier]:
// classify.Func(classify.Classify) uses the default rules without a cache.
type Func func(sql string) Result

// Classify calls f(sql).
func (f Func) Classify(sql string) Result { return f(sql) }

var (
	_ StatementClassifier = (*Classifier)(nil)
	_ StatementClassifier = Func(nil)
)

// Classify decides sql with the default rules: the built-in write functions
// only, no cache. It is a pure function, safe for concurrent use, and
// allocates nothing.
func Classify(sql string) Result {
	var r rules
	return r.classify(sql)
}

// DefaultCacheSize is the number of statements a [Classifier] caches when
// [Options.CacheSize] is 0.
const DefaultCacheSize = 4096

// MaxCachedLen is the length above which a statement is classified without
// being cached, so that the cache's memory stays bounded.
const MaxCachedLen = 16 << 10

// maxMarked bounds the statements remembered by MarkWrite.
const maxMarked = 1 << 16

// Options configures a [Classifier].
type Options struct {
	// WriteFunctions names functions with side effects beyond the built-in
	// ones, so that a read calling them is a Write. Names match
	// case-insensitively, as unquoted identifiers do in PostgreSQL; a part
	// written in double quotes ("Fn") matches its exact text, as quoted
	// identifiers do. An entry "fn" matches fn(...) in any schema; an entry
	// "app.fn" matches app.fn(...) and also an unqualified fn(...), which
	// the search_path could resolve to app.fn. A trailing argument list
	// ("fn(int)") is ignored. Entries [Options.Validate] rejects are
	// ignored. Functions not listed are assumed read-only.
	WriteFunctions []string
	// CacheSize is the number of statements cached by their text: 0 means
	// DefaultCacheSize, a negative size disables the cache. The size is
	// rounded up to a power of two.
	CacheSize int
}

// Validate reports the entries of WriteFunctions that cannot be understood
// as a function name.
func (o Options) Validate() error {
	var bad []string
	for _, e := range o.WriteFunctions {
		if _, _, ok := parseFuncName(e); !ok {
			bad = append(bad, fmt.Sprintf("%q", e))
		}
	}
	if bad != nil {
		return fmt.Errorf("classify: invalid write function name(s): %s", strings.Join(bad, ", "))
	}
	return nil
}

// Classifier decides statements with the default rules plus the user's
// write functions, caches decisions by SQL text, and remembers statements
// marked as writes. It is safe for concurrent use; make it with [New].
type Classifier struct {
	rules rules
	cache *cache // nil when disabled

	// gen changes whenever MarkWrite adds a statement: cached entries of an
	// older generation are checked against marked before use.
	gen    atomic.Uint64
	nmark  atomic.Int64
	mu     sync.RWMutex
	marked map[string]Result
}

// New returns a Classifier with opts.
func New(opts Options) *Classifier {
	c := &Classifier{}
	for _, e := range opts.WriteFunctions {
		schema, name, ok := parseFuncName(e)
		if !ok {
			continue
		}
		if c.rules.user == nil {
			c.rules.user = make(map[string]*userFunc)
		}
		f := c.rules.user[name]
		if f == nil {
			f = &userFunc{reason: "calls " + name}
			c.rules.user[name] = f
		}
		if schema == "" {
			f.anySchema = true
			f.reason = "calls " + name
		} else {
			f.schemas = append(f.schemas, schema)
			if !f.anySchema && len(f.schemas) == 1 {
				f.reason = "calls " + schema + "." + name
			}
		}
	}
	if opts.CacheSize >= 0 {
		size := opts.CacheSize
		if size == 0 {
			size = DefaultCacheSize
		}
		c.cache = newCache(size)
	}
	return c
}

// Classify decides sql. A statement marked by [Classifier.MarkWrite] is a
// Write. A cache hit costs no allocation and takes no lock.
func (c *Classifier) Classify(sql string) Result {
	if c.cache == nil {
		return c.decide(sql)
	}
	gen := c.gen.Load()
	r := c.cache.recentSlot(sql)
	if e := r.Load(); e != nil && e.gen == gen && same(e.sql, sql) {
		return e.res
	}
	h := maphash.String(c.cache.seed, sql)
	if e := c.cache.get(sql, h); e != nil {
		if e.gen == gen {
			if same(e.sql, sql) {
				r.Store(e)
			}
			return e.res
		}
		// Statements were marked since this entry was stored.
		res := e.res
		if m, ok := c.markedResult(sql); ok {
			res = m
		}
		r.Store(c.cache.put(sql, h, res, gen))
		return res
	}
	res := c.decide(sql)
	if len(sql) <= MaxCachedLen {
		r.Store(c.cache.put(sql, h, res, gen))
	}
	return res
}

// decide classifies sql without the cache.
func (c *Classifier) decide(sql string) Result {
	if m, ok := c.markedResult(sql); ok {
		return m
	}
	return c.rules.classify(sql)
}

func (c *Classifier) markedResult(sql string) (Result, bool) {
	if c.nmark.Load() == 0 {
		return Result{}, false
	}
	c.mu.RLock()
	res, ok := c.marked[sql]
	c.mu.RUnlock()
	return res, ok
}

// MarkWrite makes the exact text sql a Write from now on, with reason (for
// instance "refused by replica (25006)"; "marked write" when empty): the
// router calls it when a replica refused the statement as a write. The mark
// is kept apart from the cache, so eviction never loses it. At most 65536
// statements are remembered; later marks are ignored.
func (c *Classifier) MarkWrite(sql string, reason string) {
	if reason == "" {
		reason = "marked write"
	}
	c.mu.Lock()
	if _, ok := c.marked[sql]; !ok {
		if len(c.marked) >= maxMarked {
			c.mu.Unlock()
			return
		}
		if c.marked == nil {
			c.marked = make(map[string]Result)
		}
		c.marked[strings.Clone(sql)] = Result{Kind: Write, Reason: reason}
		c.nmark.Add(1)
	} else {
		c.marked[sql] = Result{Kind: Write, Reason: reason}
	}
	c.mu.Unlock()
	// Publish after the map holds the mark: whoever sees the new generation
	// finds the mark.
	c.gen.Add(1)
}

// WriteFunction reports whether calling the function name, in schema when
// not empty, is a write under c's rules, and why. Names are taken as the
// server resolves them: unquoted names already folded to lower case, quoted
// names exact. Subpackage pgquery uses it to apply the same function list
// to the parse tree.
func (c *Classifier) WriteFunction(schema, name string) (reason string, ok bool) {
	n := clipName([]byte(name))
	s := clipName([]byte(schema))
	return c.rules.lookupFunc(s, n, schema != "")
}
