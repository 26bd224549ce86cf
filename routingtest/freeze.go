package routingtest

import (
	"fmt"
	"syscall"
	"time"
)

// Freeze stops n's postmaster and every child process of it with SIGSTOP, as
// a stuck disk, a frozen VM or a long stop-the-world pause would: the
// server's sockets stay open and the kernel still accepts TCP connections
// into the listen backlog, but nothing answers. The postmaster is stopped
// first, so that it forks no new child; children it forked meanwhile are
// found and stopped too. Freeze returns once every one of them is stopped. Thaw resumes them; Stop, Kill and Close thaw (or
// kill) a frozen node, so no test leaves a frozen server behind. Freezing a
// frozen node or a node that is not running does nothing.
func (c *Cluster) Freeze(n *Node) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil || isClosed(n.exited) || n.frozen != nil {
		return nil
	}
	pid := n.cmd.Process.Pid
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		return fmt.Errorf("routingtest: freeze %s: %w", n.name, err)
	}
	stopped := map[int]bool{pid: true}
	frozen := []int{pid}
	// A child forked just before the postmaster stopped may show up a
	// moment later; a few passes find it. Bounded: the postmaster forks no
	// more.
	for pass := 0; pass < 3; pass++ {
		found := false
		for _, k := range childPIDs(pid) {
			if stopped[k] {
				continue
			}
			if err := syscall.Kill(k, syscall.SIGSTOP); err == nil {
				stopped[k] = true
				frozen = append(frozen, k)
				found = true
			}
		}
		if !found && pass > 0 {
			break
		}
	}
	// SIGSTOP takes effect when the kernel next schedules the process:
	// wait (bounded) until each is stopped, or gone.
	deadline := time.Now().Add(2 * time.Second)
	for _, p := range frozen {
		for time.Now().Before(deadline) {
			state, _, ok := procStat(p)
			if !ok || state == 'T' || state == 't' || state == 'Z' || state == 'X' {
				break
			}
			time.Sleep(time.Millisecond)
		}
	}
	n.frozen = frozen
	c.logf("%s: frozen (%d processes)", n.name, len(frozen))
	return nil
}

// Thaw resumes a node frozen by Freeze with SIGCONT: every process Freeze
// stopped, and any child of the postmaster found now. Thawing a node that is
// not frozen does nothing.
func (c *Cluster) Thaw(n *Node) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.frozen == nil {
		return nil
	}
	pids := n.frozen
	if n.cmd != nil && !isClosed(n.exited) {
		pids = append(pids, childPIDs(n.cmd.Process.Pid)...)
	}
	var firstErr error
	// Children first, the postmaster last, so that the postmaster sees its
	// children running again when it wakes.
	for i := len(pids) - 1; i >= 0; i-- {
		if err := syscall.Kill(pids[i], syscall.SIGCONT); err != nil && err != syscall.ESRCH && firstErr == nil {
			firstErr = fmt.Errorf("routingtest: thaw %s: process %d: %w", n.name, pids[i], err)
		}
	}
	n.frozen = nil
	c.logf("%s: thawed", n.name)
	return firstErr
}

// Frozen reports whether n is frozen by Freeze.
func (n *Node) Frozen() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.frozen != nil
}
