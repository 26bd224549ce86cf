package classify

import (
	"strings"
	"unicode/utf8"
)

// rules decides statements. The zero value holds the default rules (the
// built-in write functions only); it is never modified after New.
type rules struct {
	user map[string]*userFunc // Options.WriteFunctions by normalized name
}

// Reasons. They are constants so that no classification allocates.
const (
	reasonEmpty        = "empty"
	reasonUnrecognized = "unrecognized"
	reasonModifyingCTE = "data-modifying CTE"
	reasonSelectInto   = "SELECT INTO"
	reasonParens       = "unbalanced parentheses"
	reasonUnicodeName  = "unicode-escaped function name"
	reasonExplain      = "EXPLAIN"
	reasonShow         = "SHOW"
	reasonManyStmts    = "many statements"
	reasonIncomplete   = "incomplete statement"
	reasonNoMain       = "WITH without a statement"
	reasonBadChar      = "invalid character"
	reasonColon        = "stray colon"
	reasonNumberJunk   = "trailing junk after numeric literal"
	reasonBadUTF8      = "invalid UTF-8"
	reasonNUL          = "NUL byte"
	reasonUnicode      = "invalid Unicode escape"
	reasonSyntax       = "syntax error"
	reasonWindowFrom   = "window function in FROM"
)

// Flags of a parenthesis level (a frame) of a read statement, for the
// structural checks of statements PostgreSQL's grammar rejects.
const (
	fQuery     uint16 = 1 << iota // a SELECT began at this level
	fFrom                         // in that SELECT's FROM clause
	fNamed                        // the parenthesis follows a name: a call (or IN, OVER, ...)
	fNoWithin                     // call arguments with ORDER BY, DISTINCT or VARIADIC: no WITHIN GROUP after
	fCast                         // CAST( or TREAT(
	fCastType                     // after the AS of CAST(... AS: a type name only
	fOnly                         // ONLY ( table ): a relation, TABLESAMPLE may follow
	fOn                           // in the FROM clause, in a join condition (ON ...)
	fExpr                         // after WHERE, GROUP BY, ORDER BY, ...: expressions, no alias
	fOperator                     // OPERATOR(...): an operator name inside
	fNoComma                      // after WHERE, HAVING, LIMIT, OFFSET, FETCH: one expression, no comma
	fEmptyOK                      // the parenthesis may close at once: after a comma, or a second one after a name (GROUPING SETS ((), a))
	fOnList                       // DISTINCT ON (...): an expression may follow it at once
	fValues                       // a row of VALUES: no alias after it
	fCall                         // the arguments of a function named by a name that is no keyword: no field after them
	fQueryOnly                    // a query must begin here: a CTE's body, after a set operation
)

// maxFrames bounds the parenthesis levels tracked for the structural
// checks; deeper levels are not checked (the other rules still apply).
const maxFrames = 16

// What the token before the current one was, for the checks of the next.
const (
	pendStar    uint8 = 1 << iota // a bare '*' select target: no alias, no constant after it
	pendCast                      // "::": a type name must follow
	pendAlias                     // a name (no keyword, yet to be looked up) after an operand: no third name
	pendFor                       // the FOR of a query's locking clause: a lock strength follows
	pendKwAlias                   // with pendAlias: a keyword of the lexer's (KEY, THEN outside CASE) that can only be an alias there
	pendRow                       // a comma after a row of VALUES: another row follows
	pendLabel                     // with pendAlias: a name after AS, a column label
)

var statementCounts = [...]string{
	2: "2 statements", 3: "3 statements", 4: "4 statements", 5: "5 statements",
	6: "6 statements", 7: "7 statements", 8: "8 statements", 9: "9 statements",
}

func statementsReason(n int) string {
	if n >= 2 && n < len(statementCounts) {
		return statementCounts[n]
	}
	return reasonManyStmts
}

// safety orders kinds from the least to the most replica-friendly.
func safety(k Kind) int {
	switch k {
	case Read:
		return 2
	case LockingRead:
		return 1
	}
	return 0
}

// classify decides sql. With a backslash inside a plain string literal the
// text lexes differently when the server runs with
// standard_conforming_strings off; it is then decided both ways and the
// stricter answer wins, so no server setting can turn a write into a read.
func (r *rules) classify(sql string) Result {
	if !utf8.ValidString(sql) {
		// No server decoding UTF-8 accepts it, and PostgreSQL's parser
		// (through pg_query) rejects it.
		return Result{Kind: Write, Reason: reasonBadUTF8}
	}
	if strings.IndexByte(sql, 0) >= 0 {
		// Anywhere, also in a string or a comment: the protocol's
		// strings end at a NUL, and pg_query refuses it.
		return Result{Kind: Write, Reason: reasonNUL}
	}
	res, backslash := r.pass(sql, false)
	if backslash && res.Kind != Write {
		if off, _ := r.pass(sql, true); safety(off.Kind) < safety(res.Kind) {
			res = off
		}
	}
	return res
}

// pass decides sql in one lexing mode.
func (r *rules) pass(sql string, scsOff bool) (Result, bool) {
	l := lexer{src: sql, scsOff: scsOff}
	var first Result
	n := 0
	allRead := true
	for {
		res, empty, more := r.statement(&l)
		if l.err != "" {
			return Result{Kind: Write, Reason: l.err}, l.backslash
		}
		if !empty {
			n++
			if n == 1 {
				first = res
			}
			if res.Kind != Read {
				allRead = false
			}
		}
		if !more {
			break
		}
	}
	var res Result
	switch {
	case n == 0:
		return Result{Kind: Write, Reason: reasonEmpty}, l.backslash
	case n == 1:
		res = first
	case allRead:
		res = Result{Kind: Read, Reason: statementsReason(n)}
	default:
		return Result{Kind: Write, Reason: statementsReason(n)}, l.backslash
	}
	if res.Kind == Read && !grammarAccepts(sql, scsOff) {
		// The token rules found nothing wrong; the read grammar decides
		// whether the statement is one PostgreSQL's parser accepts.
		res = Result{Kind: Write, Reason: reasonSyntax}
	}
	return res, l.backslash
}

// statement decides the next statement. empty reports that there was none
// (only a semicolon or the end of input); more that a semicolon ended it.
func (r *rules) statement(l *lexer) (res Result, empty, more bool) {
	t := l.next()
	switch {
	case t.kind == tEOF:
		return Result{}, true, false
	case t.isOp(';'):
		return Result{}, true, true
	}
	return r.dispatch(l, t, false)
}

// dispatch decides a statement by its first token t.
func (r *rules) dispatch(l *lexer, t token, inExplain bool) (Result, bool, bool) {
	depth := 0
	for t.isOp('(') {
		depth++
		t = l.next()
	}
	if t.kind == tIdent {
		switch t.kw {
		case kwSelect, kwValues, kwTable, kwWith:
			return r.body(l, depth, t.kw)
		case kwShow:
			if depth == 0 && !inExplain {
				return show(l)
			}
		case kwExplain:
			if depth == 0 && !inExplain {
				return r.explain(l)
			}
		}
	}
	reason := reasonUnrecognized
	if depth == 0 && t.kind == tIdent {
		reason = headReason(l.src[t.start:t.end])
	}
	if t.isOp(';') {
		return Result{Kind: Write, Reason: reason}, false, true
	}
	return Result{Kind: Write, Reason: reason}, false, l.skipStatement()
}

// show decides SHOW name: a read when what follows is a parameter's name
// (dotted, not a reserved keyword), ALL, TIME ZONE, TRANSACTION ISOLATION
// LEVEL or SESSION AUTHORIZATION, and nothing else.
func show(l *lexer) (Result, bool, bool) {
	l.junk = false
	var words [3]token
	n := 0
	dotted := true // name ('.' name)* so far
	more := false
	for {
		t := l.next()
		if t.kind == tEOF {
			break
		}
		if t.isOp(';') {
			more = true
			break
		}
		if n < len(words) {
			words[n] = t
		}
		if n%2 == 0 {
			dotted = dotted && t.isName() && !(t.kind == tIdent && keywordCategory(l.src[t.start:t.end]) >= typeFuncKw)
		} else {
			dotted = dotted && t.isOp('.')
		}
		n++
	}
	if l.err != "" {
		return Result{Kind: Write, Reason: l.err}, false, more
	}
	src := l.src
	word := func(i int, w string) bool {
		return words[i].kind == tIdent && eqFold(src[words[i].start:words[i].end], w)
	}
	ok := false
	switch n {
	case 0:
		return Result{Kind: Write, Reason: reasonIncomplete}, false, more
	case 1:
		ok = dotted || word(0, "all")
	case 2:
		ok = word(0, "time") && word(1, "zone") || word(0, "session") && word(1, "authorization")
	case 3:
		ok = word(0, "transaction") && word(1, "isolation") && word(2, "level") || dotted
	default:
		ok = dotted && n%2 == 1
	}
	if !ok || l.junk {
		return Result{Kind: Write, Reason: reasonSyntax}, false, more
	}
	return Result{Kind: Read, Reason: reasonShow}, false, more
}

func readReason(k keyword) string {
	switch k {
	case kwSelect:
		return "SELECT"
	case kwValues:
		return "VALUES"
	case kwTable:
		return "TABLE"
	case kwShow:
		return reasonShow
	}
	return "WITH"
}

// skipStatement consumes tokens to the end of the statement and reports
// whether a semicolon ended it.
func (l *lexer) skipStatement() bool {
	for {
		t := l.next()
		if t.kind == tEOF {
			return false
		}
		if t.isOp(';') {
			return true
		}
	}
}

// explain decides EXPLAIN [ ( options ) | ANALYZE | VERBOSE ...] statement:
// the explained statement decides, since EXPLAIN ANALYZE runs it.
func (r *rules) explain(l *lexer) (Result, bool, bool) {
	t := l.next()
	if t.isOp('(') {
		peek := *l
		if n := peek.next(); !n.isOp('(') && !(n.kind == tIdent && isReadHead(n.kw)) {
			// An option list: ( name [value] [, ...] ), a value being a
			// word, a string or a signed number.
			state := 0 // 0: a name; 1: a value, ',' or ')'; 2: ',' or ')'; 3: a number after a sign
			for done := false; !done; {
				t = l.next()
				switch {
				case t.kind == tEOF:
					return Result{Kind: Write, Reason: reasonUnrecognized}, false, false
				case t.isOp(';'):
					return Result{Kind: Write, Reason: reasonUnrecognized}, false, true
				}
				bad := false
				switch state {
				case 0:
					bad = !t.isName() || t.kind == tIdent && t.kw != kwAnalyze && keywordCategory(l.src[t.start:t.end]) == reservedKw
					state = 1
				case 1, 2:
					switch {
					case t.isOp(')'):
						done = true
					case t.isOp(','):
						state = 0
					case state == 2:
						bad = true
					case t.kind == tString || t.kind == tNumber || t.isName():
						state = 2
					case t.isOp('+') || t.isOp('-'):
						state = 3
					default:
						bad = true
					}
				case 3:
					bad = t.kind != tNumber
					state = 2
				}
				if bad {
					return Result{Kind: Write, Reason: reasonSyntax}, false, l.skipStatement() // "EXPLAIN (0) SELECT"
				}
			}
			t = l.next()
		}
	}
	for t.kind == tIdent && (t.kw == kwAnalyze || t.kw == kwVerbose) {
		t = l.next()
	}
	switch {
	case t.kind == tEOF:
		return Result{Kind: Write, Reason: reasonUnrecognized}, false, false
	case t.isOp(';'):
		return Result{Kind: Write, Reason: reasonUnrecognized}, false, true
	}
	res, empty, more := r.dispatch(l, t, true)
	if res.Kind == Read {
		res.Reason = reasonExplain
	}
	return res, empty, more
}

