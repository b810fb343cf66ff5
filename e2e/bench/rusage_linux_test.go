package bench

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// maxRSS is a finished process's peak resident set size in KiB.
func maxRSS(ps *os.ProcessState) int64 {
	if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
		return ru.Maxrss // KiB on Linux
	}
	return 0
}

// readMachineCPU reads the first line of /proc/stat: the machine's CPU time
// since boot, in USER_HZ (100 a second), busy and idle (iowait counts as idle).
func readMachineCPU() machineCPU {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return machineCPU{}
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	// cpu user nice system idle iowait irq softirq steal [guest guest_nice,
	// already counted in user and nice]
	if len(f) < 9 || f[0] != "cpu" {
		return machineCPU{}
	}
	var ticks [8]int64
	for i := range ticks {
		n, err := strconv.ParseInt(f[i+1], 10, 64)
		if err != nil {
			return machineCPU{}
		}
		ticks[i] = n
	}
	const hz = 100
	tick := time.Second / hz
	busy := ticks[0] + ticks[1] + ticks[2] + ticks[5] + ticks[6] + ticks[7]
	idle := ticks[3] + ticks[4]
	return machineCPU{busy: time.Duration(busy) * tick, idle: time.Duration(idle) * tick, ok: true}
}

// selfCPU is this process's user and system time so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
