package comment

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestCIExamplesReconcileKeepsTheCheckoutClean runs the reconcile script of
// each example with bash in a real git checkout and a stand-in `tandem` that
// records `git status --porcelain` as it starts. tandem reconcile of a
// checkout holding a file no commit has (the report the shell's redirection
// creates before tandem starts, say) names no applied commit in the state
// records, and the approval plan of the next push falls back to the commit
// before it. The report must still be kept, and tandem's exit code must
// still be the step's.
func TestCIExamplesReconcileKeepsTheCheckoutClean(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	gh, _ := readExample(t, "github-actions.yaml")
	var ghScript string
	for _, s := range ghSteps(gh["jobs"].(map[string]any)["reconcile"].(map[string]any)) {
		if strings.Contains(s.run, "tandem reconcile") {
			ghScript = s.run
		}
	}
	gl, _ := readExample(t, "gitlab-ci.yaml")
	var glScript string
	for _, l := range toSlice(gl["tandem-reconcile"].(map[string]any)["script"]) {
		if strings.Contains(toString(l), "tandem reconcile") {
			glScript = toString(l)
		}
	}
	if ghScript == "" || glScript == "" {
		t.Fatal("no reconcile script found in the examples")
	}
	for _, tt := range []struct {
		name, script, report string // report: where the job keeps it, relative to the checkout or "tmp/"
	}{
		{name: "github", script: ghScript, report: "tmp/reconcile-report.json"},
		{name: "gitlab", script: glScript, report: "reconcile-report.json"},
	} {
		for _, code := range []string{"0", "1"} {
			t.Run(tt.name+", tandem exits "+code, func(t *testing.T) {
				root := t.TempDir()
				dir, bin, tmp := filepath.Join(root, "checkout"), filepath.Join(root, "bin"), filepath.Join(root, "tmp")
				for _, d := range []string{dir, bin, tmp} {
					if err := os.Mkdir(d, 0o755); err != nil {
						t.Fatal(err)
					}
				}
				git := func(args ...string) {
					t.Helper()
					cmd := exec.Command("git", append([]string{"-c", "user.name=t", "-c", "user.email=t@example"}, args...)...)
					cmd.Dir = dir
					if out, err := cmd.CombinedOutput(); err != nil {
						t.Fatalf("git %v: %v\n%s", args, err, out)
					}
				}
				git("init", "-q")
				if err := os.WriteFile(filepath.Join(dir, "tandem.yaml"), []byte("clusters: []\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				git("add", "tandem.yaml")
				git("commit", "-qm", "manifest")
				status := filepath.Join(root, "status")
				stub := "#!/bin/sh\ngit status --porcelain > " + status + "\necho '{\"report\": true}'\nexit " + code + "\n"
				if err := os.WriteFile(filepath.Join(bin, "tandem"), []byte(stub), 0o755); err != nil {
					t.Fatal(err)
				}
				cmd := exec.Command(bash, "--noprofile", "--norc", "-e", "-o", "pipefail", "-c", tt.script)
				cmd.Dir = dir
				cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"), "RUNNER_TEMP="+tmp, "TMPDIR="+tmp,
					"TANDEM_KUBECONFIG="+filepath.Join(tmp, "kubeconfig"))
				out, err := cmd.CombinedOutput()
				if failed := err != nil; failed != (code != "0") {
					t.Errorf("tandem exited %s, the script: %v\n%s", code, err, out)
				}
				st, err := os.ReadFile(status)
				if err != nil {
					t.Fatalf("the script never ran tandem: %v\n%s", err, out)
				}
				if len(st) != 0 {
					t.Errorf("tandem reconcile ran in a checkout with files no commit has (its run names no applied commit):\n%s", st)
				}
				report := filepath.Join(dir, tt.report)
				if strings.HasPrefix(tt.report, "tmp/") {
					report = filepath.Join(root, tt.report)
				}
				if got, err := os.ReadFile(report); err != nil || !strings.Contains(string(got), `"report": true`) {
					t.Errorf("the report is not where the job keeps it (%s): %q, %v", tt.report, got, err)
				}
			})
		}
	}
}
