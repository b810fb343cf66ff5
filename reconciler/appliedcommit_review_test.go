package reconciler

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tandem-gitops/tandem/clusters"
	"github.com/tandem-gitops/tandem/manifest"
)

// cancelAfter is a fake cluster that ends the run (a SIGTERM, a
// --cluster-timeout) right after one release's health wait succeeded.
type cancelAfter struct {
	*fakeTarget
	release string
	cancel  context.CancelFunc
}

func (c *cancelAfter) WaitHealthy(ctx context.Context, manifest string, o clusters.WaitOptions) ([]clusters.ObjectStatus, error) {
	st, err := c.fakeTarget.WaitHealthy(ctx, manifest, o)
	if manifest == c.release {
		c.cancel()
	}
	return st, err
}

// TestAppliedCommitNotNamedWhenAPruneDidNotRun: a run that applied every
// release but was stopped before its prunes ran leaves a release the commit
// removed on the cluster. Its record must not name the commit as held: CI's
// approval plan compares the next push with that commit, where the release
// is already gone, so the uninstall the next reconcile does would never be
// shown to the approver.
func TestAppliedCommitNotNamedWhenAPruneDidNotRun(t *testing.T) {
	log := &opLog{}
	blue := newFake("blue", log)
	fakes := map[string]Target{"blue": blue, "green": newFake("green", log)}
	connect := func(_ context.Context, c manifest.Cluster) (Target, error) { return fakes[c.Name], nil }
	withOld := testManifest()
	withOld.Releases = append(withOld.Releases, manifest.Release{Name: "old", Namespace: "s", Wave: 0, Timeout: "1m"})
	opts := DefaultOptions()
	opts.DetectDrift, opts.Commit, opts.Plan.AllowMassPrune = false, "a1", true
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	Reconcile(ctx, withOld, testResults(withOld), connect, opts)
	if st, _ := blue.ReadState(ctx, ""); st == nil || st.AppliedCommit != "a1" {
		t.Fatalf("after a complete run: state %+v, want appliedCommit a1", st)
	}

	m := testManifest() // "old" removed: the run prunes it
	rctx, stop := context.WithCancel(ctx)
	defer stop()
	fakes["blue"] = &cancelAfter{fakeTarget: blue, release: "worker", cancel: stop}
	opts.Commit = "b2"
	changed := testResults(m)
	for _, r := range changed {
		r.Digest += "-b2"
	}
	rep := Reconcile(rctx, m, changed, connect, opts)
	if _, ok := blue.releases["s/old"]; !ok {
		t.Skip("the prune ran before the run was stopped; nothing to check")
	}
	st, _ := blue.ReadState(ctx, "")
	if st == nil {
		t.Fatal("blue has no state record")
	}
	for _, c := range rep.Clusters {
		if c.Name == "blue" && !strings.Contains(c.Error, "prune s/old: not pruned") {
			t.Errorf("blue's report: error %q, want it to name the prune that did not run (the run is not a success)", c.Error)
		}
	}
	if st.AppliedCommit == "b2" {
		t.Errorf("blue's record names b2 as applied completely, but release s/old that b2 removed is still installed (prune not run); report: %+v", rep.Clusters)
	}
}

// TestAppliedCommitNotNamedForUncommittedContent: a run of a working tree
// with uncommitted changes applies content no commit holds; its record must
// not name HEAD as applied.
func TestAppliedCommitNotNamedForUncommittedContent(t *testing.T) {
	log := &opLog{}
	fakes := map[string]*fakeTarget{"blue": newFake("blue", log), "green": newFake("green", log)}
	connect := func(_ context.Context, c manifest.Cluster) (Target, error) { return fakes[c.Name], nil }
	m := testManifest()
	opts := DefaultOptions()
	opts.DetectDrift, opts.Commit, opts.Uncommitted = false, "a1", true
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	Reconcile(ctx, m, testResults(m), connect, opts)
	for name, f := range fakes {
		st, _ := f.ReadState(ctx, "")
		if st == nil {
			t.Fatalf("%s has no state record", name)
		}
		if st.Commit != "a1" || st.AppliedCommit != "" {
			t.Errorf("%s: commit %q, appliedCommit %q; want a1 and none (the tree applied had uncommitted changes)", name, st.Commit, st.AppliedCommit)
		}
	}
}

// loseLockOnUpgrade loses the cluster's lock while one release is upgraded.
type loseLockOnUpgrade struct {
	*fakeTarget
	lost    chan struct{}
	release string
}

func (l *loseLockOnUpgrade) Lock(context.Context, clusters.LockOptions) (Lease, error) {
	return &chanLease{lost: l.lost}, nil
}

func (l *loseLockOnUpgrade) Upgrade(ctx context.Context, req clusters.ReleaseRequest) (*clusters.Release, error) {
	rel, err := l.fakeTarget.Upgrade(ctx, req)
	if req.Name == l.release {
		close(l.lost)
		<-ctx.Done() // the run notices and stops writing
	}
	return rel, err
}

// TestAppliedCommitForgottenBeforeAnyWrite: a run that changes the cluster
// and ends without writing its record (lock lost here; kill -9 alike) has
// applied part of its commit, so the record must no longer name the commit
// the cluster held all of before: the approval plan of a revert of this
// commit would compare with it and show nothing.
func TestAppliedCommitForgottenBeforeAnyWrite(t *testing.T) {
	log := &opLog{}
	blue := newFake("blue", log)
	m := testManifest()
	m.Clusters = m.Clusters[:1]
	m.Releases[0].Rollout = manifest.RolloutParallel
	var target Target = blue
	connect := func(context.Context, manifest.Cluster) (Target, error) { return target, nil }
	opts := DefaultOptions()
	opts.DetectDrift, opts.Commit = false, "a1"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	Reconcile(ctx, m, testResults(m), connect, opts)
	if st, _ := blue.ReadState(ctx, ""); st == nil || st.AppliedCommit != "a1" {
		t.Fatalf("after a complete run: state %+v, want appliedCommit a1", st)
	}

	// A run that changes nothing keeps it, writing nothing before its end.
	opts.Commit = "a2"
	Reconcile(ctx, m, testResults(m), connect, opts)
	if st, _ := blue.ReadState(ctx, ""); st == nil || st.AppliedCommit != "a2" {
		t.Fatalf("after a run with nothing to change: state %+v, want appliedCommit a2", st)
	}

	target = &loseLockOnUpgrade{fakeTarget: blue, lost: make(chan struct{}), release: "db"}
	opts.Commit = "b3"
	changed := testResults(m)
	for _, r := range changed {
		r.Digest += "-b3"
	}
	rep := Reconcile(ctx, m, changed, connect, opts)
	if c := rep.Clusters[0]; !strings.Contains(c.Error, "lock was lost") {
		t.Fatalf("blue error %q: want the lock lost", c.Error)
	}
	st, _ := blue.ReadState(ctx, "")
	if st == nil || st.AppliedCommit != "" {
		t.Errorf("after a run that upgraded db and lost its lock: state record names %q as held completely; want none", st.AppliedCommit)
	}
	if st != nil && st.Commit != "a2" {
		t.Errorf("the record's commit %q, want a2: the clearing write keeps the last run's record as it was", st.Commit)
	}
}
