package reconcile_test

import (
	"context"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tandem-gitops/tandem/e2e/e2etest"
	"github.com/tandem-gitops/tandem/reconciler"
)

// The tests in this file break something on purpose. Each starts from its own
// copy of examples/manifest and converges both clusters to it, so it does not
// depend on what ran before; they leave behind only what the next converge
// prunes.

// prepare returns a harness and a fresh manifest copy both clusters are
// converged to.
func prepare(t *testing.T) (*harness, *e2etest.ManifestRepo) {
	t.Helper()
	h := newHarness(t)
	repo := e2etest.CopyExample(t)
	h.converge(t, repo.Dir)
	return h, repo
}

func TestReconcileUnhealthyReleaseStopsOnlyItsCluster(t *testing.T) {
	h, repo := prepare(t)
	before := h.revisions(t, "blue")

	addChart(t, repo, "unschedulable")
	addRelease(t, repo, `  - name: stuck
    namespace: stuck
    chart: ./charts/unschedulable
    wave: 0
    timeout: 15s
`)
	enableOnGreen(t, repo, "stuck")
	// A change in a later wave, to see that blue does not get it.
	repo.Replace(t, "values/storefront.yaml", "replicaCount: 3", "replicaCount: 2")
	repo.Commit(t, "add a release whose pods never schedule; storefront to 2 replicas")

	res := h.reconcile(t, repo.Dir)
	if res.Code != 1 {
		t.Errorf("exit %d, want 1", res.Code)
	}
	if !strings.Contains(res.Stderr, "1 of 2 clusters failed (blue)") {
		t.Errorf("stderr does not say that blue (alone) failed:\n%s", res.Stderr)
	}
	rep := decodeReport(t, res)
	if diff := cmp.Diff([]string{"blue"}, rep.Failed()); diff != "" {
		t.Errorf("failed clusters (-want +got):\n%s", diff)
	}

	blue := clusterReport(t, rep, "blue")
	skipped := func(a reconciler.Action, rev int) step {
		return step{Action: a, Outcome: reconciler.OutcomeSkipped, FromRevision: rev}
	}
	wantBlue := map[string]step{
		"stuck":         {Action: reconciler.ActionInstall, Outcome: reconciler.OutcomeFailed, Revision: 1},
		"platform":      {Action: reconciler.ActionUnchanged, Outcome: reconciler.OutcomeOK, FromRevision: before["platform"], Revision: before["platform"]},
		"cache":         {Action: reconciler.ActionUnchanged, Outcome: reconciler.OutcomeOK, FromRevision: before["cache"], Revision: before["cache"]},
		"example":       skipped(reconciler.ActionUnchanged, before["example"]),
		"storefront":    skipped(reconciler.ActionUpgrade, before["storefront"]),
		"orders-worker": skipped(reconciler.ActionUnchanged, before["orders-worker"]),
	}
	if diff := cmp.Diff(wantBlue, steps(blue)); diff != "" {
		t.Errorf("blue releases (-want +got):\n%s", diff)
	}
	if e := releaseReport(t, blue, "stuck").Error; !strings.Contains(e, "health") {
		t.Errorf("blue stuck error %q does not say it was never healthy", e)
	}
	if diff := cmp.Diff(reconciler.Counts{Unchanged: 2, Failed: 1, Skipped: 3}, blue.Counts); diff != "" {
		t.Errorf("blue counts (-want +got):\n%s", diff)
	}
	lines := progressLines(res.Stderr)
	for _, rel := range []string{"example", "storefront", "orders-worker"} {
		if indexOf(lines, "blue", rel, "skipped") < 0 {
			t.Errorf("no progress line says blue skipped %s", rel)
		}
	}
	// The storefront change never reached blue.
	want := maps.Clone(before)
	want["stuck"] = 1
	if diff := cmp.Diff(want, h.revisions(t, "blue")); diff != "" {
		t.Errorf("blue Helm revisions (-want +got):\n%s", diff)
	}
	if got := deploymentReplicas(h.deployment(t, "blue", "shop", "storefront")).Spec; got != 3 {
		t.Errorf("blue storefront wants %d replicas, want 3 (the change must not be applied)", got)
	}

	// green completes: the release is scaled to zero there, and healthy at zero.
	green := clusterReport(t, rep, "green")
	if green.Error != "" {
		t.Errorf("green error %q, want none", green.Error)
	}
	if diff := cmp.Diff(reconciler.Counts{Installed: 1, Unchanged: 2}, green.Counts); diff != "" {
		t.Errorf("green counts (-want +got):\n%s", diff)
	}
	if got := steps(green)["stuck"]; got != (step{Action: reconciler.ActionInstall, Outcome: reconciler.OutcomeOK, Revision: 1}) {
		t.Errorf("green stuck: %+v, want installed ok at revision 1", got)
	}
	d := h.deployment(t, "green", "stuck", "stuck")
	if diff := cmp.Diff(replicas{0, 0, true}, deploymentReplicas(d)); diff != "" {
		t.Errorf("green stuck replicas (-want +got):\n%s", diff)
	}
	if got := d.Annotations[annActiveReplicas]; got != "1" {
		t.Errorf("green stuck annotation %s = %q, want \"1\"", annActiveReplicas, got)
	}

	t.Run("a rerun does not call the release healthy", func(t *testing.T) {
		// A failed install used to stay "deployed" in Helm storage with the
		// desired digest, so the rerun planned it unchanged and exited 0
		// while the Deployment had no available pod. It is now marked failed.
		res := h.reconcile(t, repo.Dir)
		if res.Code != 1 {
			t.Errorf("exit %d, want 1", res.Code)
		}
		blue := clusterReport(t, decodeReport(t, res), "blue")
		if got := steps(blue)["stuck"].Outcome; got != reconciler.OutcomeFailed {
			t.Errorf("blue stuck outcome %q, want failed", got)
		}
		if got := steps(blue)["storefront"].Outcome; got != reconciler.OutcomeSkipped {
			t.Errorf("blue storefront outcome %q, want skipped", got)
		}
	})
}

