package reconciler

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/tandem-gitops/tandem/clusters"
	"github.com/tandem-gitops/tandem/manifest"
	"github.com/tandem-gitops/tandem/render"
)

// fakeTarget is an in-memory cluster for the orchestration logic only (what
// runs in which order, what is skipped); everything the API server decides is
// tested against real clusters in e2e/. It records the order of operations in
// a log shared by all fake clusters of a test.
type fakeTarget struct {
	name      string
	log       *opLog
	unhealthy map[string]bool // releases whose health wait fails
	uid       string          // the cluster identity; default "uid-" + name
	mu        sync.Mutex
	releases  map[string]*clusters.Release // by namespace/name; guarded by mu
	state     *clusters.State              // guarded by mu
}

type opLog struct {
	mu  sync.Mutex
	ops []string
}

func (l *opLog) add(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ops = append(l.ops, s)
}

func (l *opLog) index(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, o := range l.ops {
		if o == s {
			return i
		}
	}
	return -1
}

func newFake(name string, log *opLog) *fakeTarget {
	return &fakeTarget{name: name, log: log, unhealthy: map[string]bool{}, releases: map[string]*clusters.Release{}}
}

func (f *fakeTarget) Name() string { return f.name }
func (f *fakeTarget) Capabilities(context.Context) (render.Capabilities, error) {
	return render.Capabilities{}, nil
}
func (f *fakeTarget) Lookup(string) render.LookupProvider { return nil }
func (f *fakeTarget) Identity(context.Context) (string, error) {
	if f.uid != "" {
		return f.uid, nil
	}
	return "uid-" + f.name, nil
}
func (f *fakeTarget) Requests() int64 { return 0 }
func (f *fakeTarget) ListReleases(context.Context, map[string]string) ([]clusters.Release, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []clusters.Release
	for _, r := range f.releases {
		out = append(out, *r)
	}
	return out, nil
}

func (f *fakeTarget) put(req clusters.ReleaseRequest, verb string) (*clusters.Release, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	rev := 1
	if cur, ok := f.releases[req.Namespace+"/"+req.Name]; ok {
		rev = cur.Revision + 1
	}
	r := &clusters.Release{Name: req.Name, Namespace: req.Namespace, Revision: rev, Status: "deployed", Labels: req.Labels, Manifest: req.Name}
	f.releases[req.Namespace+"/"+req.Name] = r
	f.log.add(f.name + " " + verb + " " + req.Name)
	cp := *r
	return &cp, nil
}

func (f *fakeTarget) Install(_ context.Context, req clusters.ReleaseRequest) (*clusters.Release, error) {
	return f.put(req, "install")
}

func (f *fakeTarget) Upgrade(_ context.Context, req clusters.ReleaseRequest) (*clusters.Release, error) {
	return f.put(req, "upgrade")
}

func (f *fakeTarget) Rollback(_ context.Context, _, name string, rev int, _ clusters.RollbackOptions) (*clusters.Release, error) {
	f.log.add(fmt.Sprintf("%s rollback %s to %d", f.name, name, rev))
	return &clusters.Release{Name: name, Revision: rev}, nil
}

func (f *fakeTarget) Uninstall(_ context.Context, ns, name string, _ clusters.UninstallOptions) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.releases, ns+"/"+name)
	f.log.add(f.name + " uninstall " + name)
	return nil
}

func (f *fakeTarget) MarkFailed(_ context.Context, _, name string, _ int, _ string) error {
	f.log.add(f.name + " markfailed " + name)
	return nil
}

func (f *fakeTarget) MarkUnhealthy(_ context.Context, ns, name string, _ int, _ string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r, ok := f.releases[ns+"/"+name]; ok {
		r.Status = "failed"
	}
	f.log.add(f.name + " markunhealthy " + name)
	return nil
}

func (f *fakeTarget) History(_ context.Context, _, name string) ([]clusters.Release, error) {
	return []clusters.Release{{Name: name, Revision: 1, Status: "deployed"}, {Name: name, Revision: 2, Status: "failed"}}, nil
}

func (f *fakeTarget) WaitHealthy(_ context.Context, manifest string, _ clusters.WaitOptions) ([]clusters.ObjectStatus, error) {
	if f.unhealthy[manifest] {
		f.log.add(f.name + " unhealthy " + manifest)
		return nil, errors.New("Deployment " + manifest + ": 0/1 available")
	}
	f.log.add(f.name + " healthy " + manifest)
	return nil, nil
}

func (f *fakeTarget) Lock(context.Context, clusters.LockOptions) (Lease, error) {
	return fakeLease{}, nil
}
func (f *fakeTarget) ReadState(context.Context, string) (*clusters.State, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.state == nil {
		return nil, nil
	}
	cp := *f.state
	return &cp, nil
}
func (f *fakeTarget) WriteState(_ context.Context, st clusters.State) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.state = &st
	return nil
}
func (f *fakeTarget) Snapshot() *clusters.Snapshot { return nil }
func (f *fakeTarget) DryRun(_ context.Context, _ *clusters.Snapshot, _, _ string, objs []*unstructured.Unstructured, _ string) ([]clusters.DryRunResult, error) {
	return make([]clusters.DryRunResult, len(objs)), nil
}
func (f *fakeTarget) Apply(context.Context, string, string, []*unstructured.Unstructured, string) error {
	return nil
}

