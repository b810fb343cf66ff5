package serve_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tandem-gitops/tandem/daemon"
	"github.com/tandem-gitops/tandem/e2e/e2etest"
)

// --manifest-dir: serve a working tree; an edit of a values file, not
// committed, reaches both clusters on a following interval.
func TestServeManifestDir(t *testing.T) {
	h := newHarness(t)
	repo := e2etest.CopyExample(t)
	commit := strings.TrimSpace(repo.Git(t, "rev-parse", "HEAD"))
	d := h.startServe(t, "serve", "--manifest-dir", repo.Dir, "--interval", "2s")
	d.waitApplied(t, commit, firstRunTimeout)
	if err := h.exampleAt(t, 3); err != nil {
		t.Fatalf("after the first run: %v", err)
	}

	r := &remote{ManifestRepo: repo}
	setExampleReplicas(t, r, 5) // within the example HPA's 2..6, which clamps spec.replicas on Active
	edited := time.Now()
	var st daemon.Status
	waitFor(t, "the edit applied on both clusters", time.Minute, []*serveProc{d}, func() error {
		var err error
		if st, err = d.tryStatus(); err != nil {
			return err
		}
		if st.LastRun == nil || st.LastRun.Started.Before(edited) {
			return fmt.Errorf("no run started since the edit (last run %+v)", st.LastRun)
		}
		for _, c := range st.Clusters {
			if !strings.HasPrefix(c.CommitApplied, commit) || c.LastError != "" {
				return fmt.Errorf("cluster %s: commit applied %q, last error %q", c.Name, c.CommitApplied, c.LastError)
			}
		}
		return h.exampleAt(t, 5)
	})
	t.Logf("edit → applied on both clusters in %s (--interval 2s); /status commit applied %q", time.Since(edited).Round(time.Millisecond), st.Clusters[0].CommitApplied)
	if st.Rejected != nil {
		t.Errorf("/status rejected %+v", st.Rejected)
	}
	if st.Ref != repo.Dir {
		t.Errorf("/status ref %q, want the directory %q", st.Ref, repo.Dir)
	}
	if st.LastRun.Trigger != "poll" {
		t.Errorf("/status lastRun %+v, want one started by a poll", st.LastRun)
	}
	// A working tree is re-read every cycle, but a cycle with nothing to
	// change must not write a new Helm revision.
	revs := h.allStorage(t)
	time.Sleep(5 * time.Second)
	if diff := cmp.Diff(revs, h.allStorage(t)); diff != "" {
		t.Errorf("Helm storage changed with nothing edited (-before +after):\n%s", diff)
	}
}