func TestReconcileRecoversUpgradeOfKilledRun(t *testing.T) {
	h, repo := prepare(t)
	ctx := context.Background()

	addChart(t, repo, "hooked")
	addRelease(t, repo, `  - name: hooked
    namespace: hooked
    chart: ./charts/hooked
    values: [values/hooked.yaml]
    wave: 0
    timeout: 2m
`)
	repo.Write(t, "values/hooked.yaml", "hook:\n  enabled: false\n")
	repo.Commit(t, "add hooked")
	h.converge(t, repo.Dir)
	if got := h.storage(t, "blue")["hooked"]; got != (stored{"hooked", 1, "deployed"}) {
		t.Fatalf("hooked after install: %+v", got)
	}
	t.Cleanup(func() {
		// The hook Job of the killed upgrade is no part of any release now.
		bg := metav1.DeletePropagationBackground
		_ = h.kube["blue"].BatchV1().Jobs("hooked").Delete(ctx, "hooked-pre-upgrade", metav1.DeleteOptions{PropagationPolicy: &bg})
	})

	// The upgrade waits on a pre-upgrade hook that never completes: kill
	// tandem while the release is pending-upgrade.
	repo.Write(t, "values/hooked.yaml", "hook:\n  enabled: true\n")
	repo.Commit(t, "hooked: run the migration hook")
	p := h.start(t, repo.Dir, "--lock-duration", "5s")
	deadline := time.Now().Add(2 * time.Minute)
	for h.storage(t, "blue")["hooked"].Status != "pending-upgrade" {
		if p.exited() {
			res := p.wait(t)
			t.Fatalf("tandem exited (%d) before the upgrade was pending:\n%s", res.Code, res.Stderr)
		}
		if time.Now().After(deadline) {
			t.Fatal("hooked never became pending-upgrade")
		}
		time.Sleep(200 * time.Millisecond)
	}
	p.kill(t)
	t.Logf("killed tandem; its stderr so far:\n%s", p.stderr.String())
	if got := h.storage(t, "blue")["hooked"]; got != (stored{"hooked", 2, "pending-upgrade"}) {
		t.Fatalf("hooked after the kill: %+v, want revision 2 pending-upgrade", got)
	}

	// The next run (taking over the dead run's expired lock) recovers it,
	// upgrading to what git says now.
	repo.Write(t, "values/hooked.yaml", "hook:\n  enabled: false\n")
	repo.Commit(t, "hooked: no migration hook")
	res := h.reconcile(t, repo.Dir)
	if res.Code != 0 {
		t.Fatalf("exit %d, want 0", res.Code)
	}
	rep := decodeReport(t, res)
	blue := clusterReport(t, rep, "blue")
	got := releaseReport(t, blue, "hooked")
	want := reconciler.ReleaseReport{Name: "hooked", Namespace: "hooked", Action: reconciler.ActionUpgrade, Outcome: reconciler.OutcomeOK,
		FromRevision: 2, Revision: 3, Recovered: "pending-upgrade"}
	got.Duration = 0
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("blue hooked (-want +got):\n%s", diff)
	}
	if got := h.storage(t, "blue")["hooked"]; got != (stored{"hooked", 3, "deployed"}) {
		t.Errorf("hooked after recovery: %+v, want revision 3 deployed", got)
	}
	var hist []string
	for _, r := range h.helmHistory(t, "blue", "hooked", "hooked") {
		hist = append(hist, r.Status)
	}
	if diff := cmp.Diff([]string{"superseded", "failed", "deployed"}, hist); diff != "" {
		t.Errorf("helm history hooked statuses (-want +got):\n%s", diff)
	}
	if e := clusterReport(t, rep, "green").Error; e != "" {
		t.Errorf("green error %q", e)
	}
}

