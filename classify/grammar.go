package classify

import "strings"

// The read grammar: a recursive-descent recognizer for the part of
// PostgreSQL 17's grammar (src/backend/parser/gram.y) that reads are
// written in. A statement the rules call Read is a Read only if this
// grammar accepts it; anything it does not accept is a Write ("syntax
// error"). It is written to be sound, not complete: every production it
// accepts is one of gram.y's, with gram.y's precedences, its
// non-associative operators, its one-token lookahead for bare column
// labels and the checks gram.y's actions make (multiple ORDER BY or LIMIT
// clauses, window frames, WITHIN GROUP). Syntax it does not know (see
// docs/classify.md) is rejected, which only sends such a read to the
// primary.
// It allocates nothing: the parser is a value on the stack and a token is
// a range of the source.

const maxGrammarDepth = 1000 // nesting beyond this is rejected (bison's stack, YYMAXDEPTH 10000, refuses deep nesting too)

// Operator classes of a tOp token, after joining its characters the way
// scan.l's operator rule does.
const (
	opSelf    uint8 = iota + 1 // one of scan.l's self characters: , ( ) [ ] . ; : + - * / % ^ < > =
	opLE                       // <=
	opGE                       // >=
	opNE                       // <> or !=
	opArrow                    // =>
	opCast                     // ::
	opAssign                   // :=
	opGeneric                  // any other operator: Op
	opBad                      // what no statement of the read grammar contains: .., $, \, {, ...
)

// tokInfo is a token as the recognizer sees it.
type tokInfo struct {
	t   token
	op  uint8 // for tOp: the operator class
	ch  byte  // for opSelf: the character; for tString: its first byte
	w   [maxKeywordLen]byte
	wn  int // length of w; 0 when t is no unquoted identifier of keyword length
	cat kwCategory
	la  bool // a keyword that scan.l's lookahead filter turns into a *_LA token: no name
}

// syn is the recognizer's state: the lexer, the current token and, once
// asked for, the next one.
type syn struct {
	tokInfo
	l        lexer
	noLA     bool // a lookahead's own scanner: no lookahead of its own
	depth    int
	hasAhead bool
	ahead    tokInfo // the next token, when hasAhead
	aheadL   lexer   // the lexer after it
	rowAt    int     // 1 + where the last row of two (ROW(a, b) or (a, b)) parsed as an operand began
	rowN     int     // the length of the row parenBody parsed last
}

// grammarAccepts reports whether every statement of sql is one the read
// grammar accepts, lexing as the server would with
// standard_conforming_strings off when scsOff is set.
func grammarAccepts(sql string, scsOff bool) bool {
	p := syn{l: lexer{src: sql, scsOff: scsOff}}
	p.next()
	for {
		for p.self(';') {
			p.next()
		}
		if p.t.kind == tEOF {
			return p.l.err == ""
		}
		if !p.statement() {
			return false
		}
		if p.t.kind != tEOF && !p.self(';') {
			return false
		}
	}
}

// next moves to the next token.
func (p *syn) next() {
	if p.hasAhead {
		p.tokInfo, p.l, p.hasAhead = p.ahead, p.aheadL, false
		return
	}
	p.scan()
}

// scan lexes the next token into p.tokInfo.
func (p *syn) scan() {
	t := p.l.next()
	p.t, p.op, p.ch, p.wn, p.cat, p.la = t, 0, 0, 0, notKeyword, false
	switch t.kind {
	case tIdent:
		s := p.l.src[t.start:t.end]
		if len(s) <= maxKeywordLen {
			p.wn = len(lowerWord(&p.w, s))
			p.cat = lowerKeywordCategory(p.w[:p.wn])
			if p.cat != notKeyword && !p.noLA {
				p.lookahead()
			}
		}
	case tUIdent:
		// parser.c's base_yylex folds U&"..." UESCAPE '...' into one
		// identifier; UESCAPE must be followed by a plain string. (The
		// rules check the escapes themselves.)
		q := p.l
		if u := q.next(); u.kind == tIdent && eqFold(q.src[u.start:u.end], "uescape") {
			if e := q.next(); e.kind == tString && q.src[e.start] == '\'' {
				p.l, p.t.end = q, e.end
			} else {
				p.t.kind, p.op = tOp, opBad
			}
		}
	case tOp:
		p.operator()
	case tString:
		src := p.l.src
		p.ch = src[t.start]
		switch src[t.start] | 0x20 {
		case 'e':
			// (Plain strings, which escape too on a server with
			// standard_conforming_strings off, are not checked: the
			// parser the classifier answers for has it on.)
			if !validEscapes(src[t.start:t.end]) {
				p.t.kind, p.op = tOp, opBad // no rule takes it
			}
		case 'b', 'x':
			// A bit string has no doubled quote: B'''' is B'' then ''.
			if strings.IndexByte(src[t.start+2:t.end-1], '\'') >= 0 {
				p.t.kind, p.op = tOp, opBad
			}
		}
	}
}

// validEscapes reports whether a string constant with backslash escapes
// (E'...', or any '...' with standard_conforming_strings off) stands for
// text the server accepts: valid UTF-8 without NUL, counting what octal
// (\101), hexadecimal (\x41) and Unicode (\u0041, \U00000041) escapes
// make, with Unicode escapes valid code points and surrogates in pairs.
func validEscapes(tok string) bool {
	i := strings.IndexByte(tok, '\'')
	body := tok[i+1 : len(tok)-1]
	var u utf8State
	high := false // the last escape was a high surrogate
	for k := 0; k < len(body); k++ {
		c := body[k]
		if c != '\\' {
			if high || !u.feed(c) {
				return false
			}
			if c == '\'' {
				k++ // a doubled quote
			}
			continue
		}
		k++
		if k >= len(body) {
			return false
		}
		c = body[k]
		switch {
		case c >= '0' && c <= '7':
			v := int(c - '0')
			for n := 1; n < 3 && k+1 < len(body) && body[k+1] >= '0' && body[k+1] <= '7'; n++ {
				k++
				v = v<<3 | int(body[k]-'0')
			}
			if high || !u.feed(byte(v)) {
				return false
			}
		case c == 'x' && k+1 < len(body) && isHex(body[k+1]):
			k++
			v := hexVal(body[k])
			if k+1 < len(body) && isHex(body[k+1]) {
				k++
				v = v<<4 | hexVal(body[k])
			}
			if high || !u.feed(byte(v)) {
				return false
			}
		case c == 'u' || c == 'U':
			n := 4
			if c == 'U' {
				n = 8
			}
			cp := 0
			for j := k + 1; j <= k+n; j++ {
				if j >= len(body) || !isHex(body[j]) {
					return false
				}
				cp = cp<<4 | hexVal(body[j])
			}
			k += n
			if u.need != 0 {
				return false
			}
			var ok bool
			if high, ok = unicodeEscape(cp, high); !ok {
				return false
			}
		default:
			// Any other escaped byte stands for itself (\n, \', \\, or a
			// byte of a multi-byte character).
			if high {
				return false
			}
			switch c {
			case 'b', 'f', 'n', 'r', 't':
				c = ' '
			}
			if !u.feed(c) {
				return false
			}
		}
	}
	return !high && u.need == 0
}

func isHex(c byte) bool { return isDigit(c) || c|0x20 >= 'a' && c|0x20 <= 'f' }

func hexVal(c byte) int {
	if isDigit(c) {
		return int(c - '0')
	}
	return int(c|0x20-'a') + 10
}

// utf8State validates UTF-8 one byte at a time; NUL is refused.
type utf8State struct {
	need   int
	lo, hi byte
}

func (u *utf8State) feed(b byte) bool {
	if u.need > 0 {
		if b < u.lo || b > u.hi {
			return false
		}
		u.need--
		u.lo, u.hi = 0x80, 0xBF
		return true
	}
	u.lo, u.hi = 0x80, 0xBF
	switch {
	case b == 0:
		return false
	case b < 0x80:
	case b >= 0xC2 && b <= 0xDF:
		u.need = 1
	case b == 0xE0:
		u.need, u.lo = 2, 0xA0
	case b == 0xED:
		u.need, u.hi = 2, 0x9F
	case b >= 0xE1 && b <= 0xEF:
		u.need = 2
	case b == 0xF0:
		u.need, u.lo = 3, 0x90
	case b == 0xF4:
		u.need, u.hi = 3, 0x8F
	case b >= 0xF1 && b <= 0xF3:
		u.need = 3
	default:
		return false
	}
	return true
}