func isReadHead(k keyword) bool {
	return k == kwSelect || k == kwValues || k == kwTable || k == kwWith
}

// body scans a read statement after its first keyword head, to its end,
// for the things that make it not a read: locking clauses, SELECT INTO,
// data-modifying statements (in CTEs or as the main statement of a WITH),
// calls of write functions, and the signs of a statement PostgreSQL's
// parser rejects (see [rules.incomplete]). depth counts the parentheses
// opened before the first keyword.
func (r *rules) body(l *lexer, depth int, head keyword) (Result, bool, bool) {
	st := verdict{res: Result{Kind: Read, Reason: readReason(head)}}
	start := depth
	l.junk = false
	// p1, p2, p3: the previous three tokens, p1 the latest; p0 the token
	// before the latest run of operator characters.
	var p0, p1, p2, p3 token
	n := 0                 // tokens after the head
	brackets := 0          // open square brackets
	jsonDepth := 0         // depth inside the outermost JSON_OBJECT(...), 0 outside
	main := head != kwWith // a WITH has its main statement
	more := false
	// cur holds the flags of the current parenthesis level, frames those
	// of the enclosing levels while inside; closed those of the level the
	// latest ')' closed.
	var frames [maxFrames]uint16
	var cur, closed uint16
	var pend, next uint8 // pendStar, pendCast: what p1 (the token before t) was
	cases := 0           // CASEs opened and not yet ENDed
	uni := uint8(0)      // 1: p1 is a U& string or name (its escapes not yet checked); 2: p1 is the UESCAPE after one
	tbl := uint8(0)      // TABLE [ONLY] name [*]: 1 a name is due, 2 after a name, 3 after its '*', 4 after ONLY
	if head == kwTable {
		tbl = 1
	}
	like := false // a LIKE, ILIKE or SIMILAR was seen: ESCAPE may take a number
	var cte uint8 // the state of a WITH's list of CTEs, 0 after it
	if head == kwWith {
		cte = cteFirst
	}
	if head == kwSelect {
		cur = fQuery
	}
	for {
		t := l.next()
		if r.user != nil && p2.isOp('.') && (p1.kind == tIdent || p1.kind == tQIdent) && !t.isOp('(') {
			// Functional notation: tab.fn, not called, means fn(tab).
			r.checkAttr(l.src, p1, &st)
		}
		if t.kind == tEOF {
			break
		}
		if n == 0 && !firstOK(l.src, head, t) {
			st.write(reasonIncomplete)
		}
		n++
		// What may follow the token before: one switch on its class.
		switch p1.kind {
		case tIdent:
			if p1.kw != kwNone {
				if afterKeywordMask&(1<<p1.kw) != 0 && !p2.isOp('.') && p2.kw != kwAs && afterKeyword(l.src, p1, p2, p3, t, cur) {
					st.write(reasonSyntax) // "SELECT 0 in x", "SELECT 0 AS 'x'", "SELECT 1 UNION 'x'"
				}
			} else if isSetOpKw(p2.kw) && !setOperand(l.src, t) && eqFold(l.src[p1.start:p1.end], "all") {
				st.write(reasonSyntax) // "UNION ALL )": a query follows
			}
		case tOp:
			switch p1.op {
			case ')':
				if depth < start && !(t.isOp(')') || t.isOp(';') || t.kind == tIdent && afterParenQuery(t.kw)) {
					st.write(reasonSyntax) // "(SELECT 1) a": a parenthesised statement takes a clause, not an operand
				}
				if closed&fValues != 0 && !(t.isOp(',') || t.isOp(')') || t.isOp(';') || t.kind == tIdent && (afterParenQuery(t.kw) || jsonArrayQueryTail(l.src, t))) {
					st.write(reasonSyntax) // "VALUES (0) a", "VALUES (0) OR 0": a row is no operand (INSERT's ON CONFLICT is a write already)
				}
			case '(':
				if cur&fQueryOnly != 0 && !(t.isOp('(') || t.kind == tIdent && cteHead(t.kw)) {
					st.write(reasonSyntax) // "AS ((0))", "UNION (0)": a query must begin there
				}
			case '.':
				if !(t.isName() || t.isOp('*')) && cur&fOperator == 0 {
					st.write(reasonSyntax) // "(a.)": a name or '*' after a dot (but OPERATOR(s.+))
				}
			case '*':
				if p2.isOp('(') && cur&fCall != 0 && !t.isOp(')') {
					st.write(reasonSyntax) // "f(*a)": count(*) takes the star alone
				}
			}
		}
		if uni != 0 {
			if uni == 1 {
				if t.kind == tIdent && eqFold(l.src[t.start:t.end], "uescape") {
					uni = 2
				} else {
					uni = 0
					if !validUnicode(unicodeBody(l.src, p1), '\\') {
						st.write(reasonUnicode)
					}
				}
			} else {
				uni = 0
				if esc, ok := uescapeChar(l.src, t); !ok || !validUnicode(unicodeBody(l.src, p2), esc) {
					st.write(reasonUnicode)
				}
			}
		}
		if tbl != 0 {
			switch {
			case tbl == 1 && t.kind == tIdent && eqFold(l.src[t.start:t.end], "only") && !p1.isOp('.'):
				tbl = 4 // TABLE ONLY: a name or ONLY (name) follows
			case tbl == 4 && t.isOp('('):
				tbl = 0 // ONLY (name): the read grammar checks the rest
			case tbl == 1 || tbl == 4:
				tbl = 0
				if !colID(l.src, t) {
					st.write(reasonSyntax) // "TABLE TABLE": a reserved keyword names no table
				} else {
					tbl = 2
				}
			case tbl == 2 && t.isOp('.'):
				tbl = 1
			case tbl == 2 && t.isOp('*'):
				tbl = 3
			default:
				tbl = 0
				if !(t.isOp(')') || t.isOp(';') || t.kind == tIdent && afterParenQuery(t.kw)) {
					st.write(reasonSyntax) // "TABLE t x": a table takes no alias
				}
			}
		}
		inFrom := cur&fFrom != 0 // before t changes the flags
		if pend&pendRow != 0 && !t.isOp('(') {
			st.write(reasonSyntax) // "VALUES (0), 0"
		}
		if pend&pendFor != 0 && !lockStrength(l.src, t) {
			st.write(reasonSyntax) // "SELECT FOR 0": FOR UPDATE, SHARE, NO KEY, KEY, READ ONLY
		}
		if cte == cteBody {
			if t.kind == tOp && t.op == ')' && depth == start+1 {
				cte = cteAfterBody
			}
		} else if cte != 0 {
			var bad bool
			if cte, bad = cteStep(l.src, cte, t, depth-start); bad {
				st.write(reasonSyntax) // "WITH a SELECT", "WITH a(0)"
			}
		}
		// The frame's checks see every token of a CAST type and of a FROM
		// clause, the names in call arguments and the FROM of a SELECT.
		switch t.kind {
		case tOp:
			if cur&(fCastType|fFrom) != 0 && (cur&fCastType != 0 || t.op == '(' || t.op == ',' || p1.kw == kwFrom) {
				r.frameChecks(l.src, &cur, closed, brackets, p1, p2, p3, t, &st)
			}
			if pend != 0 {
				if pend&pendCast != 0 || pend&pendStar != 0 && (isOpChar(t.op) || t.op == ':' || t.op == '[' || t.op == '.') {
					st.write(reasonSyntax) // "::" takes a type name; "SELECT * + 0"
				}
				if pend&pendAlias != 0 && cur&fNamed == 0 && (isOpChar(t.op) || t.op == '[' || t.op == ':' || t.op == '.' || t.op == '(' && cur&fFrom == 0) &&
					namesAfterOperand(l.src, p1, p2, p3, cur, pend, like, st.res.Kind == LockingRead) {
					st.write(reasonSyntax) // "SELECT 0 a ! b", "SELECT 0 a.b": an alias, then an operator
				}
			}
			if isOpChar(t.op) {
				if cur&(fFrom|fOn) == fFrom && (t.op != '*' || !relationStar(l.src, p1, p2)) {
					st.write(reasonSyntax) // "FROM t + 1", "FROM t x*": a FROM clause's items are no expressions
				}
				if !(p1.kind == tOp && isOpChar(p1.op)) {
					p0 = p1
					if t.op != '+' && t.op != '-' && t.op != '*' && exprStart(l.src, p1, p2) && binaryOnly(l.src, t.start) {
						st.write(reasonSyntax) // "SELECT %0", "WHERE = 1": no operand before
					}
				} else if t.start != p1.end && (p1.op != '*' || !p0.isOp('.')) && (binaryOnly(l.src, t.start) ||
					t.op == '*' && !(t.end < len(l.src) && isOpChar(l.src[t.end]))) {
					st.write(reasonSyntax) // "SELECT ! %0": an operator after a prefix operator
				}
			} else if p1.kind == tOp && (t.op == ',' || t.op == ')' || t.op == ']' || t.op == ';') &&
				danglingOp(l.src, p0, p1, inFrom, closed) && cur&fOperator == 0 {
				st.write(reasonSyntax) // "0!,", "(!)", "(a*)": no postfix operators
			}
			if (t.op == ')' || t.op == ',') && noAlias(cur) && opKeyword(p1, p2) {
				st.write(reasonSyntax) // "WHERE a OR)": an operator keyword without its right operand
			}
			switch t.op {
			case ';':
				more = true
			case ',':
				if p1.isOp(')') && closed&fValues != 0 {
					next = pendRow
				}
				if cur&fNoComma != 0 && brackets == 0 {
					st.write(reasonSyntax) // "WHERE a, b"
				}
				switch p1.kind {
				case tIdent:
					if p1.kw != kwNone && (p1.kw == kwSelect || p1.kw.isClause()) && !p2.isOp('.') && p2.kw != kwAs {
						st.write(reasonSyntax) // "SELECT ,", "FROM ,"
					}
				case tOp:
					if p1.op == '(' || p1.op == ',' || p1.op == '[' {
						st.write(reasonSyntax) // "(,", ",,"
					}
				case tEOF:
					st.write(reasonSyntax) // "SELECT ,"
				}
			case '.':
				switch p1.kind {
				case tEOF, tString, tNumber:
					st.write(reasonSyntax) // "SELECT .a", "SELECT 0 .a"
				case tOp:
					if p1.op != ')' && p1.op != ']' || p1.op == ')' && closed&fCall != 0 {
						st.write(reasonSyntax) // "(.a", ", .a", "f().a" (but "(f()).a")
					}
				case tIdent:
					if !p2.isOp('.') && !schemaName(l.src, p1) {
						st.write(reasonSyntax) // "SELECT .", "WHERE .x": a reserved keyword names no table
					}
				case tParam:
					if p2.kind == tQIdent || p2.kind == tUIdent || p2.kind == tIdent && p2.kw == kwNone && keywordCategory(l.src[p2.start:p2.end]) == notKeyword {
						st.write(reasonSyntax) // "a $1.f": a typed constant takes no field
					}
				}
			case '*':
				// A bare '*' target ("t.*" takes an alias, "*" does not).
				if p1.isOp(',') || p1.kind == tEOF && head == kwSelect ||
					p1.kind == tIdent && p1.kw == kwSelect && !p2.isOp('.') {
					next = pendStar
				}
				if p1.isOp(',') && (cur&fQuery == 0 || cur&(fExpr|fFrom) != 0) || p1.isOp('(') && cur&fCall == 0 {
					st.write(reasonSyntax) // "VALUES (*)", "SELECT (*)": '*' only as a target or in count(*)
				}
			case '(':
				if uint(depth) < maxFrames {
					frames[depth] = cur
				}
				depth++
				var f uint16
				if p1.isName() {
					r.checkCall(l.src, p1, p2, p3, &st)
					if jsonDepth == 0 && p1.kind == tIdent && isJSONObject(l.src[p1.start:p1.end]) {
						jsonDepth = depth
					}
					var bad bool
					f, bad = openFlags(l.src, p1, p2, p3, closed)
					if bad {
						st.write(reasonSyntax)
					}
				}
				switch {
				case p1.isOp(',') && cur&(fExpr|fNamed) != 0 || p1.isOp('(') && p2.isName() && p2.kw != kwAs:
					f |= fEmptyOK // GROUP BY a, (), GROUPING SETS ((), a)
				case p1.kw == kwOn && p2.kw == kwDistinct:
					f |= fOnList
				case p1.kw == kwValues || p1.kind == tEOF && head == kwValues:
					f |= fValues
				case (p1.kind == tQIdent || p1.kind == tIdent && p1.kw == kwNone && callName(l.src[p1.start:p1.end])) &&
					!(cur&fFrom != 0 && (p2.kw == kwAs || operandEnd(p2))):
					f |= fCall // not a column list: FROM f() AS x(a int), FROM t x(a)
				case p1.isOp(')') && closed&(fOperator|fOnList) == 0 && (main || depth != start+1),
					p1.kind == tNumber || p1.kind == tString || p1.kind == tParam || p1.isOp('.'),
					p1.kw == kwAs && cur&(fQuery|fFrom|fExpr) == fQuery:
					st.write(reasonSyntax) // "SELECT (1)(2)", "SELECT 0('')", "SELECT 0 AS (": no call of a parenthesis or a constant
				}
				if pend&pendRow != 0 {
					f = f&^fEmptyOK | fValues // the next row of VALUES
				}
				if cte == cteBodyOpen || p1.isOp('(') && cur&fQueryOnly != 0 || !main && depth == start+1 && p1.isOp(')') ||
					isSetOpKw(p1.kw) || (p1.kw == kwDistinct || p1.kind == tIdent && eqFold(l.src[p1.start:p1.end], "all")) && isSetOpKw(p2.kw) {
					f |= fQueryOnly
				}
				cur = f
				if !main && depth == start+1 && p1.isOp(')') {
					main = true // WITH ... (SELECT ...)
				}
			case ')':
				if p1.isOp(',') || p1.isOp('(') && (cur&(fNamed|fEmptyOK) == 0 || cur&fValues != 0) && uint(depth) <= maxFrames {
					st.write(reasonSyntax) // "f(a,)", "SELECT ()", "AS (())": only a call, GROUP BY and a few more take ()
				}
				closed = cur
				depth--
				cur = 0
				if uint(depth) < maxFrames {
					cur = frames[depth]
				}
				if depth < jsonDepth {
					jsonDepth = 0
				}
				if depth < 0 {
					st.write(reasonParens)
				}
			case '[':
				brackets++
			case ']':
				if p1.isOp(',') {
					st.write(reasonSyntax)
				}
				brackets--
				if brackets < 0 {
					st.write(reasonParens)
				}
			case ':':
				if t.end < len(l.src) && l.src[t.end] == ':' {
					l.pos = t.end + 1 // the typecast ::
					t.end++
					if !castable(l.src, p1, p2) {
						st.write(reasonSyntax) // "SELECT ::int", "(::"
					}
					next = pendCast
				} else if t.end < len(l.src) && l.src[t.end] == '=' {
					// := of a named argument
				} else if brackets == 0 && (jsonDepth == 0 || p1.isOp('(') || p1.isOp(',')) {
					// Only array slices and JSON_OBJECT's key : value
					// take a lone colon; psql variables (:name) are not
					// SQL.
					st.write(reasonColon)
				}
			default:
				if !isOpChar(t.op) && !isSelfChar(t.op) {
					// A backslash (psql's \gset), a brace, a lone $:
					// no token of PostgreSQL's.
					st.write(reasonBadChar)
				}
			}
		case tIdent:
			if cur&(fCastType|fCast) != 0 {
				r.frameChecks(l.src, &cur, closed, brackets, p1, p2, p3, t, &st)
			} else if t.kw.inFrames() && cur != 0 && !p1.isOp('.') {
				switch {
				case cur&(fNamed|fQuery) == fNamed:
					// Call arguments: no WITHIN GROUP after ORDER BY,
					// DISTINCT or VARIADIC.
					if t.kw == kwOrder || t.kw == kwVariadic || t.kw == kwDistinct && p1.isOp('(') {
						cur |= fNoWithin
					}
				case t.kw.endsFrom():
					if cur&fQuery != 0 && !(t.kw == kwGroup && cur&fFrom == 0 && p1.kind == tIdent && eqFold(l.src[p1.start:p1.end], "within")) {
						cur = cur&^(fFrom|fOn|fNoComma) | fExpr
						switch t.kw {
						case kwWhere, kwHaving, kwLimit, kwOffset, kwFetch:
							cur |= fNoComma
						}
					}
				case t.kw == kwFrom:
					if cur&(fQuery|fFrom|fExpr) == fQuery && p1.kw != kwAs && p1.kw != kwDistinct {
						cur |= fFrom // not "IS DISTINCT FROM", not a label
					}
				case cur&fFrom == 0:
				case t.kw == kwOn:
					cur |= fOn // an expression, where the grammar takes a window function
				case t.kw == kwJoin:
					cur &^= fOn
				case t.kw == kwTablesample:
					r.frameChecks(l.src, &cur, closed, brackets, p1, p2, p3, t, &st)
				}
			}
			switch t.kw {
			case kwAnd, kwOr, kwIs, kwIn, kwLike, kwIlike, kwBetween, kwWhen, kwThen, kwElse, kwEnd, kwAsc, kwDesc, kwAs, kwOn:
				if p1.kind == tOp && isOpChar(p1.op) && (p1.op != '*' || operandName(l.src, p0) && !listEnd(p0, closed)) || (p1.kind == tEOF || p1.kind == tOp || p1.kw != kwNone) && exprStart(l.src, p1, p2) {
					st.write(reasonSyntax) // "SELECT OR", "WHERE AND": no left operand
				}
			}
			if pend&pendStar != 0 && !(t.kw >= kwFrom && t.kw <= kwReturning) ||
				pend&pendAlias != 0 && notAfterName(l.src, t) && !(cur&fNamed != 0 && tableColumnOption(l.src, t)) && namesAfterOperand(l.src, p1, p2, p3, cur, pend, like, st.res.Kind == LockingRead) {
				// "SELECT * x", "SELECT * OR": only a clause follows a bare
				// star; "SELECT 0 a b", "SELECT 0 a of": an alias takes no
				// second name.
				st.write(reasonSyntax)
			}
			if t.kw == kwFor && cur&fQuery != 0 && !(p1.kind == tIdent && eqFold(l.src[p1.start:p1.end], "collation")) {
				next = pendFor // not COLLATION FOR (x)
			}
			if cur&(fFrom|fOn) == fFrom && opKeyword(t, p1) {
				st.write(reasonSyntax) // "FROM a OR b": a FROM clause's items are no expressions
			}
			if t.kw == kwOn && cur&(fQuery|fFrom|fNamed) == fQuery && p1.kw != kwDistinct && !p1.isOp('.') && p1.kw != kwAs {
				st.write(reasonSyntax) // "SELECT 0 ON x": ON outside a join, DISTINCT ON or a call
			}
			if t.kw == kwNone && p1.kind == tOp && isOpChar(p1.op) && badAfterComma(l.src[t.start:t.end]) && !quantifier(l.src[t.start:t.end]) {
				st.write(reasonSyntax) // "SELECT !TO a": a reserved keyword that starts no operand
			}
			if p1.kind == tOp && p1.op == ',' && (t.kw == kwDistinct || t.kw == kwNone && badAfterComma(l.src[t.start:t.end])) {
				st.write(reasonSyntax) // "SELECT ALL 1, DISTINCT": a list qualifier or a keyword that starts no item
			}
			// After an operand (or a keyword that is a column: "SELECT key a"),
			// a name may be its alias.
			afterOperand := operandEnd(p1) && !listEnd(p1, closed) || p1.isOp('*') && cur&fFrom != 0 ||
				p1.kind == tIdent && p1.kw != kwNone && (p2.isOp('.') || itemStart(p2) && columnKeyword(l.src, p1))
			if t.kw != kwNone && afterOperand && aliasOnly(t.kw, cases) {
				// "SELECT 0 key", "SELECT 0 then" (no CASE open): a
				// keyword that continues no operand is its alias.
				next = pendAlias | pendKwAlias
			}
			switch t.kw {
			case kwCase:
				if !operandEnd(p1) {
					cases++
				}
			case kwEnd:
				if cases > 0 && !p1.isOp('.') && p1.kw != kwAs {
					cases--
				}
			case kwLike, kwIlike, kwSimilar:
				like = true
			}
			if p1.kw == kwAs && p1.kind == tIdent && !p2.isOp('.') && cte == 0 && cur&fNamed == 0 {
				next = pendAlias | pendLabel // "SELECT 0 AS a b": a label takes no second name
			} else if t.kw == kwNone && afterOperand {
				next = pendAlias
				if (cur&(fExpr|fOn|fCall) != 0 || parenExpr(cur, depth, start, &frames)) && !(p1.isOp(')') && closed&fOperator != 0) &&
					keywordCategory(l.src[t.start:t.end]) == notKeyword &&
					(p1.kind != tIdent || isOperandName(l.src, p1)) {
					st.write(reasonSyntax) // "WHERE 0 a": no alias in WHERE, ON, ORDER BY...
				}
			}
			if p1.kind == tOp && t.kw.isClause() && danglingOp(l.src, p0, p1, inFrom, closed) {
				st.write(reasonSyntax) // "a + FROM"
			}
			switch t.kw {
			case kwUpdate:
				switch {
				case p1.kw == kwFor && p1.kind == tIdent:
					st.lock("FOR UPDATE")
				case p1.kw == kwKey && p2.kw == kwNo && p1.kind == tIdent && p2.kind == tIdent:
					st.lock("FOR NO KEY UPDATE")
				case !isNameContext(l, p1):
					st.write(dmlReason(t.kw, depth))
				}
			case kwShare:
				switch {
				case p1.kw == kwFor && p1.kind == tIdent:
					st.lock("FOR SHARE")
				case p1.kw == kwKey && p1.kind == tIdent:
					st.lock("FOR KEY SHARE")
				}
			case kwInsert, kwDelete, kwMerge:
				if !isNameContext(l, p1) {
					st.write(dmlReason(t.kw, depth))
				}
			case kwInto:
				if !p1.isOp('.') && !(p1.kind == tIdent && p1.kw == kwAs) {
					st.write(reasonSelectInto)
				}
			case kwSelect, kwValues, kwTable:
				if p1.isOp('.') || p1.kind == tIdent && p1.kw == kwAs {
					break // a column label
				}
				if t.kw == kwTable {
					tbl = 1
				}
				if depth == start {
					main = true
				}
				if t.kw == kwSelect {
					cur = fQuery | cur&fCast
				}
				if !startsQuery(l.src, p1, depth == start && head == kwWith) || t.kw == kwSelect && (p1.kw == kwSelect || p1.kind == tEOF && head == kwSelect) {
					st.write(reasonIncomplete) // two statements without a semicolon
				}
			default:
				if p1.isOp(',') && t.kw.isClause() {
					st.write(reasonIncomplete) // "a, FROM t", "PARTITION BY a, ORDER BY b"
				}
				if (t.kw.isClause() || t.kw == kwFetch || t.kw == kwReturning) && !p1.isOp(')') && !(t.kw == kwFrom && p1.kw == kwDistinct) &&
					!(t.kw == kwGroup && p1.kind == tIdent && eqFold(l.src[p1.start:p1.end], "within")) &&
					(cur&fCall != 0 && t.kw != kwOrder || parenExpr(cur, depth, start, &frames)) {
					st.write(reasonSyntax) // "f(FOR)", "(0 WHERE)": no clause in a call (but ORDER BY) or an expression
				}
			}
		default:
			// A constant or a quoted name.
			if t.kind == tUIdent || t.kind == tString && l.src[t.start]|0x20 == 'u' && uni == 0 {
				uni = 1 // its escapes are checked with the next token (UESCAPE or not)
			}
			if cur&(fCastType|fFrom) != 0 && (cur&fCastType != 0 || p1.kw == kwFrom) {
				r.frameChecks(l.src, &cur, closed, brackets, p1, p2, p3, t, &st)
			}
			if cur&(fFrom|fOn) == fFrom && t.kind >= tString && !(p2.kind == tUIdent && p1.kind == tIdent && eqFold(l.src[p1.start:p1.end], "uescape")) {
				st.write(reasonSyntax) // "FROM t* 0": a FROM clause holds no constant outside parentheses and ON
			}
			if pend&pendAlias != 0 && (t.kind <= tUIdent || cur&fNamed == 0) && namesAfterOperand(l.src, p1, p2, p3, cur, pend, like, st.res.Kind == LockingRead) {
				st.write(reasonSyntax) // "SELECT 0 a \"b\"", "SELECT 0 a $1"
			}
			if t.kind <= tUIdent {
				if operandEnd(p1) && !listEnd(p1, closed) {
					next = pendAlias
					if (cur&(fExpr|fOn|fCall) != 0 || parenExpr(cur, depth, start, &frames)) && !(p1.isOp(')') && closed&fOperator != 0) &&
						(p1.kind != tIdent || isOperandName(l.src, p1)) {
						st.write(reasonSyntax) // "WHERE 0 \"a\""
					}
				}
			}
			switch p1.kind {
			case tNumber, tParam:
				if t.kind >= tString {
					st.write(reasonIncomplete) // two constants side by side: "1 2"
				}
			case tString:
				if t.kind >= tNumber || t.kind == tString && !continuation(l.src, p1, t) {
					st.write(reasonIncomplete) // "'a' 1", "$$a$$ 'b'"; "int 'a'" is a typed constant
				}
			default:
				if adjacentOperand(l.src, p1, p2, p3, t, cur, closed, jsonDepth > 0, like) {
					st.write(reasonSyntax) // "SELECT a 1", "f(x) 1"
				}
			}
			if pend&(pendStar|pendCast) != 0 && (pend&pendStar != 0 || t.kind >= tString) {
				st.write(reasonSyntax) // "SELECT * 1", ":: 1"
			}
		}
		if more {
			break
		}
		pend, next = next, 0
		p3, p2, p1 = p2, p1, t
	}
	if uni == 2 || uni == 1 && !validUnicode(unicodeBody(l.src, p1), '\\') {
		st.write(reasonUnicode)
	}
	if depth != 0 || brackets != 0 {
		st.write(reasonParens)
	}
	switch {
	case !main:
		st.write(reasonNoMain)
	case n == 0 && head != kwSelect:
		st.write(reasonIncomplete) // TABLE, VALUES, SHOW, WITH alone
	case l.junk:
		st.write(reasonNumberJunk)
	case dangling(l.src, p0, p1, p2, cur&fFrom != 0 || head == kwTable),
		noAlias(cur) && opKeyword(p1, p2):
		st.write(reasonIncomplete)
	}
	return st.res, false, more
}

