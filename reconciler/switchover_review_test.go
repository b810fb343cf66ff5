package reconciler

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/tandem-gitops/tandem/clusters"
	"github.com/tandem-gitops/tandem/manifest"
)

// completeSwitchover runs the switchover blue → green to its end (the
// Switchover entry point: no plain reconcile after it).
func completeSwitchover(t *testing.T, fakes map[string]*fakeTarget) {
	t.Helper()
	opts := DefaultOptions()
	opts.DetectDrift, opts.Renderer = false, knobRenderer{}
	sw := Switchover(context.Background(), swManifest(), func(_ context.Context, c manifest.Cluster) (Target, error) { return liveFake{fakes[c.Name]}, nil }, opts)
	if sw == nil || !sw.Completed {
		t.Fatalf("switchover: %+v", sw)
	}
}

// digestOf is the content label of a fake's release.
func digestOf(f *fakeTarget, key string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r, ok := f.releases[key]; ok {
		return r.Labels[LabelDigest]
	}
	return ""
}

// The switchover records its own end: both records show the new roles and
// no switchover, with no plain reconcile after it.
func TestSwitchoverSettlesBothRecordsItself(t *testing.T) {
	log := &opLog{}
	fakes := swFakes(log)
	seed(t, fakes)
	completeSwitchover(t, fakes)
	for name, role := range map[string]string{"blue": "standby", "green": "active"} {
		if st := fakes[name].state; st.Role != role || st.Switchover != nil {
			t.Errorf("%s's record: role %q switchover %+v; want %q and none", name, st.Role, st.Switchover, role)
		}
	}
}

// halfSettled is the records of a completed switchover blue → green whose
// settling died after one cluster's write: settled is at its new role, the
// other still shows its old role and "phase 5 done".
func halfSettled(t *testing.T, fakes map[string]*fakeTarget, settled string) {
	t.Helper()
	done := &clusters.SwitchoverState{From: []string{"blue"}, To: []string{"green"}, Phase: PhaseCool, PhaseName: "cool", PhaseDone: true}
	old := map[string]string{"blue": "active", "green": "standby"}
	for name, f := range fakes {
		f.mu.Lock()
		if name != settled {
			st := *f.state
			st.Role, st.Switchover = old[name], done
			f.state = &st
		}
		f.mu.Unlock()
	}
}

// Finding 1: blue (the new Standby) settled, green's record never written.
// Reading green's old role would plan From=[] To=[green] and start at
// phase 1: green rendered at weight 0 while blue is already at 0.
func TestSwitchoverHalfSettledTargetNotReopenedFromPhase1(t *testing.T) {
	log := &opLog{}
	fakes := swFakes(log)
	seed(t, fakes)
	completeSwitchover(t, fakes)
	halfSettled(t, fakes, "blue")
	serving := digestOf(fakes["green"], "s/web")
	log.ops = nil
	rep, sw := reconcileSwitchover(t, swManifest(), fakes, "")
	if sw != nil || len(rep.Failed()) > 0 {
		t.Fatalf("want the plain reconcile only, got switchover %+v, failed %+v", sw, rep.Clusters)
	}
	if got := writes(log); len(got) > 0 {
		t.Errorf("writes %v, want none (both clusters are at their new roles)", got)
	}
	if got := digestOf(fakes["green"], "s/web"); got != serving || !strings.Contains(got, "Weight:100") {
		t.Errorf("green's web is now %q, was %q", got, serving)
	}
	for name, role := range map[string]string{"blue": "standby", "green": "active"} {
		if st := fakes[name].state; st.Role != role || st.Switchover != nil {
			t.Errorf("%s's record: role %q switchover %+v; want %q and none", name, st.Role, st.Switchover, role)
		}
	}
}

