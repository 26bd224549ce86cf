//go:build cgo

package pgquery

import (
	"errors"
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/pgxroute/pgxroute/classify"
)

// Classifier decides statements on PostgreSQL's parse tree with the rules
// of package classify. It is safe for concurrent use; make it with [New].
type Classifier struct {
	funcs *classify.Classifier // the write functions; its cache is off
}

var _ classify.StatementClassifier = (*Classifier)(nil)

// New returns a Classifier with the write functions of opts (the built-in
// ones plus opts.WriteFunctions, matched exactly as package classify does).
// opts.CacheSize is ignored: parsing is not cached.
func New(opts classify.Options) *Classifier {
	opts.CacheSize = -1
	return &Classifier{funcs: classify.New(opts)}
}

// Classify decides sql with the default rules on PostgreSQL's parse tree.
func Classify(sql string) classify.Result {
	return New(classify.Options{}).Classify(sql)
}

// Classify decides sql. SQL the parser rejects is a Write ("syntax error").
func (c *Classifier) Classify(sql string) classify.Result {
	res, _ := c.ClassifyErr(sql)
	return res
}

// ErrNUL is returned for SQL containing a NUL byte, which no server accepts
// and which the C parser would silently truncate.
var ErrNUL = errors.New("pgquery: SQL contains a NUL byte")

// ClassifyErr is Classify that also returns the parser's error, if any; the
// result is then a Write.
func (c *Classifier) ClassifyErr(sql string) (classify.Result, error) {
	if strings.IndexByte(sql, 0) >= 0 {
		return classify.Result{Kind: classify.Write, Reason: "NUL byte"}, ErrNUL
	}
	tree, err := pg_query.Parse(sql)
	if err != nil {
		return classify.Result{Kind: classify.Write, Reason: "syntax error"}, err
	}
	return c.Tree(tree), nil
}

// Tree decides an already parsed statement list.
func (c *Classifier) Tree(tree *pg_query.ParseResult) classify.Result {
	stmts := tree.GetStmts()
	if len(stmts) == 0 {
		return classify.Result{Kind: classify.Write, Reason: "empty"}
	}
	var first classify.Result
	allRead := true
	for i, raw := range stmts {
		res := c.statement(raw.GetStmt())
		if i == 0 {
			first = res
		}
		if res.Kind != classify.Read {
			allRead = false
		}
	}
	if len(stmts) == 1 {
		return first
	}
	kind := classify.Write
	if allRead {
		kind = classify.Read
	}
	return classify.Result{Kind: kind, Reason: statementsReason(len(stmts))}
}

func statementsReason(n int) string {
	if n <= 9 {
		return string(rune('0'+n)) + " statements"
	}
	return "many statements"
}

// statement decides one statement.
func (c *Classifier) statement(n *pg_query.Node) classify.Result {
	switch s := n.GetNode().(type) {
	case *pg_query.Node_SelectStmt:
		return c.read(s.SelectStmt, selectReason(s.SelectStmt))
	case *pg_query.Node_VariableShowStmt:
		return classify.Result{Kind: classify.Read, Reason: "SHOW"}
	case *pg_query.Node_ExplainStmt:
		q := s.ExplainStmt.GetQuery()
		if sel := q.GetSelectStmt(); sel != nil {
			res := c.read(sel, "EXPLAIN")
			return res
		}
		return classify.Result{Kind: classify.Write, Reason: writeReason(q)}
	}
	return classify.Result{Kind: classify.Write, Reason: writeReason(n)}
}

func selectReason(s *pg_query.SelectStmt) string {
	switch {
	case s.GetWithClause() != nil:
		return "WITH"
	case len(s.GetValuesLists()) > 0:
		return "VALUES"
	}
	return "SELECT"
}

// writeReason names a statement that is not a read.
func writeReason(n *pg_query.Node) string {
	switch n.GetNode().(type) {
	case nil:
		return "unrecognized"
	case *pg_query.Node_InsertStmt:
		return "INSERT"
	case *pg_query.Node_UpdateStmt:
		return "UPDATE"
	case *pg_query.Node_DeleteStmt:
		return "DELETE"
	case *pg_query.Node_MergeStmt:
		return "MERGE"
	case *pg_query.Node_CopyStmt:
		return "COPY"
	case *pg_query.Node_CallStmt:
		return "CALL"
	case *pg_query.Node_DoStmt:
		return "DO"
	case *pg_query.Node_VariableSetStmt:
		return "SET"
	case *pg_query.Node_TransactionStmt:
		return "transaction control"
	case *pg_query.Node_LockStmt:
		return "LOCK"
	case *pg_query.Node_VacuumStmt:
		return "VACUUM"
	}
	// The parse node's name, as in "CreateStmt".
	m := n.ProtoReflect()
	return string(m.WhichOneof(m.Descriptor().Oneofs().Get(0)).Message().Name())
}

// read decides a SELECT (plain, VALUES, WITH, set operation) by walking its
// whole tree.
func (c *Classifier) read(s *pg_query.SelectStmt, reason string) classify.Result {
	v := verdict{res: classify.Result{Kind: classify.Read, Reason: reason}}
	c.walk(s.ProtoReflect(), &v)
	return v.res
}

type verdict struct{ res classify.Result }

func (v *verdict) write(reason string) {
	if v.res.Kind != classify.Write {
		v.res = classify.Result{Kind: classify.Write, Reason: reason}
	}
}

func (v *verdict) lock(reason string) {
	if v.res.Kind == classify.Read {
		v.res = classify.Result{Kind: classify.LockingRead, Reason: reason}
	}
}

// walk visits every message of the tree below m.
func (c *Classifier) walk(m protoreflect.Message, v *verdict) {
	switch n := m.Interface().(type) {
	case *pg_query.InsertStmt, *pg_query.UpdateStmt, *pg_query.DeleteStmt, *pg_query.MergeStmt:
		v.write("data-modifying CTE")
	case *pg_query.SelectStmt:
		if n.GetIntoClause() != nil {
			v.write("SELECT INTO")
		}
	case *pg_query.LockingClause:
		switch n.GetStrength() {
		case pg_query.LockClauseStrength_LCS_FORUPDATE:
			v.lock("FOR UPDATE")
		case pg_query.LockClauseStrength_LCS_FORNOKEYUPDATE:
			v.lock("FOR NO KEY UPDATE")
		case pg_query.LockClauseStrength_LCS_FORSHARE:
			v.lock("FOR SHARE")
		case pg_query.LockClauseStrength_LCS_FORKEYSHARE:
			v.lock("FOR KEY SHARE")
		}
	case *pg_query.FuncCall:
		c.call(n, v)
	}
	m.Range(func(fd protoreflect.FieldDescriptor, val protoreflect.Value) bool {
		if fd.Kind() != protoreflect.MessageKind {
			return true
		}
		if fd.IsList() {
			list := val.List()
			for i := 0; i < list.Len(); i++ {
				c.walk(list.Get(i).Message(), v)
			}
			return true
		}
		if !fd.IsMap() {
			c.walk(val.Message(), v)
		}
		return true
	})
}

// call checks a function call against the write functions.
func (c *Classifier) call(f *pg_query.FuncCall, v *verdict) {
	parts := f.GetFuncname()
	if len(parts) == 0 {
		return
	}
	name := parts[len(parts)-1].GetString_().GetSval()
	schema := ""
	if len(parts) >= 2 {
		schema = parts[len(parts)-2].GetString_().GetSval()
	}
	if reason, ok := c.funcs.WriteFunction(schema, name); ok {
		v.write(reason)
	}
}
