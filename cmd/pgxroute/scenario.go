package main

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/pgxroute/pgxroute"
	"github.com/pgxroute/pgxroute/routingtest"
)

// scenario is one fault the demo inflicts on the cluster under load.
type scenario struct {
	name string
	// fault does the fault and the recovery, holding each phase for
	// d.o.Phase; it calls s.markFault when the fault happens and sets
	// s.NewPrimary when the primary role moves.
	fault func(ctx context.Context, d *demoRun, s *scenarioState) error
}

// scenarioByName returns the named scenario; its fault is nil for an
// unknown name.
func scenarioByName(name string) scenario {
	faults := map[string]func(context.Context, *demoRun, *scenarioState) error{
		"kill": killReplica, "freeze": freezeReplica, "members": changeMembers, "failover": failover, "switchover": switchover,
	}
	return scenario{name: name, fault: faults[name]}
}

// scenarioState is a running scenario.
type scenarioState struct {
	*scenarioSummary
	start time.Time
	tally *tally
}

// markFault records the moment of the fault.
func (s *scenarioState) markFault() { s.FaultAt = time.Since(s.start) }

// scenarioSummary is what one scenario did, counted from the servers'
// answers (the port each call's server reported) and the router's Stat.
type scenarioSummary struct {
	Name    string
	About   string // what the demo did, in a few words
	Elapsed time.Duration

	Reads, ReadsFailed                     int64
	Writes, WritesNeverSent, WritesUnknown int64
	StickyReads, StickyStale               int64
	// StaleElsewhere counts the stale sticky reads that another server
	// answered than the one that acknowledged the write (a write the old
	// primary acknowledged and lost when it died, replication being
	// asynchronous).
	StaleElsewhere    int64
	SlowestRead       time.Duration
	ReadsBy, WritesBy map[string]int64 // by the answering server's own account
	OtherPort         int64            // answers from a port that is no node's
	FirstError        string

	FaultAt time.Duration // since the scenario's start
	// PrimaryBefore is the node that acknowledged writes before the fault;
	// NewPrimary the one promoted ("" when the primary did not move), and
	// FirstWrite the time from the fault to the first write it
	// acknowledged (0: none).
	PrimaryBefore, NewPrimary string
	FirstWrite                time.Duration
	// ServerRoles is what each server said it was at the end
	// (pg_is_in_recovery()): "primary", "replica" or "down".
	ServerRoles map[string]string

	// From Stat, the differences over the scenario.
	Ejections, Readmissions    map[string]int64
	Retries, Hedges, HedgeWins int64
	// Events are the kinds of the router's health events of the scenario,
	// by node ("" for a primary change to none).
	Events map[string][]string

	Err         string // the scenario's own failure (a harness step)
	Interrupted bool
}

