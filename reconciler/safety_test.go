package reconciler

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tandem-gitops/tandem/clusters"
	"github.com/tandem-gitops/tandem/manifest"
	"github.com/tandem-gitops/tandem/render"
)

// Tests named for the items of the reconcile-safety issue (#8); the ones whose
// truth lives in the API server are in e2e/reconcile and clusters/.

func outcomesByKey(c ClusterReport) map[string]Outcome {
	out := map[string]Outcome{}
	for _, r := range c.Releases {
		out[r.Namespace+"/"+r.Name] = r.Outcome
	}
	return out
}

// Item 1: two releases of one name in two namespaces are two releases.
func TestSafety1SameNameTwoNamespaces(t *testing.T) {
	log := &opLog{}
	fakes := map[string]*fakeTarget{"blue": newFake("blue", log), "green": newFake("green", log)}
	m := testManifest()
	m.Releases = []manifest.Release{
		{Name: "redis", Namespace: "team-a", Timeout: "1m"},
		{Name: "redis", Namespace: "team-b", Timeout: "1m"},
		{Name: "web", Namespace: "team-b", Wave: 1, Needs: []string{"team-a/redis"}, Timeout: "1m"},
	}
	fakes["blue"].unhealthy["redis"] = true // both redis fail on blue: web must not go
	rep := reconcileFakes(t, m, fakes, "")
	want := map[string]Outcome{"team-a/redis": OutcomeFailed, "team-b/redis": OutcomeFailed, "team-b/web": OutcomeSkipped}
	if diff := cmp.Diff(want, outcomesByKey(rep.Clusters[0])); diff != "" {
		t.Errorf("blue outcomes (-want +got):\n%s", diff)
	}
	if log.index("blue install web") >= 0 {
		t.Errorf("web was installed although team-a/redis, which it needs, failed: %v", log.ops)
	}
	want = map[string]Outcome{"team-a/redis": OutcomeOK, "team-b/redis": OutcomeOK, "team-b/web": OutcomeOK}
	if diff := cmp.Diff(want, outcomesByKey(rep.Clusters[1])); diff != "" {
		t.Errorf("green outcomes (-want +got):\n%s", diff)
	}
	if len(fakes["green"].releases) != 3 {
		t.Errorf("green holds %d releases, want 3", len(fakes["green"].releases))
	}
}

// panicTarget panics in one operation, as a bug in a step would.
type panicTarget struct {
	*fakeTarget
	unlocked chan struct{}
}

func (p *panicTarget) Upgrade(context.Context, clusters.ReleaseRequest) (*clusters.Release, error) {
	panic("injected panic")
}
func (p *panicTarget) Install(context.Context, clusters.ReleaseRequest) (*clusters.Release, error) {
	panic("injected panic")
}
func (p *panicTarget) Lock(context.Context, clusters.LockOptions) (Lease, error) {
	return &recordingLease{unlocked: p.unlocked}, nil
}

type recordingLease struct {
	fakeLease
	unlocked chan struct{}
}

func (l *recordingLease) Unlock(context.Context) error { close(l.unlocked); return nil }

// Item 1: a panic in one cluster's goroutine is that cluster's error; its
// lock is released and the other clusters finish.
func TestSafety1PanicIsAClusterError(t *testing.T) {
	log := &opLog{}
	green := newFake("green", log)
	blue := &panicTarget{fakeTarget: newFake("blue", log), unlocked: make(chan struct{})}
	m := testManifest()
	m.Releases[0].Rollout = manifest.RolloutParallel
	connect := func(_ context.Context, c manifest.Cluster) (Target, error) {
		if c.Name == "blue" {
			return blue, nil
		}
		return green, nil
	}
	opts := DefaultOptions()
	opts.DetectDrift = false
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rep := Reconcile(ctx, m, testResults(m), connect, opts)
	if diff := cmp.Diff([]string{"blue"}, rep.Failed()); diff != "" {
		t.Fatalf("failed clusters (-want +got):\n%s", diff)
	}
	if !strings.Contains(rep.Clusters[0].Error, "injected panic") {
		t.Errorf("blue error %q does not say what happened", rep.Clusters[0].Error)
	}
	select {
	case <-blue.unlocked:
	default:
		t.Error("blue's lock was not released after the panic")
	}
	if got := rep.Clusters[1].Counts.Installed; got != 4 {
		t.Errorf("green installed %d, want 4", got)
	}
}

