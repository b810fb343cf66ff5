package drift

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/tandem-gitops/tandem/e2e/e2etest"
)

// The examples' drift credential: its admission policy's message, and the user.
const (
	dryRunOnly = "the tandem drift credential may make dry-run requests only"
	driftUser  = "system:serviceaccount:tandem-drift:tandem-drift"
)

// TestCIDriftCredentialAndApprovalPlan runs what examples/ci sets up against
// the real clusters:
//
//   - examples/ci/drift-credential.yaml, applied as an administrator, gives
//     the drift job a credential that `tandem diff` (live, server-side-apply
//     dry runs) works with, while every write of that user that is not a
//     dry run is refused by the admission policy, and the user cannot change
//     the policy. RBAC alone cannot do this: it authorizes a dry run like the
//     write (review revvendor MEDIUM 4).
//   - The GitHub workflow's plan at the approval gate (plan-merge), with that
//     credential, compares each cluster with the commit it last applied
//     completely (`tandem status` state.appliedCommit): a change of an earlier
//     push that was never applied is in the plan, since the reconcile applies
//     it; after a partial run it compares with main before the push and says
//     so (review revvendor MEDIUM 5).
func TestCIDriftCredentialAndApprovalPlan(t *testing.T) {
	env := clusters.Env(t)
	admin := newRunner(t, env.Kubeconfig())
	kc := kubectl{bin: env.Tool("kubectl"), kubeconfig: env.Kubeconfig()}
	root := e2etest.ModuleRoot(t)
	credential := filepath.Join(root, "examples", "ci", "drift-credential.yaml")

	repo := e2etest.CopyExample(t)
	src := []string{"--manifest-dir", repo.Dir}
	applied := strings.TrimSpace(repo.Git(t, "rev-parse", "HEAD"))
	// The reconcile job's step, as the workflow has it: what it writes must
	// leave the checkout clean, or no record names the commit applied.
	runReconcileStep(t, root, repo.Dir, env.Kubeconfig())

	// The drift credential on both clusters, and a kubeconfig of its tokens.
	for _, c := range env.Names() {
		kc.run(t, c, "apply", "--server-side", "-f", credential)
	}
	t.Cleanup(func() {
		for _, c := range env.Names() {
			cmd := exec.Command(kc.bin, "--kubeconfig", kc.kubeconfig, "--context", c, "delete", "--ignore-not-found", "--wait=false", "-f", credential)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Logf("clean up %s: %v\n%s", c, err, out)
			}
		}
	})
	var kcfg strings.Builder
	kcfg.WriteString("apiVersion: v1\nkind: Config\nclusters:\n")
	for _, c := range env.Names() {
		server := kc.run(t, c, "config", "view", "--raw", "--minify", "-o", "jsonpath={.clusters[0].cluster.server}")
		ca := kc.run(t, c, "config", "view", "--raw", "--minify", "-o", "jsonpath={.clusters[0].cluster.certificate-authority-data}")
		fmt.Fprintf(&kcfg, "- name: %s\n  cluster: {server: %q, certificate-authority-data: %q}\n", c, server, ca)
	}
	kcfg.WriteString("users:\n")
	for _, c := range env.Names() {
		token := kc.run(t, c, "-n", "tandem-drift", "create", "token", "tandem-drift", "--duration=1h")
		fmt.Fprintf(&kcfg, "- name: %s\n  user: {token: %q}\n", c, token)
	}
	kcfg.WriteString("contexts:\n")
	for _, c := range env.Names() {
		fmt.Fprintf(&kcfg, "- name: %s\n  context: {cluster: %s, user: %s}\n", c, c, c)
	}
	readKubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(readKubeconfig, []byte(kcfg.String()+"current-context: blue\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	drift := kubectl{bin: kc.bin, kubeconfig: readKubeconfig}
	reader := newRunner(t, readKubeconfig)

	step := func(name string, f func(t *testing.T)) {
		if !t.Run(name, f) {
			t.FailNow()
		}
	}

	step("the drift credential writes nothing", func(t *testing.T) {
		cm := filepath.Join(t.TempDir(), "cm.yaml")
		if err := os.WriteFile(cm, []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: e2e-drift-write, namespace: example}\ndata: {k: v}\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, c := range env.Names() {
			// The policy takes effect within seconds of its creation.
			var out string
			var err error
			for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(time.Second) {
				out, err = drift.try(c, "apply", "--server-side", "--field-manager=e2e", "-f", cm)
				if err != nil && strings.Contains(out, dryRunOnly) {
					break
				}
			}
			if err == nil || !strings.Contains(out, dryRunOnly) {
				t.Fatalf("%s: a server-side apply as the drift user: %v, want refused by the policy:\n%s", c, err, out)
			}
			if out, err := drift.try(c, "apply", "--server-side", "--field-manager=e2e", "--dry-run=server", "-f", cm); err != nil {
				t.Errorf("%s: the same apply as a dry run is refused: %v\n%s", c, err, out)
			}
			// RBAC lets it patch a Deployment (the dry runs need that); the policy does not.
			if out, err := drift.try(c, "-n", "example", "patch", "deployment/example", "--type=merge", "-p", `{"metadata":{"labels":{"e2e":"hand"}}}`); err == nil || !strings.Contains(out, dryRunOnly) {
				t.Errorf("%s: a patch of deployment/example as the drift user: %v, want refused by the policy:\n%s", c, err, out)
			}
			if labels := kc.run(t, c, "-n", "example", "get", "deployment/example", "-o", "jsonpath={.metadata.labels.e2e}"); labels != "" {
				t.Errorf("%s: the drift user's patch landed: label e2e=%q", c, labels)
			}
			// Reading all resources (get on "*") reaches the connect subresources too: a node's
			// kubelet through nodes/proxy, a Service through services/proxy, a pod's exec. They
			// are CONNECT requests, never dry runs: the policy refuses them.
			node := kc.run(t, c, "get", "nodes", "-o", "jsonpath={.items[0].metadata.name}")
			for _, path := range []string{"/api/v1/nodes/" + node + "/proxy/pods",
				"/api/v1/namespaces/example/services/example/proxy/",
				"/api/v1/namespaces/example/pods/any/exec?command=true&stdout=true"} {
				if out, err := drift.try(c, "get", "--raw", path); err == nil || !strings.Contains(out, dryRunOnly) {
					t.Errorf("%s: GET %s as the drift user: %v, want refused by the policy:\n%s", c, path, err, out)
				}
			}
			// The check drift-credential.yaml asks for before a token is handed out.
			if out, err := kc.try(c, "--as="+driftUser, "-n", "tandem-drift", "create", "configmap", "tandem-drift-probe", "--from-literal=k=v"); err == nil || !strings.Contains(out, dryRunOnly) {
				t.Errorf("%s: the documented probe: %v, want refused by the policy:\n%s", c, err, out)
			}
			// Nor can it switch the policy off (admission policies are not subject to admission).
			if out, err := drift.try(c, "patch", "validatingadmissionpolicybinding/tandem-drift-dry-run-only", "--type=merge", "-p", `{"spec":{"validationActions":["Audit"]}}`); err == nil || !strings.Contains(out, "forbidden") {
				t.Errorf("%s: the drift user patching the policy binding: %v, want forbidden:\n%s", c, err, out)
			}
			if got := kc.run(t, c, "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}", "--kubeconfig", readKubeconfig); got != driftUser {
				t.Errorf("%s: the kubeconfig authenticates as %q, want %q", c, got, driftUser)
			}
		}
		if res := kc.run(t, "blue", "-n", "example", "get", "configmap", "--ignore-not-found", "e2e-drift-write", "-o", "name"); res != "" {
			t.Errorf("the drift user created %s", res)
		}
	})

	step("the drift job's diff works with it", func(t *testing.T) {
		res := reader.run(t, diffTimeout, append([]string{"diff", "--exit-code", "-o", "markdown"}, src...)...)
		wantCode(t, res, 0)
		if !strings.Contains(res.Stdout, marker) {
			t.Errorf("no report:\n%s", res.Stdout)
		}
	})

	step("status names the commit applied", func(t *testing.T) {
		if got := appliedCommits(t, reader, src); got["blue"] != applied || got["green"] != applied {
			t.Fatalf("applied commits %v, want %s on both", got, applied)
		}
	})

	// Two pushes: the first's reconcile was rejected (never ran), the second is up for approval.
	repo.Replace(t, "values/example-green.yaml", "greeting: hello from green", "greeting: hello again from green")
	before := repo.Commit(t, "green: a new greeting (its reconcile was rejected)")
	repo.Write(t, "values/storefront.yaml", repo.Read(t, "values/storefront.yaml")+"greeting: hello from the new shop\n")
	head := repo.Commit(t, "storefront: a new greeting")
	script := planStep(t, root)

	step("the approver's plan shows every change the reconcile applies", func(t *testing.T) {
		summary := runPlanStep(t, script, repo.Dir, readKubeconfig, before, head)
		if want := "**blue, green**: compared with `" + applied[:12] + "`, the commit last applied completely there"; !strings.Contains(summary, want) {
			t.Errorf("the plan does not say %q:\n%s", want, summary)
		}
		for _, want := range []string{
			"greeting: hello from the new shop", // this push, on blue
			"value: hello again from green",     // the earlier push, never applied, on green
		} {
			if !slices.ContainsFunc(strings.Split(summary, "\n"), func(l string) bool { return strings.HasPrefix(l, "+") && strings.HasSuffix(l, want) }) {
				t.Errorf("the plan does not add %q:\n%s", want, summary)
			}
		}
		if strings.Contains(summary, "Plan unavailable") || strings.Contains(summary, "could not be read") {
			t.Errorf("the plan failed:\n%s", summary)
		}
	})

	// A run of one release: the records name no commit held all of. Comparing with main
	// before the push would hide green's change of the earlier push, which this reconcile
	// applies; the plan compares those clusters live instead (review revci).
	step("after a partial run it compares live", func(t *testing.T) {
		wantCode(t, admin.run(t, reconcileTimeout, append([]string{"reconcile", "--standby-guard=off", "--release", "storefront"}, src...)...), 0)
		if got := appliedCommits(t, reader, src); got["blue"] != "" || got["green"] != "" {
			t.Fatalf("after a run of one release: applied commits %v, want none", got)
		}
		summary := runPlanStep(t, script, repo.Dir, readKubeconfig, before, head)
		if want := "**blue, green**: compared with what runs there now (live `tandem diff`)"; !strings.Contains(summary, want) {
			t.Errorf("the plan does not say %q:\n%s", want, summary)
		}
		if !slices.ContainsFunc(strings.Split(summary, "\n"), func(l string) bool {
			return strings.HasPrefix(l, "+") && strings.HasSuffix(l, "value: hello again from green")
		}) {
			t.Errorf("the plan does not show green's change of the earlier push, never applied there:\n%s", summary)
		}
		if strings.Contains(summary, "Plan unavailable") {
			t.Errorf("the plan failed:\n%s", summary)
		}
		// GitLab's tandem-plan-merge script alike.
		plan := runGitLabPlan(t, root, repo.Dir, readKubeconfig, before, head)
		if want := "**blue, green**: compared with what runs there now (live `tandem diff`)"; !strings.Contains(plan, want) {
			t.Errorf("GitLab's plan does not say %q:\n%s", want, plan)
		}
		if !strings.Contains(plan, "value: hello again from green") || strings.Contains(plan, "Plan unavailable") {
			t.Errorf("GitLab's plan does not show green's change of the earlier push:\n%s", plan)
		}
	})

	// Someone reconciles from a checkout with an edit not committed: the
	// clusters hold what no commit does, so no record may name HEAD as held
	// (the next approval plan would compare with HEAD and not show that the
	// reconcile undoes the edit).
	step("a run of uncommitted files names no applied commit", func(t *testing.T) {
		wantCode(t, admin.run(t, reconcileTimeout, append([]string{"reconcile", "--standby-guard=off"}, src...)...), 0)
		if got := appliedCommits(t, reader, src); got["blue"] != head || got["green"] != head {
			t.Fatalf("after a complete run of a clean checkout: applied commits %v, want %s on both", got, head)
		}
		repo.Replace(t, "values/storefront.yaml", "greeting: hello from the new shop", "greeting: a hotfix never committed")
		wantCode(t, admin.run(t, reconcileTimeout, append([]string{"reconcile", "--standby-guard=off"}, src...)...), 0)
		if got := appliedCommits(t, reader, src); got["blue"] != "" || got["green"] != "" {
			t.Fatalf("after a run of a checkout with an uncommitted edit: applied commits %v, want none", got)
		}
	})
}

// try runs kubectl and returns its combined output and error, without failing.
func (k kubectl) try(cluster string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, k.bin, append([]string{"--kubeconfig", k.kubeconfig, "--context", cluster}, args...)...).CombinedOutput()
	return string(out), err
}

