package render

import (
	"errors"
	"syscall"

	"golang.org/x/sys/unix"
)

// workerSysProcAttr puts a worker in a process group of its own, so that a
// kill reaches whatever it started too (and a terminal's Ctrl-C reaches the
// parent only, which then kills it), and has the kernel kill it should the
// parent die without doing so. (Pdeathsig fires when the thread that started
// the worker exits; Go keeps its threads unless a goroutine locked to one
// exits, which tandem does not do.)
func workerSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// reap waits for the worker to exit without reaping it, kills what is left
// of its process group, then reaps it. Until it is reaped, the worker's pid,
// which is also its group's id, cannot be reused, so kill never signals a
// stranger's group.
func (w *worker) reap() {
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PID, w.pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	w.mu.Lock()
	_ = syscall.Kill(-w.pid, syscall.SIGKILL)
	w.reaped = true
	w.mu.Unlock()
	w.waitErr = w.cmd.Wait()
	close(w.exited)
}

// kill kills the worker's process group, unless the worker is already reaped.
func (w *worker) kill() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.reaped {
		_ = syscall.Kill(-w.pid, syscall.SIGKILL)
	}
}
