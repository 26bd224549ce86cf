package routingtest

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// spawner starts every process of one cluster from a single OS thread that
// stays alive until the cluster is closed. Each process is started with a
// parent-death signal (SIGKILL): Linux delivers it when the thread that
// forked the process exits, which happens when the harness process dies for
// any reason (panic, test timeout, SIGKILL). Because the thread is locked and
// never handed back to the Go scheduler, it cannot exit earlier by accident.
// PostgreSQL's own children (backends, walsender, checkpointer...) exit by
// themselves when they see their postmaster gone.
type spawner struct {
	reqs chan func()
	once sync.Once
}

func newSpawner() *spawner {
	s := &spawner{reqs: make(chan func())}
	go func() {
		runtime.LockOSThread()
		// Never unlocked: when this goroutine returns, its thread exits.
		for f := range s.reqs {
			f()
		}
	}()
	return s
}

// start starts cmd from the spawner's thread, with the parent-death signal,
// its own process group and cred (nil: the harness's own account).
func (s *spawner) start(cmd *exec.Cmd, cred *syscall.Credential) error {
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid:    true,
		Pdeathsig:  syscall.SIGKILL,
		Credential: cred,
	}
	errc := make(chan error, 1)
	s.reqs <- func() { errc <- cmd.Start() }
	return <-errc
}

// run starts cmd like start and waits for it; the error carries its output.
func (s *spawner) run(cmd *exec.Cmd, cred *syscall.Credential) error {
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := s.start(cmd, cred); err != nil {
		return err
	}
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(cmd.Args, " "), err, strings.TrimSpace(lastLines(out.String(), 8)))
	}
	return nil
}

// close ends the spawner's thread. Call it only once no process it started is
// meant to live on.
func (s *spawner) close() { s.once.Do(func() { close(s.reqs) }) }

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// logPipe returns the write end of a pipe for a server's output and copies
// what the server writes to w, each line prefixed with the node's name, while
// keeping the last lines in tail for error messages. The copy stops when every
// writer (the server and its children) has closed the pipe.
func logPipe(name string, w io.Writer, tail *tailBuffer) (*os.File, error) {
	r, wr, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	go func() {
		defer r.Close()
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		for sc.Scan() {
			line := sc.Text()
			tail.add(line)
			if w != nil {
				fmt.Fprintf(w, "[%s] %s\n", name, line)
			}
		}
	}()
	return wr, nil
}

// tailBuffer keeps the last lines a server printed.
type tailBuffer struct {
	mu    sync.Mutex
	lines []string
}

func (t *tailBuffer) add(line string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.lines) == 20 {
		copy(t.lines, t.lines[1:])
		t.lines = t.lines[:19]
	}
	t.lines = append(t.lines, line)
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.Join(t.lines, "\n")
}

// syncWriter serialises writes of several servers to one writer.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// ProcessAlive reports whether the process pid exists and is not a zombie.
// It reads /proc, so it answers false on systems without it.
func ProcessAlive(pid int) bool {
	state, _, ok := procStat(pid)
	return ok && state != 'Z' && state != 'X'
}

// procStat reads the state and parent of pid from /proc/pid/stat.
func procStat(pid int) (state byte, ppid int, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, false
	}
	// The command name is in parentheses and may hold spaces: parse after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+4 > len(b) {
		return 0, 0, false
	}
	fields := strings.Fields(string(b[i+1:]))
	if len(fields) < 2 {
		return 0, 0, false
	}
	ppid, err = strconv.Atoi(fields[1])
	if err != nil {
		return 0, 0, false
	}
	return fields[0][0], ppid, true
}

// childPIDs returns the living children of pid.
func childPIDs(pid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var kids []int
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if state, ppid, ok := procStat(p); ok && ppid == pid && state != 'Z' {
			kids = append(kids, p)
		}
	}
	return kids
}
