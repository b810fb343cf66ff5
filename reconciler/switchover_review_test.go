package reconciler

import (
	"context"
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
	sw := Switchover(context.Background(), swManifest(), func(_ context.Context, c manifest.Cluster) (Target, error) { return fakes[c.Name], nil }, opts)
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