// runScenario waits until the pool sees every member up and a primary,
// runs the workload with sc's fault, and returns its summary.
func (d *demoRun) runScenario(ctx context.Context, sc scenario) (*scenarioSummary, error) {
	if sc.fault == nil {
		return nil, fmt.Errorf("unknown scenario %q", sc.name)
	}
	if err := d.settle(ctx); err != nil {
		return nil, err
	}
	ports := make([]int, 0, len(d.names))
	for p := range d.names {
		ports = append(ports, p)
	}
	s := &scenarioState{scenarioSummary: &scenarioSummary{Name: sc.name}, tally: newTally(ports)}
	before := nodeCounts(d.pool.Stat())
	d.view.Text(fmt.Sprintf("\n=== %s ===", sc.name))

	wctx, stopWork := context.WithCancel(ctx)
	defer stopWork()
	s.start = time.Now()
	d.start.Store(s.start.UnixNano())
	workers := runWorkers(wctx, d.pool, s.tally, d.o.Workers, d.o.Pause)
	var frames sync.WaitGroup
	frames.Add(1)
	go func() {
		defer frames.Done()
		tick := time.NewTicker(d.o.Interval)
		defer tick.Stop()
		last := time.Now()
		for {
			select {
			case <-wctx.Done():
				return
			case now := <-tick.C:
				d.view.Frame(d.frame(sc.name, s, now.Sub(last)))
				last = now
			}
		}
	}()
	ferr := sc.fault(wctx, d, s)
	stopWork()
	workers.Wait()
	frames.Wait()
	s.Elapsed = time.Since(s.start)
	s.Interrupted = ctx.Err() != nil
	if ferr != nil && !s.Interrupted {
		s.Err = redact(ferr.Error())
	}

	t := s.tally
	s.Reads, s.ReadsFailed = t.reads.Load(), t.readsFailed.Load()
	s.Writes, s.WritesNeverSent, s.WritesUnknown = t.writes.Load(), t.writesNeverSent.Load(), t.writesUnkn.Load()
	s.StickyReads, s.StickyStale, s.StaleElsewhere = t.sticky.Load(), t.stickyStale.Load(), t.staleElsewhere.Load()
	s.SlowestRead = time.Duration(t.slowestRead.Load())
	s.OtherPort = t.otherPort.Load()
	s.FirstError = t.firstError()
	s.ReadsBy, s.WritesBy = map[string]int64{}, map[string]int64{}
	for port, pt := range t.ports {
		s.ReadsBy[d.names[port]] = pt.reads.Load()
		s.WritesBy[d.names[port]] = pt.writes.Load()
	}
	if s.NewPrimary != "" {
		if fw := t.firstWriteOn(d.ports[s.NewPrimary]); !fw.IsZero() {
			s.FirstWrite = fw.Sub(s.start) - s.FaultAt
		}
	}
	s.Events = d.events.since(s.start)
	after := nodeCounts(d.pool.Stat())
	s.Ejections, s.Readmissions = map[string]int64{}, map[string]int64{}
	for name, a := range after {
		b := before[name]
		if n := a.ejections - b.ejections; n != 0 {
			s.Ejections[name] = n
		}
		if n := a.readmissions - b.readmissions; n != 0 {
			s.Readmissions[name] = n
		}
		s.Retries += a.retries - b.retries
		s.Hedges += a.hedges - b.hedges
		s.HedgeWins += a.hedgeWins - b.hedgeWins
	}
	rctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	s.ServerRoles = d.serverRoles(rctx)
	cancel()
	if s.Err != "" {
		return s.scenarioSummary, fmt.Errorf("scenario %s: %s", sc.name, s.Err)
	}
	return s.scenarioSummary, nil
}

// settleTimeout bounds the waits for the router to see a change.
const settleTimeout = time.Minute

// settle waits until the pool sees every member up and the harness's
// primary as the primary.
func (d *demoRun) settle(ctx context.Context) error {
	return d.waitFor(ctx, "every node up and "+d.c.Primary().Name()+" as the primary", func(st *pgxroute.Stat) bool {
		if st.Primary != d.c.Primary().Name() {
			return false
		}
		for _, m := range st.Members {
			if m.State != pgxroute.StateUp {
				return false
			}
		}
		return true
	})
}

// waitFor polls the pool's Stat until cond holds, ctx ends or
// settleTimeout passes.
func (d *demoRun) waitFor(ctx context.Context, what string, cond func(*pgxroute.Stat) bool) error {
	deadline := time.Now().Add(settleTimeout)
	for {
		st := d.pool.Stat()
		if cond(st) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the router did not see %s within %s", what, settleTimeout)
		}
		if !sleepCtx(ctx, 20*time.Millisecond) {
			return ctx.Err()
		}
	}
}

// memberUp reports whether st shows the named member up.
func memberUp(st *pgxroute.Stat, name string) bool {
	for _, m := range st.Members {
		if m.Name == name {
			return m.State == pgxroute.StateUp
		}
	}
	return false
}

// watchFirstWrite watches, from now on, for the first write that node
// acknowledges in this scenario, and prints it as it happens. The function
// it returns waits for it (bounded by settleTimeout from the call).
func (d *demoRun) watchFirstWrite(ctx context.Context, s *scenarioState, node string) func() error {
	done := make(chan error, 1)
	go func() {
		deadline := time.Now().Add(settleTimeout)
		for s.tally.firstWriteOn(d.ports[node]).IsZero() {
			if time.Now().After(deadline) {
				done <- fmt.Errorf("no write acknowledged by %s within %s", node, settleTimeout)
				return
			}
			if !sleepCtx(ctx, 5*time.Millisecond) {
				done <- ctx.Err()
				return
			}
		}
		d.step("first write acknowledged by %s, %.2fs after the fault", node,
			(s.tally.firstWriteOn(d.ports[node]).Sub(s.start) - s.FaultAt).Seconds())
		done <- nil
	}()
	return func() error { return <-done }
}

