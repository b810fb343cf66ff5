//go:build unix && !linux

package localcluster

import "syscall"

// sysProcAttr puts a child in its own process group so stop can kill the group.
// Outside Linux there is no parent-death signal: a killed test binary can leave
// its clusters running until the next Start sweeps them.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
