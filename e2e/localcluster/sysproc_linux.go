package localcluster

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// sysProcAttr puts a child in its own process group (so stop can kill the group)
// and has the kernel SIGKILL it when the process that started it dies, even by
// SIGKILL or a test timeout, so no control plane outlives its test binary.
//
// Pdeathsig fires when the starting OS thread exits; the Go runtime only ends a
// thread when a goroutine locked to it returns, which this package never does.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// userHZ is the unit of the times in /proc/PID/stat: USER_HZ, which the kernel
// fixes at 100 for user space on every architecture Go runs on.
const userHZ = 100

// runningCPUTime reads a live process's user and system time from
// /proc/PID/stat (fields 14 and 15, after the parenthesized command name, which
// may itself hold spaces and parentheses).
func runningCPUTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, fmt.Errorf("cpu time of pid %d: %w", pid, err)
	}
	d, err := parseProcStatCPU(b)
	if err != nil {
		return 0, fmt.Errorf("cpu time of pid %d: %w", pid, err)
	}
	return d, nil
}

func parseProcStatCPU(stat []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("/proc stat: no command name")
	}
	// After the name: state(3) ppid pgrp session tty_nr tpgid flags minflt
	// cminflt majflt cmajflt utime(14) stime(15).
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc stat: %d fields after the command name, want at least 13", len(f))
	}
	var ticks uint64
	for _, s := range f[11:13] {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc stat: %w", err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / userHZ, nil
}
