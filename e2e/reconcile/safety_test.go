package reconcile_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tandem-gitops/tandem/e2e/e2etest"
	"github.com/tandem-gitops/tandem/reconciler"
)

// The tests in this file reproduce, against the real local clusters, the
// triggers of issue 8 ("Reconcile safety"), one test per item, named for it.
// Each uses a manifest of its own (its own ID and namespaces) built on the
// probe chart, and deletes its namespaces when done.

// s1Manifest has two releases named redis in two namespaces and a third
// that needs team-a's. All are in one wave, so only the need orders web
// after team-a/redis (a failed earlier wave would skip it either way).
func s1Manifest(readyA bool) string {
	ready := "true"
	if !readyA {
		ready = "false"
	}
	return idLine("e2e-s1") + twoClusters + `releases:
  - name: redis
    namespace: team-a
    chart: ./charts/probe
    set: {ready: ` + ready + `}
    wave: 0
    timeout: 20s
  - name: redis
    namespace: team-b
    chart: ./charts/probe
    wave: 0
    timeout: 1m
  - name: web
    namespace: s1-web
    chart: ./charts/probe
    wave: 0
    needs: [team-a/redis]
    timeout: 1m
`
}

// Item 1: one release name in two namespaces is two releases. Before the fix
// every real reconcile of such a manifest panicked (close of closed channel)
// and a need on team-a/redis was taken as met.
func TestSafety1SameNameTwoNamespaces(t *testing.T) {
	h := newSafetyHarness(t)
	h.deleteNamespacesOnCleanup(t, "team-a", "team-b", "s1-web")
	redisA, redisB, web := releaseID{"team-a", "redis"}, releaseID{"team-b", "redis"}, releaseID{"s1-web", "web"}
	repo := newProbeRepo(t, s1Manifest(true))

	res := h.reconcile(t, repo.Dir)
	if res.Code != 0 {
		t.Fatalf("exit %d, want 0", res.Code)
	}
	rep := decodeReport(t, res)
	for _, c := range []string{"blue", "green"} {
		cr := clusterReport(t, rep, c)
		if cr.Error != "" {
			t.Errorf("cluster %s error %q", c, cr.Error)
		}
		for _, k := range []releaseID{redisA, redisB, web} {
			got := releaseIn(t, cr, k)
			if got.Action != reconciler.ActionInstall || got.Outcome != reconciler.OutcomeOK || got.Revision != 1 {
				t.Errorf("cluster %s release %s: %s %s revision %d, want install ok revision 1", c, k, got.Action, got.Outcome, got.Revision)
			}
		}
		want := map[releaseID]stored{
			redisA: {"team-a", 1, "deployed"},
			redisB: {"team-b", 1, "deployed"},
			web:    {"s1-web", 1, "deployed"},
		}
		if diff := cmp.Diff(want, h.storageByKey(t, c, "team-a", "team-b", "s1-web")); diff != "" {
			t.Errorf("cluster %s Helm storage (-want +got):\n%s", c, diff)
		}
		for _, ns := range []string{"team-a", "team-b"} {
			d := h.deployment(t, c, ns, "redis")
			if got := d.Labels[labelRelease]; got != "redis" {
				t.Errorf("cluster %s Deployment %s/redis: label %s=%q", c, ns, labelRelease, got)
			}
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	// team-a/redis becomes unhealthy on blue (green runs it at zero
	// replicas): web, which needs it, must not be applied, while
	// team-b/redis of the same name is untouched and fine.
	repo.Write(t, "tandem.yaml", s1Manifest(false))
	repo.Commit(t, "team-a/redis: pods that never schedule")
	res = h.reconcile(t, repo.Dir)
	if res.Code != 1 {
		t.Errorf("exit %d, want 1", res.Code)
	}
	rep = decodeReport(t, res)
	if diff := cmp.Diff([]string{"blue"}, rep.Failed()); diff != "" {
		t.Errorf("failed clusters (-want +got):\n%s", diff)
	}
	blue := clusterReport(t, rep, "blue")
	a := releaseIn(t, blue, redisA)
	if a.Action != reconciler.ActionUpgrade || a.Outcome != reconciler.OutcomeFailed || a.RolledBackTo != 1 {
		t.Errorf("blue team-a/redis: %s %s rolled back to %d (%s), want a failed upgrade rolled back to 1", a.Action, a.Outcome, a.RolledBackTo, a.Error)
	}
	if b := releaseIn(t, blue, redisB); b.Action != reconciler.ActionUnchanged || b.Outcome != reconciler.OutcomeOK {
		t.Errorf("blue team-b/redis: %s %s (%s), want unchanged ok", b.Action, b.Outcome, b.Error)
	}
	w := releaseIn(t, blue, web)
	if w.Outcome != reconciler.OutcomeSkipped || !strings.Contains(w.Error, "team-a/redis") {
		t.Errorf("blue web: %s %q, want skipped naming team-a/redis", w.Outcome, w.Error)
	}
	if !strings.Contains(blue.Error, "s1-web/web") {
		t.Errorf("blue error %q does not name the release that was not applied (s1-web/web)", blue.Error)
	}
	wantBlue := map[releaseID]stored{
		redisA: {"team-a", 3, "deployed"}, // 2 failed, 3 the rollback to 1
		redisB: {"team-b", 1, "deployed"},
		web:    {"s1-web", 1, "deployed"},
	}
	if diff := cmp.Diff(wantBlue, h.storageByKey(t, "blue", "team-a", "team-b", "s1-web")); diff != "" {
		t.Errorf("blue Helm storage (-want +got):\n%s", diff)
	}
	if ns := h.deployment(t, "blue", "team-a", "redis").Spec.Template.Spec.NodeSelector; len(ns) != 0 {
		t.Errorf("blue team-a/redis after the rollback still has node selector %v", ns)
	}
	green := clusterReport(t, rep, "green")
	if green.Error != "" {
		t.Errorf("green error %q, want none (scaled to zero, the release is healthy there)", green.Error)
	}
	if got := releaseIn(t, green, redisA); got.Outcome != reconciler.OutcomeOK || got.Revision != 2 {
		t.Errorf("green team-a/redis: %s revision %d, want ok at 2", got.Outcome, got.Revision)
	}
}

// s2Manifest: edge is standby-first and runs on green for real (standby:
// keep), so green's health decides whether blue gets a change; old is on
// blue only and is left out when withOld is false.
func s2Manifest(edgeReady bool, edgeGeneration string, withOld bool) string {
	ready := "true"
	if !edgeReady {
		ready = "false"
	}
	m := idLine("e2e-s2") + `clusters:
  - name: blue
    role: active
  - name: green
    role: standby
    releases: [edge, api]
releases:
  - name: edge
    namespace: s2
    chart: ./charts/probe
    standby: keep
    rollout: standby-first
    set: {ready: ` + ready + `, generation: "` + edgeGeneration + `"}
    wave: 0
    timeout: 20s
  - name: api
    namespace: s2
    chart: ./charts/probe
    wave: 1
    needs: [edge]
    timeout: 1m
  - name: worker
    namespace: s2
    chart: ./charts/probe
    wave: 1
    timeout: 1m
`
	if withOld {
		m += `  - name: old
    namespace: s2
    chart: ./charts/probe
    wave: 1
    timeout: 1m
`
	}
	return m
}

// Item 2: skipped is not success. A standby-first change whose Standby
// health fails must not reach blue, fails blue's run, and blocks blue's
// prune of a release removed in the same change (before the fix blue
// pruned it); a run of blue alone cannot apply a standby-first change and
// says so with exit 1 (before the fix it exited 0 having applied nothing).
func TestSafety2SkippedIsNotSuccess(t *testing.T) {
	h := newSafetyHarness(t)
	h.deleteNamespacesOnCleanup(t, "s2")
	edge, old := releaseID{"s2", "edge"}, releaseID{"s2", "old"}
	repo := newProbeRepo(t, s2Manifest(true, "1", true))
	if res := h.reconcile(t, repo.Dir); res.Code != 0 {
		t.Fatalf("install: exit %d, want 0", res.Code)
	}
	before := map[string]map[releaseID]stored{"blue": h.storageByKey(t, "blue", "s2"), "green": h.storageByKey(t, "green", "s2")}
	if got := len(before["blue"]); got != 4 {
		t.Fatalf("blue holds %d releases in s2, want 4: %v", got, before["blue"])
	}

	t.Run("standby health fails: blue gets nothing and prunes nothing", func(t *testing.T) {
		repo.Write(t, "tandem.yaml", s2Manifest(false, "2", false))
		repo.Commit(t, "edge: pods that never schedule; retire old")
		// --allow-mass-prune: only the skipped release may stand in the way of the prune.
		res := h.reconcile(t, repo.Dir, "--allow-mass-prune")
		if res.Code != 1 {
			t.Errorf("exit %d, want 1", res.Code)
		}
		rep := decodeReport(t, res)
		if diff := cmp.Diff([]string{"blue", "green"}, rep.Failed()); diff != "" {
			t.Errorf("failed clusters (-want +got):\n%s", diff)
		}
		green := clusterReport(t, rep, "green")
		if got := releaseIn(t, green, edge); got.Outcome != reconciler.OutcomeFailed {
			t.Errorf("green edge: %s (%s), want failed", got.Outcome, got.Error)
		}
		blue := clusterReport(t, rep, "blue")
		got := releaseIn(t, blue, edge)
		if got.Outcome != reconciler.OutcomeSkipped || !strings.Contains(got.Error, "standby-first") {
			t.Errorf("blue edge: %s %q, want skipped by standby-first", got.Outcome, got.Error)
		}
		if !strings.Contains(blue.Error, "standby-first") {
			t.Errorf("blue error %q does not name the standby-first gate", blue.Error)
		}
		if p, ok := prunedIn(blue, old); !ok || p.Outcome != reconciler.OutcomeSkipped {
			t.Errorf("blue prune of s2/old: %+v (reported %v), want reported skipped", p, ok)
		}
		if diff := cmp.Diff(before["blue"], h.storageByKey(t, "blue", "s2")); diff != "" {
			t.Errorf("blue Helm storage changed (-before +after):\n%s", diff)
		}
		if g := h.deployment(t, "blue", "s2", "edge").Spec.Template.Annotations["e2e.tandem.dev/generation"]; g != "1" {
			t.Errorf("blue edge runs generation %q, want 1 (the change must not reach blue)", g)
		}
		if _, err := h.kube["blue"].AppsV1().Deployments("s2").Get(context.Background(), "old", metav1.GetOptions{}); err != nil {
			t.Errorf("blue Deployment s2/old: %v (it must not be pruned)", err)
		}
	})

	t.Run("a run of blue alone does not apply a standby-first change", func(t *testing.T) {
		repo.Write(t, "tandem.yaml", s2Manifest(true, "3", false))
		repo.Commit(t, "edge: generation 3, healthy")
		res := h.reconcile(t, repo.Dir, "--cluster", "blue", "--allow-mass-prune")
		if res.Code != 1 {
			t.Errorf("exit %d, want 1", res.Code)
		}
		blue := clusterReport(t, decodeReport(t, res), "blue")
		got := releaseIn(t, blue, edge)
		if got.Outcome != reconciler.OutcomeSkipped || !strings.Contains(got.Error, "green") || !strings.Contains(got.Error, "not part of this run") {
			t.Errorf("blue edge: %s %q, want skipped because green is not part of this run", got.Outcome, got.Error)
		}
		if diff := cmp.Diff(before["blue"], h.storageByKey(t, "blue", "s2")); diff != "" {
			t.Errorf("blue Helm storage changed (-before +after):\n%s", diff)
		}
	})

	t.Run("both clusters: the change goes through and old is pruned", func(t *testing.T) {
		res := h.reconcile(t, repo.Dir)
		if res.Code != 0 {
			t.Fatalf("exit %d, want 0", res.Code)
		}
		blue := clusterReport(t, decodeReport(t, res), "blue")
		if p, ok := prunedIn(blue, old); !ok || p.Outcome != reconciler.OutcomeOK {
			t.Errorf("blue prune of s2/old: %+v (reported %v), want ok", p, ok)
		}
		got := h.storageByKey(t, "blue", "s2")
		if _, ok := got[old]; ok {
			t.Errorf("blue still holds s2/old: %v", got)
		}
		if got[edge] != (stored{"s2", before["blue"][edge].Revision + 1, "deployed"}) {
			t.Errorf("blue edge: %+v, want one revision more than %d, deployed", got[edge], before["blue"][edge].Revision)
		}
		if g := h.deployment(t, "blue", "s2", "edge").Spec.Template.Annotations["e2e.tandem.dev/generation"]; g != "3" {
			t.Errorf("blue edge runs generation %q, want 3", g)
		}
	})
}

// s6Manifest is one release of the probe chart in namespace s6, under a
// manifest of its own, so each part of the item-6 test stands alone.
func s6Manifest(id, name, set, timeout string) string {
	return idLine(id) + twoClusters + `releases:
  - name: ` + name + `
    namespace: s6
    chart: ./charts/probe
    set: {` + set + `}
    wave: 0
    timeout: ` + timeout + `
`
}

// Item 6: a pending-* release is recovered only when provably abandoned.
// A helm upgrade a person is running right now must not be raced (exit 1,
// "operation in progress"); a revision left pending by a killed tandem run
// is recovered by the next run at once, long before the release's timeout.
func TestSafety6RecoverOnlyTheDead(t *testing.T) {
	h := newSafetyHarness(t)
	h.deleteNamespacesOnCleanup(t, "s6")

	t.Run("a live helm upgrade is not raced", func(t *testing.T) {
		live := releaseID{"s6", "live"}
		repo := newProbeRepo(t, s6Manifest("e2e-s6-live", live.Name, "generation: \"0\"", "30s"))
		if res := h.reconcile(t, repo.Dir); res.Code != 0 {
			t.Fatalf("install: exit %d, want 0", res.Code)
		}
		// A person upgrades the release with the helm CLI and waits for pods
		// that never get ready: revision 2 is pending-upgrade for up to 45s.
		// Helm's upgrade copies the release labels of revision 1 (tandem's,
		// its run label included) onto revision 2.
		hp := h.startHelm(t, "blue", "upgrade", live.Name, repo.Dir+"/charts/probe", "-n", live.Namespace,
			"--reuse-values", "--set", "ready=false", "--wait", "--timeout", "45s")
		waitFor(t, "helm's upgrade pending", 30*time.Second, nil, func() bool {
			return h.storageByKey(t, "blue", "s6")[live] == stored{"s6", 2, "pending-upgrade"}
		})
		t.Logf("helm's pending revision 2 has labels %v", h.releaseLabels(t, "blue", live.Namespace, live.Name, 2))

		res := h.reconcile(t, repo.Dir)
		helmRan := hp.running()
		if res.Code != 1 {
			t.Errorf("exit %d, want 1", res.Code)
		}
		rep := decodeReport(t, res)
		got := releaseIn(t, clusterReport(t, rep, "blue"), live)
		if got.Outcome != reconciler.OutcomeFailed || !strings.Contains(got.Error, "operation in progress") {
			t.Errorf("blue live: %s %s recovered %q (%q), want failed with \"operation in progress\"", got.Action, got.Outcome, got.Recovered, got.Error)
		}
		if !helmRan {
			t.Errorf("helm's upgrade ended before tandem's run did; the test proves nothing (helm output:\n%s)", hp.output.String())
		}
		if s := h.storageByKey(t, "blue", "s6")[live]; s != (stored{"s6", 2, "pending-upgrade"}) && helmRan {
			t.Errorf("blue live after tandem's run: %+v, want helm's revision 2 still pending-upgrade, untouched", s)
		}
		if e := clusterReport(t, rep, "green").Error; e != "" {
			t.Errorf("green error %q", e)
		}

		out, err := hp.wait(t, 2*time.Minute)
		if err == nil {
			t.Errorf("helm upgrade --wait of pods that never get ready succeeded:\n%s", out)
		}
		var hist []string
		for _, r := range h.helmHistory(t, "blue", live.Namespace, live.Name) {
			hist = append(hist, fmt.Sprintf("%d %s: %s", r.Revision, r.Status, r.Description))
		}
		// One Helm operation at a time: helm's own revision 2 failed when
		// its wait ran out, and nothing else was written meanwhile.
		if len(hist) != 2 || !strings.HasPrefix(hist[0], "1 deployed") || !strings.HasPrefix(hist[1], "2 failed: Upgrade \"live\" failed") {
			t.Errorf("helm history of blue live:\n%s\nwant revision 1 deployed and helm's revision 2 failed, nothing else", strings.Join(hist, "\n"))
		}
		if t.Failed() {
			h.logWorkloads(t, "blue", "s6")
		}
	})

	t.Run("a killed tandem run's pending revision is recovered at once", func(t *testing.T) {
		hooked := releaseID{"s6", "hooked"}
		manifest := func(hook bool) string {
			return s6Manifest("e2e-s6-hooked", hooked.Name, fmt.Sprintf("hook: %v", hook), "2m")
		}
		repo := newProbeRepo(t, manifest(false))
		if res := h.reconcile(t, repo.Dir); res.Code != 0 {
			t.Fatalf("install: exit %d, want 0", res.Code)
		}
		// The upgrade waits on a pre-upgrade hook that never completes.
		repo.Write(t, "tandem.yaml", manifest(true))
		repo.Commit(t, "hooked: run the migration hook")
		p := h.start(t, repo.Dir, "--lock-duration", "3s")
		waitFor(t, "blue hooked pending-upgrade", 2*time.Minute, p, func() bool {
			return h.storageByKey(t, "blue", "s6")[hooked].Status == "pending-upgrade"
		})
		if !killNow(t, p) {
			t.Fatalf("tandem ended before it was killed:\n%s", p.stderr.String())
		}
		killed := time.Now()
		if s := h.storageByKey(t, "blue", "s6")[hooked]; s != (stored{"s6", 2, "pending-upgrade"}) {
			t.Fatalf("blue hooked after the kill: %+v, want revision 2 pending-upgrade", s)
		}

		repo.Write(t, "tandem.yaml", manifest(false))
		repo.Commit(t, "hooked: no migration hook")
		res := h.reconcile(t, repo.Dir)
		if res.Code != 0 {
			t.Errorf("exit %d, want 0", res.Code)
		}
		// Recovered although the revision is far younger than the
		// release's 2m timeout: its writer is dead.
		if took := time.Since(killed); took >= 2*time.Minute {
			t.Errorf("recovery ended %s after the kill; it must not wait for the release's timeout", took)
		}
		got := releaseIn(t, clusterReport(t, decodeReport(t, res), "blue"), hooked)
		want := reconciler.ReleaseReport{Name: "hooked", Namespace: "s6", Action: reconciler.ActionUpgrade, Outcome: reconciler.OutcomeOK,
			FromRevision: 2, Revision: 3, Recovered: "pending-upgrade"}
		if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(reconciler.ReleaseReport{}, "Duration")); diff != "" {
			t.Errorf("blue hooked (-want +got):\n%s", diff)
		}
		if s := h.storageByKey(t, "blue", "s6")[hooked]; s != (stored{"s6", 3, "deployed"}) {
			t.Errorf("blue hooked after recovery: %+v, want revision 3 deployed", s)
		}
		if st := h.revisionStatus(t, "blue", hooked, 2); st != "failed" {
			t.Errorf("blue hooked revision 2 is %q after recovery, want failed", st)
		}
	})
}

// Found while testing item 6: after a person's `helm upgrade` failed
// (revision 2 failed, its change applied to the live objects), the next
// reconcile upgrades from the manifest, and the release must end up as the
// manifest says and healthy. Helm computes an upgrade's patch from the last
// *deployed* revision (1), not from the failed one whose objects are live,
// so a field only the failed revision added (here a node selector no node
// matches) is never removed, and every later run fails and rolls back.
func TestSafety6FailedHelmUpgradeIsRepaired(t *testing.T) {
	if os.Getenv("TANDEM_E2E_KNOWN_BUGS") == "" {
		// Known, not fixed: Helm's upgrade patches from the last deployed
		// revision, so a field only a failed revision added stays on the
		// live object (see the closing note of issue 8). Run with
		// TANDEM_E2E_KNOWN_BUGS=1 to reproduce.
		t.Skip("known bug: a field added by a failed helm upgrade survives tandem's next upgrade; TANDEM_E2E_KNOWN_BUGS=1 runs it")
	}
	h := newSafetyHarness(t)
	h.deleteNamespacesOnCleanup(t, "s6-failed")
	manual := releaseID{"s6-failed", "manual"}
	repo := newProbeRepo(t, idLine("e2e-s6-failed")+twoClusters+`releases:
  - name: manual
    namespace: s6-failed
    chart: ./charts/probe
    wave: 0
    timeout: 20s
`)
	if res := h.reconcile(t, repo.Dir); res.Code != 0 {
		t.Fatalf("install: exit %d, want 0", res.Code)
	}
	out, err := h.runHelm(t, "blue", "upgrade", manual.Name, repo.Dir+"/charts/probe", "-n", manual.Namespace,
		"--reuse-values", "--set", "ready=false", "--wait", "--timeout", "5s")
	if err == nil {
		t.Fatalf("helm upgrade --wait of pods that never get ready succeeded:\n%s", out)
	}
	if s := h.storageByKey(t, "blue", manual.Namespace)[manual]; s != (stored{manual.Namespace, 2, "failed"}) {
		t.Fatalf("blue manual after helm's failed upgrade: %+v, want revision 2 failed", s)
	}

	res := h.reconcile(t, repo.Dir)
	if res.Code != 0 {
		t.Errorf("exit %d, want 0", res.Code)
	}
	d := h.deployment(t, "blue", manual.Namespace, manual.Name)
	if ns := d.Spec.Template.Spec.NodeSelector; len(ns) != 0 {
		t.Errorf("blue Deployment %s keeps the failed helm revision's node selector %v; the manifest has none", manual, ns)
	}
	if diff := cmp.Diff(replicas{1, 1, true}, deploymentReplicas(d)); diff != "" {
		t.Errorf("blue Deployment %s replicas (-want +got):\n%s", manual, diff)
	}
	if t.Failed() {
		h.logWorkloads(t, "blue", manual.Namespace)
	}
}

// s7Manifest: slow is healthy or has pods that never schedule.
func s7Manifest(ready bool) string {
	r := "true"
	if !ready {
		r = "false"
	}
	return idLine("e2e-s7") + twoClusters + `releases:
  - name: slow
    namespace: s7
    chart: ./charts/probe
    set: {ready: ` + r + `}
    wave: 0
    timeout: 20s
`
}

// Item 7: a run killed during its health wait leaves a deployed revision
// nobody saw healthy. The next run must check its health (and, as it is
// not healthy, fail and roll back), not report it unchanged and ok as it did
// before the fix.
func TestSafety7KilledDuringHealthWait(t *testing.T) {
	h := newSafetyHarness(t)
	h.deleteNamespacesOnCleanup(t, "s7")
	slow := releaseID{"s7", "slow"}
	repo := newProbeRepo(t, s7Manifest(true))
	if res := h.reconcile(t, repo.Dir); res.Code != 0 {
		t.Fatalf("install: exit %d, want 0", res.Code)
	}

	repo.Write(t, "tandem.yaml", s7Manifest(false))
	repo.Commit(t, "slow: pods that never schedule")
	p := h.start(t, repo.Dir, "--lock-duration", "3s")
	// Helm's upgrade is done (revision 2 deployed): tandem is waiting for
	// health, for up to the release's 20s timeout.
	waitFor(t, "blue slow revision 2 deployed", time.Minute, p, func() bool {
		return h.storageByKey(t, "blue", "s7")[slow] == stored{"s7", 2, "deployed"}
	})
	if !killNow(t, p) {
		t.Fatalf("tandem ended before it was killed:\n%s", p.stderr.String())
	}
	for _, l := range progressLines(p.stderr.String()) {
		if l.Cluster == "blue" && l.Release == "slow" && (strings.Contains(l.Text, "healthy") || strings.Contains(l.Text, "FAILED")) {
			t.Fatalf("the killed run got past blue slow's health wait: %s", l.Text)
		}
	}
	if s := h.storageByKey(t, "blue", "s7")[slow]; s != (stored{"s7", 2, "deployed"}) {
		t.Fatalf("blue slow after the kill: %+v, want revision 2 deployed", s)
	}

	// Same manifest: the digest matches revision 2, but nobody saw it healthy.
	res := h.reconcile(t, repo.Dir)
	if res.Code != 1 {
		t.Errorf("exit %d, want 1", res.Code)
	}
	blue := clusterReport(t, decodeReport(t, res), "blue")
	got := releaseIn(t, blue, slow)
	// Checked, found unhealthy, reported — and left as it is: a revision
	// tandem never saw healthy may be one that served for months before its
	// state record was lost, so one failed check does not roll it back.
	if got.Action != reconciler.ActionUnchanged || got.Outcome != reconciler.OutcomeFailed || got.RolledBackTo != 0 {
		t.Errorf("blue slow: %s %s rolled back to %d (%q), want unchanged, failed, not rolled back", got.Action, got.Outcome, got.RolledBackTo, got.Error)
	}
	if !strings.Contains(got.Error, "never seen healthy") {
		t.Errorf("blue slow error %q does not say the revision was never seen healthy", got.Error)
	}
	if s := h.storageByKey(t, "blue", "s7")[slow]; s != (stored{"s7", 2, "deployed"}) {
		t.Errorf("blue slow after the rerun: %+v, want revision 2 deployed, untouched", s)
	}

	// The fix in git (healthy pods again) is applied and confirmed.
	repo.Write(t, "tandem.yaml", s7Manifest(true))
	repo.Commit(t, "slow: healthy again")
	if res := h.reconcile(t, repo.Dir); res.Code != 0 {
		t.Fatalf("healthy again: exit %d, want 0\n%s", res.Code, res.Stderr)
	}
	if ns := h.deployment(t, "blue", "s7", "slow").Spec.Template.Spec.NodeSelector; len(ns) != 0 {
		t.Errorf("blue slow after the fix still has node selector %v", ns)
	}
}

// s8Manifest is a team's manifest with two releases of its own.
func s8Manifest(team string) string {
	return idLine(team) + twoClusters + `releases:
  - name: ` + team + `-web
    namespace: s8-` + team + `
    chart: ./charts/probe
    wave: 0
    timeout: 1m
  - name: ` + team + `-api
    namespace: s8-` + team + `
    chart: ./charts/probe
    wave: 0
    timeout: 1m
`
}

// Item 8: two manifests (two teams) on the same clusters never prune each
// other's releases, --allow-mass-prune or not; a release labelled by a
// tandem from before manifest IDs belongs to the default manifest, which
// relabels it, and no other manifest prunes it.
func TestSafety8PruneOnlyOwnManifest(t *testing.T) {
	h := newSafetyHarness(t)
	h.deleteNamespacesOnCleanup(t, "s8-team-a", "s8-team-b", "s8-legacy")
	teamA, teamB := newProbeRepo(t, s8Manifest("team-a")), newProbeRepo(t, s8Manifest("team-b"))
	legacy := releaseID{"s8-legacy", "s8-legacy"}
	namespaces := []string{"s8-team-a", "s8-team-b", "s8-legacy"}
	snapshot := func() map[string]map[releaseID]stored {
		return map[string]map[releaseID]stored{"blue": h.storageByKey(t, "blue", namespaces...), "green": h.storageByKey(t, "green", namespaces...)}
	}
	noPrunes := func(t *testing.T, res e2etest.Result) {
		t.Helper()
		for _, c := range decodeReport(t, res).Clusters {
			if len(c.Pruned) > 0 {
				t.Errorf("cluster %s: prunes %+v, want none", c.Name, c.Pruned)
			}
		}
	}

	if res := h.reconcile(t, teamA.Dir); res.Code != 0 {
		t.Fatalf("team-a: exit %d, want 0", res.Code)
	}
	// A release an older tandem installed: managed-by label, no manifest label.
	h.helm(t, "blue", "install", legacy.Name, teamA.Dir+"/charts/probe", "-n", legacy.Namespace, "--create-namespace",
		"--labels", reconciler.LabelManagedBy+"="+reconciler.ManagedByValue)
	if res := h.reconcile(t, teamB.Dir); res.Code != 0 {
		t.Fatalf("team-b: exit %d, want 0", res.Code)
	}
	want := snapshot()
	if got := len(want["blue"]); got != 5 {
		t.Fatalf("blue holds %d of the test's releases, want 5 (2 of team-a, 2 of team-b, the legacy one): %v", got, want["blue"])
	}

	for _, run := range []struct {
		name string
		repo *e2etest.ManifestRepo
		args []string
	}{
		{"team-b again", teamB, nil},
		{"team-b with --allow-mass-prune", teamB, []string{"--allow-mass-prune"}},
		{"team-a with --allow-mass-prune", teamA, []string{"--allow-mass-prune"}},
	} {
		t.Run(run.name, func(t *testing.T) {
			res := h.reconcile(t, run.repo.Dir, run.args...)
			if res.Code != 0 {
				t.Errorf("exit %d, want 0", res.Code)
			}
			noPrunes(t, res)
			if diff := cmp.Diff(want, snapshot()); diff != "" {
				t.Errorf("Helm storage changed (-before +after):\n%s", diff)
			}
		})
	}

	t.Run("the default manifest relabels the legacy release, team-b leaves it", func(t *testing.T) {
		def := e2etest.CopyExample(t)
		addChart(t, def, "probe")
		addRelease(t, def, `  - name: s8-legacy
    namespace: s8-legacy
    chart: ./charts/probe
    wave: 0
    timeout: 1m
`)
		def.Commit(t, "manage the legacy release")
		res := h.reconcile(t, def.Dir, "--allow-mass-prune")
		if res.Code != 0 {
			t.Fatalf("default manifest: exit %d, want 0", res.Code)
		}
		got := releaseIn(t, clusterReport(t, decodeReport(t, res), "blue"), legacy)
		if got.Action != reconciler.ActionUpgrade || got.Outcome != reconciler.OutcomeOK || got.FromRevision != 1 || got.Revision != 2 {
			t.Errorf("blue legacy: %s %s %d→%d (%s), want upgrade ok 1→2", got.Action, got.Outcome, got.FromRevision, got.Revision, got.Error)
		}
		labels := h.releaseLabels(t, "blue", legacy.Namespace, legacy.Name, 2)
		if labels[reconciler.LabelManifest] != "default" || labels[reconciler.LabelManagedBy] != reconciler.ManagedByValue {
			t.Errorf("blue legacy revision 2 labels %v, want %s=default and %s=%s", labels, reconciler.LabelManifest, reconciler.LabelManagedBy, reconciler.ManagedByValue)
		}
		want["blue"][legacy] = stored{legacy.Namespace, 2, "deployed"}
		if diff := cmp.Diff(want, snapshot()); diff != "" {
			t.Errorf("Helm storage (-want +got):\n%s", diff)
		}

		res = h.reconcile(t, teamB.Dir, "--allow-mass-prune")
		if res.Code != 0 {
			t.Errorf("team-b after the relabel: exit %d, want 0", res.Code)
		}
		noPrunes(t, res)
		if diff := cmp.Diff(want, snapshot()); diff != "" {
			t.Errorf("team-b after the relabel: Helm storage changed (-before +after):\n%s", diff)
		}
	})
}