// hold keeps the load running for one phase, or until ctx ends (its error).
func (d *demoRun) hold(ctx context.Context) error {
	if !sleepCtx(ctx, d.o.Phase) {
		return ctx.Err()
	}
	return nil
}

// backThenHold waits until the router has the named node up again, then
// holds one phase.
func (d *demoRun) backThenHold(ctx context.Context, name string) error {
	if err := d.waitFor(ctx, name+" up", func(st *pgxroute.Stat) bool { return memberUp(st, name) }); err != nil {
		return err
	}
	return d.hold(ctx)
}

// seenThenHold waits until the router no longer has the named node up
// (down or suspect: it saw the fault), then holds one phase.
func (d *demoRun) seenThenHold(ctx context.Context, name string) error {
	if err := d.waitFor(ctx, name+" avoided", func(st *pgxroute.Stat) bool { return !memberUp(st, name) }); err != nil {
		return err
	}
	return d.hold(ctx)
}

// killReplica kills a replica with SIGKILL and starts it again.
func killReplica(ctx context.Context, d *demoRun, s *scenarioState) error {
	victim := d.c.Replicas()[0]
	s.About = victim.Name() + " killed (SIGKILL), then started again"
	s.PrimaryBefore = d.c.Primary().Name()
	if err := d.hold(ctx); err != nil {
		return err
	}
	s.markFault()
	d.step("kill %s (SIGKILL): its reads go to the other replica", victim.Name())
	if err := d.c.Kill(victim); err != nil {
		return err
	}
	if err := d.seenThenHold(ctx, victim.Name()); err != nil {
		return err
	}
	d.step("start %s again: the health checks re-admit it", victim.Name())
	if err := d.c.Start(ctx, victim); err != nil {
		return err
	}
	return d.backThenHold(ctx, victim.Name())
}

// freezeReplica freezes a replica with SIGSTOP and thaws it.
func freezeReplica(ctx context.Context, d *demoRun, s *scenarioState) error {
	rs := d.c.Replicas()
	victim := rs[len(rs)-1]
	s.About = victim.Name() + " frozen (SIGSTOP), then thawed"
	s.PrimaryBefore = d.c.Primary().Name()
	if err := d.hold(ctx); err != nil {
		return err
	}
	s.markFault()
	d.step("freeze %s (SIGSTOP): it keeps its sockets open and answers nothing", victim.Name())
	if err := d.c.Freeze(victim); err != nil {
		return err
	}
	// Thaw it whatever happens (Close would too).
	heldErr := d.seenThenHold(ctx, victim.Name())
	if heldErr == nil {
		d.step("thaw %s (SIGCONT)", victim.Name())
	}
	if err := d.c.Thaw(victim); err != nil {
		return err
	}
	if heldErr != nil {
		return heldErr
	}
	return d.backThenHold(ctx, victim.Name())
}

// failover kills the primary, promotes a replica, repoints the other one
// and rejoins the old primary as a replica.
func failover(ctx context.Context, d *demoRun, s *scenarioState) error {
	old := d.c.Primary()
	rs := d.c.Replicas()
	to := rs[0]
	s.About = fmt.Sprintf("%s killed, %s promoted, the old primary rejoined as a replica", old.Name(), to.Name())
	s.PrimaryBefore, s.NewPrimary = old.Name(), to.Name()
	if err := d.hold(ctx); err != nil {
		return err
	}
	s.markFault()
	firstWrite := d.watchFirstWrite(ctx, s, to.Name())
	d.step("kill the primary (node %s) with SIGKILL", old.Name())
	if err := d.c.Kill(old); err != nil {
		return err
	}
	d.step("promote %s (pg_promote)", to.Name())
	if err := d.c.Promote(ctx, to); err != nil {
		return err
	}
	for _, r := range rs[1:] {
		// Rejoin rewinds r when it received WAL that to had not.
		d.step("repoint %s at %s (a restart, and pg_rewind if it is ahead)", r.Name(), to.Name())
		if err := d.c.Rejoin(ctx, r, to); err != nil {
			return err
		}
	}
	if err := firstWrite(); err != nil {
		return err
	}
	if err := d.hold(ctx); err != nil {
		return err
	}
	d.step("rejoin %s as a replica of %s (pg_rewind)", old.Name(), to.Name())
	if err := d.c.Rejoin(ctx, old, to); err != nil {
		return err
	}
	return d.backThenHold(ctx, old.Name())
}

