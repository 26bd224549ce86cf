//go:build cgo

package pgquery

import (
	"bufio"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/pgxroute/pgxroute/classify"
)

// grammarCase is one line of classify's testdata/grammar.txt.
type grammarCase struct {
	tag, sql string
	line     int
}

// grammarCases reads classify's testdata/grammar.txt.
func grammarCases(t *testing.T) []grammarCase {
	t.Helper()
	f, err := os.Open("../testdata/grammar.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var cases []grammarCase
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		text := sc.Text()
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		tag, sql, ok := strings.Cut(text, "\t")
		if !ok || tag != "read" && tag != "error" && tag != "outside" {
			t.Fatalf("grammar.txt:%d: want read, error or outside, a tab, then SQL", line)
		}
		cases = append(cases, grammarCase{tag, sql, line})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(cases) == 0 {
		t.Fatal("no cases in grammar.txt")
	}
	return cases
}

// TestGrammarCasesAgainstParser checks the tags of classify's
// testdata/grammar.txt (the read grammar's special syntax, accepted and
// rejected forms) against PostgreSQL's parser: "read" and "outside"
// statements are reads to it, "error" ones it rejects. classify's
// TestGrammarCases checks the lexical classifier on the same lines.
func TestGrammarCasesAgainstParser(t *testing.T) {
	oracle := New(classify.Options{})
	for _, tc := range grammarCases(t) {
		got, err := oracle.ClassifyErr(tc.sql)
		switch tc.tag {
		case "read", "outside":
			if err != nil || got.Kind != classify.Read {
				t.Errorf("grammar.txt:%d: the parser says %v (%v) of %q, tagged %s", tc.line, got, err, tc.sql, tc.tag)
			}
		case "error":
			if err == nil {
				t.Errorf("grammar.txt:%d: the parser accepts %q (%v), tagged error", tc.line, tc.sql, got)
			}
		}
	}
}

// mutationToken splits SQL into rough tokens: quoted strings and names,
// words, "::" and single punctuation characters.
var mutationToken = regexp.MustCompile(`U&"(?:[^"]|"")*"|'(?:[^']|'')*'|"(?:[^"]|"")*"|\$\$[^$]*\$\$|\w+|::|[^\s\w]`)

// mutationWords are what the mutations put in or over a token: the
// keywords and punctuation of the special syntax, and a few operands.
var mutationWords = strings.Fields(`ON ERROR EMPTY NULL WITH WITHOUT UNIQUE KEYS VALUE FORMAT JSON
	PATH COLUMNS NESTED PASSING BY REF AS , ( ) : DEFAULT NOT FOR ORDINALITY OVERLAPS ROW SIMILAR
	ESCAPE PLACING FROM TIES ONLY UESCAPE IS DOCUMENT NORMALIZED NFC ARRAY OBJECT SCALAR WRAPPER
	KEEP OMIT QUOTES RETURNING ENCODING utf8 ABSENT EXISTS TRUE 1 'x' x NAME XMLATTRIBUTES VERSION
	STANDALONE NO INDENT CONTENT ORDER FILTER OVER WHERE`)

// TestGrammarCasesMutated checks near misses of every statement of
// grammar.txt: each token deleted, doubled, swapped with the next, and
// replaced by or preceded with each of mutationWords. Whatever of these
// the classifier calls Read, the parser must accept as a read: the read
// grammar must be sound around each production it covers, not only on
// the listed forms.
func TestGrammarCasesMutated(t *testing.T) {
	oracle := New(classify.Options{})
	lexer := classify.New(classify.Options{CacheSize: -1})
	tried, reads := 0, 0
	check := func(toks []string) {
		sql := strings.Join(toks, " ")
		tried++
		if lexer.Classify(sql).Kind != classify.Read {
			return
		}
		reads++
		if got, err := oracle.ClassifyErr(sql); err != nil || got.Kind != classify.Read {
			t.Errorf("lexer Read, parser %v (%v): %q", got, err, sql)
		}
	}
	for _, tc := range grammarCases(t) {
		toks := mutationToken.FindAllString(tc.sql, -1)
		for i := range toks {
			check(append(append([]string{}, toks[:i]...), toks[i+1:]...))
			check(append(append([]string{}, toks[:i+1]...), toks[i:]...))
			if i+1 < len(toks) {
				s := append([]string{}, toks...)
				s[i], s[i+1] = s[i+1], s[i]
				check(s)
			}
			for _, w := range mutationWords {
				s := append([]string{}, toks...)
				s[i] = w
				check(s)
				check(append(append(append([]string{}, toks[:i]...), w), toks[i:]...))
			}
		}
	}
	t.Logf("%d mutations, %d of them reads to the classifier, all reads to the parser", tried, reads)
	if reads == 0 {
		t.Error("no mutation was a read: the test checked nothing")
	}
}
