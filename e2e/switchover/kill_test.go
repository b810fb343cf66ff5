package switchover_test

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tandem-gitops/tandem/e2e/e2etest"
	"github.com/tandem-gitops/tandem/reconciler"
)

// group is a tandem run in its own process group, so kill -9 reaches
// every process it started.
type group struct {
	cmd            *exec.Cmd
	stdout, stderr e2etest.SyncBuffer
	done           chan struct{}
	err            error // set once done is closed
}

// wait waits for the run to end by itself and returns its exit code.
func (g *group) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-g.done:
	case <-time.After(timeout):
		g.kill()
		t.Fatalf("tandem %v did not end within %s\n%s", g.cmd.Args[1:], timeout, g.stderr.String())
	}
	if g.err == nil {
		return 0
	}
	if ee, ok := g.err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	t.Fatal(g.err)
	return -1
}

func (h *harness) startGroup(t *testing.T, args ...string) *group {
	t.Helper()
	return h.startCmd(t, h.reconcileArgs(args)...)
}

// startCmd starts tandem with exactly args in its own process group.
func (h *harness) startCmd(t *testing.T, args ...string) *group {
	t.Helper()
	g := &group{done: make(chan struct{})}
	g.cmd = exec.Command(h.bin, args...)
	g.cmd.Stdout = &g.stdout
	g.cmd.Env = append(os.Environ(), h.tandemEnv()...)
	g.cmd.Stderr = &g.stderr
	g.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := g.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { g.err = g.cmd.Wait(); close(g.done) }()
	t.Cleanup(func() { g.kill() })
	return g
}

// kill sends SIGKILL to the whole process group and waits for the run to be gone.
func (g *group) kill() {
	select {
	case <-g.done:
		return
	default:
	}
	_ = syscall.Kill(-g.cmd.Process.Pid, syscall.SIGKILL)
	<-g.done
}

// waitFor waits until the run's progress output holds s; false if the
// run ended first or the timeout passed.
func (g *group) waitFor(s string, timeout time.Duration) bool {
	deadline := time.After(timeout)
	for {
		if strings.Contains(g.stderr.String(), s) {
			return true
		}
		select {
		case <-g.done:
			return strings.Contains(g.stderr.String(), s)
		case <-deadline:
			return false
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// TestSwitchoverKilledInEachPhase: five switchovers, alternating
// direction; each run is killed with SIGKILL (its whole process group) as
// soon as it reports phase N started, and the next run resumes at the
// recorded phase and completes. The invariant sampler runs through the
// killed run, the dead lock's expiry and the resumed run.
func TestSwitchoverKilledInEachPhase(t *testing.T) {
	h := newHarness(t)
	for phase := 1; phase <= reconciler.PhaseCount; phase++ {
		from := h.active(t)
		to := other(from)
		t.Run(fmt.Sprintf("phase %d %s", phase, reconciler.PhaseName(phase)), func(t *testing.T) {
			h.switchTo(t, to)
			s := startSampler(h.kube, from, to)
			g := h.startGroup(t)
			marker := fmt.Sprintf("switchover  phase %d %s: started", phase, reconciler.PhaseName(phase))
			if !g.waitFor(marker, runTimeout) {
				g.kill()
				s.finish(t)
				t.Fatalf("the run never reported %q:\n%s", marker, g.stderr.String())
			}
			g.kill()
			killed := time.Now()
			st := h.state(t, to)
			if st == nil || st.Switchover == nil || st.Switchover.Phase != phase {
				t.Errorf("%s's record after the kill: %+v, want phase %d", to, st.Switchover, phase)
			} else {
				t.Logf("killed in phase %d (recorded done: %v)", phase, st.Switchover.PhaseDone)
			}
			res := h.reconcile(t)
			s.finish(t)
			if res.Code != 0 {
				t.Fatalf("the run after the kill: exit %d\n%s", res.Code, res.Stderr)
			}
			var rep reconciler.Report
			res.JSON(t, &rep)
			resumed := 1
			if rep.Switchover != nil {
				resumed = max(rep.Switchover.ResumedAt, 1)
			}
			if rep.Switchover == nil || !rep.Switchover.Completed || resumed < phase || resumed > phase+1 {
				t.Errorf("the run after the kill: switchover %+v, want it resumed at phase %d and completed", rep.Switchover, phase)
			}
			t.Logf("resumed at phase %d, completed %s after the kill", resumed, time.Since(killed).Round(100*time.Millisecond))
			if got, want := h.roles(t), map[string]string{"green": "blue=standby green=active", "blue": "blue=active green=standby"}[to]; got != want {
				t.Errorf("roles in effect %q, want %q", got, want)
			}
		})
		if t.Failed() {
			return
		}
	}
}