// lookahead sets la as parser.c's base_yylex does: FORMAT before JSON,
// NULLS before FIRST or LAST, WITH before TIME or ORDINALITY, WITHOUT
// before TIME (and NOT before BETWEEN, IN, LIKE, ILIKE, SIMILAR, but NOT
// is reserved) become tokens of their own that no rule takes as a name.
func (p *syn) lookahead() {
	w := string(p.w[:p.wn])
	if w != "format" && w != "nulls" && w != "with" && w != "without" {
		return
	}
	q := syn{l: p.l, noLA: true}
	q.scan()
	switch w {
	case "format":
		p.la = q.is("json")
	case "nulls":
		p.la = q.is("first") || q.is("last")
	case "with":
		p.la = q.is("time") || q.is("ordinality")
	case "without":
		p.la = q.is("time")
	}
}

// isOperatorChar is scan.l's op_chars.
func isOperatorChar(c byte) bool {
	switch c {
	case '~', '!', '@', '#', '^', '&', '|', '`', '?', '+', '-', '*', '/', '%', '<', '>', '=':
		return true
	}
	return false
}

// operator joins the characters of an operator starting at the current
// one-byte token as scan.l does, and classifies it.
func (p *syn) operator() {
	src := p.l.src
	i := p.t.start
	c := src[i]
	switch c {
	case ',', '(', ')', '[', ']', ';':
		p.op, p.ch = opSelf, c
		return
	case '.':
		if i+1 < len(src) && src[i+1] == '.' {
			p.op = opBad
			return
		}
		p.op, p.ch = opSelf, c
		return
	case ':':
		if i+1 < len(src) && src[i+1] == ':' {
			p.op, p.t.end, p.l.pos = opCast, i+2, i+2
			return
		}
		if i+1 < len(src) && src[i+1] == '=' {
			p.op, p.t.end, p.l.pos = opAssign, i+2, i+2
			return
		}
		p.op, p.ch = opSelf, c
		return
	}
	if !isOperatorChar(c) {
		p.op = opBad
		return
	}
	j := i + 1
	for j < len(src) && isOperatorChar(src[j]) {
		if (src[j] == '-' && j+1 < len(src) && src[j+1] == '-') || (src[j] == '/' && j+1 < len(src) && src[j+1] == '*') {
			break // a comment starts inside
		}
		j++
	}
	if j-i > 1 && (src[j-1] == '+' || src[j-1] == '-') {
		special := false
		for k := i; k < j; k++ {
			switch src[k] {
			case '~', '!', '@', '#', '^', '&', '|', '`', '?', '%':
				special = true
			}
		}
		if !special {
			for j-i > 1 && (src[j-1] == '+' || src[j-1] == '-') {
				j--
			}
		}
	}
	p.t.end, p.l.pos = j, j
	s := src[i:j]
	switch {
	case len(s) >= 64:
		p.op = opBad // "operator too long"
	case len(s) == 1 && (c == '+' || c == '-' || c == '*' || c == '/' || c == '%' || c == '^' || c == '<' || c == '>' || c == '='):
		p.op, p.ch = opSelf, c
	case s == "<=":
		p.op = opLE
	case s == ">=":
		p.op = opGE
	case s == "<>" || s == "!=":
		p.op = opNE
	case s == "=>":
		p.op = opArrow
	default:
		p.op = opGeneric
	}
}

// peek returns the next token, lexing it once.
func (p *syn) peek() *tokInfo {
	if !p.hasAhead {
		q := syn{l: p.l, noLA: p.noLA}
		q.scan()
		p.ahead, p.aheadL, p.hasAhead = q.tokInfo, q.l, true
	}
	return &p.ahead
}

// self reports whether the token is the self character c.
func (k *tokInfo) self(c byte) bool { return k.t.kind == tOp && k.op == opSelf && k.ch == c }

// is reports whether the token is the unquoted keyword kw (lower case).
func (k *tokInfo) is(kw string) bool { return k.wn == len(kw) && string(k.w[:k.wn]) == kw }

// expectSelf consumes the self character c.
func (p *syn) expectSelf(c byte) bool {
	if !p.self(c) {
		return false
	}
	p.next()
	return true
}

// expect consumes the keyword kw.
func (p *syn) expect(kw string) bool {
	if !p.is(kw) {
		return false
	}
	p.next()
	return true
}

// enter counts a level of nesting; leave must follow.
func (p *syn) enter() bool {
	p.depth++
	return p.depth <= maxGrammarDepth
}

func (p *syn) leave() { p.depth-- }

// Names by gram.y's categories.

func (p *syn) quoted() bool { return p.t.kind == tQIdent || p.t.kind == tUIdent }

// word reports whether the current token is an unquoted identifier or
// keyword that can be a name.
func (p *syn) word() bool { return p.t.kind == tIdent && !p.la }

// colID is gram.y's ColId: an identifier, an unreserved or a column-name
// keyword.
func (p *syn) colID() bool {
	return p.quoted() || p.word() && (p.cat == notKeyword || p.cat == unreservedKw || p.cat == colNameKw)
}

// typeFuncName is type_function_name: an identifier, an unreserved or a
// type-or-function-name keyword.
func (p *syn) typeFuncName() bool {
	return p.quoted() || p.word() && (p.cat == notKeyword || p.cat == unreservedKw || p.cat == typeFuncKw)
}

// label reports whether the token is a ColLabel: any identifier or
// keyword.
func (k *tokInfo) label() bool {
	return k.t.kind == tQIdent || k.t.kind == tUIdent || k.t.kind == tIdent && !k.la
}

// colLabel is ColLabel: any identifier or keyword.
func (p *syn) colLabel() bool { return p.quoted() || p.word() }

// nonReservedWord is NonReservedWord: anything but a reserved keyword.
func (p *syn) nonReservedWord() bool {
	return p.quoted() || p.word() && p.cat != reservedKw
}

// bareLabel is BareColLabel: an identifier or a keyword that kwlist.h
// marks BARE_LABEL.
func (p *syn) bareLabel() bool {
	if p.quoted() {
		return true
	}
	if !p.word() {
		return false
	}
	if p.cat == notKeyword {
		return true
	}
	switch string(p.w[:p.wn]) {
	case "array", "as", "char", "character", "create", "day", "except", "fetch",
		"filter", "for", "from", "grant", "group", "having", "hour", "intersect",
		"into", "isnull", "limit", "minute", "month", "notnull", "offset", "on",
		"order", "over", "overlaps", "precision", "returning", "second", "to",
		"union", "varying", "where", "window", "with", "within", "without", "year":
		return false // AS_LABEL
	}
	return true
}

// iconst reports whether the current token is an integer constant.
func (p *syn) iconst() bool {
	if p.t.kind != tNumber {
		return false
	}
	for _, c := range []byte(p.l.src[p.t.start:p.t.end]) {
		if !isDigit(c) {
			return false
		}
	}
	return true
}

// sconst reports whether the current token is a Sconst: a string that is
// no bit string, hexadecimal string or national character string.
func (k *tokInfo) sconst() bool {
	if k.t.kind != tString {
		return false
	}
	switch k.ch | 0x20 {
	case 'b', 'x', 'n':
		return false
	}
	return true
}

// afterTarget reports whether the current token can follow an item of a
// SELECT's target list: where a keyword after an expression is its bare
// label rather than an operator.
func (k *tokInfo) afterTarget() bool {
	switch k.t.kind {
	case tEOF:
		return true
	case tOp:
		return k.op == opSelf && (k.ch == ',' || k.ch == ')' || k.ch == ';')
	case tIdent:
		switch string(k.w[:k.wn]) {
		case "from", "into", "where", "group", "having", "window", "union",
			"intersect", "except", "order", "limit", "offset", "fetch", "for":
			return true
		}
	}
	return false
}

// Statements.

func (p *syn) statement() bool {
	switch {
	case p.is("show"):
		return p.show()
	case p.is("explain"):
		return p.explain()
	}
	_, ok := p.query()
	return ok
}

// show is SHOW var_name | TIME ZONE | TRANSACTION ISOLATION LEVEL |
// SESSION AUTHORIZATION | ALL.
func (p *syn) show() bool {
	p.next()
	switch {
	case p.is("all"):
		p.next()
		return true
	case p.is("time") && p.peek().is("zone"):
		p.next()
		p.next()
		return true
	case p.is("transaction") && p.peek().is("isolation"):
		p.next()
		p.next()
		return p.expect("level")
	case p.is("session") && p.peek().is("authorization"):
		p.next()
		p.next()
		return true
	}
	if !p.colID() {
		return false
	}
	p.next()
	for p.self('.') {
		p.next()
		if !p.colID() {
			return false
		}
		p.next()
	}
	return true
}

