package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tandem-gitops/tandem/reconciler"
)

// gitManifest copies examples/manifest with green running every release
// into a fresh git repository with one commit.
func gitManifest(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("no git")
	}
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS("../../examples/manifest")); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "tandem.yaml")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(strings.Replace(string(b), "    releases: [platform, example]\n", "", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"init", "-q", "-b", "main"}, {"add", "-A"}, {"-c", "user.name=t", "-c", "user.email=t@example", "commit", "-qm", "base"}} {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	return dir
}

// TestDiffAgainstShowsRoleChangeAsSwitchover: `tandem diff --against` on a
// change that flips the roles shows the switchover's phases (text,
// markdown, and a "switchover" field in JSON); without a role change there
// is none.
func TestDiffAgainstShowsRoleChangeAsSwitchover(t *testing.T) {
	dir := gitManifest(t)
	out, errOut, code := runCLI(t, "diff", "--against", "HEAD", "--working-tree", "--manifest-dir", dir, "-o", "json")
	if code != 0 || strings.Contains(out, `"switchover"`) {
		t.Fatalf("no role change: exit %d, stdout:\n%s\n%s", code, out, errOut)
	}
	if _, errOut, code := runCLI(t, "switchover", "--to", "green", "--manifest-dir", dir); code != 0 {
		t.Fatalf("switchover --to green: exit %d\n%s", code, errOut)
	}
	out, errOut, code = runCLI(t, "diff", "--against", "HEAD", "--working-tree", "--manifest-dir", dir, "-o", "json")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, errOut)
	}
	var got struct {
		Clusters   []map[string]any           `json:"clusters"`
		Switchover *reconciler.SwitchoverPlan `json:"switchover"`
	}
	decodeJSON(t, out, &got)
	if got.Switchover == nil || strings.Join(got.Switchover.From, ",") != "blue" || strings.Join(got.Switchover.To, ",") != "green" || len(got.Switchover.Phases) != reconciler.PhaseCount {
		t.Fatalf("switchover in JSON: %+v", got.Switchover)
	}
	if len(got.Clusters) != 2 {
		t.Errorf("the diff report's fields are gone from the JSON: %d clusters", len(got.Clusters))
	}
	changes := 0
	for _, ph := range got.Switchover.Phases {
		for _, st := range ph.Steps {
			for _, r := range st.Releases {
				changes += len(r.Changes)
			}
		}
	}
	if changes == 0 {
		t.Error("the plan lists no field changes")
	}
	out, _, _ = runCLI(t, "diff", "--against", "HEAD", "--working-tree", "--manifest-dir", dir)
	if !strings.Contains(out, "switchover blue → green") || !strings.Contains(out, "phase 3  close") {
		t.Errorf("text diff does not show the plan:\n%s", out)
	}
	out, _, _ = runCLI(t, "diff", "--against", "HEAD", "--working-tree", "--manifest-dir", dir, "-o", "markdown")
	if !strings.HasPrefix(out, "<!--") || !strings.Contains(out, "### Switchover blue → green") {
		t.Errorf("markdown: want the report first and the plan after it:\n%s", out)
	}
}