// Item 2: a standby-first gate that fails skips the Active cluster's release;
// that is a failure of the Active cluster and blocks its prune.
func TestSafety2SkippedBlocksPruneAndFails(t *testing.T) {
	log := &opLog{}
	fakes := map[string]*fakeTarget{"blue": newFake("blue", log), "green": newFake("green", log)}
	m := testManifest()
	for _, name := range []string{"old1"} {
		fakes["blue"].releases["s/"+name] = &clusters.Release{Name: name, Namespace: "s", Revision: 1, Status: "deployed",
			Labels: map[string]string{LabelManagedBy: ManagedByValue}}
	}
	fakes["green"].unhealthy["platform"] = true
	opts := DefaultOptions()
	opts.DetectDrift = false
	opts.Plan.AllowMassPrune = true
	connect := func(_ context.Context, c manifest.Cluster) (Target, error) { return fakes[c.Name], nil }
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rep := Reconcile(ctx, m, testResults(m), connect, opts)
	blue := rep.Clusters[0]
	if !blue.Failed() || !strings.Contains(blue.Error, "platform") || !strings.Contains(blue.Error, "standby-first") {
		t.Errorf("blue error %q: want a failure naming platform and the standby-first gate", blue.Error)
	}
	if log.index("blue uninstall old1") >= 0 {
		t.Errorf("blue pruned although a release was skipped: %v", log.ops)
	}
}

// Item 2: `--cluster blue` of a standby-first change applies nothing there and
// must say so with a failure, not exit 0.
func TestSafety2StandbyNotInRunFails(t *testing.T) {
	log := &opLog{}
	fakes := map[string]*fakeTarget{"blue": newFake("blue", log), "green": newFake("green", log)}
	m := testManifest()
	opts := DefaultOptions()
	opts.DetectDrift = false
	opts.Selection = Selection{Clusters: []string{"blue"}}
	connect := func(_ context.Context, c manifest.Cluster) (Target, error) { return fakes[c.Name], nil }
	var results []*render.Result
	for _, r := range testResults(m) {
		if r.Cluster == "blue" {
			results = append(results, r)
		}
	}
	rep := Reconcile(context.Background(), m, results, connect, opts)
	if len(rep.Clusters) != 1 || !rep.Clusters[0].Failed() {
		t.Fatalf("want blue failed, got %+v", rep.Clusters)
	}
	if !strings.Contains(rep.Clusters[0].Error, "green is not part of this run") {
		t.Errorf("blue error %q does not name the cause", rep.Clusters[0].Error)
	}
	if log.index("blue install platform") >= 0 {
		t.Errorf("blue got platform without its standby: %v", log.ops)
	}
}

// Item 9: a dry run whose plan has a step that would fail, or a blocked
// prune, is a failure.
func TestSafety9DryRunWithFailingStepFails(t *testing.T) {
	log := &opLog{}
	fakes := map[string]*fakeTarget{"blue": newFake("blue", log), "green": newFake("green", log)}
	fakes["blue"].releases["s/db"] = &clusters.Release{Name: "db", Namespace: "s", Revision: 3, Status: "deployed"} // not tandem's
	connect := func(_ context.Context, c manifest.Cluster) (Target, error) { return fakes[c.Name], nil }
	opts := DefaultOptions()
	opts.DryRun = true
	m := testManifest()
	rep := Reconcile(context.Background(), m, testResults(m), connect, opts)
	if !rep.Clusters[0].Failed() || !strings.Contains(rep.Clusters[0].Error, "s/db") {
		t.Errorf("blue error %q: want the dry run to fail naming s/db", rep.Clusters[0].Error)
	}
	if rep.Clusters[1].Failed() {
		t.Errorf("green failed: %q", rep.Clusters[1].Error)
	}
}

