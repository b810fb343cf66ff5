package localcluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// process is one running binary. Its output goes to a log file; it runs in its own
// process group so that stop kills whatever it may have spawned too.
type process struct {
	name    string // "blue/kube-apiserver", for errors and logs
	bin     string // the binary's base name: "kube-apiserver"
	logPath string
	cmd     *exec.Cmd
	done    chan struct{} // closed once the process has been reaped
	waitErr error         // set before done is closed
}

// startProcess runs bin with args, appending its output to logPath (a restarted
// process keeps its earlier output above the new one).
func startProcess(name, bin string, args []string, logPath string) (*process, error) {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("%s: open log: %w", name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		return nil, fmt.Errorf("%s: start %s: %w", name, bin, err)
	}
	// The child holds its own descriptor now.
	_ = logFile.Close()
	p := &process{name: name, bin: filepath.Base(bin), logPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func (p *process) pid() int { return p.cmd.Process.Pid }

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop kills the process group and waits until the process is reaped. Nothing
// here needs a graceful shutdown: data directories are thrown away or reused by a
// process that tolerates a crash (etcd, kube-apiserver).
func (p *process) stop() error {
	if p.exited() {
		return nil
	}
	// Setpgid made the process the leader of a group whose id is its pid.
	if err := syscall.Kill(-p.pid(), syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("%s: kill process group %d: %w", p.name, p.pid(), err)
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(30 * time.Second):
		return fmt.Errorf("%s: pid %d still running 30s after SIGKILL", p.name, p.pid())
	}
}

// exitError describes a process that ended on its own, with the end of its log.
func (p *process) exitError() error {
	return fmt.Errorf("%s exited (%v); last lines of %s:\n%s", p.name, p.waitErr, p.logPath, p.tail(20))
}

// tail returns the last n lines of the process's log.
func (p *process) tail(n int) string {
	f, err := os.Open(p.logPath)
	if err != nil {
		return fmt.Sprintf("(log unreadable: %v)", err)
	}
	defer f.Close()
	const window = 16 << 10
	if st, err := f.Stat(); err == nil && st.Size() > window {
		_, _ = f.Seek(-window, io.SeekEnd)
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return fmt.Sprintf("(log unreadable: %v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// logContains reports whether the process's recent output mentions s.
func (p *process) logContains(s string) bool {
	return strings.Contains(p.tail(200), s)
}

// waitUntil polls check every interval until it succeeds. It gives up when ctx
// ends (returning check's last error) or when one of the watched processes exits
// (returning that process's log tail), whichever comes first.
func waitUntil(ctx context.Context, what string, interval time.Duration, check func(context.Context) error, watch ...*process) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	var last error
	for {
		for _, p := range watch {
			if p != nil && p.exited() {
				return fmt.Errorf("wait for %s: %w", what, p.exitError())
			}
		}
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		last = check(cctx)
		cancel()
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			for _, p := range watch {
				if p != nil && !p.exited() {
					last = fmt.Errorf("%w\nlast lines of %s:\n%s", last, p.logPath, p.tail(10))
					break
				}
			}
			return fmt.Errorf("wait for %s: %w: %w", what, ctx.Err(), last)
		case <-t.C:
		}
	}
}

// processAlive reports whether a process with pid exists.
func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