// appliedCommits reads state.appliedCommit per cluster from `tandem status -o json`.
func appliedCommits(t *testing.T, r runner, src []string) map[string]string {
	t.Helper()
	res := r.run(t, diffTimeout, append([]string{"status", "-o", "json"}, src...)...)
	wantCode(t, res, 0)
	var rows []struct {
		Name  string `json:"name"`
		State *struct {
			Commit        string `json:"commit"`
			AppliedCommit string `json:"appliedCommit"`
		} `json:"state"`
	}
	res.JSON(t, &rows)
	out := map[string]string{}
	for _, r := range rows {
		if r.State == nil {
			t.Fatalf("cluster %s has no state record", r.Name)
		}
		out[r.Name] = r.State.AppliedCommit
	}
	return out
}

// planStep is the run script of examples/ci/github-actions.yaml's plan-merge
// step "Plan for the approver".
func planStep(t *testing.T, root string) string {
	t.Helper()
	return workflowStep(t, root, "plan-merge", "Plan for the approver")
}

// runReconcileStep runs the reconcile job's step "Reconcile" of
// examples/ci/github-actions.yaml as GitHub would, in the checkout dir, with
// the kubeconfig where the job writes it (the Standby guard off, as in the
// other runs here).
func runReconcileStep(t *testing.T, root, dir, kubeconfig string) {
	t.Helper()
	script := workflowStep(t, root, "reconcile", "Reconcile")
	if !strings.Contains(script, "tandem reconcile ") {
		t.Fatalf("the reconcile step runs no tandem reconcile:\n%s", script)
	}
	script = strings.Replace(script, "tandem reconcile ", "tandem reconcile --standby-guard=off ", 1)
	tmp := t.TempDir()
	b, err := os.ReadFile(kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tmp, "kubeconfig"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), reconcileTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "--noprofile", "--norc", "-e", "-o", "pipefail", "-c", script)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(tandem.Path(t))+":"+os.Getenv("PATH"), "RUNNER_TEMP="+tmp,
		"TANDEM_CACHE_DIR="+t.TempDir(), "KUBECONFIG=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the reconcile step failed: %v\n%s", err, out)
	}
}