// lossTarget loses its lock while installing one release.
type lossTarget struct {
	*fakeTarget
	lost   chan struct{}
	during string
}

func (l *lossTarget) Lock(context.Context, clusters.LockOptions) (Lease, error) {
	return &chanLease{lost: l.lost}, nil
}

func (l *lossTarget) Install(ctx context.Context, req clusters.ReleaseRequest) (*clusters.Release, error) {
	rel, err := l.fakeTarget.Install(ctx, req)
	if req.Name == l.during {
		close(l.lost)
		<-ctx.Done() // the run notices and cancels
	}
	return rel, err
}

func (l *lossTarget) WaitHealthy(ctx context.Context, manifest string, opts clusters.WaitOptions) ([]clusters.ObjectStatus, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return l.fakeTarget.WaitHealthy(ctx, manifest, opts)
}

type chanLease struct{ lost chan struct{} }

func (c *chanLease) Lost() <-chan struct{}        { return c.lost }
func (c *chanLease) Unlock(context.Context) error { return nil }

// Item 4 (reconciler side) and item 2: once the lock is lost the run writes
// nothing more to that cluster — no mark-failed, no rollback, no state
// record, no prune — and the cluster fails naming the cause.
func TestSafety4LockLostStopsEveryWrite(t *testing.T) {
	log := &opLog{}
	blue := &lossTarget{fakeTarget: newFake("blue", log), lost: make(chan struct{}), during: "db"}
	blue.releases["s/old"] = &clusters.Release{Name: "old", Namespace: "s", Revision: 1, Status: "deployed",
		Labels: map[string]string{LabelManagedBy: ManagedByValue}}
	m := testManifest()
	m.Clusters = m.Clusters[:1]
	m.Releases[0].Rollout = manifest.RolloutParallel
	connect := func(context.Context, manifest.Cluster) (Target, error) { return blue, nil }
	opts := DefaultOptions()
	opts.DetectDrift = false
	opts.Plan.AllowMassPrune = true
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rep := Reconcile(ctx, m, testResults(m), connect, opts)
	c := rep.Clusters[0]
	if !c.Failed() || !strings.Contains(c.Error, "lock was lost") {
		t.Errorf("blue error %q: want a failure saying the lock was lost", c.Error)
	}
	for _, op := range log.ops {
		if strings.Contains(op, "markunhealthy") || strings.Contains(op, "rollback") || strings.Contains(op, "uninstall") ||
			strings.Contains(op, "install web") || strings.Contains(op, "install worker") {
			t.Errorf("wrote to blue after losing its lock: %q (all ops %v)", op, log.ops)
		}
	}
	if blue.state != nil {
		t.Errorf("state record written after the lock was lost: %+v", blue.state)
	}
}

// Item 10: a run restricted with --release merges its records into the
// state record instead of dropping the other releases'.
func TestSafety10StateMergesOnReleaseRun(t *testing.T) {
	log := &opLog{}
	fakes := map[string]*fakeTarget{"blue": newFake("blue", log), "green": newFake("green", log)}
	m := testManifest()
	reconcileFakes(t, m, fakes, "")
	connect := func(_ context.Context, c manifest.Cluster) (Target, error) { return fakes[c.Name], nil }
	opts := DefaultOptions()
	opts.DetectDrift = false
	opts.Selection = Selection{Releases: []string{"web"}}
	var results []*render.Result
	for _, r := range testResults(m) {
		if r.Release == "web" {
			r.Digest = "d-web-2"
			results = append(results, r)
		}
	}
	rep := Reconcile(context.Background(), m, results, connect, opts)
	if f := rep.Failed(); len(f) > 0 {
		t.Fatalf("failed: %+v", rep.Clusters)
	}
	got := map[string]string{}
	for _, rs := range fakes["blue"].state.Releases {
		got[rs.Namespace+"/"+rs.Name] = rs.Digest
	}
	want := map[string]string{"p/platform": "d-platform", "s/db": "d-db", "s/web": "d-web-2", "s/worker": "d-worker"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("state record digests after a --release run (-want +got):\n%s", diff)
	}
}

