package reconciler

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tandem-gitops/tandem/clusters"
	"github.com/tandem-gitops/tandem/manifest"
	"github.com/tandem-gitops/tandem/render"
)

// knobRenderer renders a release to a digest naming its overlay's
// effective knobs and role, so a plan sees a phase's render as a change
// exactly when its knobs change, and the plain render of a role equals the
// phase that ends at it (as the real overlay guarantees; render's tests
// pin that).
type knobRenderer struct{}

func (knobRenderer) RenderAll(_ context.Context, reqs []render.Request) ([]*render.Result, error) {
	out := make([]*render.Result, len(reqs))
	for i, r := range reqs {
		out[i] = &render.Result{Cluster: r.Cluster, Release: r.Release, Namespace: r.Namespace,
			Digest: fmt.Sprintf("%s|%+v|%s", r.Release, r.Overlay.Effective(), r.Overlay.Role)}
	}
	return out, nil
}

// swManifest: git makes green Active; edge is standby: keep, web scale-to-zero.
func swManifest() *manifest.Manifest {
	drain := 0
	return &manifest.Manifest{
		ID:           "shop",
		Clusters:     []manifest.Cluster{{Name: "blue", Role: manifest.RoleStandby}, {Name: "green", Role: manifest.RoleActive}},
		DNS:          manifest.DNS{AnnotationPrefix: manifest.DefaultAnnotationPrefix, ActiveWeight: 100, DrainSeconds: &drain},
		Repositories: []manifest.Repository{{Name: "repo", URL: "https://charts.example"}},
		Releases: []manifest.Release{
			{Name: "edge", Namespace: "p", Chart: "repo/edge", Standby: manifest.StandbyKeep, Timeout: "1m"},
			{Name: "web", Namespace: "s", Chart: "repo/web", Wave: 1, Standby: manifest.StandbyScaleToZero, Timeout: "1m"},
		},
	}
}

// swFakes are blue Active and green Standby as a reconcile of the old
// roles leaves them: state records saying so.
func swFakes(log *opLog) map[string]*fakeTarget {
	fakes := map[string]*fakeTarget{"blue": newFake("blue", log), "green": newFake("green", log)}
	fakes["blue"].state = &clusters.State{Cluster: "blue", Role: "active", ManifestID: "shop"}
	fakes["green"].state = &clusters.State{Cluster: "green", Role: "standby", ManifestID: "shop"}
	return fakes
}

func reconcileSwitchover(t *testing.T, m *manifest.Manifest, fakes map[string]*fakeTarget, unreachable string) (*Report, *SwitchoverReport) {
	t.Helper()
	connect := func(_ context.Context, c manifest.Cluster) (Target, error) {
		if c.Name == unreachable {
			return nil, fmt.Errorf("cluster %q: unreachable: connection refused", c.Name)
		}
		return liveFake{fakes[c.Name]}, nil
	}
	opts := DefaultOptions()
	opts.DetectDrift = false
	opts.Renderer = knobRenderer{}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	results, _ := knobRenderer{}.RenderAll(ctx, mustRequests(t, m))
	rep := Reconcile(ctx, m, results, connect, opts)
	return rep, rep.Switchover
}

// liveFake adds ReadServing to a fake target: one Deployment per release,
// scaled to zero when its render (knobRenderer's digest) scales it down,
// unavailable while the release is unhealthy, or only live ("live:web":
// pods that crashed after their health wait passed).
type liveFake struct{ *fakeTarget }

func (f liveFake) ReadServing(context.Context, clusters.ServingOptions) (*clusters.Serving, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := &clusters.Serving{}
	for key, r := range f.releases {
		replicas := int32(1)
		if strings.Contains(r.Labels[LabelDigest], "ScaleDown:true") {
			replicas = 0
		}
		available := replicas
		if f.unhealthy[r.Name] || f.unhealthy["live:"+r.Name] {
			available = 0
		}
		s.Workloads = append(s.Workloads, clusters.WorkloadState{Object: "Deployment " + key, Release: key, Replicas: replicas, Available: available})
	}
	return s, nil
}

