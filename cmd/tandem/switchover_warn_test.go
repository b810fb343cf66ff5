package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// dns.drainSeconds: 0 (from a pull request, say) is valid but never
// silent: validate warns on stderr, and the switchover plan and the
// pull-request plan (diff --against) say what the drain must cover.
func TestDrainSecondsZeroWarns(t *testing.T) {
	dir := gitManifest(t)
	path := filepath.Join(dir, "tandem.yaml")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	zero := strings.Replace(string(b), "  activeWeight: 100\n", "  activeWeight: 100\n  drainSeconds: 0\n", 1)
	if zero == string(b) {
		t.Fatal("examples/manifest: no dns.activeWeight line to add drainSeconds after; update this test")
	}
	if err := os.WriteFile(path, []byte(zero), 0o644); err != nil {
		t.Fatal(err)
	}
	const want = "tandem.yaml: dns.drainSeconds: 0: "
	out, errOut, code := runCLI(t, "validate", "--manifest-dir", dir)
	if code != 0 || !strings.Contains(errOut, "warning: "+want) || !strings.Contains(out, "ok: ") {
		t.Errorf("validate: exit %d, stdout %q, stderr %q; want ok with a warning", code, out, errOut)
	}
	for _, format := range []string{"text", "markdown"} {
		out, errOut, code = runCLI(t, "switchover", "--to", "green", "--plan", "-o", format, "--manifest-dir", dir)
		if code != 0 || !strings.Contains(out, want) || !strings.Contains(out, "deregistration delay") {
			t.Errorf("switchover --plan -o %s: exit %d, no warning in:\n%s\n%s", format, code, out, errOut)
		}
	}
	if _, errOut, code := runCLI(t, "switchover", "--to", "green", "--manifest-dir", dir); code != 0 {
		t.Fatalf("switchover --to green: exit %d\n%s", code, errOut)
	}
	out, errOut, code = runCLI(t, "diff", "--against", "HEAD", "--working-tree", "--manifest-dir", dir, "-o", "markdown")
	if code != 0 || !strings.Contains(out, want) {
		t.Errorf("diff --against -o markdown: exit %d, no warning in:\n%s\n%s", code, out, errOut)
	}
}

// Finding 7, the pull request's side: a change of id together with the
// roles is refused by diff --against as by the reconcile, naming
// tandem.yaml and both fields, instead of being shown as a switchover that
// the reconcile would not run.
func TestDiffAgainstRefusesIDWithRoles(t *testing.T) {
	dir := gitManifest(t)
	if _, errOut, code := runCLI(t, "switchover", "--to", "green", "--manifest-dir", dir); code != 0 {
		t.Fatalf("switchover --to green: exit %d\n%s", code, errOut)
	}
	path := filepath.Join(dir, "tandem.yaml")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, append([]byte("id: shop2\n"), b...), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := runCLI(t, "diff", "--against", "HEAD", "--working-tree", "--manifest-dir", dir)
	if code != 1 {
		t.Fatalf("exit %d, want 1; stdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	for _, want := range []string{"tandem.yaml", `id changes from "default" to "shop2"`, "role"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr does not name %s:\n%s", want, errOut)
		}
	}
}
