package routingtest_test

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
)

// readProcStat returns the state letter of pid from /proc/pid/stat.
func readProcStat(pid int) (byte, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return 0, fmt.Errorf("bad /proc/%d/stat", pid)
	}
	return b[i+2], nil
}

// childrenOf returns the children of pid.
func childrenOf(t *testing.T, pid int) []int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		t.Fatalf("children of %d: %v", pid, err)
	}
	var kids []int
	for _, f := range strings.Fields(string(b)) {
		k, _ := strconv.Atoi(f)
		kids = append(kids, k)
	}
	return kids
}