// explain is EXPLAIN [ANALYZE] [VERBOSE] query | EXPLAIN (options) query.
func (p *syn) explain() bool {
	p.next()
	switch {
	case p.self('(') && !p.startsQueryAfterParen():
		p.next()
		for {
			if !p.nonReservedWord() && !p.is("analyze") && !p.is("analyse") && !p.is("format") {
				return false
			}
			p.next()
			switch {
			case p.is("true") || p.is("false") || p.is("on") || p.sconst():
				p.next()
			case p.t.kind == tNumber:
				p.next()
			case (p.self('+') || p.self('-')) && p.peek().t.kind == tNumber:
				p.next()
				p.next()
			case p.nonReservedWord():
				p.next()
			}
			if p.self(')') {
				p.next()
				break
			}
			if !p.expectSelf(',') {
				return false
			}
		}
	case p.is("analyze") || p.is("analyse"):
		p.next()
		if p.is("verbose") {
			p.next()
		}
	case p.is("verbose"):
		p.next()
	}
	_, ok := p.query()
	return ok
}

// startsQueryAfterParen reports whether the '(' at hand opens a query
// (EXPLAIN (SELECT 1)) rather than an option list.
func (p *syn) startsQueryAfterParen() bool {
	q := *p
	q.next()
	for q.self('(') {
		q.next()
	}
	return q.startsQuery()
}

// startsQuery reports whether the current token begins a query.
func (p *syn) startsQuery() bool {
	return p.is("select") || p.is("values") || p.is("table") || p.is("with")
}

// qflags says what the statement node a query built already has, for
// gram.y's "multiple ORDER BY / LIMIT / OFFSET / WITH clauses not
// allowed".
type qflags struct{ sort, limit, offset, with bool }

// query is select_no_parens or select_with_parens, without locking
// clauses.
func (p *syn) query() (qflags, bool) {
	if !p.enter() {
		return qflags{}, false
	}
	defer p.leave()
	with := false
	if p.is("with") {
		if !p.withClause() {
			return qflags{}, false
		}
		with = true
	}
	f, ok := p.setTerm()
	if !ok {
		return qflags{}, false
	}
	return p.queryRest(f, with)
}

// queryRest continues a query after its first term (whose node has f):
// set operations, then ORDER BY and the limit clauses.
func (p *syn) queryRest(f qflags, with bool) (qflags, bool) {
	for p.is("union") || p.is("intersect") || p.is("except") {
		p.next()
		if p.is("all") || p.is("distinct") {
			p.next()
		}
		if _, ok := p.setTerm(); !ok {
			return qflags{}, false
		}
		f = qflags{}
	}
	if with {
		if f.with {
			return qflags{}, false
		}
		f.with = true
	}
	if p.is("order") {
		if f.sort {
			return qflags{}, false
		}
		p.next()
		if !p.expect("by") || !p.sortList() {
			return qflags{}, false
		}
		f.sort = true
	}
	sawLimit, sawOffset, sawFor := false, false, false
	for {
		if sawFor && (sawLimit || sawOffset) {
			// FOR READ ONLY comes before or after the limit clauses,
			// not between them.
			return f, true
		}
		switch {
		case p.is("for") && !sawFor:
			p.next()
			if !p.expect("read") || !p.expect("only") {
				return qflags{}, false // locking clauses make no Read
			}
			sawFor = true
		case p.is("limit"):
			if sawLimit || f.limit {
				return qflags{}, false
			}
			p.next()
			if p.is("all") {
				p.next()
			} else if !p.expr(0, 0) {
				return qflags{}, false
			}
			if p.self(',') {
				return qflags{}, false // "LIMIT #,# syntax is not supported"
			}
			sawLimit, f.limit = true, true
		case p.is("fetch"):
			if sawLimit || f.limit {
				return qflags{}, false
			}
			p.next()
			if !p.is("first") && !p.is("next") {
				return qflags{}, false
			}
			p.next()
			if !p.is("row") && !p.is("rows") {
				if !p.fetchValue() {
					return qflags{}, false
				}
			}
			if !p.is("row") && !p.is("rows") {
				return qflags{}, false
			}
			p.next()
			switch {
			case p.is("only"):
				p.next()
			case p.is("with") && p.peek().is("ties") && f.sort:
				// "WITH TIES cannot be specified without ORDER BY clause"
				p.next()
				p.next()
			default:
				return qflags{}, false
			}
			sawLimit, f.limit = true, true
		case p.is("offset"):
			if sawOffset || f.offset {
				return qflags{}, false
			}
			p.next()
			simple := p.simpleValueAhead()
			if !p.expr(0, 0) {
				return qflags{}, false
			}
			if p.is("row") || p.is("rows") {
				if !simple {
					return qflags{}, false
				}
				p.next()
			}
			sawOffset, f.offset = true, true
		default:
			return f, true
		}
	}
}

// simpleValueAhead reports whether the expression at hand is a single
// constant, parameter or name (gram.y's select_fetch_first_value, narrowed):
// what OFFSET ... ROWS and FETCH FIRST ... ROWS take.
func (p *syn) simpleValueAhead() bool {
	q := *p
	if q.self('+') || q.self('-') {
		q.next()
		if q.t.kind != tNumber {
			return false
		}
	} else if q.t.kind != tNumber && q.t.kind != tParam {
		return false
	}
	q.next()
	return q.is("row") || q.is("rows")
}

// fetchValue is FETCH FIRST's count: a constant or parameter, optionally
// signed.
func (p *syn) fetchValue() bool {
	if !p.simpleValueAhead() {
		return false
	}
	if p.self('+') || p.self('-') {
		p.next()
	}
	p.next()
	return true
}

// setTerm is one operand of a set operation: SELECT, VALUES, TABLE, or a
// parenthesised query.
func (p *syn) setTerm() (qflags, bool) {
	switch {
	case p.is("select"):
		return qflags{}, p.simpleSelect()
	case p.is("values"):
		return qflags{}, p.values()
	case p.is("table"):
		p.next()
		return qflags{}, p.relationExpr()
	case p.self('('):
		p.next()
		f, ok := p.query()
		if !ok || !p.expectSelf(')') {
			return qflags{}, false
		}
		return f, true
	}
	return qflags{}, false
}

// withClause is WITH [RECURSIVE] cte [, ...], without SEARCH and CYCLE.
func (p *syn) withClause() bool {
	p.next()
	if p.is("recursive") {
		p.next()
	}
	for {
		if !p.colID() {
			return false
		}
		p.next()
		if p.self('(') && !p.nameList() {
			return false
		}
		if !p.expect("as") {
			return false
		}
		if p.is("not") {
			p.next()
			if !p.is("materialized") {
				return false
			}
		}
		if p.is("materialized") {
			p.next()
		}
		if !p.expectSelf('(') {
			return false
		}
		if _, ok := p.query(); !ok || !p.expectSelf(')') {
			return false
		}
		if p.is("search") {
			p.next()
			if !p.is("depth") && !p.is("breadth") {
				return false
			}
			p.next()
			if !p.expect("first") || !p.expect("by") || !p.columnList() || !p.expect("set") || !p.colID() {
				return false
			}
			p.next()
		}
		if p.is("cycle") {
			p.next()
			if !p.columnList() || !p.expect("set") || !p.colID() {
				return false
			}
			p.next()
			if p.is("to") {
				p.next()
				if !p.plainConst() || !p.expect("default") || !p.plainConst() {
					return false
				}
			}
			if !p.expect("using") || !p.colID() {
				return false
			}
			p.next()
		}
		if !p.self(',') {
			return true
		}
		p.next()
	}
}

// columnList is ColId [, ...], without parentheses.
func (p *syn) columnList() bool {
	for {
		if !p.colID() {
			return false
		}
		p.next()
		if !p.self(',') {
			return true
		}
		p.next()
	}
}

// plainConst consumes an AexprConst: a number, a string, TRUE, FALSE,
// NULL, or a typed constant (int '1', point '(0,0)', s.t 'x').
func (p *syn) plainConst() bool {
	switch {
	case p.t.kind == tNumber:
		p.next()
		return true
	case p.t.kind == tString:
		return p.stringConst()
	case p.is("true") || p.is("false") || p.is("null"):
		p.next()
		return true
	case p.typedConst():
		return true
	}
	q := *p
	if !q.funcName() || !q.sconst() {
		return false
	}
	*p = q
	return p.stringConst()
}

// nameList is '(' ColId [, ...] ')'.
func (p *syn) nameList() bool {
	p.next()
	return p.columnList() && p.expectSelf(')')
}

