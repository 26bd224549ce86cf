package classify

// The read grammar's special functions with syntax of their own
// (gram.y's func_expr_common_subexpr, json_aggregate_func, xmltable and
// json_table): SQL/JSON constructors, query functions and JSON_TABLE, the
// XML functions and XMLTABLE, OVERLAY, NORMALIZE, SUBSTRING ... SIMILAR.
// Like the rest of the grammar, each accepts only productions of gram.y
// and rejects what gram.y's actions reject.

// specialCall parses the arguments, after the '(', of the column-name
// keyword name that gram.y gives a syntax of its own, through the ')', and
// for the SQL/JSON aggregates their FILTER and OVER. handled is false
// when name is none of them.
func (p *syn) specialCall(name string) (handled, ok bool) {
	switch name {
	case "treat":
		return true, p.expr(0, 0) && p.expect("as") && p.typeName() && p.expectSelf(')')
	case "overlay":
		return true, p.overlayArgs()
	case "normalize":
		if !p.expr(0, 0) {
			return true, false
		}
		if p.self(',') {
			p.next()
			if !p.normalForm() {
				return true, false
			}
			p.next()
		}
		return true, p.expectSelf(')')
	case "xmlconcat":
		return true, p.exprList() && p.expectSelf(')')
	case "xmlelement":
		return true, p.xmlElement()
	case "xmlexists":
		return true, p.primary(0) && p.xmlPassing() && p.expectSelf(')')
	case "xmlforest":
		return true, p.xmlAttributeList() && p.expectSelf(')')
	case "xmlparse":
		if !p.documentOrContent() || !p.expr(0, 0) {
			return true, false
		}
		if p.is("preserve") || p.is("strip") {
			p.next()
			if !p.expect("whitespace") {
				return true, false
			}
		}
		return true, p.expectSelf(')')
	case "xmlpi":
		if !p.expect("name") || !p.colLabel() {
			return true, false
		}
		p.next()
		if p.self(',') {
			p.next()
			if !p.expr(0, 0) {
				return true, false
			}
		}
		return true, p.expectSelf(')')
	case "xmlroot":
		return true, p.xmlRoot()
	case "xmlserialize":
		if !p.documentOrContent() || !p.expr(0, 0) || !p.expect("as") || !p.simpleType() {
			return true, false
		}
		switch {
		case p.is("indent"):
			p.next()
		case p.is("no"):
			p.next()
			if !p.expect("indent") {
				return true, false
			}
		}
		return true, p.expectSelf(')')
	case "json_object":
		return true, p.jsonObject()
	case "json_array":
		return true, p.jsonArray()
	case "json":
		return true, p.jsonValueExpr() && p.uniqueKeys() && p.expectSelf(')')
	case "json_scalar":
		return true, p.expr(0, 0) && p.expectSelf(')')
	case "json_serialize":
		return true, p.jsonValueExpr() && p.jsonReturning() && p.expectSelf(')')
	case "json_query":
		return true, p.jsonContext() && p.jsonReturning() && p.jsonWrapper() && p.jsonQuotes() && p.jsonBehaviors() && p.expectSelf(')')
	case "json_value":
		return true, p.jsonContext() && p.jsonReturning() && p.jsonBehaviors() && p.expectSelf(')')
	case "json_exists":
		return true, p.jsonContext() && p.jsonOnError() && p.expectSelf(')')
	case "json_objectagg":
		return true, p.jsonNameValue() && p.jsonNullClause() && p.uniqueKeys() && p.jsonReturning() && p.expectSelf(')') && p.filterOver()
	case "json_arrayagg":
		if !p.jsonValueExpr() {
			return true, false
		}
		if p.is("order") {
			p.next()
			if !p.expect("by") || !p.sortList() {
				return true, false
			}
		}
		return true, p.jsonNullClause() && p.jsonReturning() && p.expectSelf(')') && p.filterOver()
	}
	return false, false
}

