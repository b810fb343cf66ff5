package serve_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tandem-gitops/tandem/daemon"
)

// A commit that does not load (tandem.yaml with an unknown field) and one
// that does not render (a template that fails) are never applied: /status
// names each as rejected, the log says "commit not applied", the clusters
// stay at the last good commit; the next good commit is applied.
func TestServeBadCommitNotApplied(t *testing.T) {
	h := newHarness(t)
	r := h.exampleRemote(t, "bad-commit")
	good := r.Head
	d := h.startServe(t, "serve", "--repo", r.URL, "--interval", "1s")
	d.waitApplied(t, good, firstRunTimeout)
	if err := h.exampleAt(t, 3); err != nil {
		t.Fatalf("after the first run: %v", err)
	}
	revs := h.allStorage(t)
	lastRun := d.status(t).LastRun

	// Both bad commits also raise example's replicas, so that a commit
	// applied in part would show on the clusters. Every count stays within
	// the example's HPA (2..6): the HPA controller clamps spec.replicas on
	// the Active cluster, and 7 raced it.
	setExampleReplicas(t, r, 5)
	tandemYAML := r.Read(t, "tandem.yaml")
	r.Replace(t, "tandem.yaml", "\ndns:\n", "\nsurprise: true\ndns:\n")
	unknownField := r.Push(t, "tandem.yaml: an unknown field")
	checkRejected(t, h, d, unknownField, "surprise", revs, lastRun)

	r.Write(t, "tandem.yaml", tandemYAML)
	r.Write(t, "charts/example/templates/broken.yaml", `{{ fail "e2e: this template never renders" }}`+"\n")
	noRender := r.Push(t, "example: a template that fails to render")
	checkRejected(t, h, d, noRender, "this template never renders", revs, lastRun)
	if got := d.metrics(t).sum("tandem_commits_rejected_total", nil); got != 2 {
		t.Errorf("tandem_commits_rejected_total = %v, want 2", got)
	}

	r.Remove(t, "charts/example/templates/broken.yaml")
	setExampleReplicas(t, r, 4)
	fixed := r.Push(t, "example: 4 replicas, templates fixed")
	st := d.waitApplied(t, fixed, runTimeout)
	if err := h.exampleAt(t, 4); err != nil {
		t.Error(err)
	}
	if st.LastRun == nil || st.LastRun.Commit != fixed || st.LastRun.Error != "" {
		t.Errorf("/status lastRun = %+v, want %s without error", st.LastRun, short(fixed))
	}
}

// checkRejected waits until /status names commit as rejected with an error
// containing reason, and checks it was not applied: the log line, the last
// run and the clusters' Helm storage unchanged.
func checkRejected(t *testing.T, h *harness, d *serveProc, commit, reason string, revs map[string]stored, lastRun *daemon.Run) {
	t.Helper()
	var st daemon.Status
	waitFor(t, "commit "+short(commit)+" rejected", runTimeout, []*serveProc{d}, func() error {
		var err error
		if st, err = d.tryStatus(); err != nil {
			return err
		}
		if st.Rejected == nil || st.Rejected.Commit != commit {
			return fmt.Errorf("/status rejected = %+v, want commit %s", st.Rejected, short(commit))
		}
		return nil
	})
	if !strings.Contains(st.Rejected.Error, reason) {
		t.Errorf("/status rejected error %q does not contain %q", st.Rejected.Error, reason)
	}
	if d.log.find("commit not applied", map[string]string{"commit": short(commit)}) == nil {
		t.Errorf(`no log line "commit not applied" with commit=%s`, short(commit))
	}
	if diff := cmp.Diff(lastRun, st.LastRun); diff != "" {
		t.Errorf("/status lastRun changed (-before +after):\n%s", diff)
	}
	for _, c := range st.Clusters {
		if c.CommitApplied == commit {
			t.Errorf("/status cluster %s: commit applied is the rejected %s", c.Name, short(commit))
		}
	}
	// Polls every second go on and must leave the rejected commit alone.
	time.Sleep(3 * time.Second)
	if diff := cmp.Diff(revs, h.allStorage(t)); diff != "" {
		t.Errorf("Helm storage changed after the rejected commit %s (-before +after):\n%s", short(commit), diff)
	}
	if err := h.exampleAt(t, 3); err != nil {
		t.Errorf("after the rejected commit %s: %v", short(commit), err)
	}
	if st := d.status(t); st.Running != nil || !cmp.Equal(lastRun, st.LastRun) {
		t.Errorf("/status after the rejected commit %s: running %+v, last run %+v; want no run since %+v", short(commit), st.Running, st.LastRun, lastRun)
	}
}
