//go:build !linux

package render

import "syscall"

// workerSysProcAttr: outside Linux a worker is killed alone (a worker
// starts no process of its own).
func workerSysProcAttr() *syscall.SysProcAttr { return nil }

func (w *worker) reap() {
	w.waitErr = w.cmd.Wait()
	w.mu.Lock()
	w.reaped = true
	w.mu.Unlock()
	close(w.exited)
}

func (w *worker) kill() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.reaped {
		_ = w.cmd.Process.Kill()
	}
}

// limitMemory: outside Linux a worker is bounded by GOMEMLIMIT alone, which
// makes its collector work hard but does not stop it.
func (w *worker) limitMemory(int64) error { return nil }