// overlayArgs is OVERLAY's arguments: a PLACING b FROM c [FOR d], or a
// plain argument list (possibly empty).
func (p *syn) overlayArgs() bool {
	if p.self(')') {
		p.next()
		return true
	}
	if !p.expr(0, 0) {
		return false
	}
	if p.is("placing") {
		p.next()
		if !p.expr(0, 0) || !p.expect("from") || !p.expr(0, 0) {
			return false
		}
		if p.is("for") {
			p.next()
			if !p.expr(0, 0) {
				return false
			}
		}
		return p.expectSelf(')')
	}
	if p.self(',') {
		p.next()
		if !p.exprList() {
			return false
		}
	}
	return p.expectSelf(')')
}

// normalForm reports whether the token is unicode_normal_form: NFC, NFD,
// NFKC or NFKD.
func (p *syn) normalForm() bool {
	return p.is("nfc") || p.is("nfd") || p.is("nfkc") || p.is("nfkd")
}

// filterOver consumes an aggregate's optional FILTER (WHERE ...) and OVER
// window.
func (p *syn) filterOver() bool {
	if p.is("filter") {
		p.next()
		if !p.expectSelf('(') || !p.expect("where") || !p.expr(0, 0) || !p.expectSelf(')') {
			return false
		}
	}
	if p.is("over") {
		p.next()
		if p.self('(') {
			return p.windowSpec()
		}
		if !p.colID() {
			return false
		}
		p.next()
	}
	return true
}

// XML.

// documentOrContent consumes DOCUMENT or CONTENT.
func (p *syn) documentOrContent() bool {
	if !p.is("document") && !p.is("content") {
		return false
	}
	p.next()
	return true
}

// xmlElement is XMLELEMENT's arguments: NAME label [, XMLATTRIBUTES (...)]
// [, expr_list].
func (p *syn) xmlElement() bool {
	if !p.expect("name") || !p.colLabel() {
		return false
	}
	p.next()
	if p.self(',') {
		p.next()
		if p.is("xmlattributes") && p.peek().self('(') {
			p.next()
			p.next()
			if !p.xmlAttributeList() || !p.expectSelf(')') {
				return false
			}
			if p.self(',') {
				p.next()
				if !p.exprList() {
					return false
				}
			}
		} else if !p.exprList() {
			return false
		}
	}
	return p.expectSelf(')')
}