// values is VALUES (expr [, ...]) [, ...].
func (p *syn) values() bool {
	p.next()
	for {
		if !p.parenExprList() {
			return false
		}
		if !p.self(',') {
			return true
		}
		p.next()
	}
}

// simpleSelect is SELECT [ALL | DISTINCT [ON (...)]] [targets] [FROM ...]
// [WHERE ...] [GROUP BY ...] [HAVING ...] [WINDOW ...].
func (p *syn) simpleSelect() bool {
	p.next()
	distinct := false
	switch {
	case p.is("all"):
		p.next()
	case p.is("distinct"):
		p.next()
		distinct = true
		if p.is("on") {
			p.next()
			if !p.parenExprList() {
				return false
			}
		}
	}
	if p.afterTarget() {
		if distinct {
			return false
		}
	} else if !p.targetList() {
		return false
	}
	if p.is("from") {
		p.next()
		if !p.fromList() {
			return false
		}
	}
	if p.is("where") {
		p.next()
		if !p.expr(0, 0) {
			return false
		}
	}
	if p.is("group") {
		p.next()
		if !p.expect("by") {
			return false
		}
		if p.is("all") || p.is("distinct") {
			p.next()
		}
		if !p.groupList() {
			return false
		}
	}
	if p.is("having") {
		p.next()
		if !p.expr(0, 0) {
			return false
		}
	}
	if p.is("window") {
		p.next()
		for {
			if !p.colID() {
				return false
			}
			p.next()
			if !p.expect("as") || !p.windowSpec() {
				return false
			}
			if !p.self(',') {
				break
			}
			p.next()
		}
	}
	return true
}

// targetList is target_el [, ...]: *, or an expression with an optional
// AS label or bare label.
func (p *syn) targetList() bool {
	for {
		if p.self('*') {
			p.next()
		} else {
			if !p.expr(0, eLabels) {
				return false
			}
			switch {
			case p.is("as"):
				p.next()
				if !p.colLabel() {
					return false
				}
				p.next()
			case p.bareLabel():
				p.next()
			}
		}
		if !p.self(',') {
			return true
		}
		p.next()
	}
}

// parenExprList is '(' a_expr [, ...] ')'.
func (p *syn) parenExprList() bool {
	return p.expectSelf('(') && p.exprList() && p.expectSelf(')')
}

// exprCount is a_expr [, ...], counted.
func (p *syn) exprCount() (int, bool) {
	for n := 1; ; n++ {
		if !p.expr(0, 0) {
			return 0, false
		}
		if !p.self(',') {
			return n, true
		}
		p.next()
	}
}

// exprList is a_expr [, ...].
func (p *syn) exprList() bool {
	for {
		if !p.expr(0, 0) {
			return false
		}
		if !p.self(',') {
			return true
		}
		p.next()
	}
}

// sortList is sortby [, ...]: expr [ASC | DESC | USING op] [NULLS FIRST |
// LAST].
func (p *syn) sortList() bool {
	for {
		if !p.expr(0, 0) {
			return false
		}
		switch {
		case p.is("asc") || p.is("desc"):
			p.next()
		case p.is("using"):
			p.next()
			if !p.allOp() {
				return false
			}
		}
		if p.is("nulls") {
			p.next()
			if !p.is("first") && !p.is("last") {
				return false
			}
			p.next()
		}
		if !p.self(',') {
			return true
		}
		p.next()
	}
}

// allOp consumes qual_all_Op: an operator or OPERATOR(name).
func (p *syn) allOp() bool {
	if p.t.kind == tOp {
		return p.mathOrOp()
	}
	if p.is("operator") && p.peek().self('(') {
		return p.operatorCall()
	}
	return false
}

// operatorCall consumes OPERATOR '(' [schema .] op ')'.
func (p *syn) operatorCall() bool {
	p.next()
	if !p.expectSelf('(') {
		return false
	}
	for p.colID() {
		p.next()
		if !p.expectSelf('.') {
			return false
		}
	}
	if !p.mathOrOp() {
		return false
	}
	return p.expectSelf(')')
}

// mathOrOp consumes all_Op.
func (p *syn) mathOrOp() bool {
	if p.t.kind != tOp {
		return false
	}
	switch p.op {
	case opSelf:
		switch p.ch {
		case '+', '-', '*', '/', '%', '^', '<', '>', '=':
		default:
			return false
		}
	case opLE, opGE, opNE, opGeneric:
	default:
		return false
	}
	p.next()
	return true
}

// groupList is GROUP BY's items: expressions, (), CUBE (...), ROLLUP (...),
// GROUPING SETS (...).
func (p *syn) groupList() bool {
	if !p.enter() {
		return false
	}
	defer p.leave()
	for {
		switch {
		case p.self('(') && p.peek().self(')'):
			p.next()
			p.next()
		case (p.is("cube") || p.is("rollup")) && p.peek().self('('):
			p.next()
			p.next()
			if !p.exprList() || !p.expectSelf(')') {
				return false
			}
		case p.is("grouping") && p.peek().is("sets"):
			p.next()
			p.next()
			if !p.expectSelf('(') || !p.groupList() || !p.expectSelf(')') {
				return false
			}
		default:
			if !p.expr(0, 0) {
				return false
			}
		}
		if !p.self(',') {
			return true
		}
		p.next()
	}
}

// windowSpec is '(' [name] [PARTITION BY ...] [ORDER BY ...] [frame] ')'.
func (p *syn) windowSpec() bool {
	if !p.expectSelf('(') {
		return false
	}
	if p.colID() && !p.is("partition") && !p.is("range") && !p.is("rows") && !p.is("groups") {
		p.next()
	}
	if p.is("partition") {
		p.next()
		if !p.expect("by") || !p.exprList() {
			return false
		}
	}
	if p.is("order") {
		p.next()
		if !p.expect("by") || !p.sortList() {
			return false
		}
	}
	if p.is("range") || p.is("rows") || p.is("groups") {
		p.next()
		if !p.frame() {
			return false
		}
	}
	return p.expectSelf(')')
}

// Frame bounds, for gram.y's checks of a window frame.
const (
	boundUnboundedPreceding = iota + 1
	boundPreceding
	boundCurrentRow
	boundFollowing
	boundUnboundedFollowing
)

// frame is a window frame after RANGE, ROWS or GROUPS, with gram.y's
// checks of its bounds.
func (p *syn) frame() bool {
	if p.is("between") {
		p.next()
		switch string(p.w[:p.wn]) {
		case "is", "isnull", "notnull", "like", "ilike", "similar", "between":
			// BETWEEN is also a column name there, and before these
			// keywords (of its precedence or lower) bison takes it for
			// one: ROWS BETWEEN is(1) PRECEDING is a syntax error.
			return false
		}
		start := p.frameBound()
		if start == 0 || !p.expect("and") {
			return false
		}
		end := p.frameBound()
		switch {
		case end == 0, start == boundUnboundedFollowing, end == boundUnboundedPreceding,
			start == boundCurrentRow && end == boundPreceding,
			start == boundFollowing && (end == boundPreceding || end == boundCurrentRow):
			return false
		}
	} else {
		switch p.frameBound() {
		case 0, boundUnboundedFollowing, boundFollowing:
			return false
		}
	}
	if p.is("exclude") {
		p.next()
		switch {
		case p.is("current"):
			p.next()
			return p.expect("row")
		case p.is("group") || p.is("ties"):
			p.next()
		case p.is("no"):
			p.next()
			return p.expect("others")
		default:
			return false
		}
	}
	return true
}

// frameBound returns the kind of the frame bound it consumed, 0 for none.
func (p *syn) frameBound() int {
	switch {
	case p.is("unbounded") && (p.peek().is("preceding") || p.peek().is("following")):
		// Before anything else UNBOUNDED is a name: unbounded(1)
		// PRECEDING is an offset.
		p.next()
		following := p.is("following")
		p.next()
		if following {
			return boundUnboundedFollowing
		}
		return boundUnboundedPreceding
	case p.is("current"):
		p.next()
		if !p.expect("row") {
			return 0
		}
		return boundCurrentRow
	}
	if !p.expr(0, 0) {
		return 0
	}
	switch {
	case p.is("preceding"):
		p.next()
		return boundPreceding
	case p.is("following"):
		p.next()
		return boundFollowing
	}
	return 0
}

// FROM.

// fromList is from_item [, ...].
func (p *syn) fromList() bool {
	for {
		if !p.tableRef() || !p.joins(false) {
			return false
		}
		if !p.self(',') {
			return true
		}
		p.next()
	}
}