// firstOK reports whether t may follow the head keyword of a read.
func firstOK(src string, head keyword, t token) bool {
	switch head {
	case kwValues:
		return t.isOp('(')
	case kwTable, kwShow:
		return t.isName()
	case kwWith:
		// A CTE's name (or RECURSIVE), never a reserved keyword.
		return t.isName() && !(t.kind == tIdent && keywordCategory(src[t.start:t.end]) == reservedKw)
	case kwSelect:
		// A reserved keyword after SELECT starts an expression (CASE,
		// NOT, NULL, CURRENT_DATE, ...), qualifies the list (ALL,
		// DISTINCT) or begins a clause of an empty list (FROM, WHERE, ...).
		if t.kind == tIdent && t.kw != kwSelect && !(t.kw >= kwFrom && t.kw <= kwReturning) {
			w := src[t.start:t.end]
			return keywordCategory(w) != reservedKw || startsAfterSelect(w)
		}
	}
	return true
}

// startsAfterSelect reports whether the reserved keyword w may follow
// SELECT.
func startsAfterSelect(w string) bool {
	if isValueKeyword(w) {
		return true
	}
	switch {
	case eqFold(w, "all"), eqFold(w, "distinct"), eqFold(w, "case"), eqFold(w, "cast"), eqFold(w, "not"),
		eqFold(w, "array"), eqFold(w, "select"), eqFold(w, "with"):
		return true
	}
	return false
}