// xmlAttributeList is xml_attribute_list: a_expr [AS label] [, ...].
func (p *syn) xmlAttributeList() bool {
	for {
		if !p.expr(0, 0) {
			return false
		}
		if p.is("as") {
			p.next()
			if !p.colLabel() {
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

// xmlPassing is xmlexists_argument: PASSING [BY REF|VALUE] c_expr [BY
// REF|VALUE].
func (p *syn) xmlPassing() bool {
	if !p.expect("passing") || !p.passingMech() || !p.primary(0) {
		return false
	}
	return p.passingMech()
}

// passingMech consumes an optional BY REF or BY VALUE.
func (p *syn) passingMech() bool {
	if !p.is("by") {
		return true
	}
	p.next()
	if !p.is("ref") && !p.is("value") {
		return false
	}
	p.next()
	return true
}

// xmlRoot is XMLROOT's arguments: a_expr, VERSION a_expr | VERSION NO
// VALUE [, STANDALONE YES | NO | NO VALUE].
func (p *syn) xmlRoot() bool {
	if !p.expr(0, 0) || !p.expectSelf(',') || !p.expect("version") {
		return false
	}
	if p.is("no") && p.peek().is("value") {
		p.next()
		p.next()
	} else if !p.expr(0, 0) {
		return false
	}
	if p.self(',') {
		p.next()
		if !p.expect("standalone") {
			return false
		}
		switch {
		case p.is("yes"):
			p.next()
		case p.is("no"):
			p.next()
			if p.is("value") {
				p.next()
			}
		default:
			return false
		}
	}
	return p.expectSelf(')')
}

// xmlTable is XMLTABLE's arguments, after its '(', through the ')':
// [XMLNAMESPACES (...),] c_expr PASSING ... COLUMNS column [, ...].
func (p *syn) xmlTable() bool {
	if p.is("xmlnamespaces") && p.peek().self('(') {
		p.next()
		p.next()
		for {
			if p.is("default") {
				p.next()
				if !p.expr(0, eB) {
					return false
				}
			} else {
				if !p.expr(0, eB) || !p.expect("as") || !p.colLabel() {
					return false
				}
				p.next()
			}
			if !p.self(',') {
				break
			}
			p.next()
		}
		if !p.expectSelf(')') || !p.expectSelf(',') {
			return false
		}
	}
	if !p.primary(0) || !p.xmlPassing() || !p.expect("columns") {
		return false
	}
	for {
		if !p.colID() {
			return false
		}
		p.next()
		if p.is("for") {
			p.next()
			if !p.expect("ordinality") {
				return false
			}
		} else if !p.typeName() || !p.xmlColumnOptions() {
			return false
		}
		if !p.self(',') {
			break
		}
		p.next()
	}
	return p.expectSelf(')')
}

// xmlColumnOptions consumes an XMLTABLE column's options: PATH b_expr,
// DEFAULT b_expr, NOT NULL, NULL, each once at most (gram.y's action
// refuses repeats, and any other option name).
func (p *syn) xmlColumnOptions() bool {
	var path, def, null bool
	for {
		switch {
		case p.is("path") || p.is("default"):
			seen := &path
			if p.is("default") {
				seen = &def
			}
			if *seen {
				return false
			}
			*seen = true
			p.next()
			if !p.expr(0, eB) {
				return false
			}
		case p.is("not") || p.is("null"):
			if null {
				return false
			}
			null = true
			if p.is("not") {
				p.next()
			}
			if !p.expect("null") {
				return false
			}
		default:
			return true
		}
	}
}

// SQL/JSON.

// jsonFormat consumes an optional FORMAT JSON [ENCODING UTF8 | UTF16 |
// UTF32].
func (p *syn) jsonFormat() bool {
	if !p.is("format") || !p.la {
		return true
	}
	p.next()
	p.next() // JSON, which the lookahead saw
	if p.is("encoding") {
		p.next()
		if !p.is("utf8") && !p.is("utf16") && !p.is("utf32") {
			return false // "unrecognized JSON encoding"
		}
		p.next()
	}
	return true
}

// jsonValueExpr is json_value_expr: a_expr [FORMAT JSON ...].
func (p *syn) jsonValueExpr() bool {
	return p.expr(0, 0) && p.jsonFormat()
}

// jsonReturning consumes an optional RETURNING Typename [FORMAT JSON ...].
func (p *syn) jsonReturning() bool {
	if !p.is("returning") {
		return true
	}
	p.next()
	return p.typeName() && p.jsonFormat()
}

// uniqueKeys consumes an optional WITH | WITHOUT UNIQUE [KEYS].
func (p *syn) uniqueKeys() bool {
	if !p.is("with") && !p.is("without") || p.la {
		return true
	}
	p.next()
	if !p.expect("unique") {
		return false
	}
	if p.is("keys") {
		p.next()
	}
	return true
}

// jsonNullClause consumes an optional NULL ON NULL or ABSENT ON NULL.
func (p *syn) jsonNullClause() bool {
	if !p.is("null") && !p.is("absent") {
		return true
	}
	p.next()
	return p.expect("on") && p.expect("null")
}

// startsPrefixOp reports whether the token is a prefix operator: then what
// follows is no c_expr.
func (p *syn) startsPrefixOp() bool {
	return p.is("not") || p.self('+') || p.self('-') || p.t.kind == tOp && p.op == opGeneric || p.is("operator")
}

// jsonNameValue is json_name_and_value: c_expr VALUE json_value_expr, or
// a_expr ':' json_value_expr.
func (p *syn) jsonNameValue() bool {
	if p.startsPrefixOp() {
		if !p.expr(0, 0) {
			return false
		}
	} else {
		if !p.primary(0) {
			return false
		}
		if p.is("value") {
			p.next()
			return p.jsonValueExpr()
		}
		if !p.exprRest(0, 0) {
			return false
		}
	}
	return p.expectSelf(':') && p.jsonValueExpr()
}

// jsonObject is JSON_OBJECT's arguments: key-value pairs with their
// clauses, only a RETURNING clause, or a plain argument list.
func (p *syn) jsonObject() bool {
	if p.self(')') || p.is("returning") {
		return p.jsonReturning() && p.expectSelf(')')
	}
	// The first argument decides: a key of a pair, or a plain argument.
	q := *p
	if q.jsonNameValue() {
		*p = q
		for p.self(',') {
			p.next()
			if !p.jsonNameValue() {
				return false
			}
		}
		return p.jsonNullClause() && p.uniqueKeys() && p.jsonReturning() && p.expectSelf(')')
	}
	return p.funcArgList() && p.expectSelf(')')
}

// funcArgList is func_arg_list: [name := | =>] a_expr [, ...].
func (p *syn) funcArgList() bool {
	for {
		if p.typeFuncName() {
			if q := p.peek(); q.t.kind == tOp && (q.op == opAssign || q.op == opArrow) {
				p.next()
				p.next()
			}
		}
		if !p.expr(0, 0) {
			return false
		}
		if !p.self(',') {
			return true
		}
		p.next()
	}
}

// jsonArray is JSON_ARRAY's arguments: values with their clauses, a query,
// or only a RETURNING clause.
func (p *syn) jsonArray() bool {
	switch {
	case p.self(')') || p.is("returning"):
		return p.jsonReturning() && p.expectSelf(')')
	case p.is("select") || p.is("with") || p.is("table") || p.is("values") && p.peek().self('('):
		if _, ok := p.query(); !ok {
			return false
		}
		return p.jsonFormat() && p.jsonReturning() && p.expectSelf(')')
	}
	for {
		if !p.jsonValueExpr() {
			return false
		}
		if !p.self(',') {
			break
		}
		p.next()
	}
	return p.jsonNullClause() && p.jsonReturning() && p.expectSelf(')')
}

// jsonContext is the start of JSON_QUERY, JSON_VALUE and JSON_EXISTS:
// json_value_expr ',' a_expr [PASSING json_value_expr AS label [, ...]].
func (p *syn) jsonContext() bool {
	if !p.jsonValueExpr() || !p.expectSelf(',') || !p.expr(0, 0) {
		return false
	}
	return p.jsonPassing()
}

// jsonPassing consumes an optional PASSING json_value_expr AS label [, ...].
func (p *syn) jsonPassing() bool {
	if !p.is("passing") {
		return true
	}
	p.next()
	for {
		if !p.jsonValueExpr() || !p.expect("as") || !p.colLabel() {
			return false
		}
		p.next()
		if !p.self(',') {
			return true
		}
		p.next()
	}
}

// jsonWrapper consumes an optional json_wrapper_behavior: WITHOUT [ARRAY]
// WRAPPER, WITH [CONDITIONAL | UNCONDITIONAL] [ARRAY] WRAPPER.
func (p *syn) jsonWrapper() bool {
	switch {
	case p.is("without") && !p.la:
		p.next()
	case p.is("with") && !p.la:
		p.next()
		if p.is("conditional") || p.is("unconditional") {
			p.next()
		}
	default:
		return true
	}
	if p.is("array") {
		p.next()
	}
	return p.expect("wrapper")
}

// jsonQuotes consumes an optional KEEP | OMIT QUOTES [ON SCALAR STRING].
func (p *syn) jsonQuotes() bool {
	if !p.is("keep") && !p.is("omit") {
		return true
	}
	p.next()
	if !p.expect("quotes") {
		return false
	}
	if p.is("on") {
		p.next()
		return p.expect("scalar") && p.expect("string")
	}
	return true
}

// jsonBehavior consumes json_behavior: DEFAULT a_expr, ERROR, NULL, TRUE,
// FALSE, UNKNOWN, EMPTY [ARRAY | OBJECT]. It reports false, consuming
// nothing, when there is none.
func (p *syn) jsonBehavior() bool {
	switch {
	case p.is("default"):
		p.next()
		return p.expr(0, 0)
	case p.is("error") || p.is("null") || p.is("true") || p.is("false") || p.is("unknown"):
		p.next()
	case p.is("empty"):
		p.next()
		if p.is("array") || p.is("object") {
			p.next()
		}
	default:
		return false
	}
	return true
}

// jsonBehaviors consumes an optional json_behavior_clause_opt: behavior ON
// EMPTY, behavior ON ERROR, or both in that order.
func (p *syn) jsonBehaviors() bool {
	if !p.startsBehavior() {
		return true
	}
	if !p.jsonBehavior() || !p.expect("on") {
		return false
	}
	if p.is("error") {
		p.next()
		return true
	}
	if !p.expect("empty") {
		return false
	}
	if !p.startsBehavior() {
		return true
	}
	return p.jsonBehavior() && p.expect("on") && p.expect("error")
}

// jsonOnError consumes an optional behavior ON ERROR.
func (p *syn) jsonOnError() bool {
	if !p.startsBehavior() {
		return true
	}
	return p.jsonBehavior() && p.expect("on") && p.expect("error")
}

// startsBehavior reports whether a json_behavior begins at the token.
func (p *syn) startsBehavior() bool {
	return p.is("default") || p.is("error") || p.is("null") || p.is("true") || p.is("false") || p.is("unknown") || p.is("empty")
}

// jsonPredicate is what follows IS [NOT] in IS JSON [VALUE | ARRAY |
// OBJECT | SCALAR] [WITH | WITHOUT UNIQUE [KEYS]].
func (p *syn) jsonPredicate() bool {
	p.next() // JSON
	if p.is("value") || p.is("array") || p.is("object") || p.is("scalar") {
		p.next()
	}
	return p.uniqueKeys()
}

// jsonTable is JSON_TABLE's arguments, after its '(', through the ')'.
func (p *syn) jsonTable() bool {
	if !p.jsonValueExpr() || !p.expectSelf(',') {
		return false
	}
	// "only string constants are supported in JSON_TABLE path
	// specification"
	if !p.sconst() || !p.stringConst() {
		return false
	}
	if p.is("as") {
		p.next()
		if !p.colID() {
			return false
		}
		p.next()
	}
	return p.jsonPassing() && p.jsonTableColumns() && p.jsonOnError() && p.expectSelf(')')
}

// jsonTableColumns is COLUMNS ( json_table_column_definition [, ...] ).
func (p *syn) jsonTableColumns() bool {
	if !p.enter() {
		return false
	}
	defer p.leave()
	if !p.expect("columns") || !p.expectSelf('(') {
		return false
	}
	for {
		if !p.jsonTableColumn() {
			return false
		}
		if !p.self(',') {
			return p.expectSelf(')')
		}
		p.next()
	}
}

// jsonTableColumn is one json_table_column_definition.
func (p *syn) jsonTableColumn() bool {
	if p.is("nested") && (p.peek().is("path") || p.peek().sconst()) {
		p.next()
		if p.is("path") {
			p.next()
		}
		if !p.sconst() || !p.stringConst() {
			return false
		}
		if p.is("as") {
			p.next()
			if !p.colID() {
				return false
			}
			p.next()
		}
		return p.jsonTableColumns()
	}
	if !p.colID() {
		return false
	}
	p.next()
	if p.is("for") {
		p.next()
		return p.expect("ordinality")
	}
	if !p.typeName() {
		return false
	}
	if p.is("exists") {
		p.next()
		return p.jsonPathClause() && p.jsonOnError()
	}
	return p.jsonFormat() && p.jsonPathClause() && p.jsonWrapper() && p.jsonQuotes() && p.jsonBehaviors()
}

// jsonPathClause consumes an optional PATH Sconst.
func (p *syn) jsonPathClause() bool {
	if !p.is("path") {
		return true
	}
	p.next()
	return p.sconst() && p.stringConst()
}