// Item 5: two manifest clusters that reach one API server are both refused
// before anything is written.
func TestSafety5OneClusterUnderTwoNames(t *testing.T) {
	log := &opLog{}
	one := newFake("blue", log)
	m := testManifest()
	connect := func(context.Context, manifest.Cluster) (Target, error) { return one, nil }
	opts := DefaultOptions()
	opts.DetectDrift = false
	rep := Reconcile(context.Background(), m, testResults(m), connect, opts)
	if diff := cmp.Diff([]string{"blue", "green"}, rep.Failed()); diff != "" {
		t.Errorf("failed clusters (-want +got):\n%s", diff)
	}
	for _, c := range rep.Clusters {
		if !strings.Contains(c.Error, "reach the same cluster") {
			t.Errorf("%s error %q", c.Name, c.Error)
		}
	}
	if len(log.ops) != 0 {
		t.Errorf("wrote to a cluster reached under two names: %v", log.ops)
	}
}

// Item 5: the state record remembers which manifest cluster a cluster is.
func TestSafety5StateRecordNamesTheCluster(t *testing.T) {
	log := &opLog{}
	fakes := map[string]*fakeTarget{"blue": newFake("blue", log), "green": newFake("green", log)}
	fakes["blue"].state = &clusters.State{Cluster: "green"}
	rep := reconcileFakes(t, testManifest(), fakes, "")
	if !strings.Contains(rep.Clusters[0].Error, `says it is manifest cluster "green"`) {
		t.Errorf("blue error %q", rep.Clusters[0].Error)
	}
	if log.index("blue install db") >= 0 {
		t.Errorf("wrote to blue although its state record names it green: %v", log.ops)
	}
}

// Item 7: a revision deployed but never seen healthy (the run was killed
// during its health wait) is checked again; unhealthy, the run fails and
// says so, and nothing is written.
func TestSafety7UnconfirmedRevisionIsVerified(t *testing.T) {
	log := &opLog{}
	fakes := map[string]*fakeTarget{"blue": newFake("blue", log), "green": newFake("green", log)}
	m := testManifest()
	reconcileFakes(t, m, fakes, "")
	// Simulate the kill: revision 2 of worker deployed, the state record still says 1 was healthy.
	fakes["blue"].mu.Lock()
	fakes["blue"].releases["s/worker"].Revision = 2
	fakes["blue"].mu.Unlock()
	fakes["blue"].unhealthy["worker"] = true
	rep := reconcileFakes(t, m, fakes, "")
	var worker ReleaseReport
	for _, r := range rep.Clusters[0].Releases {
		if r.Name == "worker" {
			worker = r
		}
	}
	if worker.Outcome != OutcomeFailed || !strings.Contains(worker.Error, "never seen healthy") {
		t.Errorf("worker %+v: want failed, never seen healthy", worker)
	}
	if log.index("blue rollback worker to 1") >= 0 || log.index("blue markunhealthy worker") >= 0 {
		t.Errorf("a revision that may have served for months was rolled back or marked on one failed check: %v", log.ops)
	}
	// Healthy again: the next run confirms it, and the one after skips the check.
	delete(fakes["blue"].unhealthy, "worker")
	if rep := reconcileFakes(t, m, fakes, ""); rep.Clusters[0].Failed() {
		t.Fatalf("blue failed once worker was healthy: %s", rep.Clusters[0].Error)
	}
	before := len(log.ops)
	reconcileFakes(t, m, fakes, "")
	if log.index("blue healthy worker") >= before || len(log.ops) != before {
		t.Errorf("a revision confirmed healthy was checked again: %v", log.ops[before:])
	}
}

// liveRenderer is a fake renderer that renders "live": it records the
// capabilities it was given and stamps them into the digest.
type liveRenderer struct {
	mu   sync.Mutex
	reqs []render.Request // guarded by mu: clusters render concurrently
}

func (l *liveRenderer) RenderAll(_ context.Context, reqs []render.Request) ([]*render.Result, error) {
	l.mu.Lock()
	l.reqs = append(l.reqs, reqs...)
	l.mu.Unlock()
	out := make([]*render.Result, len(reqs))
	for i, q := range reqs {
		out[i] = &render.Result{Cluster: q.Cluster, Release: q.Release, Namespace: q.Namespace, Digest: "live-" + q.Capabilities.KubeVersion, UsedLookup: true}
	}
	return out, nil
}

