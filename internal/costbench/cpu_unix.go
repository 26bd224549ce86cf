//go:build unix

package costbench

import "syscall"

// ProcessCPU returns the CPU time (user and system) this process used so
// far, in nanoseconds: the client's cost of a call, apart from the
// server's. It returns 0 where the system does not say.
func ProcessCPU() int64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
