package reconcile_test

import (
	"context"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tandem-gitops/tandem/reconciler"
)

// TestStandbyHooksSkippedOnScaledDownStandby (issue 11 item 5): Helm does not
// post-render hooks, so a scale-to-zero release's hook Job (a migration)
// would run on the Standby at full strength. The release's pre-install and
// pre-upgrade hook Job is created on the Active cluster at install and at
// upgrade, and never on the Standby, whose Deployment is at zero; with
// standbyHooks: run it is created there too.
func TestStandbyHooksSkippedOnScaledDownStandby(t *testing.T) {
	h, repo := prepare(t)
	ctx := context.Background()
	const ns, migrate, cleanup = "migrating", "migrating-migrate", "migrating-cleanup"
	job := migrate
	jobExists := func(cluster string) bool {
		t.Helper()
		_, err := h.kube[cluster].BatchV1().Jobs(ns).Get(ctx, job, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return false
		}
		if err != nil {
			t.Fatalf("cluster %s: get Job %s/%s: %v", cluster, ns, job, err)
		}
		return true
	}
	deleteJob := func(cluster string) {
		t.Helper()
		bg := metav1.DeletePropagationBackground
		err := h.kube[cluster].BatchV1().Jobs(ns).Delete(ctx, job, metav1.DeleteOptions{PropagationPolicy: &bg})
		if err != nil && !apierrors.IsNotFound(err) {
			t.Fatal(err)
		}
	}
	reconcileOK := func(wantAction reconciler.Action) {
		t.Helper()
		res := h.reconcile(t, repo.Dir)
		if res.Code != 0 {
			t.Fatalf("reconcile: exit %d\n%s", res.Code, res.Stderr)
		}
		rep := decodeReport(t, res)
		for _, c := range []string{"blue", "green"} {
			if got := releaseReport(t, clusterReport(t, rep, c), "migrating"); got.Action != wantAction || got.Outcome != reconciler.OutcomeOK {
				t.Fatalf("%s: migrating %s %s (%s), want %s ok", c, got.Action, got.Outcome, got.Error, wantAction)
			}
		}
	}
	t.Cleanup(func() {
		for _, job = range []string{migrate, cleanup} {
			deleteJob("blue")
			deleteJob("green")
		}
	})

	addChart(t, repo, "migrating")
	addRelease(t, repo, `  - name: migrating
    namespace: migrating
    chart: ./charts/migrating
    values: [values/migrating.yaml]
    wave: 0
    timeout: 2m
`)
	enableOnGreen(t, repo, "migrating")
	repo.Write(t, "values/migrating.yaml", "schema: \"1\"\n")
	repo.Commit(t, "add migrating, whose hook Job migrates a database")
	reconcileOK(reconciler.ActionInstall)
	if !jobExists("blue") {
		t.Error("install: the pre-install hook Job was not created on the Active cluster")
	}
	if jobExists("green") {
		t.Error("install: the pre-install hook Job was created on the Standby, where the release is scaled to zero")
	}
	dep, err := h.kube["green"].AppsV1().Deployments(ns).Get(ctx, "migrating", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if r := dep.Spec.Replicas; r == nil || *r != 0 {
		t.Errorf("green Deployment replicas %v, want 0", r)
	}

	// An upgrade runs the pre-upgrade hook on the Active only.
	deleteJob("blue")
	repo.Write(t, "values/migrating.yaml", "schema: \"2\"\n")
	repo.Commit(t, "migrating: schema 2")
	reconcileOK(reconciler.ActionUpgrade)
	if !jobExists("blue") {
		t.Error("upgrade: the pre-upgrade hook Job was not created on the Active cluster")
	}
	if jobExists("green") {
		t.Error("upgrade: the pre-upgrade hook Job was created on the Standby, where the release is scaled to zero")
	}

	// standbyHooks: run opts in: the Standby runs the hook too.
	repo.Replace(t, "tandem.yaml", "    chart: ./charts/migrating\n", "    chart: ./charts/migrating\n    standbyHooks: run\n")
	repo.Write(t, "values/migrating.yaml", "schema: \"3\"\n")
	repo.Commit(t, "migrating: schema 3, hooks on the Standby too")
	reconcileOK(reconciler.ActionUpgrade)
	if !jobExists("green") {
		t.Error("standbyHooks: run: the pre-upgrade hook Job was not created on the Standby")
	}

	// Back to the default, then retired: the prune uninstalls the release
	// from the Standby without its pre-delete hook (its last revision there
	// was written without hooks), from the Active with it.
	repo.Replace(t, "tandem.yaml", "    standbyHooks: run\n", "")
	repo.Write(t, "values/migrating.yaml", "schema: \"4\"\n")
	repo.Commit(t, "migrating: schema 4, hooks skipped on the Standby again")
	reconcileOK(reconciler.ActionUpgrade)
	repo.Replace(t, "tandem.yaml", `  - name: migrating
    namespace: migrating
    chart: ./charts/migrating
    values: [values/migrating.yaml]
    wave: 0
    timeout: 2m
`, "")
	repo.Replace(t, "tandem.yaml", "releases: [platform, example, migrating]", "releases: [platform, example]")
	repo.Commit(t, "retire migrating")
	res := h.reconcile(t, repo.Dir, "--allow-mass-prune")
	if res.Code != 0 {
		t.Fatalf("prune: exit %d\n%s", res.Code, res.Stderr)
	}
	rep := decodeReport(t, res)
	for _, c := range []string{"blue", "green"} {
		pruned := clusterReport(t, rep, c).Pruned
		if len(pruned) != 1 || pruned[0].Name != "migrating" || pruned[0].Outcome != reconciler.OutcomeOK {
			t.Fatalf("%s: pruned %+v, want migrating ok", c, pruned)
		}
	}
	job = cleanup
	if !jobExists("blue") {
		t.Error("prune: the pre-delete hook Job was not created on the Active cluster")
	}
	if jobExists("green") {
		t.Error("prune: the pre-delete hook Job was created on the Standby, where the release was written without hooks")
	}
}
