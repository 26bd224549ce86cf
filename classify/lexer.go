package classify

import "strings"

// tokKind is the lexical class of a token.
type tokKind uint8

const (
	tEOF    tokKind = iota // end of input (or of a lexical error, see lexer.err)
	tIdent                 // unquoted identifier or keyword
	tQIdent                // "quoted identifier"; start/end exclude the quotes
	tUIdent                // U&"quoted identifier" with Unicode escapes
	tString                // any string constant: '', E'', U&'', B'', X'', N'', $$..$$
	tNumber                // numeric constant
	tParam                 // positional parameter $n
	tOp                    // one byte of punctuation or operator, in op
)

// keyword identifies the few keywords the rules look at. Every other
// identifier is kwNone.
type keyword uint8

const (
	kwNone keyword = iota
	// Clause keywords that can follow neither a comma nor end a statement
	// (kwOn to kwIntersect); kwFor to kwReturning end a FROM clause.
	kwOn
	kwFrom
	kwFor
	kwInto
	kwWhere
	kwUnion
	kwGroup
	kwOrder
	kwLimit
	kwHaving
	kwOffset
	kwExcept
	kwWindow
	kwIntersect
	kwFetch
	kwReturning
	// The other keywords the parenthesis levels' checks look at (kwOn to
	// kwTablesample).
	kwJoin
	kwOver
	kwDistinct
	kwVariadic
	kwTablesample
	// Others.
	kwAs
	kwNo
	kwKey
	kwShow
	kwWith
	kwMerge
	kwShare
	kwTable
	kwDelete
	kwInsert
	kwSelect
	kwUpdate
	kwValues
	kwAnalyze
	kwExplain
	kwVerbose
	// Operator and CASE keywords, so that the rules that look for names
	// that are no keywords skip them without a lookup in the full list.
	kwAnd
	kwOr
	kwNot
	kwIs
	kwIn
	kwLike
	kwIlike
	kwBetween
	kwCase
	kwWhen
	kwThen
	kwElse
	kwEnd
	kwAsc
	kwDesc
	kwSimilar
)

// isClause reports whether k starts a clause: it can follow neither a comma
// nor end a statement.
func (k keyword) isClause() bool { return k >= kwOn && k <= kwIntersect }

// inFrames reports whether k is one of the keywords the checks of
// parenthesis levels (call arguments, FROM clauses) look at.
func (k keyword) inFrames() bool { return k-kwOn <= kwTablesample-kwOn }

// endsFrom reports whether k ends the FROM clause of a SELECT.
func (k keyword) endsFrom() bool { return k >= kwFor && k <= kwReturning }

// token is one lexical token: a byte range of the source and its class.
type token struct {
	start, end int
	kind       tokKind
	kw         keyword // for tIdent only
	op         byte    // for tOp only
}

func (t token) isOp(c byte) bool { return t.kind == tOp && t.op == c }

// isName reports whether t can name a function or a schema.
func (t token) isName() bool { return t.kind == tIdent || t.kind == tQIdent || t.kind == tUIdent }