// isSelfChar is scan.l's self: the punctuation that is a token of its own.
func isSelfChar(c byte) bool {
	switch c {
	case ',', '(', ')', '[', ']', '.', ';', ':', '+', '-', '*', '/', '%', '^', '<', '>', '=':
		return true
	}
	return false
}

// isOpChar is scan.l's op_chars, of which operators are made.
func isOpChar(c byte) bool {
	switch c {
	case '~', '!', '@', '#', '^', '&', '|', '`', '?', '+', '-', '*', '/', '%', '<', '>', '=':
		return true
	}
	return false
}

// isJSONObject reports whether an identifier is json_object or
// json_objectagg, whose arguments may be written key : value.
func isJSONObject(s string) bool {
	// eqFold folds letters only: the underscore is compared apart.
	return len(s) >= 11 && eqFold(s[:4], "json") && s[4] == '_' && eqFold(s[5:11], "object") &&
		(len(s) == 11 || eqFold(s[11:], "agg"))
}

// dangling reports whether a read statement whose last tokens are p2, p1
// (p0 the token before the last run of operator characters) cannot end
// there: an operator with no right operand ("x +", but "ORDER BY x USING <"
// is whole), a comma or a dot, or a reserved keyword that needs more
// ("FROM", "WHERE", "UNION", "ORDER BY", "UNION ALL"), unless that keyword
// is a column label ("t.from", "AS from").
func dangling(src string, p0, p1, p2 token, relation bool) bool {
	switch p1.kind {
	case tOp:
		switch {
		case p1.op == ',' || p1.op == '.' || p1.op == ':':
			return true
		case p1.op == '*':
			// SELECT *, t.*, count(*), DISTINCT ON (a) *, FROM t * (a
			// table and its children); not "SELECT 0 *", not "SELECT !*".
			if p2.kind == tOp && isOpChar(p2.op) {
				return true
			}
			return !relation && (p0.kind == tString || p0.kind == tNumber || p0.kind == tParam || p0.kind == tQIdent ||
				p0.kind == tIdent && (p0.kw == kwNone && !eqFold(src[p0.start:p0.end], "all") && !eqFold(src[p0.start:p0.end], "using") ||
					p0.kw != kwNone && columnKeyword(src, p0)))
		case isOpChar(p1.op):
			return !(p0.kind == tIdent && eqFold(src[p0.start:p0.end], "using"))
		}
		return false
	case tIdent:
	default:
		return false
	}
	if p2.isOp('.') || p2.kind == tIdent && p2.kw == kwAs {
		return false
	}
	if p2.kw == kwFor && (p1.kw == kwKey || p1.kw == kwNo || eqFold(src[p1.start:p1.end], "read")) || p2.kw == kwNo && p1.kw == kwKey {
		return true // FOR KEY, FOR NO, FOR NO KEY, FOR READ: no lock strength
	}
	w := src[p1.start:p1.end]
	switch {
	case eqFold(w, "by"):
		p := src[p2.start:p2.end]
		return p2.kind == tIdent && (eqFold(p, "order") || eqFold(p, "group"))
	case eqFold(w, "all"), eqFold(w, "distinct"):
		return p2.kind == tIdent && isSetOp(src[p2.start:p2.end])
	}
	return eqFold(w, "as") || p1.kw == kwWith || needsMore(w) || cannotEnd(w)
}

// cannotEnd reports whether w is one of the reserved keywords, beyond
// needsMore's, that can neither end a statement nor be a bare column label.
func cannotEnd(w string) bool {
	switch len(w) {
	case 2:
		return eqFold(w, "to")
	case 5:
		return eqFold(w, "array") || eqFold(w, "fetch") || eqFold(w, "grant") || eqFold(w, "table")
	case 6:
		return eqFold(w, "create")
	case 9:
		return eqFold(w, "returning")
	}
	return false
}

// adjacentOperand reports whether the constant or quoted name t cannot
// follow p1 (p2, p3 before it; cur the flags of the parenthesis level;
// inJSON inside JSON_OBJECT; like that a LIKE, ILIKE or SIMILAR was seen):
// a number after a name or a keyword that takes none ("SELECT a 1",
// "SELECT _1_000.5", "SELECT OF 0", see [numberMayFollow]) or after a
// closing parenthesis or bracket, a parameter or a string after a closing
// bracket, a constant after a dot.
func adjacentOperand(src string, p1, p2, p3, t token, cur, closed uint16, inJSON, like bool) bool {
	if p1.isOp('.') {
		return t.kind >= tString // "t. 0": a name or '*' follows a dot
	}
	switch t.kind {
	case tNumber:
		switch p1.kind {
		case tQIdent, tUIdent:
			return true
		case tIdent:
			return !numberMayFollow(src, p1, p2, p3, cur, inJSON, like)
		case tOp:
			return p1.op == ')' && !listEnd(p1, closed) || p1.op == ']'
		}
	case tParam:
		// A parameter may follow a name or a typmod as a typed constant
		// ("int $1", "numeric(10, 2) $1") in pg_query's grammar.
		return p1.isOp(']')
	case tString:
		if c := src[t.start] | 0x20; c == 'b' || c == 'x' {
			// A bit string is no typed literal's text: "f(a B'1')".
			return p1.kind == tQIdent || p1.kind == tUIdent || p1.isOp(')') || p1.isOp(']') ||
				p1.kind == tIdent && p1.kw == kwNone && keywordCategory(src[p1.start:p1.end]) == notKeyword
		}
		return p1.isOp(']')
	}
	return false
}