type capsTarget struct{ *fakeTarget }

func (capsTarget) Capabilities(context.Context) (render.Capabilities, error) {
	return render.Capabilities{KubeVersion: "v1.31.4", Discovered: true}, nil
}

// Item 3: each cluster is rendered again once connected, with its own
// capabilities, and that render is what is applied; a plan rendered without
// the cluster is never applied to a release that calls lookup.
func TestSafety3RenderWithTheClusterAndRefuseOfflineLookups(t *testing.T) {
	m := testManifest()
	m.Repositories = []manifest.Repository{{Name: "r", URL: "https://charts.example"}}
	for i := range m.Releases {
		m.Releases[i].Chart = "r/c"
		m.Releases[i].Rollout = manifest.RolloutParallel
	}
	log := &opLog{}
	blue, green := capsTarget{newFake("blue", log)}, capsTarget{newFake("green", log)}
	connect := func(_ context.Context, c manifest.Cluster) (Target, error) {
		if c.Name == "blue" {
			return blue, nil
		}
		return green, nil
	}
	opts := DefaultOptions()
	opts.DetectDrift = false
	lr := &liveRenderer{}
	opts.Renderer = lr
	offline := testResults(m)
	rep := Reconcile(context.Background(), m, offline, connect, opts)
	if f := rep.Failed(); len(f) > 0 {
		t.Fatalf("failed: %+v", rep.Clusters)
	}
	if len(lr.reqs) != 8 {
		t.Fatalf("live renders: %d, want 8 (4 releases x 2 clusters)", len(lr.reqs))
	}
	for _, r := range blue.releases {
		if got := r.Labels[LabelDigest]; got != "live-v1.31.4" {
			t.Errorf("%s/%s applied digest %q, want the live render's", r.Namespace, r.Name, got)
		}
	}
	for _, q := range lr.reqs {
		if q.Upgrade {
			t.Errorf("%s/%s rendered as an upgrade before it existed", q.Namespace, q.Release)
		}
	}
	lr.reqs = nil
	Reconcile(context.Background(), m, offline, connect, opts)
	for _, q := range lr.reqs {
		if !q.Upgrade {
			t.Errorf("%s/%s on %s rendered as an install although Helm will upgrade it", q.Namespace, q.Release, q.Cluster)
		}
	}

	// Without a live render, releases that used lookup are refused.
	log2 := &opLog{}
	fakes := map[string]*fakeTarget{"blue": newFake("blue", log2), "green": newFake("green", log2)}
	for _, r := range offline {
		r.UsedLookup = r.Release == "db"
	}
	opts.Renderer = nil
	connect = func(_ context.Context, c manifest.Cluster) (Target, error) { return fakes[c.Name], nil }
	rep = Reconcile(context.Background(), m, offline, connect, opts)
	for _, c := range rep.Clusters {
		if !strings.Contains(c.Error, "release s/db failed") || !strings.Contains(c.Error, "lookup") {
			t.Errorf("%s error %q: want s/db refused for an offline lookup", c.Name, c.Error)
		}
	}
	if log2.index("blue install db") >= 0 || log2.index("green install db") >= 0 {
		t.Errorf("a plan rendered without the cluster was applied to a release that calls lookup: %v", log2.ops)
	}
}

