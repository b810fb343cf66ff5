package render

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
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

// limitMemory bounds the memory the worker may add to what it holds now,
// once it has said hello and before it is sent a request: its RLIMIT_DATA
// becomes its current data size (VmData) plus limit. It does nothing when
// limit is not positive or the worker is already reaped (its pid may then
// be another process's).
//
// RLIMIT_DATA rather than RLIMIT_AS: since Linux 4.7 it counts private
// writable mappings, which is what a Go heap grows by, and not the address
// space the Go runtime reserves (PROT_NONE) without using, which under
// RLIMIT_AS makes a Go program fail far below its real use. Relative to
// the started worker rather than absolute, and set once it is up rather
// than as it starts: an idle Go worker holds a few MiB, but one built with
// the race detector maps terabytes of (unbacked) shadow memory as it
// starts, and a limit set under it fails that start.
func (w *worker) limitMemory(limit int64) error {
	if limit <= 0 {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.reaped {
		return nil
	}
	held, err := vmData(w.pid)
	if err != nil {
		return err
	}
	rl := unix.Rlimit{Cur: uint64(held + limit), Max: uint64(held + limit)}
	return unix.Prlimit(w.pid, unix.RLIMIT_DATA, &rl, nil)
}

// vmData returns the process's data size as the kernel counts it against
// RLIMIT_DATA (VmData in /proc/<pid>/status), in bytes.
func vmData(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmData:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("/proc/%d/status: VmData: %w", pid, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("/proc/%d/status has no VmData", pid)
}
