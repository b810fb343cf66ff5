package manifest_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tandem-gitops/tandem/manifest"
)

// TestLinkedWorkTree: a linked work tree (git worktree add) keeps its refs
// and objects in the main repository's .git. ExportRevision (diff
// --against, vendor's reviewed revision, diff's HEAD) found no reference
// there, and DirRevision reported a branch checkout as a repository without
// commits (a reconcile recorded no commit).
func TestLinkedWorkTree(t *testing.T) {
	main := t.TempDir()
	if err := os.WriteFile(filepath.Join(main, "tandem.yaml"), []byte("clusters: []\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	gitRun(t, main, "init", "-q", "-b", "main")
	gitRun(t, main, "add", "-A")
	gitRun(t, main, "commit", "-q", "-m", "one")
	gitRun(t, main, "update-ref", "refs/remotes/origin/main", "HEAD")
	wt := filepath.Join(t.TempDir(), "wt")
	gitRun(t, main, "worktree", "add", "-q", "-b", "feature", wt, "HEAD")
	out, err := exec.Command("git", "-C", wt, "rev-parse", "HEAD").Output()
	if err != nil {
		t.Fatal(err)
	}
	want := strings.TrimSpace(string(out))

	for _, rev := range []string{"HEAD", "origin/main", "feature"} {
		got, err := manifest.ExportRevision(wt, rev, filepath.Join(t.TempDir(), "out"))
		if err != nil || got != want {
			t.Errorf("ExportRevision(%s) = %q, %v; want %s", rev, got, err, want)
		}
	}
	commit, dirty, err := manifest.DirRevision(wt)
	if err != nil || commit != want || dirty {
		t.Errorf("DirRevision = %q, %v, %v; want %s, clean", commit, dirty, err, want)
	}
	// A reconcile names its commit as applied only for a clean tree.
	for name, edit := range map[string]string{"tandem.yaml": "clusters: [] # edited\n", "new.txt": "untracked\n"} {
		if err := os.WriteFile(filepath.Join(wt, name), []byte(edit), 0o644); err != nil {
			t.Fatal(err)
		}
		if commit, dirty, err := manifest.DirRevision(wt); err != nil || commit != want || !dirty {
			t.Errorf("DirRevision after writing %s = %q, %v, %v; want %s, dirty", name, commit, dirty, err, want)
		}
		gitRun(t, wt, "checkout", "--", ".")
		gitRun(t, wt, "clean", "-fdq")
	}
}