func mustRequests(t *testing.T, m *manifest.Manifest) []render.Request {
	t.Helper()
	var reqs []render.Request
	for _, c := range m.Clusters {
		for _, rel := range m.ReleasesFor(c.Name) {
			reqs = append(reqs, render.Request{Cluster: c.Name, Release: rel.Name, Namespace: rel.Namespace, Overlay: OverlayFor(m, c, rel)})
		}
	}
	return reqs
}

// writes keeps the log's upgrades and installs, in order.
func writes(log *opLog) []string {
	log.mu.Lock()
	defer log.mu.Unlock()
	var out []string
	for _, o := range log.ops {
		if strings.Contains(o, " upgrade ") || strings.Contains(o, " install ") {
			out = append(out, o)
		}
	}
	return out
}

// seed installs both releases on both clusters at the old roles' renders.
func seed(t *testing.T, fakes map[string]*fakeTarget) {
	t.Helper()
	m := swManifest()
	m.Clusters[0].Role, m.Clusters[1].Role = manifest.RoleActive, manifest.RoleStandby
	rep, sw := reconcileSwitchover(t, m, fakes, "")
	if sw != nil || len(rep.Failed()) > 0 {
		t.Fatalf("seeding: switchover %+v, failed %v", sw, rep.Clusters)
	}
}

func TestSwitchoverPhasesInOrderThenNothingLeft(t *testing.T) {
	log := &opLog{}
	fakes := swFakes(log)
	seed(t, fakes)
	log.ops = nil
	rep, sw := reconcileSwitchover(t, swManifest(), fakes, "")
	if sw == nil || !sw.Completed || len(rep.Failed()) > 0 {
		t.Fatalf("switchover %+v; failed %v %+v", sw, rep.Failed(), rep.Clusters)
	}
	want := []string{
		"green upgrade web",                       // 1 warm: keep releases untouched
		"green upgrade edge", "green upgrade web", // 2 open
		"blue upgrade edge", "blue upgrade web", // 3 close
		// 4 singletons, the source first; standby: keep releases' CronJobs move too
		"blue upgrade edge", "blue upgrade web", "green upgrade edge", "green upgrade web",
		"blue upgrade web", // 5 cool
		// then the plain reconcile: nothing left to change
	}
	if diff := cmp.Diff(want, writes(log)); diff != "" {
		t.Errorf("writes (-want +got):\n%s", diff)
	}
	for name, role := range map[string]string{"blue": "standby", "green": "active"} {
		st := fakes[name].state
		if st.Role != role || st.Switchover != nil {
			t.Errorf("%s's record: role %q switchover %+v; want %q and none", name, st.Role, st.Switchover, role)
		}
	}
	// Again: the roles in effect are the roles in git, nothing to do.
	log.ops = nil
	if _, sw := reconcileSwitchover(t, swManifest(), fakes, ""); sw != nil || len(writes(log)) > 0 {
		t.Errorf("second run: switchover %+v, writes %v", sw, writes(log))
	}
}

func TestSwitchoverBlockedInPhase1ThenResumes(t *testing.T) {
	log := &opLog{}
	fakes := swFakes(log)
	seed(t, fakes)
	log.ops = nil
	fakes["green"].unhealthy["web"] = true
	rep, sw := reconcileSwitchover(t, swManifest(), fakes, "")
	if sw == nil || sw.Completed || !strings.Contains(sw.Blocked, "switchover blocked in phase 1: release s/web not healthy on green") {
		t.Fatalf("want blocked in phase 1, got %+v", sw)
	}
	if len(rep.Failed()) != 2 || !strings.Contains(rep.Clusters[1].Error, "blocked in phase 1") {
		t.Errorf("every involved cluster fails with the blocker: %+v", rep.Clusters)
	}
	for _, w := range writes(log) {
		if strings.HasPrefix(w, "blue ") {
			t.Errorf("the source was touched: %v", writes(log))
		}
	}
	if st := fakes["blue"].state; st.Switchover == nil || st.Switchover.Phase != 1 || st.Switchover.Blocked == "" || st.Role != "active" {
		t.Errorf("blue's record: %+v", st.Switchover)
	}
	// Fixed: the next run resumes and completes.
	fakes["green"].unhealthy["web"] = false
	if rep, sw := reconcileSwitchover(t, swManifest(), fakes, ""); sw == nil || !sw.Completed || len(rep.Failed()) > 0 {
		t.Fatalf("after the fix: %+v %+v", sw, rep.Clusters)
	}
}