func TestReconcileStandbyUnreachable(t *testing.T) {
	h, repo := prepare(t)
	before := h.revisions(t, "blue")

	repo.Replace(t, "values/storefront.yaml", "replicaCount: 3", "replicaCount: 2")
	repo.Commit(t, "storefront: 2 replicas")
	if err := h.env.StopAPIServer("green"); err != nil {
		t.Fatal(err)
	}
	restart := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := h.env.StartAPIServer(ctx, "green"); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(restart) // does nothing when it runs already

	res := h.reconcile(t, repo.Dir)
	if res.Code != 1 {
		t.Errorf("exit %d, want 1", res.Code)
	}
	if !strings.Contains(res.Stderr, "1 of 2 clusters failed (green)") || !strings.Contains(res.Stderr, "\n  green: ") {
		t.Errorf("stderr does not name green as the failed cluster:\n%s", res.Stderr)
	}
	rep := decodeReport(t, res)
	if diff := cmp.Diff([]string{"green"}, rep.Failed()); diff != "" {
		t.Errorf("failed clusters (-want +got):\n%s", diff)
	}
	blue := clusterReport(t, rep, "blue")
	if blue.Error != "" {
		t.Errorf("blue error %q, want none", blue.Error)
	}
	if diff := cmp.Diff(reconciler.Counts{Upgraded: 1, Unchanged: 4}, blue.Counts); diff != "" {
		t.Errorf("blue counts (-want +got):\n%s", diff)
	}
	want := maps.Clone(before)
	want["storefront"]++
	if diff := cmp.Diff(want, h.revisions(t, "blue")); diff != "" {
		t.Errorf("blue Helm revisions (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(replicas{2, 2, true}, deploymentReplicas(h.deployment(t, "blue", "shop", "storefront"))); diff != "" {
		t.Errorf("blue storefront replicas (-want +got):\n%s", diff)
	}

	restart()
	res = h.reconcile(t, repo.Dir)
	if res.Code != 0 {
		t.Fatalf("with green back: exit %d, want 0", res.Code)
	}
	rep = decodeReport(t, res)
	for c, n := range map[string]int{"blue": 5, "green": 2} {
		if diff := cmp.Diff(reconciler.Counts{Unchanged: n}, clusterReport(t, rep, c).Counts); diff != "" {
			t.Errorf("with green back: cluster %s counts (-want +got):\n%s", c, diff)
		}
	}
}

func TestReconcileConcurrentRunsTakeTurns(t *testing.T) {
	h, repo := prepare(t)
	before := map[string]map[string]int{"blue": h.revisions(t, "blue"), "green": h.revisions(t, "green")}

	// Two checkouts with different changes to a release both clusters run, so
	// each run has work on each cluster whichever goes first.
	repos := map[string]*e2etest.ManifestRepo{"a": repo, "b": e2etest.CopyExample(t)}
	for id, r := range repos {
		r.Replace(t, "tandem.yaml", `set: {image.tag: "1.2.3"}`, `set: {image.tag: "1.3.0-`+id+`"}`)
		r.Commit(t, "example 1.3.0-"+id)
	}
	procs := map[string]*process{}
	for id, r := range repos {
		procs[id] = h.start(t, r.Dir)
	}
	reports := map[string]reconciler.Report{}
	for id, p := range procs {
		res := p.wait(t)
		if res.Code != 0 {
			t.Fatalf("run %s: exit %d, want 0 (the second run waits for the lock)", id, res.Code)
		}
		reports[id] = decodeReport(t, res)
	}

	for _, c := range []string{"blue", "green"} {
		a, b := clusterReport(t, reports["a"], c), clusterReport(t, reports["b"], c)
		if a.LockedAt == nil || b.LockedAt == nil {
			t.Fatalf("cluster %s: a run reports no lockedAt (a %v, b %v)", c, a.LockedAt, b.LockedAt)
		}
		first, second, firstID, secondID := a, b, "a", "b"
		if b.LockedAt.Before(*a.LockedAt) {
			first, second, firstID, secondID = b, a, "b", "a"
		}
		if !first.FinishedAt.Before(*second.LockedAt) {
			t.Errorf("cluster %s: run %s held it %s..%s, run %s from %s: the runs overlap", c,
				firstID, first.LockedAt.Format(time.RFC3339Nano), first.FinishedAt.Format(time.RFC3339Nano),
				secondID, second.LockedAt.Format(time.RFC3339Nano))
		}
		// Each run upgraded the release once, the second from the first's revision.
		n := before[c]["example"]
		want := map[string]step{
			firstID:  {Action: reconciler.ActionUpgrade, Outcome: reconciler.OutcomeOK, FromRevision: n, Revision: n + 1},
			secondID: {Action: reconciler.ActionUpgrade, Outcome: reconciler.OutcomeOK, FromRevision: n + 1, Revision: n + 2},
		}
		got := map[string]step{firstID: steps(first)["example"], secondID: steps(second)["example"]}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("cluster %s example by run (-want +got):\n%s", c, diff)
		}
		if got := h.revisions(t, c)["example"]; got != n+2 {
			t.Errorf("cluster %s example at revision %d, want %d", c, got, n+2)
		}
		img := h.deployment(t, c, "example", "example").Spec.Template.Spec.Containers[0].Image
		if wantTag := ":1.3.0-" + secondID; !strings.HasSuffix(img, wantTag) {
			t.Errorf("cluster %s example image %q, want the later run's tag %s", c, img, wantTag)
		}
	}
}