// workflowStep is the run script of a step of examples/ci/github-actions.yaml.
func workflowStep(t *testing.T, root, job, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "examples", "ci", "github-actions.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Jobs map[string]struct {
			Steps []struct{ Name, Run string } `json:"steps"`
		} `json:"jobs"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	for _, s := range doc.Jobs[job].Steps {
		if s.Name == name {
			return s.Run
		}
	}
	t.Fatalf("github-actions.yaml: no %s step %q", job, name)
	return ""
}

// runPlanStep runs the step as GitHub would, in the checkout dir, with the
// kubeconfig where the job writes it, and returns the job summary.
func runPlanStep(t *testing.T, script, dir, kubeconfig, before, sha string) string {
	t.Helper()
	tmp := t.TempDir()
	b, err := os.ReadFile(kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tmp, "kubeconfig"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	summary := filepath.Join(tmp, "summary.md")
	ctx, cancel := context.WithTimeout(context.Background(), 2*diffTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "--noprofile", "--norc", "-e", "-o", "pipefail", "-c", script)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(tandem.Path(t))+":"+os.Getenv("PATH"), "RUNNER_TEMP="+tmp,
		"GITHUB_STEP_SUMMARY="+summary, "GITHUB_SHA="+sha, "BEFORE="+before, "TANDEM_CACHE_DIR="+t.TempDir(), "KUBECONFIG=")
	out, err := cmd.CombinedOutput()
	got, _ := os.ReadFile(summary)
	if err != nil {
		t.Fatalf("the plan step failed: %v\n%s\nsummary:\n%s", err, out, got)
	}
	t.Logf("summary:\n%s", got)
	return string(got)
}

// runGitLabPlan runs examples/ci/gitlab-ci.yaml's tandem-plan-merge script
// (the part after jq's install) in the checkout dir, as GitLab would with
// the File variable TANDEM_READ_KUBECONFIG, and returns plan.md, which it
// removes so the checkout stays clean.
func runGitLabPlan(t *testing.T, root, dir, kubeconfig, before, sha string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "examples", "ci", "gitlab-ci.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Job struct {
			Script []string `json:"script"`
		} `json:"tandem-plan-merge"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	var script string
	for _, l := range doc.Job.Script {
		if strings.Contains(l, "tandem status") {
			script = l
		}
	}
	if script == "" {
		t.Fatal("gitlab-ci.yaml: tandem-plan-merge runs no tandem status")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*diffTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "--noprofile", "--norc", "-e", "-o", "pipefail", "-c", script)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(tandem.Path(t))+":"+os.Getenv("PATH"), "TANDEM_READ_KUBECONFIG="+kubeconfig,
		"CI_COMMIT_BEFORE_SHA="+before, "CI_COMMIT_SHA="+sha, "TANDEM_CACHE_DIR="+t.TempDir(), "KUBECONFIG=")
	out, err := cmd.CombinedOutput()
	plan, _ := os.ReadFile(filepath.Join(dir, "plan.md"))
	os.Remove(filepath.Join(dir, "plan.md"))
	if err != nil {
		t.Fatalf("the plan script failed: %v\n%s\nplan.md:\n%s", err, out, plan)
	}
	t.Logf("plan.md:\n%s", plan)
	return string(plan)
}
