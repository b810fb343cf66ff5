package localcluster

import (
	"bytes"
	"errors"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// PIDsForTest lists the pids of every process the clusters have started and still
// record (the current apiserver, not one stopped earlier), for tests that check
// Stop leaves nothing behind.
func (e *Env) PIDsForTest() []int {
	var out []int
	for _, name := range e.names {
		out = append(out, e.clusters[name].pids()...)
	}
	return out
}

// ProcessGoneForTest reports whether pid no longer runs (a zombie counts as gone:
// a killed grandchild is reaped by init, not by the test).
func ProcessGoneForTest(pid int) bool { return processGone(pid) }

func processGone(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil {
		return errors.Is(err, syscall.ESRCH)
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	return len(f) > 0 && f[0] == "Z"
}
