//go:build unix && !linux

package localcluster

import (
	"errors"
	"fmt"
	"syscall"
	"time"
)

// sysProcAttr puts a child in its own process group so stop can kill the group.
// Outside Linux there is no parent-death signal: a test binary killed before Stop
// leaves its clusters running (the next Start removes only their files).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

// runningCPUTime is not read outside Linux (no /proc).
func runningCPUTime(int) (time.Duration, error) {
	return 0, fmt.Errorf("cpu time of a running process: %w", errors.ErrUnsupported)
}