// numberMayFollow reports whether a numeric constant may follow the
// identifier p1 (p2, p3 before it): only a keyword of PostgreSQL 17's
// grammar that takes an expression or a number after it, and then only
// where it does (a number after a name, a column label or a keyword used as
// a name is a syntax error: "SELECT a 1", "SELECT OF 0", "SELECT 0 SKIP 0",
// "SELECT t.by 1"). cur holds the flags of the parenthesis level, inJSON
// that t is inside JSON_OBJECT(...), like that the statement has a LIKE,
// ILIKE or SIMILAR. Where telling needs more than the last three tokens
// (a frame clause, the arguments of XMLTABLE, POSITION, OVERLAY), the
// keyword takes a number in any call's parentheses.
func numberMayFollow(src string, p1, p2, p3 token, cur uint16, inJSON, like bool) bool {
	if p2.isOp('.') || p2.kind == tIdent && p2.kw == kwAs {
		return false // a column label: "t.key 0", "AS by 0"
	}
	switch p1.kw {
	case kwSelect, kwFrom, kwFor, kwWhere, kwHaving, kwLimit, kwOffset, kwAnd, kwOr, kwLike, kwIlike, kwBetween,
		kwCase, kwWhen, kwThen, kwElse:
		// FROM and FOR: substring(x FROM 1 FOR 2), IS DISTINCT FROM 1 (a
		// FROM clause and a locking FOR are checked apart). WHEN, THEN,
		// ELSE outside a CASE are aliases, checked as such.
		return true
	case kwNot:
		return !operandName(src, p2) // "NOT 1", not "SELECT 0 NOT 1"
	case kwIn, kwVariadic, kwSimilar:
		return cur&fNamed != 0 // position(a IN 1), f(VARIADIC 1), substring(a SIMILAR 1 ESCAPE 1)
	case kwOn:
		return cur&(fFrom|fNamed) != 0 // JOIN t ON 1
	case kwDistinct:
		return setQuantifier(src, p2, p3)
	case kwNone:
	default:
		return false
	}
	w := src[p1.start:p1.end]
	switch len(w) {
	case 2:
		if eqFold(w, "by") {
			return p2.kw == kwOrder || p2.kw == kwGroup || p2.kind == tIdent && eqFold(src[p2.start:p2.end], "partition")
		}
		if eqFold(w, "to") {
			// SIMILAR TO 1; CYCLE c SET d TO 1
			return p2.kw == kwSimilar || p3.kind == tIdent && eqFold(src[p3.start:p3.end], "set")
		}
	case 3:
		if eqFold(w, "all") {
			return setQuantifier(src, p2, p3)
		}
		if eqFold(w, "ref") {
			return p2.kind == tIdent && eqFold(src[p2.start:p2.end], "by") // PASSING BY REF 1
		}
	case 4:
		switch {
		case eqFold(w, "next"):
			return p2.kw == kwFetch
		case eqFold(w, "rows"):
			return cur&fNamed != 0 // OVER (ROWS 1 PRECEDING)
		case eqFold(w, "zone"):
			return p2.kind == tIdent && eqFold(src[p2.start:p2.end], "time") &&
				p3.kind == tIdent && eqFold(src[p3.start:p3.end], "at") // AT TIME ZONE 1
		case eqFold(w, "path"):
			return cur&fNamed != 0 // XMLTABLE(... COLUMNS a int PATH 1)
		case eqFold(w, "both"):
			return cur&fNamed != 0 && p2.isOp('(') // trim(BOTH 1 FROM x)
		}
	case 5:
		switch {
		case eqFold(w, "first"):
			return p2.kw == kwFetch
		case eqFold(w, "range"):
			return cur&fNamed != 0
		case eqFold(w, "value"):
			return inJSON || p2.kind == tIdent && eqFold(src[p2.start:p2.end], "by") // json_object(k VALUE 1), PASSING BY VALUE 1
		}
	case 6:
		switch {
		case eqFold(w, "groups"):
			return cur&fNamed != 0
		case eqFold(w, "escape"):
			return like
		}
	case 7:
		switch {
		case eqFold(w, "default"):
			// JSON and XMLTABLE: DEFAULT 1 ON ERROR; CYCLE c SET d TO 1 DEFAULT 0
			return cur&fNamed != 0 || p3.kind == tIdent && eqFold(src[p3.start:p3.end], "to")
		case eqFold(w, "passing"), eqFold(w, "placing"):
			return cur&fNamed != 0 // xmlexists(x PASSING 1), overlay(x PLACING 1 FROM 1)
		case eqFold(w, "version"):
			return cur&fNamed != 0 && p2.isOp(',') // xmlroot(x, VERSION 1)
		case eqFold(w, "content"), eqFold(w, "leading"):
			return cur&fNamed != 0 && p2.isOp('(') // xmlparse(CONTENT 1), trim(LEADING 1 FROM x)
		}
	case 8:
		switch {
		case eqFold(w, "document"), eqFold(w, "trailing"):
			return cur&fNamed != 0 && p2.isOp('(')
		}
	case 9:
		return eqFold(w, "symmetric") && p2.kw == kwBetween
	case 10:
		return eqFold(w, "asymmetric") && p2.kw == kwBetween
	}
	return false
}

// setQuantifier reports whether ALL or DISTINCT after p2 (p3 before it) is
// a set quantifier that an expression may follow: SELECT ALL, GROUP BY
// DISTINCT, count(DISTINCT x).
func setQuantifier(src string, p2, p3 token) bool {
	switch p2.kind {
	case tEOF:
		return true // right after the SELECT
	case tIdent:
		return p2.kw == kwSelect || eqFold(src[p2.start:p2.end], "by")
	case tOp:
		return p2.op == '(' && p3.isName()
	}
	return false
}

// operandName reports whether t ends an operand by itself: a constant, a
// quoted name, a closing parenthesis or bracket, or a name that is no
// keyword or a value keyword (TRUE, NULL, CURRENT_DATE).
func operandName(src string, t token) bool {
	switch t.kind {
	case tString, tNumber, tParam, tQIdent, tUIdent:
		return true
	case tOp:
		return t.op == ')' || t.op == ']'
	case tIdent:
		return t.kw == kwNone && isOperandName(src, t)
	}
	return false
}

// aliasOnly reports whether the keyword k of the lexer's, right after an
// operand, can only be that operand's alias: it continues no expression
// there (KEY, NO, SHARE, DISTINCT, ...; WHEN, THEN, ELSE and END when no
// CASE is open).
func aliasOnly(k keyword, cases int) bool {
	switch k {
	case kwKey, kwNo, kwShare, kwShow, kwDistinct, kwVariadic, kwCase, kwAnalyze, kwExplain, kwVerbose, kwInsert, kwUpdate, kwDelete, kwMerge:
		return true
	case kwWhen, kwThen, kwElse, kwEnd:
		return cases == 0
	}
	return false
}

// continuesOperand reports whether the keyword w (one the lexer does not
// name) may follow an operand outside a call's parentheses other than as
// its alias: an operator (ISNULL, AT, COLLATE, ESCAPE, OPERATOR(...)), a
// clause or a part of one (NULLS, USING, ROWS, ONLY, SKIP, NOWAIT, SEARCH,
// CYCLE, SET, TO, DEFAULT), a join (LEFT, CROSS, ...), an interval field
// or a part of a type name (DAY, ARRAY, VARYING, PRECISION). Every other
// keyword there is an alias.
func continuesOperand(w string) uint8 {
	var buf [maxKeywordLen]byte
	if len(w) > len(buf) {
		return contNo
	}
	for i := 0; i < len(w); i++ {
		buf[i] = w[i] | 0x20 // letters fold; the words below have no other bytes
	}
	switch string(buf[:len(w)]) {
	case "isnull", "notnull", "overlaps", "at", "collate", "operator":
		return contAlways
	case "uescape":
		return contUnicode
	case "using":
		return contUsing
	case "nulls":
		return contExpr
	case "cross", "left", "right", "full", "inner", "natural", "outer", "repeatable":
		return contFrom
	case "skip", "nowait":
		return contLock
	case "filter", "within":
		return contParen
	case "year", "month", "day", "hour", "minute", "second":
		return contString
	case "array", "varying", "precision", "without", "char", "character", "sets":
		return contType
	case "search", "cycle", "set", "to", "default":
		return contCTE
	case "escape":
		return contLike
	case "row", "rows":
		return contOffset
	}
	return contNo
}

// What continuesOperand answers: whether a keyword continues an operand,
// always or only in some places.
const (
	contNo      uint8 = iota // never: after an operand, the keyword is an alias
	contAlways               // anywhere
	contCTE                  // in a WITH's SEARCH or CYCLE clause, not at a query's level
	contLike                 // ESCAPE: where a LIKE, ILIKE or SIMILAR was seen
	contOffset               // ROW, ROWS: after OFFSET or FETCH (or WHERE, HAVING, LIMIT)
	contUsing                // USING: in a FROM clause, after WHERE, ORDER BY, ..., or in CYCLE
	contExpr                 // NULLS: after WHERE, ORDER BY, ...
	contFrom                 // a join, REPEATABLE: in a FROM clause
	contLock                 // SKIP, NOWAIT: in a locking clause
	contParen                // FILTER, WITHIN: after a call's closing parenthesis
	contString               // an interval field: after a string (interval '1' day)
	contType                 // ARRAY, VARYING, PRECISION, WITHOUT: after a type's name
	contUnicode              // UESCAPE: after a U& string or name
)

// afterKeywordMask has a bit for each keyword afterKeyword looks at.
const afterKeywordMask = 1<<kwAs | 1<<kwIn | 1<<kwSimilar | 1<<kwNot | 1<<kwUnion | 1<<kwExcept | 1<<kwIntersect |
	1<<kwDistinct | 1<<kwTable | 1<<kwValues | 1<<kwNo | 1<<kwKey | 1<<kwOrder | 1<<kwGroup

// afterKeyword reports whether t may not follow the keyword p1 of the
// lexer's (p2 before it, not a dot nor AS: p1 is no label; cur the flags of
// the parenthesis level): a string after AS, IN without a parenthesis,
// SIMILAR without TO, NOT after an operand without IN, LIKE, ILIKE,
// SIMILAR or BETWEEN, a set operation without a query.
func afterKeyword(src string, p1, p2, p3, t token, cur uint16) bool {
	switch p1.kw {
	case kwAs:
		return !(t.isName() || t.isOp('(')) // "SELECT 0 AS 'x'", "SELECT 0 AS !0"
	case kwIn:
		return cur&fNamed == 0 && !t.isOp('(') // "SELECT 0 in x"; position(a IN b)
	case kwSimilar:
		return cur&fNamed == 0 && !(t.kind == tIdent && eqFold(src[t.start:t.end], "to")) // substring(a SIMILAR b)
	case kwNot:
		return cur&fNamed == 0 && operandName(src, p2) &&
			!(t.kw == kwIn || t.kw == kwLike || t.kw == kwIlike || t.kw == kwSimilar || t.kw == kwBetween)
	case kwUnion, kwExcept, kwIntersect:
		return !setOperand(src, t) && t.kw != kwDistinct && !(t.kind == tIdent && eqFold(src[t.start:t.end], "all"))
	case kwTable:
		return !t.isName() // "SELECT (TABLE)"; TABLE is reserved: never a column
	case kwOrder, kwGroup:
		// ORDER BY, GROUP BY; WITHIN GROUP (
		return !(t.kind == tIdent && eqFold(src[t.start:t.end], "by") ||
			p1.kw == kwGroup && p2.kind == tIdent && (t.isOp('(') && eqFold(src[p2.start:p2.end], "within") ||
				eqFold(src[p2.start:p2.end], "exclude"))) // a frame's EXCLUDE GROUP
	case kwValues:
		// VALUES may be a column ("SELECT values"), but not as a CTE's
		// query or after a set operation.
		return !t.isOp('(') && (p2.kw == kwUnion || p2.kw == kwExcept || p2.kw == kwIntersect ||
			p2.isOp('(') && p3.kind == tIdent && (p3.kw == kwAs || eqFold(src[p3.start:p3.end], "materialized")))
	case kwNo:
		return p2.kw == kwFor && t.kw != kwKey // FOR NO KEY UPDATE
	case kwKey:
		return p2.kw == kwFor && t.kw != kwShare || p2.kw == kwNo && t.kw != kwUpdate // FOR KEY SHARE, FOR NO KEY UPDATE
	case kwDistinct:
		return p2.kw >= kwUnion && (p2.kw == kwUnion || p2.kw == kwExcept || p2.kw == kwIntersect) && !setOperand(src, t)
	}
	return false
}

