package reconciler

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tandem-gitops/tandem/clusters"
	"github.com/tandem-gitops/tandem/manifest"
)

// reconcileLost is reconcileSwitchover with --source-lost and a named holder.
func reconcileLost(t *testing.T, m *manifest.Manifest, fakes map[string]*fakeTarget, unreachable string, lost ...string) *Report {
	t.Helper()
	return reconcileWrapped(t, m, fakes, func(f *fakeTarget) Target { return liveFake{f} }, unreachable, lost...)
}

func reconcileWrapped(t *testing.T, m *manifest.Manifest, fakes map[string]*fakeTarget, wrap func(*fakeTarget) Target, unreachable string, lost ...string) *Report {
	t.Helper()
	connect := func(_ context.Context, c manifest.Cluster) (Target, error) {
		if c.Name == unreachable {
			return nil, fmt.Errorf("cluster %q: unreachable: connection refused", c.Name)
		}
		return wrap(fakes[c.Name]), nil
	}
	opts := DefaultOptions()
	opts.DetectDrift, opts.Renderer, opts.Holder, opts.SourceLost = false, knobRenderer{}, "oncall@laptop", lost
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	results, _ := knobRenderer{}.RenderAll(ctx, mustRequests(t, m))
	return Reconcile(ctx, m, results, connect, opts)
}

// withExtra is swManifest with one more scale-to-zero release: a later commit.
func withExtra() *manifest.Manifest {
	m := swManifest()
	m.Releases = append(m.Releases, manifest.Release{Name: "extra", Namespace: "s", Chart: "repo/extra", Wave: 1, Standby: manifest.StandbyScaleToZero, Timeout: "1m"})
	return m
}

// Finding 4: while the source is down, a later commit reaches the new
// Active (held at phase 2: serving, CronJobs suspended), the source's
// phases are still reported as skipped, and green's record keeps the
// switchover so that blue's return resumes it at phase 3.
func TestSwitchoverSourceDownLaterCommitsReachTarget(t *testing.T) {
	log := &opLog{}
	fakes := swFakes(log)
	seed(t, fakes)
	if rep := reconcileLost(t, swManifest(), fakes, "blue"); rep.Switchover == nil || len(rep.Switchover.WaitingFor) == 0 {
		t.Fatalf("want the disaster path, got %+v", rep.Switchover)
	}
	log.ops = nil
	rep := reconcileLost(t, withExtra(), fakes, "blue")
	sw := rep.Switchover
	if sw == nil || sw.Completed || sw.ResumedAt != PhaseClose || !slices.Equal(sw.WaitingFor, []string{"blue"}) {
		t.Fatalf("switchover %+v, want resumed at 3 and waiting for blue", sw)
	}
	if !slices.Equal(rep.Failed(), []string{"blue"}) || !strings.Contains(rep.Clusters[0].Error, "not reconciled: switchover blue → green: green serves; phases 3–5 skipped until the source can be reached") {
		t.Errorf("failed %v (want only blue, waited for): %+v", rep.Failed(), rep.Clusters)
	}
	if got := writes(log); !slices.Equal(got, []string{"green install extra"}) {
		t.Errorf("writes %v, want only the new release on green", got)
	}
	for _, key := range []string{"s/extra", "s/web"} {
		if d := digestOf(fakes["green"], key); !strings.Contains(d, "SuspendCronJobs:true Weight:100") || !strings.Contains(d, "ScaleDown:false") {
			t.Errorf("green's %s is %q, want serving with CronJobs suspended", key, d)
		}
	}
	st := fakes["green"].state
	if st.Role != "standby" || st.Switchover == nil || st.Switchover.Phase != PhaseOpen || !st.Switchover.PhaseDone ||
		!slices.ContainsFunc(st.Releases, func(r clusters.ReleaseState) bool { return r.Name == "extra" }) {
		t.Errorf("green's record: role %q switchover %+v releases %+v", st.Role, st.Switchover, st.Releases)
	}
	// blue is back: the switchover resumes at phase 3 and completes.
	log.ops = nil
	rep = reconcileLost(t, withExtra(), fakes, "")
	if sw := rep.Switchover; sw == nil || !sw.Completed || sw.ResumedAt != PhaseClose || len(rep.Failed()) > 0 {
		t.Fatalf("blue back: %+v %+v", rep.Switchover, rep.Clusters)
	}
	if got := writes(log); len(got) == 0 || !strings.HasPrefix(got[0], "blue upgrade ") {
		t.Errorf("writes %v, want phase 3 on blue first", got)
	}
}

