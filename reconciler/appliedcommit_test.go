package reconciler

import (
	"context"
	"testing"
	"time"

	"github.com/tandem-gitops/tandem/manifest"
	"github.com/tandem-gitops/tandem/render"
)

// TestStateAppliedCommitOnlyWhenAllApplied: the state record names an
// applied commit only after a run that applied every release of the cluster
// from it and ended without an error. CI plans the approval of the next
// reconcile against that commit (examples/ci), so a commit a cluster only
// partly holds must never be named: a failed release, a run restricted to
// some releases, and a dry run leave it empty (or as the last complete run
// left it, for the dry run, which writes no record).
func TestStateAppliedCommitOnlyWhenAllApplied(t *testing.T) {
	log := &opLog{}
	fakes := map[string]*fakeTarget{"blue": newFake("blue", log), "green": newFake("green", log)}
	m := testManifest()
	connect := func(_ context.Context, c manifest.Cluster) (Target, error) { return fakes[c.Name], nil }
	run := func(commit string, edit func(*Options), results []*render.Result) {
		t.Helper()
		opts := DefaultOptions()
		opts.DetectDrift, opts.Commit = false, commit
		if edit != nil {
			edit(&opts)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		Reconcile(ctx, m, results, connect, opts)
	}
	applied := func() map[string]string {
		out := map[string]string{}
		for name, f := range fakes {
			st, _ := f.ReadState(context.Background(), "")
			if st == nil {
				t.Fatalf("%s has no state record", name)
			}
			out[name] = st.AppliedCommit
		}
		return out
	}
	want := func(step string, w map[string]string) {
		t.Helper()
		if got := applied(); got["blue"] != w["blue"] || got["green"] != w["green"] {
			t.Errorf("%s: applied commits %v, want %v", step, got, w)
		}
	}
	changed := func(digest string) []*render.Result {
		rs := testResults(m)
		for _, r := range rs {
			r.Digest += digest
		}
		return rs
	}

	run("a1", nil, testResults(m))
	want("a complete run", map[string]string{"blue": "a1", "green": "a1"})

	run("b2", func(o *Options) { o.DryRun = true }, changed("-b2"))
	want("a dry run", map[string]string{"blue": "a1", "green": "a1"})

	fakes["blue"].unhealthy["db"] = true
	run("c3", nil, changed("-c3"))
	want("db failed on blue", map[string]string{"blue": "", "green": "c3"})
	delete(fakes["blue"].unhealthy, "db")

	var web []*render.Result
	for _, r := range changed("-d4") {
		if r.Release == "web" {
			web = append(web, r)
		}
	}
	run("d4", func(o *Options) { o.Selection = Selection{Releases: []string{"web"}} }, web)
	want("a run of web only", map[string]string{"blue": "", "green": ""})

	run("e5", nil, changed("-e5"))
	want("a complete run again", map[string]string{"blue": "e5", "green": "e5"})
}
