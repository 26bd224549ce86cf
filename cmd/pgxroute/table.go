package main

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"
)

// nodeRow is one node's line of the demo's live table.
type nodeRow struct {
	Name     string
	Group    string
	State    string
	Role     string
	Reads    int64 // routed reads (by the router's count)
	Writes   int64
	Sticky   int64
	Served   int64 // reads the server itself reported answering
	InFlight int64
	Lag      time.Duration
	LagBytes int64
}

// frame is one redraw of the live table.
type frame struct {
	Elapsed      time.Duration
	Reads        int64
	ReadsFailed  int64
	Writes       int64
	WritesFailed int64
	Sticky       int64
	Rows         []nodeRow
}

// live draws frames: on a terminal it redraws the table in place (ANSI
// cursor-up and erase), elsewhere it prints one timestamped line per frame.
// Events (a replica killed) print above the table. Safe for concurrent use.
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
		fmt.Fprintln(l.w, time.Now().Format("15:04:05.000")+" "+plainLine(f))
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
func (l *live) Event(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	msg := fmt.Sprintf(format, args...)
	if !l.tty {
		fmt.Fprintln(l.w, time.Now().Format("15:04:05.000")+" "+msg)
		return
	}
	l.erase()
	fmt.Fprintln(l.w, msg)
	for _, s := range l.last {
		fmt.Fprintln(l.w, s)
	}
	l.drawn = len(l.last)
}

// tableLines renders f as the terminal table.
func tableLines(f frame) []string {
	var b strings.Builder
	fmt.Fprintf(&b, "%5.1fs  reads %d (failed %d)  writes %d (failed %d)  sticky reads %d\n",
		f.Elapsed.Seconds(), f.Reads, f.ReadsFailed, f.Writes, f.WritesFailed, f.Sticky)
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	w := nameWidth(f.Rows)
	fmt.Fprintf(tw, "%-*s\tGROUP\tSTATE\tROLE\tREADS\tWRITES\tSTICKY\tSERVED\tIN FLIGHT\tLAG\tLAG BYTES\t\n", w, "NODE")
	for _, r := range f.Rows {
		fmt.Fprintf(tw, "%-*s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t\n",
			w, r.Name, r.Group, r.State, r.Role, r.Reads, r.Writes, r.Sticky, r.Served, r.InFlight, lagText(r), lagBytesText(r))
	}
	tw.Flush()
	return strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
}

// plainLine renders f as one line.
func plainLine(f frame) string {
	var b strings.Builder
	fmt.Fprintf(&b, "t=%.1fs reads=%d failed=%d writes=%d sticky=%d", f.Elapsed.Seconds(), f.Reads, f.ReadsFailed, f.Writes, f.Sticky)
	for _, r := range f.Rows {
		fmt.Fprintf(&b, " | %s %s r=%d w=%d s=%d served=%d", r.Name, r.State, r.Reads, r.Writes, r.Sticky, r.Served)
		if r.Role == "replica" {
			fmt.Fprintf(&b, " lag=%s/%sB", lagText(r), lagBytesText(r))
		}
	}
	return b.String()
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
	return strconv.FormatInt(r.LagBytes, 10)
}

// nameWidth is the width of the longest node name, so that names line up on
// the left in right-aligned tables.
func nameWidth(rows []nodeRow) int {
	w := len("NODE")
	for _, r := range rows {
		w = max(w, len(r.Name))
	}
	return w
}