// joins consumes joins after a table; one at least when needOne.
func (p *syn) joins(needOne bool) bool {
	if !p.enter() {
		return false
	}
	defer p.leave()
	n := 0
	for ; ; n++ {
		switch {
		case p.is("cross"):
			p.next()
			if !p.expect("join") || !p.tableRef() {
				return false
			}
		case p.is("natural"):
			p.next()
			if !p.joinType() || !p.tableRef() {
				return false
			}
		case p.is("join") || p.is("inner") || p.is("left") || p.is("right") || p.is("full"):
			if !p.joinType() || !p.tableRef() || !p.joins(false) {
				return false
			}
			switch {
			case p.is("on"):
				p.next()
				if !p.expr(0, 0) {
					return false
				}
			case p.is("using"):
				p.next()
				if !p.self('(') || !p.nameList() {
					return false
				}
				if p.is("as") {
					p.next()
					if !p.colID() {
						return false
					}
					p.next()
				}
			default:
				return false
			}
		default:
			return !needOne || n > 0
		}
	}
}

// joinType consumes [INNER | LEFT [OUTER] | RIGHT [OUTER] | FULL [OUTER]]
// JOIN.
func (p *syn) joinType() bool {
	switch {
	case p.is("inner"):
		p.next()
	case p.is("left") || p.is("right") || p.is("full"):
		p.next()
		if p.is("outer") {
			p.next()
		}
	}
	return p.expect("join")
}

// Kinds of a parenthesised FROM item.
const (
	fromQuery = iota + 1
	fromJoin
)

// tableRef is one FROM item before its joins: a table, a function, a
// subquery, or a parenthesised join, with an alias.
func (p *syn) tableRef() bool {
	if !p.enter() {
		return false
	}
	defer p.leave()
	lateral := false
	if p.is("lateral") {
		p.next()
		lateral = true
	}
	switch {
	case p.self('('):
		p.next()
		k := p.fromParen()
		if k == 0 || k == fromJoin && lateral {
			return false
		}
		return p.aliasOpt()
	case p.is("only"):
		if lateral {
			return false
		}
		p.next()
		if p.self('(') {
			p.next()
			if !p.qualifiedName() || !p.expectSelf(')') {
				return false
			}
		} else if !p.qualifiedName() {
			return false
		}
		return p.aliasOpt() && p.tablesample()
	case p.is("rows") && p.peek().is("from"):
		return p.rowsFrom()
	case (p.is("xmltable") || p.is("json_table")) && p.peek().self('('):
		xml := p.is("xmltable")
		p.next()
		p.next()
		if xml && !p.xmlTable() || !xml && !p.jsonTable() {
			return false
		}
		return p.aliasOpt()
	}
	// A function or a table.
	if !p.colID() && !p.typeFuncName() {
		return false
	}
	fn, parts, isCol := p.typeFuncName(), 1, p.colID()
	if !isCol {
		if !fn {
			return false
		}
		p.next() // a type_function_name keyword: only a function
	} else {
		for p.next(); p.self('.') && p.peek().label(); parts++ {
			p.next()
			p.next()
		}
		fn = fn || parts > 1
	}
	if fn && p.self('(') {
		p.next()
		if _, ok := p.callArgs(); !ok {
			return false
		}
		return p.ordinality() && p.funcAlias()
	}
	if lateral || !isCol || parts > 3 {
		return false // "improper qualified name (too many dotted names)"
	}
	if p.self('*') {
		p.next()
	}
	return p.aliasOpt() && p.tablesample()
}

// ordinality consumes an optional WITH ORDINALITY.
func (p *syn) ordinality() bool {
	if !p.is("with") {
		return true
	}
	p.next()
	return p.expect("ordinality")
}

// rowsFrom is ROWS FROM (call [AS (column definitions)] [, ...]) [WITH
// ORDINALITY] with its alias.
func (p *syn) rowsFrom() bool {
	p.next()
	p.next()
	if !p.expectSelf('(') {
		return false
	}
	for {
		if !p.funcName() || !p.expectSelf('(') {
			return false
		}
		if _, ok := p.callArgs(); !ok {
			return false
		}
		if p.is("as") {
			p.next()
			if !p.self('(') || !p.columnDefs(true) {
				return false
			}
		}
		if p.self(')') {
			p.next()
			break
		}
		if !p.expectSelf(',') {
			return false
		}
	}
	return p.ordinality() && p.funcAlias()
}

// tablesample consumes an optional TABLESAMPLE method (args) [REPEATABLE
// (seed)].
func (p *syn) tablesample() bool {
	if !p.is("tablesample") {
		return true
	}
	p.next()
	if !p.funcName() || !p.parenExprList() {
		return false
	}
	if p.is("repeatable") {
		p.next()
		return p.expectSelf('(') && p.expr(0, 0) && p.expectSelf(')')
	}
	return true
}

// funcAlias is a function's alias: [AS] name [(names)], or column
// definitions: AS (a int, ...), [AS] name (a int, ...).
func (p *syn) funcAlias() bool {
	if p.is("as") && p.peek().self('(') {
		p.next()
		return p.columnDefs(true)
	}
	if p.is("as") {
		p.next()
		if !p.colID() {
			return false
		}
	} else if !p.colID() {
		return true
	}
	p.next()
	if !p.self('(') {
		return true
	}
	return p.columnDefs(false)
}

// columnDefs is '(' ... ')' of column names, or (with types) of column
// definitions, name type [COLLATE name]: all of one kind. typed requires
// definitions.
func (p *syn) columnDefs(typed bool) bool {
	p.next()
	withType, n := 0, 0
	for {
		if !p.colID() {
			return false
		}
		p.next()
		n++
		if !p.self(',') && !p.self(')') {
			if !p.typeName() {
				return false
			}
			if p.is("collate") {
				p.next()
				if !p.anyName() {
					return false
				}
			}
			withType++
		}
		if p.self(')') {
			p.next()
			return withType == n || !typed && withType == 0
		}
		if !p.expectSelf(',') {
			return false
		}
	}
}

// parenQueryTail continues a parenthesised query that follows a '(' of a
// FROM item or an expression, as in ((SELECT 1) UNION SELECT 2): more
// reports that a set operation, ORDER BY or a limit clause follows, ok that
// it and the closing parenthesis parsed. The inner query's flags are not
// known there, so it is strict: no ORDER BY or limit clause unless a set
// operation makes a new statement node.
func (p *syn) parenQueryTail() (more, ok bool) {
	if !p.is("union") && !p.is("intersect") && !p.is("except") && !p.is("order") && !p.is("limit") && !p.is("offset") && !p.is("fetch") {
		return false, false
	}
	_, ok = p.queryRest(qflags{sort: true, limit: true, offset: true}, false)
	return true, ok && p.expectSelf(')')
}

// fromParen parses what follows a '(' in FROM: a query, or a joined
// table, through the closing parenthesis.
func (p *syn) fromParen() int {
	if !p.enter() {
		return 0
	}
	defer p.leave()
	switch {
	case p.startsQuery():
		if _, ok := p.query(); !ok || !p.expectSelf(')') {
			return 0
		}
		return fromQuery
	case p.self('('):
		p.next()
		switch p.fromParen() {
		case fromQuery:
			if p.self(')') {
				p.next()
				return fromQuery
			}
			if more, ok := p.parenQueryTail(); more {
				if !ok {
					return 0
				}
				return fromQuery
			}
			if !p.aliasOpt() || !p.joins(true) || !p.expectSelf(')') {
				return 0
			}
			return fromJoin
		case fromJoin:
			if !p.aliasOpt() || !p.joins(false) || !p.expectSelf(')') {
				return 0
			}
			return fromJoin
		}
		return 0
	}
	if !p.tableRef() || !p.joins(true) || !p.expectSelf(')') {
		return 0
	}
	return fromJoin
}

// aliasOpt is [[AS] ColId ['(' name [, ...] ')']].
func (p *syn) aliasOpt() bool {
	if p.is("as") {
		p.next()
		if !p.colID() {
			return false
		}
	} else if !p.colID() {
		return true
	}
	p.next()
	if p.self('(') {
		return p.nameList()
	}
	return true
}

// qualifiedName is ColId [. name [. name]].
func (p *syn) qualifiedName() bool {
	if !p.colID() {
		return false
	}
	p.next()
	n, ok := p.labels()
	return ok && n <= 2 // "improper qualified name (too many dotted names)"
}

// relationExpr is TABLE's name: [ONLY] name [*], or ONLY (name).
func (p *syn) relationExpr() bool {
	if p.is("only") {
		p.next()
		if p.self('(') {
			p.next()
			return p.qualifiedName() && p.expectSelf(')')
		}
		return p.qualifiedName()
	}
	if !p.qualifiedName() {
		return false
	}
	if p.self('*') {
		p.next()
	}
	return true
}