type fakeLease struct{}

func (fakeLease) Lost() <-chan struct{}        { return nil }
func (fakeLease) Unlock(context.Context) error { return nil }

func testManifest() *manifest.Manifest {
	return &manifest.Manifest{
		Clusters: []manifest.Cluster{{Name: "blue", Role: manifest.RoleActive}, {Name: "green", Role: manifest.RoleStandby}},
		DNS:      manifest.DNS{AnnotationPrefix: manifest.DefaultAnnotationPrefix, ActiveWeight: 100},
		Releases: []manifest.Release{
			{Name: "platform", Namespace: "p", Wave: 0, Rollout: manifest.RolloutStandbyFirst, Timeout: "1m"},
			{Name: "db", Namespace: "s", Wave: 0, Timeout: "1m"},
			{Name: "web", Namespace: "s", Wave: 1, Needs: []string{"db"}, Timeout: "1m"},
			{Name: "worker", Namespace: "s", Wave: 2, Timeout: "1m"},
		},
	}
}

func testResults(m *manifest.Manifest) []*render.Result {
	var out []*render.Result
	for _, c := range m.Clusters {
		for _, r := range m.Releases {
			out = append(out, &render.Result{Cluster: c.Name, Release: r.Name, Namespace: r.Namespace, Digest: "d-" + r.Name})
		}
	}
	return out
}

func reconcileFakes(t *testing.T, m *manifest.Manifest, fakes map[string]*fakeTarget, unreachable string) *Report {
	t.Helper()
	connect := func(_ context.Context, c manifest.Cluster) (Target, error) {
		if c.Name == unreachable {
			return nil, fmt.Errorf("cluster %q: unreachable: connection refused", c.Name)
		}
		return fakes[c.Name], nil
	}
	opts := DefaultOptions()
	opts.DetectDrift = false
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return Reconcile(ctx, m, testResults(m), connect, opts)
}

func outcomes(c ClusterReport) map[string]Outcome {
	out := map[string]Outcome{}
	for _, r := range c.Releases {
		out[r.Name] = r.Outcome
	}
	return out
}

func TestReconcileWavesAndStandbyFirst(t *testing.T) {
	log := &opLog{}
	fakes := map[string]*fakeTarget{"blue": newFake("blue", log), "green": newFake("green", log)}
	rep := reconcileFakes(t, testManifest(), fakes, "")
	if failed := rep.Failed(); len(failed) != 0 {
		t.Fatalf("failed clusters %v: %+v", failed, rep.Clusters)
	}
	// standby-first: green's platform is healthy before blue installs it.
	if g, b := log.index("green healthy platform"), log.index("blue install platform"); g < 0 || b < 0 || g > b {
		t.Errorf("standby-first violated: green healthy at %d, blue install at %d\n%v", g, b, log.ops)
	}
	// needs and waves: web after db is healthy, worker after web.
	for _, c := range []string{"blue", "green"} {
		if a, b := log.index(c+" healthy db"), log.index(c+" install web"); a > b {
			t.Errorf("%s: web installed before db was healthy\n%v", c, log.ops)
		}
		if a, b := log.index(c+" healthy web"), log.index(c+" install worker"); a > b {
			t.Errorf("%s: wave 2 started before wave 1 was healthy\n%v", c, log.ops)
		}
	}
	// A second run with the same digests changes nothing.
	before := len(log.ops)
	rep = reconcileFakes(t, testManifest(), fakes, "")
	if len(log.ops) != before {
		t.Errorf("a no-op run made calls: %v", log.ops[before:])
	}
	if got := rep.Clusters[0].Counts.Unchanged; got != 4 {
		t.Errorf("unchanged on blue = %d, want 4", got)
	}
}

