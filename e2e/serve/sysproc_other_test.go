//go:build !linux

package serve_test

import (
	"os"
	"syscall"
)

// sysProcAttr: no process group outside Linux (see sysproc_linux_test.go).
func sysProcAttr() *syscall.SysProcAttr { return nil }

// killGroup kills the process alone outside Linux.
func killGroup(pid int, sig syscall.Signal) {
	if p, err := os.FindProcess(pid); err == nil {
		_ = p.Signal(sig)
	}
}