// afterParenQuery reports whether the keyword k may follow a parenthesised
// query at the statement's level: a set operation, ORDER BY, LIMIT,
// OFFSET, FETCH or a locking clause.
// jsonArrayQueryTail reports whether t may follow the query of
// JSON_ARRAY(query ...): FORMAT or RETURNING.
func jsonArrayQueryTail(src string, t token) bool {
	w := src[t.start:t.end]
	return eqFold(w, "format") || eqFold(w, "returning")
}

// tableColumnOption reports whether t may follow a column's name and type
// in XMLTABLE's or JSON_TABLE's column list, where a type name that is no
// keyword looks like an alias to the token rules: "b jsonb FORMAT JSON",
// "c bool EXISTS", "a mytype PATH 'x'". The read grammar checks these
// lists.
func tableColumnOption(src string, t token) bool {
	switch w := src[t.start:t.end]; w[0] | 0x20 {
	case 'd':
		return eqFold(w, "default")
	case 'e':
		return eqFold(w, "exists") || eqFold(w, "error") || eqFold(w, "empty")
	case 'f':
		return eqFold(w, "format") || eqFold(w, "false")
	case 'k':
		return eqFold(w, "keep")
	case 'n':
		return eqFold(w, "not") || eqFold(w, "null")
	case 'o':
		return eqFold(w, "omit")
	case 'p':
		return eqFold(w, "path")
	case 't':
		return eqFold(w, "true")
	case 'u':
		return eqFold(w, "unknown")
	case 'w':
		return eqFold(w, "with") || eqFold(w, "without")
	}
	return false
}

func afterParenQuery(k keyword) bool {
	switch k {
	case kwUnion, kwIntersect, kwExcept, kwOrder, kwLimit, kwOffset, kwFetch, kwFor:
		return true
	}
	return false
}

// itemStart reports whether an operand begins after t: at the start of the
// statement's body, after an operator, a comma, an opening parenthesis or
// bracket, SELECT, DISTINCT, AND, OR, NOT, CASE, WHEN, THEN, ELSE; a table
// after FROM or JOIN.
func itemStart(t token) bool {
	switch t.kind {
	case tEOF:
		return true
	case tOp:
		return isOpChar(t.op) || t.op == ',' || t.op == '(' || t.op == '['
	case tIdent:
		switch t.kw {
		case kwSelect, kwDistinct, kwAnd, kwOr, kwNot, kwCase, kwWhen, kwThen, kwElse, kwFrom, kwJoin:
			return true
		}
	}
	return false
}

// callName reports whether the name w before a parenthesis calls an
// ordinary function, whose arguments are expressions: a name that is no
// keyword or an unreserved one ("string(x)"), not FILTER (WHERE ...) or
// COLUMNS (...), nor a keyword with its own syntax (EXTRACT, TRIM, ...).
func callName(w string) bool {
	if len(w) < 2 {
		return true // no keyword has one letter
	}
	switch keywordCategory(w) {
	case notKeyword:
		return true
	case unreservedKw:
		return !eqFold(w, "filter") && !eqFold(w, "columns")
	}
	return false
}

// colID reports whether t may be a ColId, a table's or a column's name: a
// quoted name, a name that is no keyword, an unreserved or column-name
// keyword.
func colID(src string, t token) bool {
	switch t.kind {
	case tQIdent, tUIdent:
		return true
	case tIdent:
		if t.kw == kwNone {
			return keywordCategory(src[t.start:t.end]) <= colNameKw
		}
		return columnKeyword(src, t)
	}
	return false
}

// columnKeyword reports whether the keyword t may name a column: an
// unreserved or column-name keyword.
func columnKeyword(src string, t token) bool {
	switch t.kw {
	case kwNone:
		c := keywordCategory(src[t.start:t.end])
		return c == unreservedKw || c == colNameKw
	case kwNo, kwKey, kwShow, kwMerge, kwShare, kwDelete, kwInsert, kwUpdate, kwValues, kwOver, kwExplain:
		return true // not BETWEEN: "NOT BETWEEN SYMMETRIC"
	}
	return false
}

// schemaName reports whether the identifier t may name a schema, a table
// or a composite column before a dot: no keyword of the reserved or the
// type-or-function-name category.
func schemaName(src string, t token) bool {
	switch t.kw {
	case kwNone:
		return t.end-t.start < 2 || keywordCategory(src[t.start:t.end]) < typeFuncKw // no keyword has one letter
	case kwNo, kwKey, kwShow, kwMerge, kwShare, kwDelete, kwInsert, kwUpdate, kwValues, kwOver, kwBetween, kwExplain:
		return true
	}
	return false
}

// continuation reports whether the string t continues the string p1 as
// scan.l's quotecontinue: a quoted string (not dollar-quoted), then
// whitespace with a newline (and no block comment), then a plain quote.
func continuation(src string, p1, t token) bool {
	if src[p1.start] == '$' || src[t.start] != '\'' {
		return false
	}
	between := src[p1.end:t.start]
	return strings.ContainsAny(between, "\n\r") && !strings.Contains(between, "/*")
}

// relationStar reports whether a '*' after p1 (p2 before it) in a FROM
// clause follows a table's name (FROM t*, JOIN s.t*), not an alias.
func relationStar(src string, p1, p2 token) bool {
	if !p1.isName() {
		return false
	}
	switch p2.kind {
	case tOp:
		return p2.op == ',' || p2.op == '.' || p2.op == '('
	case tIdent:
		return p2.kw == kwFrom || p2.kw == kwJoin || eqFold(src[p2.start:p2.end], "only")
	}
	return false
}

// quantifier reports whether w is ALL, ANY or SOME, which may follow a
// comparison operator: x = ANY (...).
func quantifier(w string) bool { return eqFold(w, "all") || eqFold(w, "any") || eqFold(w, "some") }

// parenExpr reports whether the parenthesis level depth (flags cur, the
// enclosing levels' in frames; start the statement's level) is a
// parenthesised expression, which takes no alias: no query, no call's
// arguments, not in a FROM clause ("FROM a, (b x JOIN c y ON true)").
func parenExpr(cur uint16, depth, start int, frames *[maxFrames]uint16) bool {
	return cur&(fQuery|fNamed|fFrom) == 0 && depth > start && uint(depth-1) < maxFrames && frames[depth-1]&fFrom == 0
}

// danglingOp reports whether the operator ending at p1 (p0 before it) has
// no right operand when a comma, a parenthesis or a clause follows: any
// but ORDER BY's USING <, and a '*' only after an operand ("a*", not
// "SELECT *", "t.*", "FROM t*", "DISTINCT ON (a) *").
func danglingOp(src string, p0, p1 token, inFrom bool, closed uint16) bool {
	return postfixOp(src, p0, p1) || p1.op == '*' && !inFrom && (operandName(src, p0) && !listEnd(p0, closed) ||
		p0.kind == tIdent && (p0.kw == kwNone && !eqFold(src[p0.start:p0.end], "all") && !eqFold(src[p0.start:p0.end], "using") ||
			p0.kw != kwNone && columnKeyword(src, p0))) // "SELECT at*,": a keyword column
}

// listEnd reports whether p1 is the ')' that closes an OPERATOR(...) or a
// DISTINCT ON (...) (closed holds the flags of the level it closed): no
// operand ends there, one may follow.
func listEnd(p1 token, closed uint16) bool {
	return p1.isOp(')') && closed&(fOperator|fOnList) != 0
}

// unicodeBody returns the text between the quotes of the U&'...' string or
// the U&"..." name t.
func unicodeBody(src string, t token) string {
	if t.kind == tUIdent {
		return src[t.start:t.end]
	}
	return src[t.start+3 : t.end-1]
}

// validUnicode reports whether the body of a U& string or name is one that
// PostgreSQL's scanner takes with the escape character esc: every escape is
// esc doubled, esc and 4 hex digits, or esc, '+' and 6 hex digits, of a
// code point from 1 to 10FFFF, surrogates only in pairs.
func validUnicode(s string, esc byte) bool {
	high := false // the last escape was a high surrogate: a low one must follow
	for i := 0; i < len(s); i++ {
		if s[i] != esc {
			if high {
				return false
			}
			continue
		}
		if i+1 < len(s) && s[i+1] == esc {
			if high {
				return false
			}
			i++
			continue
		}
		j, n := i+1, 4
		if j < len(s) && s[j] == '+' {
			j, n = j+1, 6
		}
		if j+n > len(s) {
			return false
		}
		cp := 0
		for k := j; k < j+n; k++ {
			if !isHex(s[k]) {
				return false
			}
			cp = cp<<4 | hexVal(s[k])
		}
		i = j + n - 1
		var ok bool
		if high, ok = unicodeEscape(cp, high); !ok {
			return false
		}
	}
	return !high
}

// unicodeEscape checks the code point cp of a Unicode escape, high telling
// that the escape before it was a high surrogate. It returns whether cp is
// one (a low surrogate must follow) and whether cp may stand here: scan.l
// refuses 0, what is beyond U+10FFFF, and surrogates out of pairs.
func unicodeEscape(cp int, high bool) (isHigh, ok bool) {
	switch {
	case cp == 0 || cp > 0x10FFFF:
		return false, false
	case cp >= 0xD800 && cp <= 0xDBFF:
		return true, !high
	case cp >= 0xDC00 && cp <= 0xDFFF:
		return false, high
	}
	return false, !high
}

// uescapeChar returns the escape character that the string t after
// UESCAPE names, and whether it is one PostgreSQL takes: one byte, in a
// plain or dollar-quoted string, not a hex digit, '+', a quote or a space.
func uescapeChar(src string, t token) (byte, bool) {
	if t.kind != tString {
		return 0, false
	}
	var body string
	switch src[t.start] {
	case '\'':
		body = src[t.start+1 : t.end-1]
	case '$':
		d := strings.IndexByte(src[t.start+1:t.end], '$') + 2 // the length of the opening $tag$
		body = src[t.start+d : t.end-d]
	default:
		return 0, false
	}
	if len(body) != 1 {
		return 0, false
	}
	c := body[0]
	if isDigit(c) || c|0x20 >= 'a' && c|0x20 <= 'f' || c == '+' || c == '\'' || c == '"' || isSpace(c) {
		return 0, false
	}
	return c, true
}

// noAlias reports whether the parenthesis level whose flags are cur takes
// no alias: it is no query's target list (but call arguments, a WHERE
// clause, a join condition, a parenthesised expression).
func noAlias(cur uint16) bool { return cur&fQuery == 0 || cur&(fExpr|fOn) != 0 }

// opKeyword reports whether p1 (p2 before it) is a keyword operator that
// needs a right operand, not a column label: AND, OR, NOT, IS, IN, LIKE,
// ILIKE, SIMILAR, BETWEEN.
func opKeyword(p1, p2 token) bool {
	if p1.kind != tIdent || p2.isOp('.') || p2.kind == tIdent && p2.kw == kwAs {
		return false
	}
	switch p1.kw {
	case kwAnd, kwOr, kwNot, kwIs, kwIn, kwLike, kwIlike, kwSimilar, kwBetween:
		return true
	}
	return false
}