// lexer splits PostgreSQL SQL into tokens the way PostgreSQL's own scanner
// (src/backend/parser/scan.l) does, without allocating: comments (nested
// block comments included) and whitespace are skipped, and every kind of
// string constant and quoted identifier is one token, so that nothing inside
// them is ever seen as a keyword.
type lexer struct {
	src string
	pos int
	// scsOff lexes as if standard_conforming_strings were off: backslash
	// escapes in plain '...' and N'...' strings.
	scsOff bool
	// backslash records that a plain string held a backslash, so that the
	// text lexes differently with standard_conforming_strings off.
	backslash bool
	// err is the reason of a lexical error; the lexer then returns tEOF.
	err string
	// junk records a numeric constant followed at once by an identifier
	// character ("1into", "0x", "100_"): PostgreSQL 15 and later reject it
	// ("trailing junk after numeric literal"). The rules make such a read a
	// Write; it is not a lexical error so that a write found in the same
	// statement keeps its own reason.
	junk bool
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// isIdentStart is scan.l's ident_start: [A-Za-z\200-\377_].
func isIdentStart(c byte) bool {
	return (c|0x20) >= 'a' && (c|0x20) <= 'z' || c == '_' || c >= 0x80
}

// isIdentCont is scan.l's ident_cont: [A-Za-z\200-\377_0-9\$].
func isIdentCont(c byte) bool { return isIdentStart(c) || isDigit(c) || c == '$' }

// isDolqCont is scan.l's dolq_cont: [A-Za-z\200-\377_0-9] (no dollar).
func isDolqCont(c byte) bool { return isIdentStart(c) || isDigit(c) }

func (l *lexer) fail(reason string) token {
	if l.err == "" {
		l.err = reason
	}
	l.pos = len(l.src)
	return token{start: len(l.src), end: len(l.src)}
}

// next returns the next token, skipping whitespace and comments.
func (l *lexer) next() token {
	src := l.src
	i := l.pos
	for i < len(src) {
		c := src[i]
		if isSpace(c) {
			i++
			continue
		}
		if c == '-' && i+1 < len(src) && src[i+1] == '-' {
			i += 2
			for i < len(src) && src[i] != '\n' && src[i] != '\r' {
				i++
			}
			continue
		}
		if c == '/' && i+1 < len(src) && src[i+1] == '*' {
			j, ok := skipBlockComment(src, i+2)
			if !ok {
				return l.fail("unterminated comment")
			}
			i = j
			continue
		}
		break
	}
	if i >= len(src) {
		l.pos = i
		return token{start: i, end: i}
	}
	c := src[i]
	switch {
	case isIdentStart(c):
		// One-letter prefixes of string constants: E'', B'', X'', N'',
		// U&'' and U&"". scan.l matches them as longer tokens than the
		// one-letter identifier, so they win only when the quote follows
		// immediately.
		if i+1 < len(src) {
			switch n := src[i+1]; c | 0x20 {
			case 'e':
				if n == '\'' {
					return l.str(i, i+2, true)
				}
			case 'b', 'x':
				if n == '\'' {
					return l.str(i, i+2, false)
				}
			case 'n':
				if n == '\'' {
					return l.str(i, i+2, l.scsOff)
				}
			case 'u':
				if n == '&' && i+2 < len(src) {
					switch src[i+2] {
					case '\'':
						return l.str(i, i+3, false)
					case '"':
						t := l.qident(i + 3)
						if t.kind == tQIdent {
							t.kind = tUIdent
						}
						return t
					}
				}
			}
		}
		j := i + 1
		for j < len(src) && isIdentCont(src[j]) {
			j++
		}
		l.pos = j
		return token{start: i, end: j, kind: tIdent, kw: lookupKeyword(src[i:j])}
	case c == '\'':
		return l.str(i, i+1, l.scsOff)
	case c == '"':
		return l.qident(i + 1)
	case c == '$':
		if i+1 < len(src) && isDigit(src[i+1]) {
			j := i + 2
			for j < len(src) && isDigit(src[j]) {
				j++
			}
			l.pos = j
			return token{start: i, end: j, kind: tParam}
		}
		// Dollar quoting: $tag$ ... $tag$ with tag empty or
		// {dolq_start}{dolq_cont}*.
		j := i + 1
		if j < len(src) && isIdentStart(src[j]) {
			j++
			for j < len(src) && isDolqCont(src[j]) {
				j++
			}
		}
		if j < len(src) && src[j] == '$' {
			delim := src[i : j+1]
			k := strings.Index(src[j+1:], delim)
			if k < 0 {
				return l.fail("unterminated dollar-quoted string")
			}
			end := j + 1 + k + len(delim)
			l.pos = end
			return token{start: i, end: end, kind: tString}
		}
		l.pos = i + 1
		return token{start: i, end: i + 1, kind: tOp, op: '$'}
	case isDigit(c) || c == '.' && i+1 < len(src) && isDigit(src[i+1]):
		return l.number(i)
	case c == 0:
		return l.fail("NUL byte")
	}
	l.pos = i + 1
	return token{start: i, end: i + 1, kind: tOp, op: c}
}

// skipBlockComment returns the index just past the end of the block comment
// whose body starts at i (after the opening slash-star). Block comments nest.
func skipBlockComment(src string, i int) (int, bool) {
	depth := 1
	for i+1 < len(src) {
		switch {
		case src[i] == '*' && src[i+1] == '/':
			depth--
			i += 2
			if depth == 0 {
				return i, true
			}
		case src[i] == '/' && src[i+1] == '*':
			depth++
			i += 2
		default:
			i++
		}
	}
	return 0, false
}

// str lexes a quoted string constant whose body starts at body; escapes
// selects backslash escapes (E” strings, or plain strings with
// standard_conforming_strings off). A doubled quote is a quote.
func (l *lexer) str(start, body int, escapes bool) token {
	src := l.src
	plain := !escapes && src[start] == '\''
	i := body
	for {
		k := strings.IndexByte(src[i:], '\'')
		if k < 0 {
			return l.fail("unterminated quoted string")
		}
		seg := src[i : i+k]
		if escapes {
			// A backslash escapes the next byte, whichever it is.
			if b := strings.IndexByte(seg, '\\'); b >= 0 {
				i += b + 2
				if i > len(src) {
					return l.fail("unterminated quoted string")
				}
				continue
			}
		} else if plain && !l.backslash && strings.IndexByte(seg, '\\') >= 0 {
			l.backslash = true
		}
		i += k + 1
		if i < len(src) && src[i] == '\'' {
			i++ // doubled quote
			continue
		}
		l.pos = i
		return token{start: start, end: i, kind: tString}
	}
}

// qident lexes a quoted identifier whose body starts at body. The token's
// range is the body, without the quotes; doubled quotes stay doubled.
func (l *lexer) qident(body int) token {
	src := l.src
	i := body
	for {
		k := strings.IndexByte(src[i:], '"')
		if k < 0 {
			return l.fail("unterminated quoted identifier")
		}
		i += k + 1
		if i < len(src) && src[i] == '"' {
			i++
			continue
		}
		if i-1 == body {
			return l.fail("zero-length delimited identifier") // scan.l refuses ""
		}
		l.pos = i
		return token{start: body, end: i - 1, kind: tQIdent}
	}
}

// number lexes a numeric constant the way PostgreSQL 16's scanner does
// (underscores only between digits). It never swallows letters: an older
// server reads "1into" as "1 into", a newer one rejects it; a constant
// followed at once by an identifier character sets l.junk.
func (l *lexer) number(i int) token {
	src := l.src
	start := i
	if src[i] == '0' && i+2 < len(src) {
		var ok func(byte) bool
		switch src[i+1] | 0x20 {
		case 'x':
			ok = func(c byte) bool { return isDigit(c) || (c|0x20) >= 'a' && (c|0x20) <= 'f' }
		case 'o':
			ok = func(c byte) bool { return c >= '0' && c <= '7' }
		case 'b':
			ok = func(c byte) bool { return c == '0' || c == '1' }
		}
		if ok != nil {
			if j := digits(src, i+2, ok); j > i+2 {
				l.pos = j
				l.checkJunk(j)
				return token{start: start, end: j, kind: tNumber}
			}
		}
	}
	i = digits(src, i, isDigit)
	if i < len(src) && src[i] == '.' && !(i+1 < len(src) && src[i+1] == '.') {
		i = digits(src, i+1, isDigit)
	}
	if i+1 < len(src) && (src[i]|0x20) == 'e' {
		j := i + 1
		if src[j] == '+' || src[j] == '-' {
			j++
		}
		if j < len(src) && isDigit(src[j]) {
			i = digits(src, j, isDigit)
		} else if j > i+1 {
			l.junk = true // "1e+": scan.l's realfail
		}
	}
	l.pos = i
	l.checkJunk(i)
	return token{start: start, end: i, kind: tNumber}
}

// digits returns the end of a run of digits (by ok) starting at i, with
// single underscores allowed between digits: scan.l's (_?digit)+ after a
// first digit, or after a 0x/0o/0b prefix.
func digits(src string, i int, ok func(byte) bool) int {
	for i < len(src) {
		switch {
		case ok(src[i]):
			i++
		case src[i] == '_' && i+1 < len(src) && ok(src[i+1]) && i > 0 && (ok(src[i-1]) || src[i-1]|0x20 == 'x' || src[i-1]|0x20 == 'o' || src[i-1]|0x20 == 'b'):
			i += 2
		default:
			return i
		}
	}
	return i
}

// checkJunk sets l.junk when an identifier character follows a numeric
// constant ending at i.
func (l *lexer) checkJunk(i int) {
	if i < len(l.src) && isIdentStart(l.src[i]) {
		l.junk = true
	}
}

// eqFold reports whether the identifier s equals the lower-case ASCII
// keyword kw, ignoring ASCII case. For identifier bytes, c|0x20 is the lower
// case of a letter and never turns a non-letter into a letter.
func eqFold(s, kw string) bool {
	if len(s) != len(kw) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i]|0x20 != kw[i] {
			return false
		}
	}
	return true
}

