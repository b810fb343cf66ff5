package reconcile_test

import (
	"context"
	"encoding/json"
	"maps"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tandem-gitops/tandem/e2e/e2etest"
	"github.com/tandem-gitops/tandem/reconciler"
)

// TestReconcileLifecycle takes one manifest repository through its life on
// both clusters: install, a no-op rerun, a values change, a standby-first
// change, a helm rollback behind tandem's back, a removal, and the guards that
// keep a broken or emptied manifest from wiping the clusters. Each subtest
// starts from the state the one before left, so a failure stops the rest.
func TestReconcileLifecycle(t *testing.T) {
	h := newHarness(t)
	repo := e2etest.CopyExample(t)
	ctx := context.Background()

	if !t.Run("fresh install into both clusters", func(t *testing.T) {
		for _, c := range []string{"blue", "green"} {
			if got := h.storage(t, c); len(got) != 0 {
				t.Fatalf("cluster %s is not fresh: Helm storage holds %v; run this package from the start", c, names(got))
			}
		}
		res := h.reconcile(t, repo.Dir)
		if res.Code != 0 {
			t.Fatalf("exit %d, want 0", res.Code)
		}
		rep := decodeReport(t, res)

		wantCounts := map[string]reconciler.Counts{"blue": {Installed: 5}, "green": {Installed: 2}}
		for c, want := range wantCounts {
			cr := clusterReport(t, rep, c)
			if cr.Error != "" {
				t.Errorf("cluster %s: error %q", c, cr.Error)
			}
			if diff := cmp.Diff(want, cr.Counts); diff != "" {
				t.Errorf("cluster %s counts (-want +got):\n%s", c, diff)
			}
			want := map[string]step{}
			for _, name := range exampleReleases[c] {
				want[name] = step{Action: reconciler.ActionInstall, Outcome: reconciler.OutcomeOK, Revision: 1}
			}
			if diff := cmp.Diff(want, steps(cr)); diff != "" {
				t.Errorf("cluster %s releases (-want +got):\n%s", c, diff)
			}
			// Helm storage holds exactly the enabled releases, each deployed at revision 1.
			wantStored := map[string]string{}
			for _, name := range exampleReleases[c] {
				wantStored[name] = "1 deployed"
			}
			gotStored := map[string]string{}
			for name, s := range h.storage(t, c) {
				gotStored[name] = strconv.Itoa(s.Revision) + " " + s.Status
			}
			if diff := cmp.Diff(wantStored, gotStored); diff != "" {
				t.Errorf("cluster %s Helm storage (-want +got):\n%s", c, diff)
			}
		}

		workloads := []struct {
			cluster, release, namespace, name string
			want                              replicas
			activeReplicas                    string // the tandem.dev/active-replicas annotation; "" = absent
		}{
			{"blue", "platform", "platform", "platform-edge", replicas{2, 2, true}, ""},
			{"blue", "example", "example", "example", replicas{3, 3, true}, ""},
			{"blue", "storefront", "shop", "storefront", replicas{3, 3, true}, ""},
			{"blue", "orders-worker", "shop", "orders-worker", replicas{2, 2, true}, ""},
			// standby: keep — the edge proxy runs its real count on Standby.
			{"green", "platform", "platform", "platform-edge", replicas{2, 2, true}, ""},
			// scale-to-zero, with the Active count kept for a switchover.
			{"green", "example", "example", "example", replicas{0, 0, true}, "3"},
		}
		role := map[string]string{"blue": "active", "green": "standby"}
		for _, w := range workloads {
			t.Run(w.cluster+"/"+w.namespace+"/"+w.name, func(t *testing.T) {
				d := h.deployment(t, w.cluster, w.namespace, w.name)
				if diff := cmp.Diff(w.want, deploymentReplicas(d)); diff != "" {
					t.Errorf("replicas (-want +got):\n%s", diff)
				}
				if got := d.Annotations[annActiveReplicas]; got != w.activeReplicas {
					t.Errorf("annotation %s = %q, want %q", annActiveReplicas, got, w.activeReplicas)
				}
				want := map[string]string{labelCluster: w.cluster, labelRole: role[w.cluster], labelRelease: w.release}
				got := map[string]string{labelCluster: d.Labels[labelCluster], labelRole: d.Labels[labelRole], labelRelease: d.Labels[labelRelease]}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("tandem labels (-want +got):\n%s", diff)
				}
			})
		}

		sts, err := h.kube["blue"].AppsV1().StatefulSets("shop").Get(ctx, "cache", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if *sts.Spec.Replicas != 3 || sts.Status.ReadyReplicas != 3 {
			t.Errorf("blue StatefulSet shop/cache: %d desired, %d ready; want 3 and 3", *sts.Spec.Replicas, sts.Status.ReadyReplicas)
		}

		dns := []struct {
			cluster, kind, namespace, name string
			weight, setIdentifier          string
		}{
			{"blue", "Ingress", "example", "example", "100", "blue"},
			{"blue", "Ingress", "shop", "storefront", "100", "blue"},
			{"blue", "Service", "platform", "platform-edge", "100", "blue"},
			{"green", "Ingress", "example", "example", "0", "green"},
			{"green", "Service", "platform", "platform-edge", "0", "green"},
		}
		for _, d := range dns {
			var ann map[string]string
			switch d.kind {
			case "Ingress":
				ing, err := h.kube[d.cluster].NetworkingV1().Ingresses(d.namespace).Get(ctx, d.name, metav1.GetOptions{})
				if err != nil {
					t.Fatalf("cluster %s: %v", d.cluster, err)
				}
				ann = ing.Annotations
			case "Service":
				svc, err := h.kube[d.cluster].CoreV1().Services(d.namespace).Get(ctx, d.name, metav1.GetOptions{})
				if err != nil {
					t.Fatalf("cluster %s: %v", d.cluster, err)
				}
				ann = svc.Annotations
			}
			want := map[string]string{annWeight: d.weight, annSetIdentifier: d.setIdentifier}
			got := map[string]string{annWeight: ann[annWeight], annSetIdentifier: ann[annSetIdentifier]}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("cluster %s %s %s/%s DNS annotations (-want +got):\n%s", d.cluster, d.kind, d.namespace, d.name, diff)
			}
		}

		// The CronJob runs on Active; orders-worker is not enabled on green at all.
		cj, err := h.kube["blue"].BatchV1().CronJobs("shop").Get(ctx, "orders-worker-reconcile-payments", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if cj.Spec.Suspend != nil && *cj.Spec.Suspend {
			t.Errorf("blue CronJob %s is suspended on the Active cluster", cj.Name)
		}
		cjs, err := h.kube["green"].BatchV1().CronJobs("").List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(cjs.Items) != 0 {
			t.Errorf("green has %d CronJobs (first %s/%s), want none: orders-worker is not enabled there", len(cjs.Items), cjs.Items[0].Namespace, cjs.Items[0].Name)
		}
		if _, err := h.kube["green"].AppsV1().Deployments("shop").Get(ctx, "orders-worker", metav1.GetOptions{}); err == nil {
			t.Error("green has Deployment shop/orders-worker, want none")
		}
	}) {
		t.FailNow()
	}

	if !t.Run("second run creates no revision", func(t *testing.T) {
		before := map[string]map[string]int{"blue": h.revisions(t, "blue"), "green": h.revisions(t, "green")}
		res := h.reconcile(t, repo.Dir)
		if res.Code != 0 {
			t.Fatalf("exit %d, want 0", res.Code)
		}
		rep := decodeReport(t, res)
		for c, n := range map[string]int{"blue": 5, "green": 2} {
			cr := clusterReport(t, rep, c)
			if diff := cmp.Diff(reconciler.Counts{Unchanged: n}, cr.Counts); diff != "" {
				t.Errorf("cluster %s counts (-want +got):\n%s", c, diff)
			}
			want := map[string]step{}
			for name, rev := range before[c] {
				want[name] = step{Action: reconciler.ActionUnchanged, Outcome: reconciler.OutcomeOK, FromRevision: rev, Revision: rev}
			}
			if diff := cmp.Diff(want, steps(cr)); diff != "" {
				t.Errorf("cluster %s releases (-want +got):\n%s", c, diff)
			}
			if diff := cmp.Diff(before[c], h.revisions(t, c)); diff != "" {
				t.Errorf("cluster %s Helm revisions changed (-before +after):\n%s", c, diff)
			}
		}
	}) {
		t.FailNow()
	}

	if !t.Run("values change upgrades only that release", func(t *testing.T) {
		before := map[string]map[string]int{"blue": h.revisions(t, "blue"), "green": h.revisions(t, "green")}
		repo.Replace(t, "values/storefront.yaml", "replicaCount: 3", "replicaCount: 4")
		repo.Commit(t, "storefront: 4 replicas")
		res := h.reconcile(t, repo.Dir)
		if res.Code != 0 {
			t.Fatalf("exit %d, want 0", res.Code)
		}
		rep := decodeReport(t, res)

		want := maps.Clone(before["blue"])
		want["storefront"]++
		if diff := cmp.Diff(want, h.revisions(t, "blue")); diff != "" {
			t.Errorf("blue Helm revisions (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(before["green"], h.revisions(t, "green")); diff != "" {
			t.Errorf("green Helm revisions changed (-before +after):\n%s", diff)
		}
		blue := clusterReport(t, rep, "blue")
		if diff := cmp.Diff(reconciler.Counts{Upgraded: 1, Unchanged: 4}, blue.Counts); diff != "" {
			t.Errorf("blue counts (-want +got):\n%s", diff)
		}
		wantStep := step{Action: reconciler.ActionUpgrade, Outcome: reconciler.OutcomeOK, FromRevision: before["blue"]["storefront"], Revision: want["storefront"]}
		if diff := cmp.Diff(wantStep, steps(blue)["storefront"]); diff != "" {
			t.Errorf("blue storefront (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(reconciler.Counts{Unchanged: 2}, clusterReport(t, rep, "green").Counts); diff != "" {
			t.Errorf("green counts (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(replicas{4, 4, true}, deploymentReplicas(h.deployment(t, "blue", "shop", "storefront"))); diff != "" {
			t.Errorf("blue storefront replicas (-want +got):\n%s", diff)
		}
	}) {
		t.FailNow()
	}

	if !t.Run("standby-first applies to green and waits for health before blue", func(t *testing.T) {
		before := map[string]map[string]int{"blue": h.revisions(t, "blue"), "green": h.revisions(t, "green")}
		repo.Replace(t, "tandem.yaml", "    chart: ./charts/platform\n", "    chart: ./charts/platform\n    set: {image.tag: \"1.12.0\"}\n")
		repo.Commit(t, "platform: edge proxy 1.12.0")
		res := h.reconcile(t, repo.Dir)
		if res.Code != 0 {
			t.Fatalf("exit %d, want 0", res.Code)
		}
		rep := decodeReport(t, res)

		lines := progressLines(res.Stderr)
		greenHealthy := indexOf(lines, "green", "platform", "healthy")
		blueWaiting := indexOf(lines, "blue", "platform", "standby-first:")
		blueStarted := indexOf(lines, "blue", "platform", "started")
		switch {
		case greenHealthy < 0 || blueStarted < 0 || blueWaiting < 0:
			t.Errorf("progress lines missing: green platform healthy at %d, blue platform waiting at %d, started at %d (-1 = absent)", greenHealthy, blueWaiting, blueStarted)
		case !(blueWaiting < greenHealthy && greenHealthy < blueStarted):
			t.Errorf("order of progress lines: blue waiting #%d, green healthy #%d, blue started #%d; want waiting < green healthy < blue started:\n%s",
				blueWaiting, greenHealthy, blueStarted, res.Stderr)
		}
		if i := indexOf(lines, "green", "platform", "started"); i < 0 || i > greenHealthy {
			t.Errorf("green platform started at line #%d, healthy at #%d", i, greenHealthy)
		}

		for _, c := range []string{"blue", "green"} {
			want := maps.Clone(before[c])
			want["platform"]++
			if diff := cmp.Diff(want, h.revisions(t, c)); diff != "" {
				t.Errorf("cluster %s Helm revisions (-want +got):\n%s", c, diff)
			}
			wantStep := step{Action: reconciler.ActionUpgrade, Outcome: reconciler.OutcomeOK, FromRevision: before[c]["platform"], Revision: want["platform"]}
			if diff := cmp.Diff(wantStep, steps(clusterReport(t, rep, c))["platform"]); diff != "" {
				t.Errorf("cluster %s platform (-want +got):\n%s", c, diff)
			}
			d := h.deployment(t, c, "platform", "platform-edge")
			if got := d.Spec.Template.Spec.Containers[0].Image; !strings.HasSuffix(got, ":1.12.0") {
				t.Errorf("cluster %s platform-edge image %q, want tag 1.12.0", c, got)
			}
			if diff := cmp.Diff(replicas{2, 2, true}, deploymentReplicas(d)); diff != "" {
				t.Errorf("cluster %s platform-edge replicas (-want +got):\n%s", c, diff)
			}
		}
		// Helm's own record agrees: green's new revision was written before blue's.
		green := h.helmHistory(t, "green", "platform", "platform")
		blue := h.helmHistory(t, "blue", "platform", "platform")
		g, b := green[len(green)-1], blue[len(blue)-1]
		if g.Revision != before["green"]["platform"]+1 || b.Revision != before["blue"]["platform"]+1 {
			t.Fatalf("latest platform revisions: green %d, blue %d", g.Revision, b.Revision)
		}
		if !g.Updated.Before(b.Updated) {
			t.Errorf("platform revision %d updated on green at %s, on blue at %s: want green first", g.Revision, g.Updated, b.Updated)
		}
	}) {
		t.FailNow()
	}

	if !t.Run("helm CLI lists the releases and its rollback is reconciled back", func(t *testing.T) {
		for _, c := range []string{"blue", "green"} {
			var listed []helmListed
			out := h.helm(t, c, "ls", "-A", "-a", "-o", "json")
			if err := json.Unmarshal([]byte(out), &listed); err != nil {
				t.Fatalf("helm ls: %v\n%s", err, out)
			}
			got := map[string]stored{}
			for _, l := range listed {
				rev, _ := strconv.Atoi(l.Revision)
				got[l.Name] = stored{Namespace: l.Namespace, Revision: rev, Status: l.Status}
			}
			if diff := cmp.Diff(h.storage(t, c), got); diff != "" {
				t.Errorf("cluster %s: helm ls differs from Helm storage (-storage +helm ls):\n%s", c, diff)
			}
			for name, s := range got {
				if s.Status != "deployed" {
					t.Errorf("cluster %s: helm ls shows %s %s", c, name, s.Status)
				}
			}
		}

		from := h.revisions(t, "blue")["storefront"] // 2: replicas 4
		h.helm(t, "blue", "rollback", "storefront", "1", "-n", "shop")
		rolledBack := from + 1
		if got := h.storage(t, "blue")["storefront"]; got != (stored{"shop", rolledBack, "deployed"}) {
			t.Fatalf("after helm rollback, storefront is %+v, want revision %d deployed", got, rolledBack)
		}
		if got := deploymentReplicas(h.deployment(t, "blue", "shop", "storefront")).Spec; got != 3 {
			t.Errorf("after helm rollback to revision 1, storefront wants %d replicas, want 3", got)
		}

		before := h.revisions(t, "blue")
		res := h.reconcile(t, repo.Dir)
		if res.Code != 0 {
			t.Fatalf("exit %d, want 0", res.Code)
		}
		blue := clusterReport(t, decodeReport(t, res), "blue")
		wantStep := step{Action: reconciler.ActionUpgrade, Outcome: reconciler.OutcomeOK, FromRevision: rolledBack, Revision: rolledBack + 1}
		if diff := cmp.Diff(wantStep, steps(blue)["storefront"]); diff != "" {
			t.Errorf("blue storefront (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(reconciler.Counts{Upgraded: 1, Unchanged: 4}, blue.Counts); diff != "" {
			t.Errorf("blue counts (-want +got):\n%s", diff)
		}
		want := maps.Clone(before)
		want["storefront"]++
		if diff := cmp.Diff(want, h.revisions(t, "blue")); diff != "" {
			t.Errorf("blue Helm revisions (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(replicas{4, 4, true}, deploymentReplicas(h.deployment(t, "blue", "shop", "storefront"))); diff != "" {
			t.Errorf("blue storefront replicas after the rerun (-want +got):\n%s", diff)
		}
		var statuses []string
		for _, r := range h.helmHistory(t, "blue", "shop", "storefront") {
			statuses = append(statuses, strconv.Itoa(r.Revision)+" "+r.Status)
		}
		wantHist := []string{"1 superseded", "2 superseded", "3 superseded", "4 deployed"}
		if diff := cmp.Diff(wantHist, statuses); diff != "" {
			t.Errorf("helm history storefront (-want +got):\n%s", diff)
		}
	}) {
		t.FailNow()
	}

	if !t.Run("removing a release prunes it", func(t *testing.T) {
		before := h.revisions(t, "blue")
		repo.Replace(t, "tandem.yaml", `
  - name: orders-worker
    namespace: shop
    chart: ./charts/orders-worker
    wave: 2
    needs: [storefront]`, "")
		repo.Commit(t, "retire orders-worker")
		res := h.reconcile(t, repo.Dir)
		if res.Code != 0 {
			t.Fatalf("exit %d, want 0", res.Code)
		}
		blue := clusterReport(t, decodeReport(t, res), "blue")
		wantPruned := []reconciler.ReleaseReport{{Name: "orders-worker", Namespace: "shop", Action: reconciler.ActionPrune, Outcome: reconciler.OutcomeOK, FromRevision: before["orders-worker"]}}
		if diff := cmp.Diff(wantPruned, blue.Pruned, cmpopts.IgnoreFields(reconciler.ReleaseReport{}, "Duration")); diff != "" {
			t.Errorf("blue pruned (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(reconciler.Counts{Unchanged: 4, Pruned: 1}, blue.Counts); diff != "" {
			t.Errorf("blue counts (-want +got):\n%s", diff)
		}
		want := maps.Clone(before)
		delete(want, "orders-worker")
		if diff := cmp.Diff(want, h.revisions(t, "blue")); diff != "" {
			t.Errorf("blue Helm revisions (-want +got):\n%s", diff)
		}
		waitGone(t, "blue Deployment shop/orders-worker", func() error {
			_, err := h.kube["blue"].AppsV1().Deployments("shop").Get(ctx, "orders-worker", metav1.GetOptions{})
			return err
		})
		waitGone(t, "blue CronJob shop/orders-worker-reconcile-payments", func() error {
			_, err := h.kube["blue"].BatchV1().CronJobs("shop").Get(ctx, "orders-worker-reconcile-payments", metav1.GetOptions{})
			return err
		})
	}) {
		t.FailNow()
	}

	t.Run("an emptied or invalid manifest prunes nothing", func(t *testing.T) {
		before := map[string]map[string]int{"blue": h.revisions(t, "blue"), "green": h.revisions(t, "green")}
		good := repo.Read(t, "tandem.yaml")

		repo.Write(t, "tandem.yaml", `clusters:
  - name: blue
    role: active
  - name: green
    role: standby
releases: []
`)
		repo.Commit(t, "empty the manifest")
		res := h.reconcile(t, repo.Dir)
		if res.Code != 1 {
			t.Errorf("emptied manifest: exit %d, want 1", res.Code)
		}
		for _, flag := range []string{"--max-prune", "--allow-mass-prune"} {
			if !strings.Contains(res.Stderr, flag) {
				t.Errorf("emptied manifest: stderr does not name %s", flag)
			}
		}
		rep := decodeReport(t, res)
		for c, rels := range before {
			cr := clusterReport(t, rep, c)
			if !strings.Contains(cr.Error, "--max-prune") {
				t.Errorf("cluster %s error %q does not name --max-prune", c, cr.Error)
			}
			var skipped []string
			for _, p := range cr.Pruned {
				if p.Outcome == reconciler.OutcomeSkipped {
					skipped = append(skipped, p.Name)
				}
			}
			if diff := cmp.Diff(names(rels), skipped, cmpopts.SortSlices(func(a, b string) bool { return a < b })); diff != "" {
				t.Errorf("cluster %s: prunes reported skipped (-want +got):\n%s", c, diff)
			}
			if diff := cmp.Diff(rels, h.revisions(t, c)); diff != "" {
				t.Errorf("cluster %s: Helm storage changed (-before +after):\n%s", c, diff)
			}
		}

		repo.Write(t, "tandem.yaml", good+"\nunknownTopLevelField: true\n")
		repo.Commit(t, "break the manifest")
		res = h.reconcile(t, repo.Dir)
		if res.Code != 1 {
			t.Errorf("invalid manifest: exit %d, want 1", res.Code)
		}
		if !strings.Contains(res.Stderr, "unknownTopLevelField") {
			t.Errorf("invalid manifest: stderr does not name the unknown field:\n%s", res.Stderr)
		}
		if strings.TrimSpace(res.Stdout) != "" {
			t.Errorf("invalid manifest: a report was printed, want none:\n%s", res.Stdout)
		}
		for c, rels := range before {
			if diff := cmp.Diff(rels, h.revisions(t, c)); diff != "" {
				t.Errorf("cluster %s: Helm storage changed (-before +after):\n%s", c, diff)
			}
		}

		repo.Write(t, "tandem.yaml", good)
		repo.Commit(t, "restore the manifest")
		res = h.reconcile(t, repo.Dir)
		if res.Code != 0 {
			t.Fatalf("restored manifest: exit %d, want 0", res.Code)
		}
		rep = decodeReport(t, res)
		for c, n := range map[string]int{"blue": 4, "green": 2} {
			if diff := cmp.Diff(reconciler.Counts{Unchanged: n}, clusterReport(t, rep, c).Counts); diff != "" {
				t.Errorf("restored manifest: cluster %s counts (-want +got):\n%s", c, diff)
			}
		}
	})
}
