package main

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

// pin runs the tool's threads on the CPUs of client and every process of the
// servers' account (the postmasters, the backends they have forked and, by
// inheritance, those they fork later) on the CPUs of server, with
// taskset(1). spec is "CLIENT/SERVER", each a CPU list as taskset takes it
// ("0/1", "0/1-3"). On a machine where the client and the servers share
// the cores, the client's CPU then shows in throughput without the
// servers' scheduling in between (docs/benchmarks.md).
func pin(spec, account string) error {
	client, server, ok := strings.Cut(spec, "/")
	if !ok || client == "" || server == "" {
		return fmt.Errorf("-pin %q: want CLIENT/SERVER CPU lists, like 0/1", spec)
	}
	out, err := exec.Command("pgrep", "-u", account).Output()
	if err != nil {
		return fmt.Errorf("-pin: no process of %q to pin: %w", account, err)
	}
	pids := strings.Fields(string(out))
	for _, pid := range pids {
		if err := taskset(server, pid); err != nil {
			return err
		}
	}
	if err := taskset(client, strconv.Itoa(os.Getpid())); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "pinned: this tool to CPUs %s, %d processes of %q to CPUs %s\n", client, len(pids), account, server)
	return nil
}

// taskset sets the CPUs of every thread of process pid.
func taskset(cpus, pid string) error {
	if out, err := exec.Command("taskset", "-a", "-p", "-c", cpus, pid).CombinedOutput(); err != nil {
		return fmt.Errorf("-pin: taskset %s %s: %w: %s", cpus, pid, err, strings.TrimSpace(string(out)))
	}
	return nil
}