// lookupKeyword returns the keyword an unquoted identifier spells, if the
// rules care about it. It runs on every identifier: a switch on the length,
// then on the first letter, leaves at most two comparisons.
func lookupKeyword(s string) keyword {
	if len(s) < 2 || len(s) > 11 {
		return kwNone
	}
	c := s[0] | 0x20
	var w string
	var k keyword
	switch len(s) {
	case 2:
		switch c {
		case 'a':
			w, k = "as", kwAs
		case 'n':
			w, k = "no", kwNo
		case 'o':
			if s[1]|0x20 == 'r' {
				w, k = "or", kwOr
			} else {
				w, k = "on", kwOn
			}
		case 'i':
			if s[1]|0x20 == 's' {
				w, k = "is", kwIs
			} else {
				w, k = "in", kwIn
			}
		}
	case 3:
		switch c {
		case 'a':
			if s[1]|0x20 == 's' {
				w, k = "asc", kwAsc
			} else {
				w, k = "and", kwAnd
			}
		case 'e':
			w, k = "end", kwEnd
		case 'f':
			w, k = "for", kwFor
		case 'k':
			w, k = "key", kwKey
		case 'n':
			w, k = "not", kwNot
		}
	case 4:
		switch c {
		case 'c':
			w, k = "case", kwCase
		case 'd':
			w, k = "desc", kwDesc
		case 'e':
			w, k = "else", kwElse
		case 'f':
			w, k = "from", kwFrom
		case 'i':
			w, k = "into", kwInto
		case 'j':
			w, k = "join", kwJoin
		case 'l':
			w, k = "like", kwLike
		case 'o':
			w, k = "over", kwOver
		case 's':
			w, k = "show", kwShow
		case 't':
			w, k = "then", kwThen
		case 'w':
			if s[2]|0x20 == 'e' {
				w, k = "when", kwWhen
			} else {
				w, k = "with", kwWith
			}
		}
	case 5:
		switch c {
		case 'i':
			w, k = "ilike", kwIlike
		case 'f':
			w, k = "fetch", kwFetch
		case 'g':
			w, k = "group", kwGroup
		case 'l':
			w, k = "limit", kwLimit
		case 'm':
			w, k = "merge", kwMerge
		case 'o':
			w, k = "order", kwOrder
		case 's':
			w, k = "share", kwShare
		case 't':
			w, k = "table", kwTable
		case 'u':
			w, k = "union", kwUnion
		case 'w':
			w, k = "where", kwWhere
		}
	case 6:
		switch c {
		case 'd':
			w, k = "delete", kwDelete
		case 'e':
			w, k = "except", kwExcept
		case 'h':
			w, k = "having", kwHaving
		case 'i':
			w, k = "insert", kwInsert
		case 'o':
			w, k = "offset", kwOffset
		case 's':
			w, k = "select", kwSelect
		case 'u':
			w, k = "update", kwUpdate
		case 'v':
			w, k = "values", kwValues
		case 'w':
			w, k = "window", kwWindow
		}
	case 7:
		switch c {
		case 'b':
			w, k = "between", kwBetween
		case 'a':
			if eqFold(s, "analyse") {
				return kwAnalyze
			}
			w, k = "analyze", kwAnalyze
		case 'e':
			w, k = "explain", kwExplain
		case 's':
			w, k = "similar", kwSimilar
		case 'v':
			w, k = "verbose", kwVerbose
		}
	case 8:
		switch c {
		case 'd':
			w, k = "distinct", kwDistinct
		case 'v':
			w, k = "variadic", kwVariadic
		}
	case 9:
		switch c {
		case 'i':
			w, k = "intersect", kwIntersect
		case 'r':
			w, k = "returning", kwReturning
		}
	case 11:
		if c == 't' {
			w, k = "tablesample", kwTablesample
		}
	}
	if k != kwNone && eqFold(s, w) {
		return k
	}
	return kwNone
}
