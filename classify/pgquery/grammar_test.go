//go:build cgo

package pgquery

import (
	"bufio"
	"os"
	"strings"
	"testing"

	"github.com/pgxroute/pgxroute/classify"
)

// TestGrammarCasesAgainstParser checks the tags of classify's
// testdata/grammar.txt (the read grammar's special syntax, accepted and
// rejected forms) against PostgreSQL's parser: "read" and "outside"
// statements are reads to it, "error" ones it rejects. classify's
// TestGrammarCases checks the lexical classifier on the same lines.
func TestGrammarCasesAgainstParser(t *testing.T) {
	f, err := os.Open("../testdata/grammar.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	oracle := New(classify.Options{})
	n := 0
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		text := sc.Text()
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		tag, sql, ok := strings.Cut(text, "\t")
		if !ok {
			t.Fatalf("grammar.txt:%d: no tab", line)
		}
		n++
		got, err := oracle.ClassifyErr(sql)
		switch tag {
		case "read", "outside":
			if err != nil || got.Kind != classify.Read {
				t.Errorf("grammar.txt:%d: the parser says %v (%v) of %q, tagged %s", line, got, err, sql, tag)
			}
		case "error":
			if err == nil {
				t.Errorf("grammar.txt:%d: the parser accepts %q (%v), tagged error", line, sql, got)
			}
		default:
			t.Fatalf("grammar.txt:%d: unknown tag %q", line, tag)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("no cases in grammar.txt")
	}
}
