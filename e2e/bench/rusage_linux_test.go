package bench

import (
	"os"
	"syscall"
)

// maxRSS is a finished process's peak resident set size in KiB.
func maxRSS(ps *os.ProcessState) int64 {
	if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
		return ru.Maxrss // KiB on Linux
	}
	return 0
}
