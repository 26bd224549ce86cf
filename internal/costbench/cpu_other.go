//go:build !unix

package costbench

// ProcessCPU returns 0: this system's CPU time is not read here.
func ProcessCPU() int64 { return 0 }
