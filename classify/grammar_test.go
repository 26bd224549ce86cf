package classify

import (
	"bufio"
	"os"
	"strings"
	"testing"
)

// grammarCase is one line of testdata/grammar.txt: what PostgreSQL's
// parser says of a statement, and the statement.
type grammarCase struct {
	tag  string // read, error or outside
	sql  string
	line int
}

// loadGrammarCases reads testdata/grammar.txt.
func loadGrammarCases(t *testing.T) []grammarCase {
	t.Helper()
	f, err := os.Open("testdata/grammar.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var cases []grammarCase
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		tag, sql, ok := strings.Cut(line, "\t")
		if !ok || tag != "read" && tag != "error" && tag != "outside" {
			t.Fatalf("testdata/grammar.txt:%d: want read, error or outside, a tab, then SQL", n)
		}
		cases = append(cases, grammarCase{tag, sql, n})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return cases
}

// TestGrammarCases checks the read grammar's special syntax (SQL/JSON,
// XML, OVERLAPS, WITH TIES, ...) on the statements of testdata/grammar.txt,
// accepted and rejected forms; classify/pgquery checks their tags against
// PostgreSQL's parser.
func TestGrammarCases(t *testing.T) {
	cases := loadGrammarCases(t)
	counts := map[string]int{}
	for _, tc := range cases {
		counts[tc.tag]++
		got := Classify(tc.sql)
		switch tc.tag {
		case "read":
			if got.Kind != Read {
				t.Errorf("grammar.txt:%d: Classify(%q) = %v, want a read", tc.line, tc.sql, got)
			}
		case "error":
			if got.Kind != Write {
				t.Errorf("grammar.txt:%d: Classify(%q) = %v, want a write (the parser rejects it)", tc.line, tc.sql, got)
			}
		case "outside":
			if got != (Result{Kind: Write, Reason: reasonSyntax}) {
				t.Errorf("grammar.txt:%d: Classify(%q) = %v, want write (syntax error): the grammar leaves it out", tc.line, tc.sql, got)
			}
		}
	}
	if counts["read"] == 0 || counts["error"] == 0 || counts["outside"] == 0 {
		t.Errorf("testdata/grammar.txt has %v: want cases of every tag", counts)
	}
}