// Finding 2, the mirror: green settled, blue's record still "active, phase
// 5 done". Reading blue's old role would run phase 3 on blue and resume
// its CronJobs while green's run.
func TestSwitchoverHalfSettledSourceNotReopened(t *testing.T) {
	log := &opLog{}
	fakes := swFakes(log)
	seed(t, fakes)
	completeSwitchover(t, fakes)
	halfSettled(t, fakes, "green")
	closed := digestOf(fakes["blue"], "s/web")
	log.ops = nil
	rep, sw := reconcileSwitchover(t, swManifest(), fakes, "")
	if sw != nil || len(rep.Failed()) > 0 {
		t.Fatalf("want the plain reconcile only, got switchover %+v, failed %+v", sw, rep.Clusters)
	}
	if got := writes(log); len(got) > 0 {
		t.Errorf("writes %v, want none", got)
	}
	if got := digestOf(fakes["blue"], "s/web"); got != closed || !strings.Contains(got, "SuspendCronJobs:true") {
		t.Errorf("blue's web is now %q, was %q", got, closed)
	}
}

// A record in the middle of another switchover (past phase 1) is where
// that cluster stands: a new plan never starts at phase 1 over it.
func TestSwitchoverRefusesOverAnotherUnderWay(t *testing.T) {
	log := &opLog{}
	fakes := swFakes(log)
	seed(t, fakes)
	m := swManifest()
	m.Clusters = append(m.Clusters, manifest.Cluster{Name: "red", Role: manifest.RoleStandby})
	fakes["red"] = newFake("red", log)
	fakes["red"].state = &clusters.State{Cluster: "red", Role: "standby", ManifestID: "shop",
		Switchover: &clusters.SwitchoverState{From: []string{"blue"}, To: []string{"red"}, Phase: PhaseClose, PhaseName: "close"}}
	log.ops = nil
	rep, sw := reconcileSwitchover(t, m, fakes, "")
	if sw == nil || sw.Completed || !strings.Contains(sw.Blocked, "cluster red's state record shows the switchover blue → red in phase 3") {
		t.Fatalf("want blocked by red's record, got %+v", sw)
	}
	if len(rep.Failed()) == 0 || len(writes(log)) > 0 {
		t.Errorf("failed %v, writes %v", rep.Failed(), writes(log))
	}
}

// Finding 3: one commit adds green as Active (never reconciled: no state
// record) and demotes blue. The plan is From=[blue] To=[]: phases 3–5
// would close and scale down blue before green is even installed.
func TestSwitchoverBlockedWhileNewActiveClusterNeverReconciled(t *testing.T) {
	log := &opLog{}
	fakes := swFakes(log)
	seed(t, fakes)
	fakes["green"] = newFake("green", log)
	before := *fakes["blue"].state
	log.ops = nil
	rep, sw := reconcileSwitchover(t, swManifest(), fakes, "")
	if sw == nil || sw.Completed || !strings.Contains(sw.Blocked, "cluster green is Active after it but has never been reconciled (no state record)") ||
		!strings.Contains(sw.Blocked, "nothing done") {
		t.Fatalf("want blocked on green's missing record, got %+v", sw)
	}
	if len(sw.Phases) > 0 || len(writes(log)) > 0 || len(rep.Failed()) != 2 {
		t.Errorf("phases %+v, writes %v, failed %v", sw.Phases, writes(log), rep.Failed())
	}
	if st := fakes["blue"].state; st.Role != "active" || st.Switchover != nil || !st.AppliedAt.Equal(before.AppliedAt) {
		t.Errorf("blue's record was written: %+v", st)
	}
	if fakes["green"].state != nil {
		t.Errorf("green's record was written: %+v", fakes["green"].state)
	}
}

// The target's record lacks a release the source serves (it was never
// installed there): blocked before phase 1.
func TestSwitchoverBlockedWhileTargetLacksRelease(t *testing.T) {
	log := &opLog{}
	fakes := swFakes(log)
	seed(t, fakes)
	st := *fakes["green"].state
	st.Releases = slices.DeleteFunc(slices.Clone(st.Releases), func(rs clusters.ReleaseState) bool { return rs.Name == "web" })
	fakes["green"].state = &st
	log.ops = nil
	_, sw := reconcileSwitchover(t, swManifest(), fakes, "")
	if sw == nil || sw.Completed || !strings.Contains(sw.Blocked, "cluster green is Active after it but does not hold s/web, which blue serves") {
		t.Fatalf("want blocked on green's missing release, got %+v", sw)
	}
	if len(writes(log)) > 0 {
		t.Errorf("writes %v", writes(log))
	}
}

