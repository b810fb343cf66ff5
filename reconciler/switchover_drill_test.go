package reconciler

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tandem-gitops/tandem/clusters"
	"github.com/tandem-gitops/tandem/manifest"
)

// servingFake adds ReadServing to a fake target: nothing served, so the
// drill's invariant checks find nothing to check (the e2e tests check
// them on real objects).
// failWeb, when set, fails that many health waits of release web first.
type servingFake struct {
	*fakeTarget
	failWeb *int
}

func (f servingFake) WaitHealthy(ctx context.Context, manifest string, opts clusters.WaitOptions) ([]clusters.ObjectStatus, error) {
	if f.failWeb != nil && *f.failWeb > 0 && manifest == "web" {
		*f.failWeb--
		return nil, errors.New("Deployment web: 0/1 available")
	}
	return f.fakeTarget.WaitHealthy(ctx, manifest, opts)
}

func (servingFake) ReadServing(context.Context, clusters.ServingOptions) (*clusters.Serving, error) {
	return &clusters.Serving{}, nil
}

// gitManifest is swManifest with the roles in git: blue Active, green Standby.
func gitManifest() *manifest.Manifest {
	m := swManifest()
	m.Clusters[0].Role, m.Clusters[1].Role = manifest.RoleActive, manifest.RoleStandby
	return m
}

func drill(t *testing.T, fakes map[string]*fakeTarget, greenFailsWeb int) *DrillReport {
	t.Helper()
	connect := func(_ context.Context, c manifest.Cluster) (Target, error) {
		if c.Name == "green" {
			return servingFake{fakes[c.Name], &greenFailsWeb}, nil
		}
		return servingFake{fakes[c.Name], nil}, nil
	}
	opts := DefaultOptions()
	opts.DetectDrift, opts.Renderer = false, knobRenderer{}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return Drill(ctx, gitManifest(), connect, []string{"green"}, opts)
}

func TestDrillThereAndBack(t *testing.T) {
	log := &opLog{}
	fakes := swFakes(log)
	seed(t, fakes)
	log.ops = nil
	rep := drill(t, fakes, 0)
	if !rep.Passed || rep.Error != "" || !rep.RolesInGit || rep.There == nil || rep.Back == nil || rep.Return != nil {
		t.Fatalf("drill: %+v", rep)
	}
	if len(rep.There.Phases) != PhaseCount || len(rep.Back.Phases) != PhaseCount || rep.ServingAfter <= 0 {
		t.Errorf("phases there %d back %d, serving after %v", len(rep.There.Phases), len(rep.Back.Phases), rep.ServingAfter)
	}
	want := []string{
		"green upgrade web", "green upgrade edge", "green upgrade web", "blue upgrade edge", "blue upgrade web",
		"blue upgrade edge", "blue upgrade web", "green upgrade edge", "green upgrade web", "blue upgrade web", // there
		"blue upgrade web", "blue upgrade edge", "blue upgrade web", "green upgrade edge", "green upgrade web",
		"green upgrade edge", "green upgrade web", "blue upgrade edge", "blue upgrade web", "green upgrade web", // back
	}
	if diff := cmp.Diff(want, writes(log)); diff != "" {
		t.Errorf("writes (-want +got):\n%s", diff)
	}
	for name, role := range map[string]string{"blue": "active", "green": "standby"} {
		if st := fakes[name].state; st.Role != role || st.Switchover != nil {
			t.Errorf("%s's record: role %q switchover %+v", name, st.Role, st.Switchover)
		}
	}
	// Nothing left for a reconcile of the roles in git.
	log.ops = nil
	if rep, sw := reconcileSwitchover(t, gitManifest(), fakes, ""); sw != nil || len(rep.Failed()) > 0 || len(writes(log)) > 0 {
		t.Errorf("reconcile after the drill: switchover %+v, writes %v", sw, writes(log))
	}
}

// Blocked on the way there: green goes back to its Standby render in one
// step (its CronJobs never resume while blue's run), the roles in effect
// are the roles in git, and the drill fails.
func TestDrillBlockedReturns(t *testing.T) {
	log := &opLog{}
	fakes := swFakes(log)
	seed(t, fakes)
	log.ops = nil
	rep := drill(t, fakes, 1)
	if rep.Passed || !strings.Contains(rep.Error, "on the way there: phase 1 (warm): release s/web not healthy on green") || !strings.Contains(rep.Error, "back at the roles in git") || rep.Back != nil || rep.Return == nil || !rep.Return.Completed || !rep.RolesInGit {
		t.Fatalf("drill: %+v\nreturn %+v", rep, rep.Return)
	}
	for _, w := range writes(log) {
		if strings.HasPrefix(w, "blue ") {
			t.Errorf("blue was touched: %v", writes(log))
		}
	}
	for name, role := range map[string]string{"blue": "active", "green": "standby"} {
		if st := fakes[name].state; st.Role != role || st.Switchover != nil {
			t.Errorf("%s's record: role %q switchover %+v", name, st.Role, st.Switchover)
		}
	}
}

// A drill refuses to start while a switchover is under way.
func TestDrillRefusesDuringSwitchover(t *testing.T) {
	log := &opLog{}
	fakes := swFakes(log)
	seed(t, fakes)
	fakes["green"].state.Switchover = &clusters.SwitchoverState{From: []string{"blue"}, To: []string{"green"}, Phase: PhaseWarm}
	log.ops = nil
	rep := drill(t, fakes, 0)
	if rep.Passed || !strings.Contains(rep.Error, "a switchover is under way") || len(writes(log)) > 0 {
		t.Errorf("drill: %+v, writes %v", rep, writes(log))
	}
}

// lockHook runs before its first Lock: another run finishing meanwhile.
type lockHook struct {
	*fakeTarget
	once *sync.Once
	f    func()
}

func (l lockHook) Lock(ctx context.Context, opts clusters.LockOptions) (Lease, error) {
	l.once.Do(l.f)
	return l.fakeTarget.Lock(ctx, opts)
}

// A reconcile decides on a switchover from records read before the locks;
// when another run (a drill, a reconcile of the same commit) completes it
// while this one waits, the records under the lock say so and no phase
// runs again (phase 1 again would close the only open cluster).
func TestSwitchoverDecidedUnderLock(t *testing.T) {
	log := &opLog{}
	fakes := swFakes(log)
	seed(t, fakes)
	log.ops = nil
	once := &sync.Once{}
	done := func() {
		fakes["blue"].mu.Lock()
		fakes["blue"].state.Role = "standby"
		fakes["blue"].mu.Unlock()
		fakes["green"].mu.Lock()
		fakes["green"].state.Role = "active"
		fakes["green"].mu.Unlock()
	}
	connect := func(_ context.Context, c manifest.Cluster) (Target, error) {
		return lockHook{fakes[c.Name], once, done}, nil
	}
	opts := DefaultOptions()
	opts.DetectDrift, opts.Renderer = false, knobRenderer{}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m := swManifest()
	results, _ := knobRenderer{}.RenderAll(ctx, mustRequests(t, m))
	rep := Reconcile(ctx, m, results, connect, opts)
	if rep.Switchover != nil {
		t.Errorf("a switchover ran on records another run had completed: %+v", rep.Switchover)
	}
}