// Finding 4, the way out: a person declares the unreachable source lost.
// The declaration is recorded in green's record (who, when) before green's
// CronJobs resume; later runs keep them running; when blue is back its
// CronJobs are suspended in phase 3, with its weight going to 0, and the
// switchover completes.
func TestSwitchoverSourceLostResumesTargetCronJobs(t *testing.T) {
	log := &opLog{}
	fakes := swFakes(log)
	seed(t, fakes)
	reconcileLost(t, swManifest(), fakes, "blue")
	if d := digestOf(fakes["green"], "s/web"); !strings.Contains(d, "SuspendCronJobs:true") {
		t.Fatalf("without a declaration green's CronJobs must stay suspended: %q", d)
	}
	// Refused, with nothing done: blue is reachable; no switchover names it.
	log.ops = nil
	if rep := reconcileLost(t, swManifest(), fakes, "", "blue"); rep.Switchover == nil || !strings.Contains(rep.Switchover.Error, "--source-lost blue: tandem reaches blue") || len(writes(log)) > 0 {
		t.Errorf("reachable source declared lost: %+v, writes %v", rep.Switchover, writes(log))
	}
	if rep := reconcileLost(t, swManifest(), fakes, "green", "green"); rep.Switchover == nil || !strings.Contains(rep.Switchover.Error, "target green: cluster \"green\": unreachable") || len(writes(log)) > 0 {
		t.Errorf("target declared lost: %+v, writes %v", rep.Switchover, writes(log))
	}

	rep := reconcileLost(t, swManifest(), fakes, "blue", "blue")
	sw := rep.Switchover
	if sw == nil || sw.Completed || len(sw.SourceLost) != 1 || sw.SourceLost[0].Cluster != "blue" || sw.SourceLost[0].By != "oncall@laptop" ||
		!strings.Contains(sw.Error, "green serves and runs the CronJobs (blue declared lost: blue (declared by oncall@laptop") {
		t.Fatalf("declared lost: %+v", sw)
	}
	if !slices.Equal(rep.Failed(), []string{"blue"}) {
		t.Errorf("failed %v, want blue only", rep.Failed())
	}
	if got := writes(log); !slices.Equal(got, []string{"green upgrade edge", "green upgrade web"}) {
		t.Errorf("writes %v, want phase 4 on green only", got)
	}
	if d := digestOf(fakes["green"], "s/web"); !strings.Contains(d, "SuspendCronJobs:false Weight:100") {
		t.Errorf("green's web %q: CronJobs not resumed", d)
	}
	// The switchover's phase 4 moved them (its half on green), not the plain run after it.
	var ph4 *PhaseReport
	for i := range sw.Phases {
		if sw.Phases[i].Number == PhaseSingletons {
			ph4 = &sw.Phases[i]
		}
	}
	if ph4 == nil || ph4.Skipped != "" || len(ph4.Steps) != 2 || !strings.Contains(ph4.Steps[0].Skipped, "declared lost") || len(ph4.Steps[1].Releases) != 2 {
		t.Errorf("phase 4: %+v, want blue's half skipped (declared lost) and green's applied", ph4)
	}
	st := fakes["green"].state.Switchover
	if st == nil || st.Phase != PhaseOpen || !st.PhaseDone || len(st.SourceLost) != 1 || st.SourceLost[0].By != "oncall@laptop" || st.SourceLost[0].At.IsZero() {
		t.Fatalf("green's record: %+v", st)
	}

	// Later runs need no flag: the record holds the declaration; nothing changes.
	log.ops = nil
	rep = reconcileLost(t, swManifest(), fakes, "blue")
	if got := writes(log); len(got) > 0 || rep.Switchover == nil || len(rep.Switchover.SourceLost) != 1 || !slices.Equal(rep.Failed(), []string{"blue"}) {
		t.Errorf("later run: writes %v, switchover %+v, failed %v", got, rep.Switchover, rep.Failed())
	}

	// blue is back: phase 3 closes it and suspends its CronJobs at once.
	log.ops = nil
	rep = reconcileLost(t, swManifest(), fakes, "")
	if sw := rep.Switchover; sw == nil || !sw.Completed || len(rep.Failed()) > 0 {
		t.Fatalf("blue back: %+v %+v", rep.Switchover, rep.Clusters)
	}
	if got := writes(log); len(got) < 2 || got[0] != "blue upgrade edge" || got[1] != "blue upgrade web" {
		t.Errorf("writes %v, want phase 3 on blue first", got)
	}
	if ph := rep.Switchover.Phases[0]; ph.Number != PhaseClose || len(ph.Steps) != 1 || len(ph.Steps[0].Releases) != 2 {
		t.Fatalf("first phase %+v, want 3 on blue", ph)
	}
	for _, name := range []string{"blue", "green"} {
		if st := fakes[name].state; st.Switchover != nil {
			t.Errorf("%s's record still shows the switchover: %+v", name, st.Switchover)
		}
	}
	if d := digestOf(fakes["blue"], "s/web"); !strings.Contains(d, "ScaleDown:true SuspendCronJobs:true Weight:0") {
		t.Errorf("blue's web %q", d)
	}
}

// Phase 3's knobs for a source declared lost suspend its CronJobs with
// its weight going to 0 (the targets' already run).
func TestPlanLostSourceSuspendsCronJobsInPhase3(t *testing.T) {
	p := PlanSwitchover(swManifest(), Roles{"blue": manifest.RoleActive, "green": manifest.RoleStandby}).withLost(swManifest(), []string{"blue"})
	for _, ph := range p.Phases {
		for _, st := range ph.Steps {
			if st.Cluster != "blue" {
				continue
			}
			for _, r := range st.Releases {
				if ph.Number >= PhaseClose && !r.Knobs.SuspendCronJobs {
					t.Errorf("phase %d on blue: %s %+v", ph.Number, r.Name, r.Knobs)
				}
			}
			if ph.Number == PhaseSingletons && len(st.Releases) > 0 {
				t.Errorf("phase 4 on blue changes %+v: already suspended in phase 3", st.Releases)
			}
		}
	}
}