// isSetOpKw reports whether k is UNION, INTERSECT or EXCEPT.
func isSetOpKw(k keyword) bool { return k == kwUnion || k == kwIntersect || k == kwExcept }

// cteHead reports whether k may begin a CTE's statement: a query or a
// data-modifying statement.
func cteHead(k keyword) bool {
	switch k {
	case kwSelect, kwValues, kwTable, kwWith, kwInsert, kwUpdate, kwDelete, kwMerge:
		return true
	}
	return false
}

// setOperand reports whether t may begin the right operand of a set
// operation: SELECT, VALUES, TABLE or a parenthesis.
func setOperand(src string, t token) bool {
	return t.isOp('(') || t.kw == kwSelect || t.kw == kwValues || t.kw == kwTable
}

// badAfterComma reports whether the reserved keyword w cannot begin an
// item of a list: ALL, ANY, SYMMETRIC, TO, USING, ... (unlike CASE, NOT,
// DEFAULT, LATERAL, ONLY or a value keyword).
func badAfterComma(w string) bool {
	if len(w) < 2 || len(w) > 10 {
		return false
	}
	switch w[0] | 0x20 {
	case 'a':
		return eqFold(w, "all") || eqFold(w, "any") || eqFold(w, "asymmetric")
	case 'b':
		return eqFold(w, "both")
	case 'c':
		return eqFold(w, "check") || eqFold(w, "collate") || eqFold(w, "column") || eqFold(w, "constraint") || eqFold(w, "create")
	case 'd':
		return eqFold(w, "do") || eqFold(w, "deferrable")
	case 'f':
		return eqFold(w, "foreign")
	case 'g':
		return eqFold(w, "grant")
	case 'i':
		return eqFold(w, "initially")
	case 'l':
		return eqFold(w, "leading")
	case 'p':
		return eqFold(w, "placing") || eqFold(w, "primary")
	case 'r':
		return eqFold(w, "references")
	case 's':
		return eqFold(w, "some") || eqFold(w, "symmetric")
	case 't':
		return eqFold(w, "to") || eqFold(w, "trailing")
	case 'u':
		return eqFold(w, "unique") || eqFold(w, "using")
	}
	return false
}

// operandEnd reports whether t may end an operand: a constant, a closing
// parenthesis or bracket, or a plain name.
func operandEnd(t token) bool {
	const always = 1<<tString | 1<<tNumber | 1<<tParam | 1<<tQIdent | 1<<tUIdent
	return 1<<t.kind&always != 0 || t.kind == tIdent && t.kw == kwNone || t.kind == tOp && (t.op == ')' || t.op == ']')
}

// namesAfterOperand reports whether p1, a name after p2, an operand's end,
// is that operand's alias (or a second name), so that no other name may
// follow it ("SELECT 0 a b", "FROM t x y"): a name that is no keyword, or
// outside a call's parentheses (cur holds the level's flags) a keyword that
// continues no operand ("SELECT 0 of x", "SELECT 0 key 'a'"; pend says
// whether p1 was such a keyword of the lexer's). A name after a dot is a
// column, not an alias.
func namesAfterOperand(src string, p1, p2, p3 token, cur uint16, pend uint8, like, locking bool) bool {
	if pend&pendLabel != 0 {
		return cur&fNamed == 0
	}
	if p1.kind == tIdent {
		if p1.kw != kwNone {
			if pend&pendKwAlias == 0 || cur&fNamed != 0 {
				return false
			}
		} else if w := src[p1.start:p1.end]; keywordCategory(w) != notKeyword {
			if cur&fNamed != 0 {
				return false
			}
			var cont bool
			switch continuesOperand(w) {
			case contAlways:
				cont = true
			case contCTE:
				cont = cur&fQuery == 0
			case contLike:
				cont = like
			case contOffset:
				cont = cur&fNoComma != 0
			case contUsing:
				cont = cur&(fFrom|fExpr) != 0 || cur&fQuery == 0
			case contExpr:
				cont = cur&fExpr != 0
			case contFrom:
				cont = cur&fFrom != 0
			case contLock:
				cont = locking
			case contParen:
				cont = p2.isOp(')')
			case contString:
				cont = p2.kind == tString
			case contType:
				cont = p2.kind == tIdent || p2.kind == tQIdent
			case contUnicode:
				cont = p2.kind == tUIdent || p2.kind == tString && src[p2.start]|0x20 == 'u'
			}
			if cont {
				return false
			}
		}
	}
	if p2.kind != tIdent || isOperandName(src, p2) {
		return true
	}
	// "SELECT skip a b", "SELECT of skip a": a keyword that is no
	// reserved one, first in a target list, is a column; then a name or
	// a keyword that continues nothing is its alias.
	if p3.isOp('.') {
		return true // "t.key a b": a name after a dot is a column
	}
	if cur&fQuery == 0 || !itemStart(p3) {
		return false
	}
	return columnKeyword(src, p2)
}

// isOperandName reports whether the identifier t is an operand by itself: a
// name that is no keyword, or a value keyword (TRUE, NULL, CURRENT_DATE).
func isOperandName(src string, t token) bool {
	w := src[t.start:t.end]
	switch keywordCategory(w) {
	case notKeyword:
		return true
	case reservedKw:
		return isValueKeyword(w)
	}
	return false
}

// The states of the CTE list of a WITH: WITH [RECURSIVE] name [(col, ...)]
// AS [NOT] [MATERIALIZED] ( query ) [, ...].
const (
	cteFirst     uint8 = iota + 1 // after WITH: RECURSIVE or a name
	cteAfterRec                   // after RECURSIVE: a name (or RECURSIVE was the name)
	cteName                       // after a comma: a name
	cteAfterName                  // ( or AS
	cteColsOpen                   // after ( or a comma in the column list: a name
	cteCols                       // after a column name: a comma or )
	cteAfterCols                  // AS
	cteAs                         // NOT, MATERIALIZED or (
	cteBodyOpen                   // after the query's (: not )
	cteBody                       // in the query, to its closing parenthesis
	cteAfterBody                  // a comma, or the rest of the statement
)

// cteStep advances the CTE list state by the token t at the relative
// parenthesis depth d (the CTE list's level is 0; a ')' closing a level-1
// parenthesis comes at 1) and reports whether t is out of place. It returns
// 0 once the list is over.
func cteStep(src string, state uint8, t token, d int) (uint8, bool) {
	switch state {
	case cteFirst, cteName, cteAfterRec:
		if state == cteFirst && t.kind == tIdent && t.kw == kwNone && eqFold(src[t.start:t.end], "recursive") {
			return cteAfterRec, false
		}
		if t.isName() && !(t.kind == tIdent && keywordCategory(src[t.start:t.end]) == reservedKw) {
			return cteAfterName, false
		}
		if state == cteAfterRec {
			// WITH recursive AS ...: "recursive" was the name.
			return cteStep(src, cteAfterName, t, d)
		}
	case cteAfterName:
		if t.isOp('(') {
			return cteColsOpen, false
		}
		if t.kw == kwAs {
			return cteAs, false
		}
	case cteColsOpen:
		if t.isName() {
			return cteCols, false
		}
	case cteCols:
		if t.isOp(')') && d == 1 {
			return cteAfterCols, false
		}
		if t.isOp(',') {
			return cteColsOpen, false
		}
	case cteAfterCols:
		if t.kw == kwAs {
			return cteAs, false
		}
	case cteAs:
		if t.isOp('(') {
			return cteBodyOpen, false
		}
		if t.kind == tIdent && (t.kw == kwNot || eqFold(src[t.start:t.end], "materialized")) {
			return cteAs, false
		}
	case cteBodyOpen:
		switch t.kw {
		case kwSelect, kwValues, kwTable, kwWith, kwInsert, kwUpdate, kwDelete, kwMerge:
			return cteBody, false
		}
		if t.isOp('(') {
			return cteBody, false
		}
	case cteAfterBody:
		if t.isOp(',') {
			return cteName, false
		}
		switch t.kw {
		case kwSelect, kwValues, kwTable, kwInsert, kwUpdate, kwDelete, kwMerge:
			return 0, false
		}
		if t.isOp('(') || t.kind == tIdent && (eqFold(src[t.start:t.end], "search") || eqFold(src[t.start:t.end], "cycle")) {
			return 0, false // the main statement, or SEARCH, CYCLE
		}
	}
	return 0, true
}

// postfixOp reports whether p1 ends an operator (p0 the token before it)
// that has no right operand: PostgreSQL has no postfix operators. A '*' may end a relation (FROM t*) or a select
// target (DISTINCT ON (a) *); ORDER BY x USING < takes an operator alone.
func postfixOp(src string, p0, p1 token) bool {
	return p1.kind == tOp && isOpChar(p1.op) && (p1.op != '*' || p1.start > 0 && isOpChar(src[p1.start-1])) &&
		!(p0.kind == tIdent && eqFold(src[p0.start:p0.end], "using"))
}

// notAfterName reports whether t may not follow an alias or a bare '*':
// an unreserved or column-name keyword, or a name that is no keyword.
// Reserved and type-or-function-name keywords (FROM, JOIN, LEFT,
// TABLESAMPLE, ...) may.
func notAfterName(src string, t token) bool {
	switch t.kw {
	case kwNone:
		c := keywordCategory(src[t.start:t.end])
		// Reserved ones but JOIN's USING begin nothing after a name: "SELECT 0 a ALL".
		return c != typeFuncKw && !(c == reservedKw && eqFold(src[t.start:t.end], "using"))
	case kwOver, kwKey, kwNo, kwShare, kwShow, kwMerge, kwDelete, kwInsert, kwUpdate, kwExplain, kwBetween, kwValues,
		kwAnd, kwOr, kwIs, kwIn, kwLike, kwIlike, kwNot, kwSimilar, kwAs:
		return true
	}
	return false
}

// binaryOnly reports whether the operator starting at i is one that
// PostgreSQL's grammar takes only between two operands: a one-character
// operator of scan.l's self set (% / ^ < > =) or one of <= >= <> != =>,
// not followed by another operator character. Every other operator name
// (made of op_chars) may be a user-defined prefix operator.
func binaryOnly(src string, i int) bool {
	n := 1
	for i+n < len(src) && isOpChar(src[i+n]) {
		n++
		if n > 2 {
			return false
		}
	}
	switch n {
	case 1:
		switch src[i] {
		case '%', '/', '^', '<', '>', '=':
			return true
		}
	case 2:
		switch src[i : i+2] {
		case "<=", ">=", "<>", "!=", "=>":
			return true
		}
	}
	return false
}

// exprStart reports whether an expression starts after p1 (p2 before it):
// at the start of a statement's body, after an opening parenthesis or
// bracket or a comma, or after a clause keyword (SELECT, WHERE, ...), but
// not in OPERATOR(=).
func exprStart(src string, p1, p2 token) bool {
	switch p1.kind {
	case tEOF:
		return true
	case tOp:
		switch p1.op {
		case '(':
			return !(p2.kind == tIdent && eqFold(src[p2.start:p2.end], "operator"))
		case ',', '[':
			return true
		}
	case tIdent:
		return (p1.kw == kwSelect || p1.kw.isClause()) && !p2.isOp('.') && p2.kw != kwAs
	}
	return false
}

// castable reports whether a typecast "::" may follow p1 (p2 before it):
// an operand, not the start of an expression or a reserved keyword other
// than a value such as NULL or CURRENT_DATE.
func castable(src string, p1, p2 token) bool {
	switch p1.kind {
	case tQIdent, tUIdent, tString, tNumber, tParam:
		return true
	case tOp:
		return p1.op == ')' || p1.op == ']' || p1.op == '*'
	case tIdent:
		if p2.isOp('.') {
			return true
		}
		w := src[p1.start:p1.end]
		return keywordCategory(w) != reservedKw || isValueKeyword(w)
	}
	return false
}