func TestReconcileFailureStopsLaterWavesOnThatClusterOnly(t *testing.T) {
	log := &opLog{}
	fakes := map[string]*fakeTarget{"blue": newFake("blue", log), "green": newFake("green", log)}
	fakes["blue"].unhealthy["db"] = true
	rep := reconcileFakes(t, testManifest(), fakes, "")
	blue, green := rep.Clusters[0], rep.Clusters[1]
	want := map[string]Outcome{"platform": OutcomeOK, "db": OutcomeFailed, "web": OutcomeSkipped, "worker": OutcomeSkipped}
	if diff := cmp.Diff(want, outcomes(blue)); diff != "" {
		t.Errorf("blue outcomes (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]Outcome{"platform": OutcomeOK, "db": OutcomeOK, "web": OutcomeOK, "worker": OutcomeOK}, outcomes(green)); diff != "" {
		t.Errorf("green outcomes (-want +got):\n%s", diff)
	}
	if !strings.Contains(blue.Error, "db") || green.Error != "" {
		t.Errorf("errors: blue %q, green %q", blue.Error, green.Error)
	}
	if log.index("blue install web") >= 0 {
		t.Error("web was installed on blue although db failed")
	}
}

func TestReconcileStandbyFailureHoldsBackActive(t *testing.T) {
	log := &opLog{}
	fakes := map[string]*fakeTarget{"blue": newFake("blue", log), "green": newFake("green", log)}
	fakes["green"].unhealthy["platform"] = true
	rep := reconcileFakes(t, testManifest(), fakes, "")
	if got := outcomes(rep.Clusters[0])["platform"]; got != OutcomeSkipped {
		t.Errorf("blue platform outcome %q, want skipped", got)
	}
	if log.index("blue install platform") >= 0 {
		t.Errorf("blue got platform although it failed on the standby: %v", log.ops)
	}
}

func TestReconcileUnreachableClusterDoesNotStopOthers(t *testing.T) {
	log := &opLog{}
	fakes := map[string]*fakeTarget{"blue": newFake("blue", log), "green": newFake("green", log)}
	m := testManifest()
	m.Releases[0].Rollout = manifest.RolloutParallel // else blue rightly holds platform back
	rep := reconcileFakes(t, m, fakes, "green")
	if diff := cmp.Diff([]string{"green"}, rep.Failed()); diff != "" {
		t.Errorf("failed clusters (-want +got):\n%s", diff)
	}
	if !strings.Contains(rep.Clusters[1].Error, "unreachable") {
		t.Errorf("green error %q", rep.Clusters[1].Error)
	}
	if got := rep.Clusters[0].Counts.Installed; got != 4 {
		t.Errorf("blue installed %d, want 4", got)
	}
}

func TestReconcileRollsBackFailedUpgrade(t *testing.T) {
	log := &opLog{}
	fakes := map[string]*fakeTarget{"blue": newFake("blue", log), "green": newFake("green", log)}
	m := testManifest()
	reconcileFakes(t, m, fakes, "")
	fakes["blue"].unhealthy["worker"] = true
	m.Releases[3].Set = map[string]any{"x": 1}
	results := testResults(m)
	for _, r := range results {
		if r.Release == "worker" {
			r.Digest = "changed"
		}
	}
	connect := func(_ context.Context, c manifest.Cluster) (Target, error) { return fakes[c.Name], nil }
	opts := DefaultOptions()
	opts.DetectDrift = false
	rep := Reconcile(context.Background(), m, results, connect, opts)
	var worker ReleaseReport
	for _, r := range rep.Clusters[0].Releases {
		if r.Name == "worker" {
			worker = r
		}
	}
	if worker.Outcome != OutcomeFailed || worker.RolledBackTo != 1 || !strings.Contains(worker.Error, "rolled back to revision 1") {
		t.Errorf("worker report %+v", worker)
	}
	if log.index("blue rollback worker to 1") < 0 {
		t.Errorf("no rollback: %v", log.ops)
	}
}

// TestReconcileSomeReleases checks a run restricted with --release: a need
// outside the run counts as met, and nothing is pruned.
func TestReconcileSomeReleases(t *testing.T) {
	log := &opLog{}
	fakes := map[string]*fakeTarget{"blue": newFake("blue", log), "green": newFake("green", log)}
	m := testManifest()
	fakes["blue"].releases["s/old"] = &clusters.Release{Name: "old", Namespace: "s", Revision: 1, Status: "deployed",
		Labels: map[string]string{LabelManagedBy: ManagedByValue}}
	connect := func(_ context.Context, c manifest.Cluster) (Target, error) { return fakes[c.Name], nil }
	opts := DefaultOptions()
	opts.DetectDrift = false
	opts.Selection = Selection{Releases: []string{"web"}}
	var results []*render.Result
	for _, r := range testResults(m) {
		if r.Release == "web" {
			results = append(results, r)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rep := Reconcile(ctx, m, results, connect, opts)
	if failed := rep.Failed(); len(failed) != 0 {
		t.Fatalf("failed clusters %v: %+v", failed, rep.Clusters)
	}
	if diff := cmp.Diff(map[string]Outcome{"web": OutcomeOK}, outcomes(rep.Clusters[0])); diff != "" {
		t.Errorf("blue outcomes (-want +got):\n%s", diff)
	}
	if log.index("blue uninstall old") >= 0 {
		t.Error("a run restricted to some releases pruned another one")
	}
}

func TestReconcileDryRunChangesNothing(t *testing.T) {
	log := &opLog{}
	fakes := map[string]*fakeTarget{"blue": newFake("blue", log), "green": newFake("green", log)}
	connect := func(_ context.Context, c manifest.Cluster) (Target, error) { return fakes[c.Name], nil }
	opts := DefaultOptions()
	opts.DryRun = true
	m := testManifest()
	rep := Reconcile(context.Background(), m, testResults(m), connect, opts)
	if len(log.ops) != 0 {
		t.Errorf("dry run made calls: %v", log.ops)
	}
	if got := outcomes(rep.Clusters[0])["web"]; got != OutcomePlanned {
		t.Errorf("web outcome %q, want planned", got)
	}
}