// Phase 2 done, then green's web stops being available: phase 3 must not
// close blue. The run stops before it with blue untouched, the records stay
// at phase 2 done, and once green serves again the next run resumes at 3.
func TestSwitchoverStopsBeforeCloseWhenTargetNotServingLive(t *testing.T) {
	log := &opLog{}
	fakes := swFakes(log)
	seed(t, fakes)
	m := swManifest()
	log.ops = nil
	// Healthy through its waits in phases 1 and 2, unavailable when read live.
	fakes["green"].unhealthy["live:web"] = true
	rep, sw := reconcileSwitchover(t, m, fakes, "")
	if sw == nil || sw.Completed || !strings.Contains(sw.Blocked, "stopped before phase 3 (close): release s/web not available on any cluster Active after the switchover") {
		t.Fatalf("want stopped before phase 3, got %+v", sw)
	}
	if len(rep.Failed()) != 2 || lastPhase(sw) != PhaseOpen {
		t.Errorf("failed %v, last phase %d", rep.Failed(), lastPhase(sw))
	}
	for _, w := range writes(log) {
		if strings.HasPrefix(w, "blue ") {
			t.Errorf("blue was touched: %v", writes(log))
		}
	}
	for _, name := range []string{"blue", "green"} {
		if st := fakes[name].state.Switchover; st == nil || st.Phase != PhaseOpen || !st.PhaseDone || !strings.Contains(st.Blocked, "before phase 3") {
			t.Errorf("%s's record: %+v", name, st)
		}
	}
	fakes["green"].unhealthy["live:web"] = false
	log.ops = nil
	rep, sw = reconcileSwitchover(t, m, fakes, "")
	if sw == nil || !sw.Completed || sw.ResumedAt != PhaseClose || len(rep.Failed()) > 0 {
		t.Fatalf("after the fix: %+v %+v", sw, rep.Clusters)
	}
	if got := writes(log); len(got) == 0 || got[0] != "blue upgrade edge" {
		t.Errorf("writes %v, want phase 3 on blue first", got)
	}
}

// busyLock is a fake whose lock another run holds for the whole wait.
type busyLock struct{ liveFake }

func (b busyLock) Lock(context.Context, clusters.LockOptions) (Lease, error) {
	return nil, &clusters.LockHeldError{Cluster: b.name, Holder: "ci@runner-7"}
}

// Finding 6: the source's lock held by another run is not "source
// unreachable" (the disaster path: the target opened, the source's phases
// skipped) but a retryable error with nothing done.
func TestSwitchoverSourceLockBusyNothingDone(t *testing.T) {
	log := &opLog{}
	fakes := swFakes(log)
	seed(t, fakes)
	log.ops = nil
	opts := DefaultOptions()
	opts.DetectDrift, opts.Renderer = false, knobRenderer{}
	connect := func(_ context.Context, c manifest.Cluster) (Target, error) {
		if c.Name == "blue" {
			return busyLock{liveFake{fakes[c.Name]}}, nil
		}
		return liveFake{fakes[c.Name]}, nil
	}
	sw := Switchover(context.Background(), swManifest(), connect, opts)
	if sw == nil || sw.Completed || !strings.Contains(sw.Error, `cluster "blue": locked by "ci@runner-7"`) || !strings.Contains(sw.Error, "nothing done — run again") {
		t.Fatalf("want a busy-lock error, got %+v", sw)
	}
	if len(sw.Phases) > 0 || len(writes(log)) > 0 {
		t.Errorf("phases %+v, writes %v", sw.Phases, writes(log))
	}
	for _, name := range []string{"blue", "green"} {
		if st := fakes[name].state; st.Switchover != nil {
			t.Errorf("%s's record was written: %+v", name, st.Switchover)
		}
	}
}
