package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/pgxroute/pgxroute"
)

// maxWidth is the widest line the demo prints, in columns.
const maxWidth = 100

// nodeRow is one node's line of the demo's live table.
type nodeRow struct {
	Name  string
	Role  string // what the router's last probe saw
	State string
	// Primary: the router sends writes to this node now.
	Primary  bool
	Lag      time.Duration
	LagBytes int64
	// CallsPerSec and P99 are of the calls this server answered (by its own
	// account) in the last window.
	CallsPerSec float64
	P99         time.Duration
	InFlight    int64
}

// frame is one redraw of the live table.
type frame struct {
	Scenario     string
	Elapsed      time.Duration
	Reads        int64
	ReadsFailed  int64
	Writes       int64
	WritesFailed int64
	Primary      string // where writes go ("": none known)
	Rows         []nodeRow
}

// frame builds a frame of the running scenario from the router's Stat and
// the workload's counts; window is the time since the last frame.
func (d *demoRun) frame(name string, s *scenarioState, window time.Duration) frame {
	st := d.pool.Stat()
	t := s.tally
	f := frame{
		Scenario: name, Elapsed: time.Since(s.start),
		Reads: t.reads.Load(), ReadsFailed: t.readsFailed.Load(),
		Writes: t.writes.Load(), WritesFailed: t.writesNeverSent.Load() + t.writesUnkn.Load(),
		Primary: st.Primary,
	}
	nodes := map[string]pgxroute.NodeStat{}
	for _, g := range st.Groups {
		for _, n := range g.Nodes {
			if _, ok := nodes[n.Name]; !ok {
				nodes[n.Name] = n
			}
		}
	}
	secs := max(window.Seconds(), 0.001)
	for _, m := range st.Members {
		n := nodes[m.Name]
		lat := t.takeWindow(d.ports[m.Name])
		f.Rows = append(f.Rows, nodeRow{
			Name: m.Name, Role: m.Role, State: m.State.String(), Primary: m.Primary,
			Lag: n.Lag, LagBytes: n.LagBytes, InFlight: n.InFlight,
			CallsPerSec: float64(len(lat)) / secs, P99: p99(lat),
		})
	}
	return f
}

// live draws frames: on a terminal it redraws the table in place (ANSI
// cursor-up and erase), elsewhere it prints one plain line per frame.
// Events print above the table; Text prints a block and forgets the table.
// Safe for concurrent use.
type live struct {
	mu    sync.Mutex
	w     io.Writer
	tty   bool
	drawn int // lines of the frame on screen (tty)
	last  []string
}

func newLive(w io.Writer, tty bool) *live { return &live{w: w, tty: tty} }

// isTerminal reports whether f is a character device (a terminal).
func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// erase removes the frame on screen.
func (l *live) erase() {
	if l.drawn > 0 {
		fmt.Fprintf(l.w, "\r\x1b[%dA\x1b[J", l.drawn)
		l.drawn = 0
	}
}

// Frame draws f.
func (l *live) Frame(f frame) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.tty {
		fmt.Fprintln(l.w, plainLine(f))
		return
	}
	lines := tableLines(f)
	l.erase()
	for _, s := range lines {
		fmt.Fprintln(l.w, s)
	}
	l.drawn, l.last = len(lines), lines
}

// Event prints a line above the table.
func (l *live) Event(line string) {
	line = fitWidth(line)
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.tty {
		fmt.Fprintln(l.w, line)
		return
	}
	l.erase()
	fmt.Fprintln(l.w, line)
	for _, s := range l.last {
		fmt.Fprintln(l.w, s)
	}
	l.drawn = len(l.last)
}

// Text leaves the last frame on screen as it is and prints text (one or
// more lines) below it; the next frame draws below the text.
func (l *live) Text(text string) {
	text = fitWidth(text)
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintln(l.w, text)
	l.drawn, l.last = 0, nil
}

// tableLines renders f as the terminal table.
func tableLines(f frame) []string {
	var b strings.Builder
	primary := f.Primary
	if primary == "" {
		primary = "(none: writes wait)"
	}
	fmt.Fprintf(&b, "%s %.1fs  reads %s (%d failed)  writes %s (%d failed)  writes go to %s\n",
		f.Scenario, f.Elapsed.Seconds(), commas(f.Reads), f.ReadsFailed, commas(f.Writes), f.WritesFailed, primary)
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	w := nameWidth(f.Rows)
	fmt.Fprintf(tw, "%-*s\tROLE\tSTATE\tLAG\tLAG BYTES\tCALLS/S\tIN FLIGHT\tP99\t\n", w, "NODE")
	for _, r := range f.Rows {
		fmt.Fprintf(tw, "%-*s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t\n",
			w, r.Name, r.Role, r.State, lagText(r), lagBytesText(r), commas(int64(r.CallsPerSec+0.5)), r.InFlight, p99Text(r))
	}
	tw.Flush()
	lines := strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
	for i, s := range lines {
		lines[i] = fitWidth(s)
	}
	return lines
}

// plainLine renders f as one line: the scenario's counts, then each node's
// state, the one writes go to marked with *.
func plainLine(f frame) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %.1fs reads %d writes %d failed %d |", f.Scenario, f.Elapsed.Seconds(), f.Reads, f.Writes, f.ReadsFailed+f.WritesFailed)
	for _, r := range f.Rows {
		mark := ""
		if r.Primary {
			mark = "*"
		}
		fmt.Fprintf(&b, " %s%s:%s", r.Name, mark, r.State)
	}
	return fitWidth(b.String())
}

func lagText(r nodeRow) string {
	if r.Role != "replica" {
		return "-"
	}
	return roundDur(r.Lag).String()
}

func lagBytesText(r nodeRow) string {
	if r.Role != "replica" {
		return "-"
	}
	return commas(r.LagBytes)
}

func p99Text(r nodeRow) string {
	if r.P99 == 0 {
		return "-"
	}
	return roundDur(r.P99).String()
}

// nameWidth is the width of the longest node name, so that names line up on
// the left in right-aligned tables.
func nameWidth(rows []nodeRow) int {
	w := len("NODE")
	for _, r := range rows {
		w = max(w, utf8.RuneCountInString(r.Name))
	}
	return w
}

// fitWidth cuts each line of s to maxWidth columns, ending a cut line with
// "...".
func fitWidth(s string) string {
	lines := strings.Split(s, "\n")
	for i, line := range lines {
		if utf8.RuneCountInString(line) > maxWidth {
			r := []rune(line)
			lines[i] = string(r[:maxWidth-3]) + "..."
		}
	}
	return strings.Join(lines, "\n")
}

// wrap breaks text into lines of at most maxWidth columns, the first one
// starting with first, the others with as many spaces: at spaces where it
// can, within a word where it must.
func wrap(first, text string) string {
	indent := strings.Repeat(" ", utf8.RuneCountInString(first))
	width := maxWidth - len(indent)
	var lines []string
	rest := []rune(strings.TrimSpace(text))
	for len(rest) > 0 {
		n := len(rest)
		if n > width {
			n = width
			if i := lastSpace(rest[:width+1]); i > width/2 {
				n = i
			}
		}
		lines = append(lines, strings.TrimRight(string(rest[:n]), " "))
		rest = []rune(strings.TrimLeft(string(rest[n:]), " "))
	}
	if len(lines) == 0 {
		return first
	}
	return first + strings.Join(lines, "\n"+indent)
}

func lastSpace(r []rune) int {
	for i := len(r) - 1; i >= 0; i-- {
		if r[i] == ' ' {
			return i
		}
	}
	return -1
}
