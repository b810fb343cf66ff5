package serve_test

import "syscall"

// sysProcAttr puts a daemon in its own process group (so a test can kill it
// with the render workers it started) and has the kernel SIGKILL it when the
// test binary dies, so no daemon outlives its test.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// killGroup sends sig to the process group pid leads.
func killGroup(pid int, sig syscall.Signal) {
	_ = syscall.Kill(-pid, sig)
}