// A run killed after phase 3: the next run starts at phase 4, never
// earlier (phase 1 again would close the target while the source is closed).
func TestSwitchoverResumesAtRecordedPhase(t *testing.T) {
	log := &opLog{}
	fakes := swFakes(log)
	seed(t, fakes)
	for _, f := range fakes {
		f.state.Switchover = &clusters.SwitchoverState{From: []string{"blue"}, To: []string{"green"}, Phase: PhaseClose, PhaseName: "close", PhaseDone: true}
	}
	// Killed between the two records of phase 4's start: the furthest counts.
	fakes["green"].state.Switchover = &clusters.SwitchoverState{From: []string{"blue"}, To: []string{"green"}, Phase: PhaseSingletons}
	log.ops = nil
	rep, sw := reconcileSwitchover(t, swManifest(), fakes, "")
	if sw == nil || !sw.Completed || sw.ResumedAt != PhaseSingletons || len(rep.Failed()) > 0 {
		t.Fatalf("switchover %+v, clusters %+v", sw, rep.Clusters)
	}
	if got := writes(log); len(got) == 0 || got[0] != "blue upgrade edge" {
		t.Errorf("first write %v, want phase 4's suspend on blue", got)
	}
	for _, ph := range sw.Phases {
		if ph.Number < PhaseSingletons {
			t.Errorf("phase %d ran again", ph.Number)
		}
	}
}

func TestSwitchoverSourceUnreachableThenBack(t *testing.T) {
	log := &opLog{}
	fakes := swFakes(log)
	seed(t, fakes)
	log.ops = nil
	rep, sw := reconcileSwitchover(t, swManifest(), fakes, "blue")
	if sw == nil || sw.Completed || !strings.Contains(sw.Error, "green serves; phases 3–5 skipped") {
		t.Fatalf("want the emergency path, got %+v", sw)
	}
	skipped := 0
	for _, ph := range sw.Phases {
		if ph.Skipped != "" {
			skipped++
		}
	}
	// The disaster path does not hold back the rest of the run: green is
	// reconciled (held at phase 2: serving, CronJobs suspended), only blue fails.
	if skipped != 3 || !slices.Equal(rep.Failed(), []string{"blue"}) || !slices.Equal(sw.WaitingFor, []string{"blue"}) {
		t.Errorf("skipped phases %d (want 3), failed %v (want blue), waiting for %v", skipped, rep.Failed(), sw.WaitingFor)
	}
	if st := fakes["green"].state.Switchover; st == nil || st.Phase != PhaseOpen || !st.PhaseDone || len(st.Skipped) != 3 {
		t.Errorf("green's record: %+v", st)
	}
	// blue is back: it becomes the Standby; its weight is never raised.
	log.ops = nil
	rep, sw = reconcileSwitchover(t, swManifest(), fakes, "")
	if sw == nil || !sw.Completed || sw.ResumedAt != PhaseClose || len(rep.Failed()) > 0 {
		t.Fatalf("blue back: %+v %+v", sw, rep.Clusters)
	}
	if got := writes(log); len(got) == 0 || got[0] != "blue upgrade edge" {
		t.Errorf("writes %v, want phase 3 on blue first", got)
	}
}

// A --cluster run of only one of the clusters whose role changes must not
// apply the new role to it alone.
func TestSwitchoverNeedsEveryInvolvedCluster(t *testing.T) {
	log := &opLog{}
	fakes := swFakes(log)
	seed(t, fakes)
	log.ops = nil
	m := swManifest()
	connect := func(_ context.Context, c manifest.Cluster) (Target, error) { return fakes[c.Name], nil }
	opts := DefaultOptions()
	opts.DetectDrift, opts.Renderer = false, knobRenderer{}
	opts.Selection.Clusters = []string{"blue"}
	rep := Reconcile(context.Background(), m, nil, connect, opts)
	if len(rep.Failed()) != 1 || !strings.Contains(rep.Clusters[0].Error, "a switchover needs every cluster") || len(writes(log)) > 0 {
		t.Errorf("report %+v, writes %v", rep.Clusters, writes(log))
	}
}
