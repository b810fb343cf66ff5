package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// ciStep returns the run script of the step of job whose name is step, in
// examples/ci/github-actions.yaml.
func ciStep(t *testing.T, job, step string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "examples", "ci", "github-actions.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Jobs map[string]struct {
			Steps []struct {
				Name string `json:"name"`
				Run  string `json:"run"`
			} `json:"steps"`
		} `json:"jobs"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	for _, s := range doc.Jobs[job].Steps {
		if s.Name == step {
			return s.Run
		}
	}
	t.Fatalf("github-actions.yaml: job %q has no step %q", job, step)
	return ""
}

// ciGitLabScript returns the element of job's script in
// examples/ci/gitlab-ci.yaml that holds want.
func ciGitLabScript(t *testing.T, job, want string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "examples", "ci", "gitlab-ci.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	j, _ := doc[job].(map[string]any)
	script, _ := j["script"].([]any)
	for _, l := range script {
		if l, ok := l.(string); ok && strings.Contains(l, want) {
			return l
		}
	}
	t.Fatalf("gitlab-ci.yaml: job %q runs no %q", job, want)
	return ""
}

// ciShell runs script with bash as GitHub Actions runs a `shell: bash` step
// (-e -o pipefail) in dir, with this test binary as tandem on PATH (see
// TestMain). It returns the step's exit error, its output and the job
// summary it wrote.
func ciShell(t *testing.T, dir, script string, env ...string) (error, string, string) {
	t.Helper()
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin, tmp := t.TempDir(), t.TempDir()
	if err := os.Symlink(self, filepath.Join(bin, "tandem")); err != nil {
		t.Fatal(err)
	}
	summary := filepath.Join(t.TempDir(), "summary.md")
	cmd := exec.Command(bash, "--noprofile", "--norc", "-e", "-o", "pipefail", "-c", script)
	cmd.Dir = dir
	cmd.Env = append([]string{"PATH=" + bin + ":" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "RUNNER_TEMP=" + tmp,
		"GITHUB_STEP_SUMMARY=" + summary, "TANDEM_CACHE_DIR=" + t.TempDir(), "KUBECONFIG=" + filepath.Join(tmp, "no-kubeconfig")}, env...)
	out, runErr := cmd.CombinedOutput()
	got, _ := os.ReadFile(summary)
	return runErr, string(out), string(got)
}

// TestCIPlanForTheApproverNeverBlocksAFix runs the GitHub example's
// plan-merge step (the plan shown at reconcile's approval gate) on a real git
// repository. A push that fixes a main whose previous commit does not render
// must still reconcile: `tandem diff --against <that commit>` fails, and
// before, so did the step, plan-merge with it, and reconcile (which needs it)
// was skipped — the fix never deployed (review revvendor HIGH 3). Now the
// step succeeds and the summary says the plan is unavailable and why. With no
// cluster readable (no kubeconfig here) the plan compares each cluster with
// main before the push, and says so.
func TestCIPlanForTheApproverNeverBlocksAFix(t *testing.T) {
	script := ciStep(t, "plan-merge", "Plan for the approver")
	dir := gitManifest(t)
	git := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-c", "user.name=t", "-c", "user.email=t@example"}, args...)...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	base := git("rev-parse", "HEAD")
	tpl := filepath.Join(dir, "charts/cache/templates/statefulset.yaml")
	good, err := os.ReadFile(tpl)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tpl, []byte("{{ fail \"broken on purpose\" }}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	git("commit", "-qam", "broken")
	broken := git("rev-parse", "HEAD")
	if err := os.WriteFile(tpl, append(good, []byte("# fixed\n")...), 0o644); err != nil {
		t.Fatal(err)
	}
	git("commit", "-qam", "fix")
	fix := git("rev-parse", "HEAD")

	t.Run("the commit before the push does not render", func(t *testing.T) {
		err, out, summary := ciShell(t, dir, script, "BEFORE="+broken, "GITHUB_SHA="+fix)
		if err != nil {
			t.Fatalf("the plan step failed (%v): plan-merge fails and reconcile, which needs it, would be skipped\n%s\nsummary:\n%s", err, out, summary)
		}
		for _, want := range []string{"## What the reconcile of `" + fix[:12] + "` will change", "could not be read",
			"**blue, green**: compared with `" + broken[:12] + "`, main before this push",
			"**Plan unavailable** for blue, green; reconcile still waits for approval", "broken on purpose"} {
			if !strings.Contains(summary, want) {
				t.Errorf("the summary does not say %q:\n%s", want, summary)
			}
		}
	})
	t.Run("gitlab, the commit before the push does not render", func(t *testing.T) {
		gl := ciGitLabScript(t, "tandem-plan-merge", "tandem status")
		err, out, _ := ciShell(t, dir, gl, "CI_COMMIT_BEFORE_SHA="+broken, "CI_COMMIT_SHA="+fix, "TANDEM_READ_KUBECONFIG="+filepath.Join(t.TempDir(), "none"))
		plan, _ := os.ReadFile(filepath.Join(dir, "plan.md"))
		os.Remove(filepath.Join(dir, "plan.md"))
		if err != nil {
			t.Fatalf("the plan script failed (%v)\n%s\nplan.md:\n%s", err, out, plan)
		}
		for _, want := range []string{"## What the reconcile of `" + fix[:12] + "` will change", "could not be read",
			"**blue, green**: compared with `" + broken[:12] + "`, the default branch before this push",
			"**Plan unavailable** for blue, green; the reconcile still runs", "broken on purpose"} {
			if !strings.Contains(string(plan), want) {
				t.Errorf("plan.md does not say %q:\n%s", want, plan)
			}
		}
	})
	t.Run("the commit before the push renders", func(t *testing.T) {
		err, out, summary := ciShell(t, dir, script, "BEFORE="+base, "GITHUB_SHA="+fix)
		if err != nil {
			t.Fatalf("the plan step failed (%v)\n%s\nsummary:\n%s", err, out, summary)
		}
		for _, want := range []string{"compared with `" + base[:12] + "`, main before this push", "tandem plan for `" + base[:7]} {
			if !strings.Contains(summary, want) {
				t.Errorf("the summary does not say %q:\n%s", want, summary)
			}
		}
		if strings.Contains(summary, "Plan unavailable") {
			t.Errorf("a plan that could be made is unavailable:\n%s", summary)
		}
	})
}