// funcName consumes func_name: type_function_name, or ColId followed by
// dotted labels.
func (p *syn) funcName() bool {
	if p.colID() && p.peek().self('.') {
		p.next()
		_, ok := p.labels()
		return ok
	}
	if !p.typeFuncName() {
		return false
	}
	p.next()
	return true
}

// Expressions.

// Context flags of an expression.
const (
	eLabels      uint8 = 1 << iota // a target list item: a bare label may end it
	eB                             // gram.y's b_expr: no AND, OR, NOT, IS NULL, LIKE, BETWEEN, IN, ...
	eSimilarEnds                   // SUBSTRING's first argument: SIMILAR without TO ends it
)

// Precedence levels, from gram.y's precedence declarations.
const (
	pOr = iota + 1
	pAnd
	pNot
	pIs
	pCmp
	pLike // BETWEEN IN LIKE ILIKE SIMILAR NOT_LA
	pOp
	pAdd
	pMul
	pExp
	pAt
	pCollate
	pUminus
	pCast
)

// infix returns the precedence level of the current token as an infix or
// postfix operator, 0 when it is none.
func (p *syn) infix(ctx uint8) int {
	b := ctx&eB != 0
	switch p.t.kind {
	case tOp:
		switch p.op {
		case opSelf:
			switch p.ch {
			case '+', '-':
				return pAdd
			case '*', '/', '%':
				return pMul
			case '^':
				return pExp
			case '<', '>', '=':
				return pCmp
			}
		case opLE, opGE, opNE:
			return pCmp
		case opGeneric:
			return pOp
		case opCast:
			return pCast
		}
		return 0
	case tIdent:
		switch string(p.w[:p.wn]) {
		case "operator":
			// OPERATOR has Op's precedence whatever follows: gram.y
			// shifts it, and then needs its '('.
			return pOp
		case "is":
			return pIs
		case "isnull", "notnull":
			if !b {
				return pIs
			}
		case "and":
			if !b {
				return pAnd
			}
		case "or":
			if !b {
				return pOr
			}
		case "like", "ilike", "similar", "between", "in":
			if !b {
				return pLike
			}
		case "not":
			if !b {
				q := p.peek()
				if q.is("like") || q.is("ilike") || q.is("similar") || q.is("between") || q.is("in") {
					return pLike
				}
			}
		case "at":
			if !b {
				return pAt
			}
		case "collate":
			if !b {
				return pCollate
			}
		}
	}
	return 0
}

// expr parses an expression whose operators bind at least as tightly as
// minLevel: a_expr, or b_expr with eB.
func (p *syn) expr(minLevel int, ctx uint8) bool {
	if !p.enter() {
		return false
	}
	defer p.leave()
	if !p.prefix(ctx) {
		return false
	}
	return p.exprRest(minLevel, ctx)
}

// exprRest applies the infix and postfix operators after an operand.
func (p *syn) exprRest(minLevel int, ctx uint8) bool {
	inner := ctx &^ eLabels
	for {
		lvl := p.infix(ctx)
		if lvl == 0 || lvl < minLevel {
			return true
		}
		if lvl == pLike && minLevel == 0 && ctx&eSimilarEnds != 0 && p.is("similar") && !p.peek().is("to") {
			// SUBSTRING(x SIMILAR p ESCAPE e), where x is complete: inside
			// an operand of a looser operator (NOT x SIMILAR, a AND b
			// SIMILAR) bison shifts SIMILAR there, which then needs TO.
			return true
		}
		if ctx&eLabels != 0 && minLevel == 0 && p.t.kind == tIdent && p.bareLabel() {
			// gram.y shifts the keyword into a state where it is both an
			// operator and a label; the next token decides.
			if q := p.peek(); q.afterTarget() {
				return true
			}
		}
		switch {
		case p.t.kind == tOp && p.op == opCast:
			p.next()
			if !p.typeName() {
				return false
			}
		case p.is("is"):
			p.next()
			if p.is("not") {
				p.next()
			}
			switch {
			case p.is("null") || p.is("true") || p.is("false") || p.is("unknown"):
				if ctx&eB != 0 {
					return false
				}
				p.next()
			case p.is("distinct"):
				p.next()
				if !p.expect("from") || !p.expr(pIs+1, inner) || p.infix(ctx) == pIs {
					return false
				}
			case p.is("document"):
				p.next() // IS [NOT] DOCUMENT, in b_expr too
			case ctx&eB != 0:
				return false
			case p.is("normalized"):
				p.next()
			case p.normalForm() && p.peek().is("normalized"):
				p.next()
				p.next()
			case p.is("json"):
				if !p.jsonPredicate() {
					return false
				}
			default:
				return false
			}
		case p.is("isnull") || p.is("notnull"):
			p.next()
		case p.is("and") || p.is("or"):
			p.next()
			if !p.expr(lvl+1, inner) {
				return false
			}
		case p.is("at"):
			p.next()
			switch {
			case p.is("time"):
				p.next()
				if !p.expect("zone") || !p.expr(pAt+1, inner) {
					return false
				}
			case p.is("local"):
				p.next()
			default:
				return false
			}
		case p.is("collate"):
			p.next()
			if !p.anyName() {
				return false
			}
		case lvl == pLike:
			if !p.likeLevel(inner) {
				return false
			}
		default: // an operator symbol or OPERATOR(...)
			if p.t.kind == tOp {
				p.next()
			} else if !p.operatorCall() {
				return false
			}
			if p.is("any") || p.is("some") || p.is("all") {
				// a_expr subquery_Op sub_type (query) | (a_expr)
				if ctx&eB != 0 {
					return false
				}
				p.next()
				if !p.expectSelf('(') {
					return false
				}
				if k, ok := p.parenBody(); !ok || k == parenRow {
					return false
				}
				continue
			}
			if !p.expr(lvl+1, inner) {
				return false
			}
			if lvl == pCmp && p.infix(ctx) == pCmp {
				return false // comparison operators do not associate
			}
		}
	}
}

// likeLevel applies one operator of the LIKE level: [NOT] LIKE, ILIKE,
// SIMILAR TO, BETWEEN, IN.
func (p *syn) likeLevel(ctx uint8) bool {
	if p.is("not") {
		p.next()
	}
	switch {
	case p.is("in"):
		p.next()
		if !p.expectSelf('(') {
			return false
		}
		_, ok := p.parenBody()
		return ok
	case p.is("between"):
		p.next()
		if p.is("symmetric") || p.is("asymmetric") {
			p.next()
		}
		if !p.expr(0, ctx|eB) || !p.expect("and") || !p.expr(pLike+1, ctx) {
			return false
		}
	case p.is("like") || p.is("ilike") || p.is("similar"):
		similar := p.is("similar")
		p.next()
		if similar && !p.expect("to") {
			return false
		}
		if !similar && (p.is("any") || p.is("some") || p.is("all")) {
			p.next()
			if !p.expectSelf('(') {
				return false
			}
			k, ok := p.parenBody()
			return ok && k != parenRow
		}
		if !p.expr(pLike+1, ctx) {
			return false
		}
		if p.is("escape") {
			p.next()
			if !p.expr(pLike+1, ctx) {
				return false
			}
		}
	default:
		return false
	}
	return p.infix(ctx) != pLike // these operators do not associate
}

// anyName is COLLATE's name: ColId [. label ...].
func (p *syn) anyName() bool {
	if !p.colID() {
		return false
	}
	p.next()
	_, ok := p.labels()
	return ok
}

// labels consumes . ColLabel [...]: the dotted parts after a first name.
// It returns how many, and false when a dot is followed by no label.
func (p *syn) labels() (int, bool) {
	n := 0
	for ; p.self('.'); n++ {
		p.next()
		if !p.colLabel() {
			return n, false
		}
		p.next()
	}
	return n, true
}

// prefix parses an operand with its prefix operators.
func (p *syn) prefix(ctx uint8) bool {
	inner := ctx &^ eLabels
	switch {
	case p.is("not"):
		if ctx&eB != 0 {
			return false
		}
		q := p.peek()
		if q.is("like") || q.is("ilike") || q.is("similar") || q.is("between") || q.is("in") {
			return false // NOT_LA, which begins no expression
		}
		p.next()
		return p.expr(pNot+1, inner)
	case p.self('+') || p.self('-'):
		p.next()
		return p.expr(pUminus+1, inner)
	case p.t.kind == tOp && p.op == opGeneric:
		p.next()
		return p.expr(pOp+1, inner)
	case p.is("operator") && p.peek().self('('):
		if !p.operatorCall() {
			return false
		}
		return p.expr(pOp+1, inner)
	}
	start := p.t.start
	if !p.primary(ctx) {
		return false
	}
	if p.rowAt == start+1 && p.is("overlaps") {
		// a_expr: row OVERLAPS row, where the operand just parsed was a
		// row, with nothing after it. gram.y's action takes rows of two
		// only.
		if ctx&eB != 0 {
			return false
		}
		p.next()
		return p.row2()
	}
	return true
}