// isValueKeyword reports whether the reserved keyword w is a value (or ends
// one, as END ends CASE) that a typecast may follow.
func isValueKeyword(w string) bool {
	switch {
	case eqFold(w, "null"), eqFold(w, "true"), eqFold(w, "false"), eqFold(w, "end"),
		eqFold(w, "user"), eqFoldAny(w, "session_user"), eqFoldAny(w, "system_user"),
		eqFold(w, "localtime"), eqFold(w, "localtimestamp"):
		return true
	}
	// eqFold folds letters only: the underscore is compared apart.
	return len(w) > 8 && eqFold(w[:7], "current") && w[7] == '_' && keywordCategory(w) == reservedKw
}

// lockStrength reports whether t may follow the FOR of a query's locking
// clause: UPDATE, SHARE, NO (KEY UPDATE), KEY (SHARE), READ (ONLY).
func lockStrength(src string, t token) bool {
	switch t.kw {
	case kwUpdate, kwShare, kwNo, kwKey:
		return true
	}
	return t.kind == tIdent && eqFold(src[t.start:t.end], "read")
}

// eqFoldAny is eqFold for a keyword with characters other than letters
// (an underscore): only ASCII letters fold.
func eqFoldAny(s, kw string) bool {
	if len(s) != len(kw) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != kw[i] {
			return false
		}
	}
	return true
}

// openFlags returns the flags of the parenthesis level that an opening
// parenthesis after the name p1 (p2, p3 before it) begins, and whether the
// parenthesis is one the grammar refuses: WITHIN GROUP ( after a call
// whose arguments had ORDER BY, DISTINCT or VARIADIC (closed holds the
// flags of the level the latest ')' closed).
func openFlags(src string, p1, p2, p3 token, closed uint16) (uint16, bool) {
	if p1.kind != tIdent || p2.isOp('.') {
		return fNamed, false
	}
	w := src[p1.start:p1.end]
	switch len(w) {
	case 4:
		if eqFold(w, "cast") {
			return fNamed | fCast, false
		}
		if eqFold(w, "only") {
			return fNamed | fOnly, false
		}
	case 5:
		if eqFold(w, "treat") {
			return fNamed | fCast, false
		}
		if p1.kw == kwGroup && closed&(fNamed|fQuery|fNoWithin) == fNamed|fNoWithin && p3.isOp(')') &&
			p2.kind == tIdent && eqFold(src[p2.start:p2.end], "within") {
			return fNamed, true
		}
	case 8:
		if eqFold(w, "operator") {
			return fNamed | fOperator, false
		}
	}
	return fNamed, false
}

// frameChecks applies the structural checks of the parenthesis level whose
// flags are *fr to the token t (p1, p2, p3 before it; closed the flags of
// the level the latest ')' closed; brackets the open square brackets), and
// updates the flags: the type name of CAST(... AS type), the FROM clause of
// a SELECT (no window function, no TABLESAMPLE after a subquery or a
// function, no constant or operator right after FROM), and the arguments
// of a call (ORDER BY, DISTINCT, VARIADIC: no WITHIN GROUP after).
func (r *rules) frameChecks(src string, fr *uint16, closed uint16, brackets int, p1, p2, p3, t token, st *verdict) {
	f := *fr
	if f&fCastType != 0 {
		switch t.kind {
		case tIdent:
			w := src[t.start:t.end]
			if keywordCategory(w) == reservedKw && !eqFold(w, "with") && !eqFold(w, "to") && !eqFold(w, "array") {
				st.write(reasonSyntax) // CAST(x AS text COLLATE "C")
			}
		case tNumber:
			if brackets == 0 {
				st.write(reasonSyntax)
			}
		case tString, tParam:
			st.write(reasonSyntax)
		case tOp:
			switch t.op {
			case '.', '[', ']', '(', ')':
			default:
				st.write(reasonSyntax)
			}
		}
		return
	}
	if f&fCast != 0 {
		if t.kw == kwAs && !p1.isOp('.') {
			*fr |= fCastType
		}
		return
	}
	// In a FROM clause.
	if p1.kw == kwFrom && p2.kw != kwDistinct &&
		(t.kind == tNumber || t.kind == tString || t.kind == tParam || t.kind == tOp && t.op != '(') {
		st.write(reasonSyntax) // "FROM 1", "FROM *"
	}
	switch t.kind {
	case tIdent:
		if t.kw == kwTablesample && closed&fOnly == 0 &&
			(p1.isOp(')') || p1.isName() && (p2.isOp(')') || p2.kw == kwAs && p3.isOp(')'))) {
			st.write(reasonSyntax) // TABLESAMPLE after a subquery or a function
		}
	case tOp:
		if t.op == ',' {
			*fr &^= fOn
		} else if t.op == '(' && f&fOn == 0 && p2.isOp(')') && p1.kw == kwOver {
			st.write(reasonWindowFrom) // FROM rank() OVER (...)
		}
	}
}

// startsQuery reports whether a SELECT, VALUES or TABLE may follow p1 in
// a read: not after a constant or a parameter, and after an identifier only
// after a set operation (UNION [ALL | DISTINCT]) or, for the main statement
// of a WITH (afterCTE), after a SEARCH or CYCLE clause.
func startsQuery(src string, p1 token, afterCTE bool) bool {
	switch p1.kind {
	case tString, tNumber, tParam:
		return false
	case tIdent:
		if afterCTE {
			return true
		}
		w := src[p1.start:p1.end]
		return isSetOp(w) || eqFold(w, "all") || eqFold(w, "distinct")
	case tOp:
		return p1.op == '(' || p1.op == ')' // "SELECT ! SELECT"; WITH a AS (...) SELECT, at any level
	case tQIdent, tUIdent:
		return false
	}
	return true
}

// needsMore reports whether w is a reserved keyword that starts a clause and
// so can follow neither a comma nor the end of a statement.
func needsMore(w string) bool {
	switch len(w) {
	case 2:
		return eqFold(w, "on")
	case 3:
		return eqFold(w, "for")
	case 4:
		return eqFold(w, "from") || eqFold(w, "into")
	case 5:
		return eqFold(w, "where") || eqFold(w, "union") || eqFold(w, "group") || eqFold(w, "order") || eqFold(w, "limit")
	case 6:
		return eqFold(w, "having") || eqFold(w, "offset") || eqFold(w, "except") || eqFold(w, "window")
	case 9:
		return eqFold(w, "intersect")
	}
	return false
}

func isSetOp(s string) bool {
	return eqFold(s, "union") || eqFold(s, "intersect") || eqFold(s, "except")
}

// verdict accumulates the decision on one read statement: a write is final,
// a locking clause downgrades a read.
type verdict struct{ res Result }

func (v *verdict) write(reason string) {
	if v.res.Kind != Write {
		v.res = Result{Kind: Write, Reason: reason}
	}
}

func (v *verdict) lock(reason string) {
	if v.res.Kind == Read {
		v.res = Result{Kind: LockingRead, Reason: reason}
	}
}

// dmlReason names a data-modifying keyword found in a read statement: the
// main statement of a WITH at depth 0, a data-modifying CTE below.
func dmlReason(k keyword, depth int) string {
	if depth > 0 {
		return reasonModifyingCTE
	}
	switch k {
	case kwInsert:
		return "INSERT"
	case kwUpdate:
		return "UPDATE"
	case kwDelete:
		return "DELETE"
	}
	return "MERGE"
}

// isNameContext reports whether the keyword just read (prev is the token
// before it) is used as a name rather than a statement: qualified (a.update,
// update.a) or an alias after AS. INSERT, UPDATE, DELETE and MERGE as
// statements are never next to a dot or after AS.
func isNameContext(l *lexer, prev token) bool {
	if prev.isOp('.') || prev.kind == tIdent && prev.kw == kwAs {
		return true
	}
	peek := *l
	return peek.next().isOp('.')
}

// checkCall checks the call of the function named by name (with p2 '.' and
// p3 a schema when qualified), just before an opening parenthesis.
func (r *rules) checkCall(src string, name, p2, p3 token, st *verdict) {
	qualified := p2.isOp('.') && p3.isName()
	if name.kind == tUIdent || qualified && p3.kind == tUIdent {
		// U&"..." names may spell anything through escapes.
		st.write(reasonUnicodeName)
		return
	}
	if name.kind == tIdent && r.user == nil && !builtinFirst(src[name.start]|0x20) {
		return // fast reject of the common calls: count(, sum(, ...
	}
	var nb, sb [maxIdentLen + 1]byte
	n := normName(src, name, &nb)
	var s []byte
	if qualified {
		s = normName(src, p3, &sb)
	}
	if reason, ok := r.lookupFunc(s, n, qualified); ok {
		st.write(reason)
	}
}

// checkAttr checks a name after a dot that is not called: in PostgreSQL
// tab.fn is the same as fn(tab) for a function fn of tab's row type. Only
// the user's write functions can take a row, so only they are checked.
func (r *rules) checkAttr(src string, name token, st *verdict) {
	var nb [maxIdentLen + 1]byte
	n := normName(src, name, &nb)
	if f := r.user[string(n)]; f != nil {
		st.write(f.reason)
	}
}

// headReason names a statement by its first keyword.
func headReason(word string) string {
	if len(word) > 16 {
		return reasonUnrecognized
	}
	var buf [16]byte
	for i := 0; i < len(word); i++ {
		c := word[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf[i] = c
	}
	switch string(buf[:len(word)]) {
	case "abort":
		return "ABORT"
	case "alter":
		return "ALTER"
	case "analyze", "analyse":
		return "ANALYZE"
	case "begin":
		return "BEGIN"
	case "call":
		return "CALL"
	case "checkpoint":
		return "CHECKPOINT"
	case "close":
		return "CLOSE"
	case "cluster":
		return "CLUSTER"
	case "comment":
		return "COMMENT"
	case "commit":
		return "COMMIT"
	case "copy":
		return "COPY"
	case "create":
		return "CREATE"
	case "deallocate":
		return "DEALLOCATE"
	case "declare":
		return "DECLARE"
	case "delete":
		return "DELETE"
	case "discard":
		return "DISCARD"
	case "do":
		return "DO"
	case "drop":
		return "DROP"
	case "end":
		return "END"
	case "execute":
		return "EXECUTE"
	case "fetch":
		return "FETCH"
	case "grant":
		return "GRANT"
	case "import":
		return "IMPORT"
	case "insert":
		return "INSERT"
	case "listen":
		return "LISTEN"
	case "load":
		return "LOAD"
	case "lock":
		return "LOCK"
	case "merge":
		return "MERGE"
	case "move":
		return "MOVE"
	case "notify":
		return "NOTIFY"
	case "prepare":
		return "PREPARE"
	case "reassign":
		return "REASSIGN"
	case "refresh":
		return "REFRESH"
	case "reindex":
		return "REINDEX"
	case "release":
		return "RELEASE"
	case "reset":
		return "RESET"
	case "revoke":
		return "REVOKE"
	case "rollback":
		return "ROLLBACK"
	case "savepoint":
		return "SAVEPOINT"
	case "security":
		return "SECURITY LABEL"
	case "set":
		return "SET"
	case "start":
		return "START"
	case "truncate":
		return "TRUNCATE"
	case "unlisten":
		return "UNLISTEN"
	case "update":
		return "UPDATE"
	case "vacuum":
		return "VACUUM"
	}
	return reasonUnrecognized
}