// Item 3 (review): a render with the cluster that holds objects the offline
// render — what the pull request showed — does not is refused.
func TestSafety3LiveRenderMayNotAddObjects(t *testing.T) {
	obj := func(kind, name string) render.Object {
		return render.Object{APIVersion: "rbac.authorization.k8s.io/v1", Kind: kind, Name: name}
	}
	spec := manifest.Release{Name: "web", Namespace: "s"}
	offline := []Desired{{Spec: spec, Result: &render.Result{Objects: []render.Object{obj("Role", "web"), obj("Secret", "initial")}}}}
	live := &Desired{Spec: spec, Result: &render.Result{UsedLookup: true, Objects: []render.Object{obj("Role", "web"), obj("ClusterRoleBinding", "root")}}}
	plan := ClusterPlan{Steps: []Step{{Name: "web", Namespace: "s", Action: ActionUpgrade, desired: live}}}
	refuseUnreviewedObjects(&plan, offline)
	if !strings.Contains(plan.Steps[0].Error, "ClusterRoleBinding root") {
		t.Errorf("step error %q: want the unreviewed ClusterRoleBinding named", plan.Steps[0].Error)
	}
	live.Result.Objects = live.Result.Objects[:1] // fewer objects than reviewed: fine
	plan.Steps[0].Error = ""
	refuseUnreviewedObjects(&plan, offline)
	if plan.Steps[0].Error != "" {
		t.Errorf("a live render with fewer objects was refused: %q", plan.Steps[0].Error)
	}
}

// slowUpgrade is a Helm upgrade that outlives the step's deadline.
type slowUpgrade struct{ *fakeTarget }

func (s slowUpgrade) Upgrade(ctx context.Context, req clusters.ReleaseRequest) (*clusters.Release, error) {
	if req.Name == "worker" {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return s.fakeTarget.Upgrade(ctx, req)
}

// Item 5 of the review: when Helm's upgrade outlives the step's deadline,
// Helm goes on applying in the background; a rollback would race it.
func TestSafetyNoRollbackWhileHelmMayStillApply(t *testing.T) {
	log := &opLog{}
	fakes := map[string]*fakeTarget{"blue": newFake("blue", log), "green": newFake("green", log)}
	m := testManifest()
	reconcileFakes(t, m, fakes, "")
	m.Releases[3].Timeout = "200ms"
	results := testResults(m)
	for _, r := range results {
		if r.Release == "worker" {
			r.Digest = "changed"
		}
	}
	connect := func(_ context.Context, c manifest.Cluster) (Target, error) { return slowUpgrade{fakes[c.Name]}, nil }
	opts := DefaultOptions()
	opts.DetectDrift = false
	rep := Reconcile(context.Background(), m, results, connect, opts)
	if !strings.Contains(rep.Clusters[0].Error, "not rolled back: Helm may still be applying") {
		t.Errorf("blue error %q", rep.Clusters[0].Error)
	}
	if log.index("blue rollback worker to 1") >= 0 {
		t.Errorf("rolled back while Helm may still be applying: %v", log.ops)
	}
}

// slowHealth never turns healthy before its context ends.
type slowHealth struct{ *fakeTarget }

func (s slowHealth) WaitHealthy(ctx context.Context, manifest string, opts clusters.WaitOptions) ([]clusters.ObjectStatus, error) {
	if manifest == "worker" {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return s.fakeTarget.WaitHealthy(ctx, manifest, opts)
}

// Item 11: when --cluster-timeout ends the run, nothing more is written to
// the cluster — the release is not rolled back — and the error says why.
func TestSafety11ClusterTimeoutWritesNothingMore(t *testing.T) {
	log := &opLog{}
	fakes := map[string]*fakeTarget{"blue": newFake("blue", log), "green": newFake("green", log)}
	m := testManifest()
	reconcileFakes(t, m, fakes, "")
	results := testResults(m)
	for _, r := range results {
		if r.Release == "worker" {
			r.Digest = "changed"
		}
	}
	connect := func(_ context.Context, c manifest.Cluster) (Target, error) { return slowHealth{fakes[c.Name]}, nil }
	opts := DefaultOptions()
	opts.DetectDrift = false
	opts.ClusterTimeout = 300 * time.Millisecond
	rep := Reconcile(context.Background(), m, results, connect, opts)
	if !strings.Contains(rep.Clusters[0].Error, "--cluster-timeout") {
		t.Errorf("blue error %q does not name the cluster timeout", rep.Clusters[0].Error)
	}
	if log.index("blue rollback worker to 1") >= 0 || log.index("blue markunhealthy worker") >= 0 {
		t.Errorf("wrote to blue after its run was stopped: %v", log.ops)
	}
}