// row2 is OVERLAPS's right operand, a row of two: ROW '(' a_expr ','
// a_expr ')' or '(' a_expr ',' a_expr ')'.
func (p *syn) row2() bool {
	if p.is("row") && p.peek().self('(') {
		p.next()
	}
	return p.expectSelf('(') && p.expr(0, 0) && p.expectSelf(',') && p.expr(0, 0) && p.expectSelf(')')
}

// Kinds of what a parenthesis in an expression holds.
const (
	parenQuery = iota + 1
	parenScalar
	parenRow
)

// parenBody parses what follows a '(' in an expression, through the
// closing parenthesis: a query, an expression or a row.
func (p *syn) parenBody() (int, bool) {
	if !p.enter() {
		return 0, false
	}
	defer p.leave()
	if p.startsQuery() {
		if _, ok := p.query(); !ok || !p.expectSelf(')') {
			return 0, false
		}
		return parenQuery, true
	}
	if p.self('(') {
		p.next()
		k, ok := p.parenBody()
		if !ok {
			return 0, false
		}
		if k == parenQuery {
			if p.self(')') {
				p.next()
				return parenQuery, true
			}
			if more, ok := p.parenQueryTail(); more {
				if !ok {
					return 0, false
				}
				return parenQuery, true
			}
		}
		if k == parenRow && p.rowN == 2 && p.is("overlaps") {
			p.next()
			if !p.row2() {
				return 0, false
			}
		} else if k != parenRow && !p.indirection() {
			return 0, false
		}
		if !p.exprRest(0, 0) {
			return 0, false
		}
	} else if !p.expr(0, 0) {
		return 0, false
	}
	if p.self(',') {
		p.next()
		n, ok := p.exprCount()
		if !ok || !p.expectSelf(')') {
			return 0, false
		}
		p.rowN = n + 1
		return parenRow, true
	}
	if !p.expectSelf(')') {
		return 0, false
	}
	return parenScalar, true
}

// indirection consumes [. label | . * | [ subscript ] ...]; nothing may
// follow a star.
func (p *syn) indirection() bool {
	for {
		switch {
		case p.self('.'):
			p.next()
			if p.self('*') {
				p.next()
				return !p.self('.') && !p.self('[')
			}
			if !p.colLabel() {
				return false
			}
			p.next()
		case p.self('['):
			p.next()
			if !p.self(':') && !p.expr(0, 0) {
				return false
			}
			if p.self(':') {
				p.next()
				if !p.self(']') && !p.expr(0, 0) {
					return false
				}
			}
			if !p.expectSelf(']') {
				return false
			}
		default:
			return true
		}
	}
}

// stringConst consumes a string constant with its continuations and, for
// U&'...', its UESCAPE clause.
func (p *syn) stringConst() bool {
	first := p.t
	unicode := p.l.src[first.start]|0x20 == 'u'
	last := first
	p.next()
	for p.t.kind == tString && continuation(p.l.src, last, p.t) {
		last = p.t
		p.next()
	}
	if unicode && p.is("uescape") {
		p.next()
		if p.t.kind != tString || p.l.src[p.t.start] != '\'' {
			return false
		}
		p.next()
	}
	return true
}

// primary parses an operand: a constant, a name, a call, a parenthesis, or
// one of gram.y's keyword expressions.
func (p *syn) primary(ctx uint8) bool {
	switch p.t.kind {
	case tNumber:
		p.next()
		return true
	case tString:
		return p.stringConst() // N'...' too: NCHAR '...', a typed constant
	case tParam:
		p.next()
		return p.indirection()
	case tQIdent, tUIdent:
		return p.nameExpr(ctx)
	case tOp:
		if !p.self('(') {
			return false
		}
		start := p.t.start
		p.next()
		k, ok := p.parenBody()
		if !ok {
			return false
		}
		if k == parenRow {
			if p.rowN == 2 {
				p.rowAt = start + 1
			}
			return true
		}
		return p.indirection()
	case tIdent:
	default:
		return false
	}
	switch p.cat {
	case notKeyword, unreservedKw:
		if p.is("double") && p.peek().is("precision") {
			return p.typedConst()
		}
		return p.nameExpr(ctx)
	case typeFuncKw:
		if p.is("collation") && p.peek().is("for") {
			p.next()
			p.next()
			return p.expectSelf('(') && p.expr(0, 0) && p.expectSelf(')')
		}
		if p.is("current_schema") {
			p.next()
			if p.self('(') {
				p.next()
				return p.expectSelf(')')
			}
			return true
		}
		if q := p.peek(); !q.self('(') && !q.sconst() {
			return false
		}
		return p.nameExpr(ctx)
	case colNameKw:
		return p.colNameExpr(ctx)
	}
	// Reserved keywords that begin an expression.
	switch string(p.w[:p.wn]) {
	case "true", "false", "null", "current_date", "current_role", "current_user",
		"session_user", "system_user", "user", "current_catalog":
		p.next()
		return true
	case "current_time", "current_timestamp", "localtime", "localtimestamp":
		p.next()
		if p.self('(') {
			p.next()
			if !p.iconst() {
				return false
			}
			p.next()
			return p.expectSelf(')')
		}
		return true
	case "case":
		return p.caseExpr()
	case "cast":
		p.next()
		return p.expectSelf('(') && p.expr(0, 0) && p.expect("as") && p.typeName() && p.expectSelf(')')
	case "array":
		p.next()
		if p.self('(') {
			p.next()
			k, ok := p.parenBody()
			return ok && k == parenQuery
		}
		return p.arrayBody()
	}
	return false
}

// arrayBody is ARRAY's '[' [expr [, ...] | '[' ... ']' [, ...]] ']'.
func (p *syn) arrayBody() bool {
	if !p.enter() {
		return false
	}
	defer p.leave()
	if !p.expectSelf('[') {
		return false
	}
	if p.self(']') {
		p.next()
		return true
	}
	if p.self('[') {
		for {
			if !p.arrayBody() {
				return false
			}
			if !p.self(',') {
				break
			}
			p.next()
		}
	} else if !p.exprList() {
		return false
	}
	return p.expectSelf(']')
}

// caseExpr is CASE [expr] WHEN expr THEN expr [...] [ELSE expr] END.
func (p *syn) caseExpr() bool {
	p.next()
	if !p.is("when") && !p.expr(0, 0) {
		return false
	}
	if !p.is("when") {
		return false
	}
	for p.is("when") {
		p.next()
		if !p.expr(0, 0) || !p.expect("then") || !p.expr(0, 0) {
			return false
		}
	}
	if p.is("else") {
		p.next()
		if !p.expr(0, 0) {
			return false
		}
	}
	return p.expect("end")
}

// nameExpr parses what begins with a name: a column reference, a function
// call (with WITHIN GROUP, FILTER and OVER), or a typed constant
// (name 'string').
func (p *syn) nameExpr(ctx uint8) bool {
	// func_name is type_function_name or ColId with dotted labels; a
	// column reference is ColId with an indirection.
	fn := p.typeFuncName()
	if !p.colID() {
		if !fn {
			return false
		}
		p.next()
	} else {
		fn = p.qualified() || fn
	}
	if fn && p.self('(') {
		return p.callRest()
	}
	if fn && p.sconst() {
		return p.stringConst()
	}
	return p.indirection()
}

// qualified consumes a ColId and the dotted labels after it, reporting
// whether there was one at least; it stops before .* and subscripts.
func (p *syn) qualified() bool {
	p.next()
	n := 0
	for p.self('.') && p.peek().label() {
		p.next()
		p.next()
		n++
	}
	return n > 0
}

// Flags of a call's argument list.
const (
	argStar uint8 = 1 << iota
	argOrdered
	argDistinct
	argVariadic
)