// switchover moves the primary role to a replica cleanly: back to the
// node named primary when it is a replica (after a failover), else to the
// first replica.
// changeMembers takes a replica out of the read group with SetGroup (it
// drains: its running reads finish, no new one reaches it), then puts it
// back (it takes reads after its first answered probe).
func changeMembers(ctx context.Context, d *demoRun, s *scenarioState) error {
	var keep, victim []pgxroute.Node
	for _, r := range d.c.Replicas() {
		n := pgxroute.Node{Name: r.Name(), ConnString: r.ConnString()}
		if victim == nil && r.Name() != "replica1" {
			victim = append(victim, n)
		} else {
			keep = append(keep, n)
		}
	}
	if victim == nil {
		return fmt.Errorf("no replica to take out besides replica1")
	}
	name := victim[0].Name
	s.About = name + " taken out of the read group (SetGroup), then put back"
	s.PrimaryBefore = d.c.Primary().Name()
	if err := d.hold(ctx); err != nil {
		return err
	}
	s.markFault()
	d.step("SetGroup(read) without %s: it takes no new call and drains", name)
	if err := d.pool.SetGroup(ctx, pgxroute.ReadGroupName, keep); err != nil {
		return err
	}
	if err := d.waitFor(ctx, name+" drained", func(st *pgxroute.Stat) bool { return st.Membership.Drained > 0 && len(st.Draining) == 0 }); err != nil {
		return err
	}
	if err := d.hold(ctx); err != nil {
		return err
	}
	d.step("SetGroup(read) with %s again: it takes reads after its first probe", name)
	if err := d.pool.SetGroup(ctx, pgxroute.ReadGroupName, append(keep, victim...)); err != nil {
		return err
	}
	return d.backThenHold(ctx, name)
}

func switchover(ctx context.Context, d *demoRun, s *scenarioState) error {
	old := d.c.Primary()
	var to *routingtest.Node
	for _, r := range d.c.Replicas() {
		if to == nil || r.Name() == "primary" {
			to = r
		}
	}
	s.About = fmt.Sprintf("the primary role moved cleanly from %s to %s", old.Name(), to.Name())
	s.PrimaryBefore, s.NewPrimary = old.Name(), to.Name()
	if err := d.hold(ctx); err != nil {
		return err
	}
	s.markFault()
	firstWrite := d.watchFirstWrite(ctx, s, to.Name())
	d.step("switchover to %s: stop %s, promote %s, repoint, rejoin", to.Name(), old.Name(), to.Name())
	if err := d.c.Switchover(ctx, to); err != nil {
		return err
	}
	d.step("switchover done: %s is the primary, %s a replica", to.Name(), old.Name())
	if err := firstWrite(); err != nil {
		return err
	}
	return d.backThenHold(ctx, old.Name())
}

// counts are a node's cumulative health counts in Stat.
type counts struct{ ejections, readmissions, retries, hedges, hedgeWins int64 }

// nodeCounts returns every node's counts (node-wide counts, the same in
// each of its groups).
func nodeCounts(st *pgxroute.Stat) map[string]counts {
	m := map[string]counts{}
	for _, g := range st.Groups {
		for _, n := range g.Nodes {
			c := m[n.Name]
			c.ejections = max(c.ejections, n.Ejections)
			c.readmissions = max(c.readmissions, n.Readmissions)
			c.retries = max(c.retries, n.Retries)
			c.hedges = max(c.hedges, n.Hedges)
			c.hedgeWins = max(c.hedgeWins, n.HedgeWins)
			m[n.Name] = c
		}
	}
	return m
}