func TestReconcileUnownedReleaseNeedsAdopt(t *testing.T) {
	h, repo := prepare(t)
	before := h.revisions(t, "blue")

	addChart(t, repo, "notes")
	h.helm(t, "blue", "install", "notes", repo.Dir+"/charts/notes", "-n", "notes", "--create-namespace")
	t.Cleanup(func() { h.helm(t, "blue", "uninstall", "notes", "-n", "notes", "--ignore-not-found") })
	addRelease(t, repo, `  - name: notes
    namespace: notes
    chart: ./charts/notes
    wave: 2
`)
	repo.Commit(t, "manage notes")

	res := h.reconcile(t, repo.Dir)
	if res.Code != 1 {
		t.Errorf("unowned release: exit %d, want 1", res.Code)
	}
	blue := clusterReport(t, decodeReport(t, res), "blue")
	got := releaseReport(t, blue, "notes")
	if diff := cmp.Diff(step{Action: reconciler.ActionUpgrade, Outcome: reconciler.OutcomeFailed, FromRevision: 1}, steps(blue)["notes"]); diff != "" {
		t.Errorf("blue notes (-want +got):\n%s", diff)
	}
	if !strings.Contains(got.Error, "adopt: true") {
		t.Errorf("blue notes error %q does not point at adopt: true", got.Error)
	}
	if diff := cmp.Diff(reconciler.Counts{Unchanged: 5, Failed: 1}, blue.Counts); diff != "" {
		t.Errorf("blue counts (-want +got):\n%s", diff)
	}
	if got := h.storage(t, "blue")["notes"]; got != (stored{"notes", 1, "deployed"}) {
		t.Errorf("notes in Helm storage: %+v, want the hand-installed revision 1", got)
	}
	if v, ok := h.releaseLabels(t, "blue", "notes", "notes", 1)[reconciler.LabelManagedBy]; ok {
		t.Errorf("hand-installed notes got %s=%q", reconciler.LabelManagedBy, v)
	}

	repo.Replace(t, "tandem.yaml", "    chart: ./charts/notes\n", "    chart: ./charts/notes\n    adopt: true\n")
	repo.Commit(t, "adopt notes")
	res = h.reconcile(t, repo.Dir)
	if res.Code != 0 {
		t.Fatalf("adopt: true: exit %d, want 0", res.Code)
	}
	blue = clusterReport(t, decodeReport(t, res), "blue")
	got = releaseReport(t, blue, "notes")
	if diff := cmp.Diff(step{Action: reconciler.ActionUpgrade, Outcome: reconciler.OutcomeOK, FromRevision: 1, Revision: 2}, steps(blue)["notes"]); diff != "" {
		t.Errorf("blue notes (-want +got):\n%s", diff)
	}
	if !got.Adopted {
		t.Error("blue notes: report does not say adopted")
	}
	if v := h.releaseLabels(t, "blue", "notes", "notes", 2)[reconciler.LabelManagedBy]; v != reconciler.ManagedByValue {
		t.Errorf("adopted notes revision 2: %s=%q, want %q", reconciler.LabelManagedBy, v, reconciler.ManagedByValue)
	}
	cm, err := h.kube["blue"].CoreV1().ConfigMaps("notes").Get(context.Background(), "notes", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if cm.Labels[labelRelease] != "notes" || cm.Labels[labelCluster] != "blue" {
		t.Errorf("adopted ConfigMap labels %v lack tandem's release/cluster labels", cm.Labels)
	}
	want := maps.Clone(before)
	want["notes"] = 2
	if diff := cmp.Diff(want, h.revisions(t, "blue")); diff != "" {
		t.Errorf("blue Helm revisions (-want +got):\n%s", diff)
	}
}
