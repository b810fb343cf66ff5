package localcluster

import "syscall"

// sysProcAttr puts a child in its own process group (so stop can kill the group)
// and has the kernel SIGKILL it when the process that started it dies, even by
// SIGKILL or a test timeout, so no control plane outlives its test binary.
//
// Pdeathsig fires when the starting OS thread exits; the Go runtime only ends a
// thread when a goroutine locked to it returns, which this package never does.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