// String renders the summary, no line wider than maxWidth.
func (s *scenarioSummary) String() string {
	var b strings.Builder
	secs := max(s.Elapsed.Seconds(), 0.001)
	title := "Summary of " + s.Name
	if s.Interrupted {
		title += " (interrupted)"
	}
	line := func(format string, args ...any) { b.WriteString(fitWidth(fmt.Sprintf(format, args...)) + "\n") }
	b.WriteString(wrap("", fmt.Sprintf("%s, %.1fs: %s", title, s.Elapsed.Seconds(), s.About)) + "\n")
	line("  reads          %9s answered  %7.0f/s   failed %d   slowest %s",
		commas(s.Reads), float64(s.Reads)/secs, s.ReadsFailed, roundDur(s.SlowestRead))
	line("  writes         %9s answered  %7.0f/s   failed %d: never sent %d, outcome unknown %d",
		commas(s.Writes), float64(s.Writes)/secs, s.WritesNeverSent+s.WritesUnknown, s.WritesNeverSent, s.WritesUnknown)
	line("  sticky reads   %9s, %s of them saw their own write", commas(s.StickyReads), commas(s.StickyReads-s.StickyStale))
	if s.StickyStale > 0 {
		line("                 %d did not, %d of them answered by another server than the write", s.StickyStale, s.StaleElsewhere)
		if s.StaleElsewhere > 0 {
			line("                 (written on the old primary, which died before sending it to a replica:")
			line("                 replication is asynchronous, and the new primary never had the row)")
		}
	}
	line("  reads by       %s", byNode(s.ReadsBy))
	line("  writes by      %s", byNode(s.WritesBy))
	switch {
	case s.NewPrimary == "":
		line("  primary        %s throughout", s.PrimaryBefore)
	case s.FirstWrite > 0:
		line("  new primary    %s: first write acknowledged %.2fs after the fault", s.NewPrimary, s.FirstWrite.Seconds())
	default:
		line("  new primary    %s: no write acknowledged", s.NewPrimary)
	}
	line("  ejections      %s", byNode(s.Ejections))
	line("  readmissions   %s", byNode(s.Readmissions))
	line("  retried reads  %d   hedged reads %d (%d answered first)", s.Retries, s.Hedges, s.HedgeWins)
	line("  servers now    %s", byNodeText(s.ServerRoles))
	if s.OtherPort != 0 {
		line("  %d answers came from a port that is no node's", s.OtherPort)
	}
	if s.FirstError != "" {
		b.WriteString(wrap("  first error    ", s.FirstError) + "\n")
	}
	if s.Err != "" {
		b.WriteString(wrap("  FAILED         ", s.Err) + "\n")
	}
	b.WriteString(fitWidth("  (counted by each server's own answer: inet_server_port(), pg_is_in_recovery())"))
	return b.String()
}

// overallLine sums up the scenarios in one line.
func overallLine(ss []*scenarioSummary) string {
	var reads, rf, writes, wf int64
	var el time.Duration
	for _, s := range ss {
		reads, rf, writes, wf = reads+s.Reads, rf+s.ReadsFailed, writes+s.Writes, wf+s.WritesNeverSent+s.WritesUnknown
		el += s.Elapsed
	}
	return fitWidth(fmt.Sprintf("\nAll %d scenarios, %.1fs: %s reads (%d failed), %s writes (%d failed)",
		len(ss), el.Seconds(), commas(reads), rf, commas(writes), wf))
}

// byNode renders counts by node name, sorted by name: "replica1 3, replica2
// 1", or "none".
func byNode(m map[string]int64) string {
	var parts []string
	for _, k := range sortedKeys(m) {
		parts = append(parts, fmt.Sprintf("%s %s", k, commas(m[k])))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, "   ")
}

func byNodeText(m map[string]string) string {
	var parts []string
	for _, k := range sortedKeys(m) {
		parts = append(parts, k+" "+m[k])
	}
	return strings.Join(parts, "   ")
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// commas formats n with thousands separators.
func commas(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	if neg {
		return "-" + s
	}
	return s
}