// callArgs parses a call's arguments after its '(' through the ')'.
func (p *syn) callArgs() (uint8, bool) {
	var f uint8
	switch {
	case p.self(')'):
		p.next()
		return 0, true
	case p.self('*'):
		p.next()
		return argStar, p.expectSelf(')')
	case p.is("all"):
		p.next()
	case p.is("distinct"):
		p.next()
		f |= argDistinct
	}
	for {
		if p.is("variadic") {
			p.next()
			f |= argVariadic
		}
		if p.typeFuncName() {
			if q := p.peek(); q.t.kind == tOp && (q.op == opAssign || q.op == opArrow) {
				p.next()
				p.next()
			}
		}
		if !p.expr(0, 0) {
			return 0, false
		}
		if !p.self(',') || f&argVariadic != 0 {
			break
		}
		p.next()
	}
	if p.is("order") {
		p.next()
		if !p.expect("by") || !p.sortList() {
			return 0, false
		}
		f |= argOrdered
	}
	return f, p.expectSelf(')')
}

// callRest parses a call after its name: the arguments, then WITHIN GROUP,
// FILTER and OVER.
func (p *syn) callRest() bool {
	p.next() // (
	f, ok := p.callArgs()
	if !ok {
		return false
	}
	if p.is("within") {
		if f&(argStar|argOrdered|argDistinct|argVariadic) != 0 {
			return false // gram.y refuses them with WITHIN GROUP
		}
		p.next()
		if !p.expect("group") || !p.expectSelf('(') || !p.expect("order") || !p.expect("by") || !p.sortList() || !p.expectSelf(')') {
			return false
		}
	}
	return p.filterOver()
}

// colNameExpr parses what begins with a column-name keyword: one of
// gram.y's special functions, a typed constant (int '1'), or the keyword
// as a column name.
func (p *syn) colNameExpr(ctx uint8) bool {
	if p.typedConst() { // the type keywords: int '1', timestamp(3) '...'
		return true
	}
	if !p.peek().self('(') {
		// A column-name keyword is a ColId: a column's name.
		p.next()
		return p.indirection()
	}
	name, start := string(p.w[:p.wn]), p.t.start
	p.next()
	p.next() // (
	if handled, ok := p.specialCall(name); handled {
		return ok
	}
	switch name {
	case "coalesce", "greatest", "least", "grouping":
		return p.exprList() && p.expectSelf(')')
	case "row":
		n, ok := 0, true
		if !p.self(')') {
			n, ok = p.exprCount()
		}
		if !ok || !p.expectSelf(')') {
			return false
		}
		if n == 2 {
			p.rowAt = start + 1
		}
		return true
	case "nullif":
		return p.expr(0, 0) && p.expectSelf(',') && p.expr(0, 0) && p.expectSelf(')')
	case "exists":
		k, ok := p.parenBody()
		return ok && k == parenQuery
	case "extract":
		switch {
		case p.t.kind == tIdent && (p.cat == notKeyword || p.intervalField()):
			p.next()
		case p.sconst():
			p.next()
		default:
			return false
		}
		return p.expect("from") && p.expr(0, 0) && p.expectSelf(')')
	case "position":
		return p.expr(0, eB) && p.expect("in") && p.expr(0, eB) && p.expectSelf(')')
	case "substring":
		if p.self(')') {
			p.next()
			return true
		}
		if !p.expr(0, eSimilarEnds) {
			return false
		}
		switch {
		case p.is("from"):
			p.next()
			if !p.expr(0, 0) {
				return false
			}
			if p.is("for") {
				p.next()
				if !p.expr(0, 0) {
					return false
				}
			}
		case p.is("for"):
			p.next()
			if !p.expr(0, 0) {
				return false
			}
			if p.is("from") {
				p.next()
				if !p.expr(0, 0) {
					return false
				}
			}
		case p.self(','):
			p.next()
			if !p.exprList() {
				return false
			}
		case p.is("similar"):
			// a_expr SIMILAR a_expr ESCAPE a_expr: SIMILAR without TO,
			// where the expression before stopped.
			p.next()
			if !p.expr(0, 0) || !p.expect("escape") || !p.expr(0, 0) {
				return false
			}
		}
		return p.expectSelf(')')
	case "trim":
		if p.is("both") || p.is("leading") || p.is("trailing") {
			p.next()
		}
		if p.is("from") {
			p.next()
			return p.exprList() && p.expectSelf(')')
		}
		if !p.expr(0, 0) {
			return false
		}
		switch {
		case p.is("from"):
			p.next()
			if !p.exprList() {
				return false
			}
		case p.self(','):
			p.next()
			if !p.exprList() {
				return false
			}
		}
		return p.expectSelf(')')
	}
	return false
}

// intervalField reports whether the current token is one of INTERVAL's
// field keywords.
func (p *syn) intervalField() bool {
	return p.is("year") || p.is("month") || p.is("day") || p.is("hour") || p.is("minute") || p.is("second")
}

// typedConst parses ConstTypename Sconst: int '1', numeric(4,2) '1.5',
// timestamp with time zone '...', interval '1' day, interval(2) '...'.
func (p *syn) typedConst() bool {
	q := *p
	if q.is("interval") {
		q.next()
		paren := q.self('(')
		if !q.optIntMod() || !q.sconst() || !q.stringConst() {
			return false
		}
		if !paren && !q.intervalQualifier() {
			return false
		}
		*p = q
		return true
	}
	if !q.simpleType() || !q.sconst() || !q.stringConst() {
		return false
	}
	*p = q
	return true
}

// intervalQualifier consumes INTERVAL's optional fields (opt_interval):
// YEAR, MONTH, DAY, HOUR, MINUTE, SECOND [(n)], or a range of them.
func (p *syn) intervalQualifier() bool {
	first := string(p.w[:p.wn])
	switch first {
	case "year", "month", "day", "hour", "minute":
		if p.t.kind != tIdent {
			return true
		}
		p.next()
	case "second":
		if p.t.kind != tIdent {
			return true
		}
		p.next()
		return p.optIntMod()
	default:
		return true
	}
	if !p.is("to") {
		return true
	}
	p.next()
	last := string(p.w[:p.wn])
	switch {
	case first == "year" && last == "month",
		first == "day" && (last == "hour" || last == "minute"),
		first == "hour" && last == "minute":
		p.next()
		return true
	case last == "second" && (first == "day" || first == "hour" || first == "minute"):
		p.next()
		return p.optIntMod()
	}
	return false
}

// Types.

// typeName is Typename without SETOF: a type and its array bounds.
func (p *syn) typeName() bool {
	if !p.simpleType() {
		return false
	}
	if p.is("array") {
		p.next()
		if p.self('[') {
			p.next()
			if !p.iconst() {
				return false
			}
			p.next()
			return p.expectSelf(']')
		}
		return true
	}
	for p.self('[') {
		p.next()
		if p.iconst() {
			p.next()
		}
		if !p.expectSelf(']') {
			return false
		}
	}
	return true
}

// simpleType is SimpleTypename.
func (p *syn) simpleType() bool {
	if p.t.kind == tIdent {
		switch string(p.w[:p.wn]) {
		case "int", "integer", "smallint", "bigint", "real", "boolean", "json":
			p.next()
			return true
		case "float", "varchar":
			p.next()
			return p.optIntMod()
		case "double":
			if p.peek().is("precision") {
				p.next()
				p.next()
				return true
			}
		case "decimal", "dec", "numeric":
			p.next()
			return p.optExprMod()
		case "bit":
			p.next()
			if p.is("varying") {
				p.next()
			}
			return p.optExprMod()
		case "character", "char", "nchar":
			p.next()
			if p.is("varying") {
				p.next()
			}
			return p.optIntMod()
		case "national":
			p.next()
			if !p.is("character") && !p.is("char") {
				return false
			}
			p.next()
			if p.is("varying") {
				p.next()
			}
			return p.optIntMod()
		case "timestamp", "time":
			p.next()
			if !p.optIntMod() {
				return false
			}
			if (p.is("with") || p.is("without")) && p.peek().is("time") {
				p.next()
				p.next()
				return p.expect("zone")
			}
			return true
		case "interval":
			p.next()
			return p.optIntMod() && p.intervalQualifier()
		}
	}
	if !p.typeFuncName() {
		return false
	}
	p.next()
	if _, ok := p.labels(); !ok {
		return false
	}
	return p.optExprMod()
}

// optIntMod consumes an optional '(' integer ')'.
func (p *syn) optIntMod() bool {
	if !p.self('(') {
		return true
	}
	p.next()
	if !p.iconst() {
		return false
	}
	p.next()
	return p.expectSelf(')')
}

// optExprMod consumes optional type modifiers '(' expr [, ...] ')'.
func (p *syn) optExprMod() bool {
	if !p.self('(') {
		return true
	}
	p.next()
	return p.exprList() && p.expectSelf(')')
}
