package drift

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tandem-gitops/tandem/e2e/e2etest"
)

// recordNS is the namespace of TestDriftRecordFromApply's releases, apart
// from the example manifest's.
const recordNS = "drift-record"

// recordRepo is a manifest (id "record") of two releases of the svc test
// chart for blue and green.
func recordRepo(t *testing.T) *e2etest.ManifestRepo {
	t.Helper()
	repo := &e2etest.ManifestRepo{Dir: filepath.Join(t.TempDir(), "manifest")}
	if err := os.CopyFS(filepath.Join(repo.Dir, "charts", "svc"), os.DirFS(filepath.Join(e2etest.ModuleRoot(t), "e2e", "testdata", "charts", "svc"))); err != nil {
		t.Fatal(err)
	}
	m := "id: record\nclusters:\n  - name: blue\n    role: active\n  - name: green\n    role: standby\nreleases:\n"
	for _, r := range []string{"rec-a", "rec-b"} {
		m += fmt.Sprintf("  - name: %s\n    namespace: %s\n    chart: ./charts/svc\n    values: [values/%s.yaml]\n    standby: keep\n", r, recordNS, r)
		repo.Write(t, "values/"+r+".yaml", "host: "+r+".record.local\nconfig:\n  greeting: hello\n")
	}
	repo.Write(t, "tandem.yaml", m)
	repo.Git(t, "init", "-q", "-b", "main")
	repo.Commit(t, "record manifest")
	return repo
}

// apiRequests is a report's apiRequests per cluster.
type apiRequests struct {
	Clusters []struct {
		Name        string `json:"name"`
		APIRequests int64  `json:"apiRequests"`
	} `json:"clusters"`
}

func (a apiRequests) total() int64 {
	var n int64
	for _, c := range a.Clusters {
		n += c.APIRequests
	}
	return n
}

// TestDriftRecordFromApply covers the no-op path after an install or an
// upgrade: the run that applies a release records what Helm wrote, so the
// first reconcile after it needs no dry run — and a hand edit made right
// after the apply, before any drift check ever ran, is still reported.
func TestDriftRecordFromApply(t *testing.T) {
	env := clusters.Env(t)
	tdm := newRunner(t, env.Kubeconfig())
	kc := kubectl{bin: env.Tool("kubectl"), kubeconfig: env.Kubeconfig()}
	repo := recordRepo(t)
	t.Cleanup(func() {
		for _, c := range []string{"blue", "green"} {
			kc.run(t, c, "delete", "namespace", recordNS, "--ignore-not-found", "--wait=false")
		}
	})
	// A long lease: no renewal request lands inside a run to blur the counts.
	reconcile := func(t *testing.T, extra ...string) (reconcileReport, apiRequests) {
		t.Helper()
		res := tdm.run(t, reconcileTimeout, append([]string{"reconcile", "-o", "json", "--lock-duration", "5m", "--manifest-dir", repo.Dir}, extra...)...)
		wantCode(t, res, 0)
		var rep reconcileReport
		res.JSON(t, &rep)
		var reqs apiRequests
		res.JSON(t, &reqs)
		return rep, reqs
	}
	step := func(name string, f func(t *testing.T)) {
		if !t.Run(name, f) {
			t.FailNow()
		}
	}

	step("edit right after the install is seen", func(t *testing.T) {
		reconcile(t)
		kc.run(t, "blue", "-n", recordNS, "patch", "configmap", "rec-b", "--type=merge", "-p", `{"data":{"greeting":"by hand"}}`)
		rep, _ := reconcile(t)
		drifted, _ := driftOf(t, rep)
		if d := cmp.Diff(map[string][]string{"blue/rec-b": {"ConfigMap " + recordNS + "/rec-b"}}, drifted); d != "" {
			t.Errorf("drifted on the first reconcile after the install (-want +got):\n%s", d)
		}
		// The install recorded the objects as its health wait last saw
		// them (the Deployments' status had moved since Helm's writes):
		// the releases no one touched need no object read.
		want := map[string]string{"blue/rec-a": "versions", "blue/rec-b": "dry-run", "green/rec-a": "versions", "green/rec-b": "versions"}
		if d := cmp.Diff(want, driftChecks(t, rep)); d != "" {
			t.Errorf("how the first reconcile after the install settled each release (-want +got):\n%s", d)
		}
		kc.run(t, "blue", "-n", recordNS, "patch", "configmap", "rec-b", "--type=merge", "-p", `{"data":{"greeting":"hello"}}`)
	})

	step("the first no-op after an apply makes no dry run", func(t *testing.T) {
		repo.Write(t, "values/rec-a.yaml", "host: rec-a.record.local\nconfig:\n  greeting: changed\n")
		repo.Commit(t, "rec-a: new greeting")
		rep, _ := reconcile(t)
		for _, c := range rep.Clusters {
			for _, r := range c.Releases {
				if r.Name == "rec-a" && (r.Action != "upgrade" || r.Outcome != "ok") {
					t.Fatalf("%s/rec-a: %s %s %s; want an upgrade", c.Name, r.Action, r.Outcome, r.Error)
				}
			}
		}
		first, firstReqs := reconcile(t)
		second, secondReqs := reconcile(t)
		for _, rep := range []reconcileReport{first, second} {
			if drifted, _ := driftOf(t, rep); len(drifted) > 0 {
				t.Fatalf("no drift expected, got %v", drifted)
			}
		}
		// The first no-op dry-runs nothing: the upgrade recorded what Helm
		// wrote. (It may read the objects a controller wrote since, a
		// Deployment's status, say; the second reads none.)
		for k, how := range driftChecks(t, first) {
			if how != "versions" && how != "fingerprint" {
				t.Errorf("%s: the first no-op after an upgrade settled its drift check by %q, want no dry run", k, how)
			}
		}
		for k, how := range driftChecks(t, second) {
			if how != "versions" {
				t.Errorf("%s: the second no-op after an upgrade settled its drift check by %q, want by resourceVersions", k, how)
			}
		}
		if firstReqs.total() < secondReqs.total() {
			t.Errorf("the first no-op after an upgrade made %d API requests, the next %d: the later one should need no more", firstReqs.total(), secondReqs.total())
		}
		// A run that does not check drift keeps the record: the next one
		// dry-runs nothing either.
		reconcile(t, "--detect-drift=false")
		_, afterReqs := reconcile(t)
		if d := cmp.Diff(secondReqs, afterReqs); d != "" {
			t.Errorf("API requests of a no-op after a --detect-drift=false run (+) and of a no-op before it (-):\n%s", d)
		}
	})

	// The step before ended with no-ops that found every release in its
	// desired state: they recorded the objects' resourceVersions too.
	step("a no-op reads no object until one is written", func(t *testing.T) {
		rep, _ := reconcile(t)
		want := map[string]string{"blue/rec-a": "versions", "blue/rec-b": "versions", "green/rec-a": "versions", "green/rec-b": "versions"}
		if d := cmp.Diff(want, driftChecks(t, rep)); d != "" {
			t.Fatalf("how the drift check settled each release (-want +got):\n%s", d)
		}
		// A write of nothing the chart sets: the objects are read again,
		// and found in their desired state without a dry run.
		kc.run(t, "blue", "-n", recordNS, "label", "configmap", "rec-a", "by-hand=yes")
		rep, _ = reconcile(t)
		if drifted, _ := driftOf(t, rep); len(drifted) > 0 {
			t.Fatalf("a label the chart does not set reported as drift: %v", drifted)
		}
		want["blue/rec-a"] = "fingerprint"
		if d := cmp.Diff(want, driftChecks(t, rep)); d != "" {
			t.Fatalf("after a label by hand (-want +got):\n%s", d)
		}
		rep, _ = reconcile(t)
		want["blue/rec-a"] = "versions"
		if d := cmp.Diff(want, driftChecks(t, rep)); d != "" {
			t.Fatalf("the run after it (-want +got):\n%s", d)
		}
		// A hand edit of what the chart sets, after a run that read no
		// object: seen.
		kc.run(t, "blue", "-n", recordNS, "patch", "configmap", "rec-a", "--type=merge", "-p", `{"data":{"greeting":"by hand"}}`)
		rep, _ = reconcile(t)
		drifted, _ := driftOf(t, rep)
		if d := cmp.Diff(map[string][]string{"blue/rec-a": {"ConfigMap " + recordNS + "/rec-a"}}, drifted); d != "" {
			t.Errorf("drifted after a run that read no object (-want +got):\n%s", d)
		}
		want["blue/rec-a"] = "dry-run"
		if d := cmp.Diff(want, driftChecks(t, rep)); d != "" {
			t.Errorf("after the hand edit (-want +got):\n%s", d)
		}
		kc.run(t, "blue", "-n", recordNS, "patch", "configmap", "rec-a", "--type=merge", "-p", `{"data":{"greeting":"changed"}}`)
	})

	step("edit of an object the upgrade left unchanged is seen", func(t *testing.T) {
		repo.Write(t, "values/rec-a.yaml", "host: rec-a.record.local\nconfig:\n  greeting: again\n")
		repo.Commit(t, "rec-a: another greeting")
		reconcile(t)
		// The Service was not patched by that upgrade (Helm read it back).
		kc.run(t, "green", "-n", recordNS, "patch", "service", "rec-a", "--type=merge", "-p", `{"spec":{"selector":{"app.kubernetes.io/instance":"hijacked"}}}`)
		rep, _ := reconcile(t)
		drifted, _ := driftOf(t, rep)
		if d := cmp.Diff(map[string][]string{"green/rec-a": {"Service " + recordNS + "/rec-a"}}, drifted); d != "" {
			t.Errorf("drifted after the upgrade (-want +got):\n%s", d)
		}
	})

	step("removing an ignore rule makes the next check look again", func(t *testing.T) {
		m := repo.Read(t, "tandem.yaml")
		rule := "    ignore:\n      - {kind: ConfigMap, paths: [/data]}\n"
		repo.Replace(t, "tandem.yaml", "values: [values/rec-b.yaml]\n", "values: [values/rec-b.yaml]\n"+rule)
		repo.Commit(t, "rec-b: ignore the ConfigMap's data")
		reconcile(t)
		kc.run(t, "blue", "-n", recordNS, "patch", "configmap", "rec-b", "--type=merge", "-p", `{"data":{"greeting":"ignored edit"}}`)
		rep, _ := reconcile(t)
		// (green's rec-a Service still drifts from the step before.)
		if drifted, _ := driftOf(t, rep); len(drifted["blue/rec-b"]) > 0 {
			t.Fatalf("an ignored field reported as drift: %v", drifted)
		}
		repo.Write(t, "tandem.yaml", m)
		repo.Commit(t, "rec-b: no ignore rule")
		rep, _ = reconcile(t)
		drifted, _ := driftOf(t, rep)
		if d := cmp.Diff([]string{"ConfigMap " + recordNS + "/rec-b"}, drifted["blue/rec-b"]); d != "" {
			t.Errorf("blue/rec-b drifted once the ignore rule is gone (-want +got):\n%s", d)
		}
	})

	// A run that upgrades a release but never writes its state record (killed
	// after Helm's upgrade, its lock lost, the write refused) leaves the record
	// of the revision before: the objects' fingerprint in the old desired
	// state. Reverting the upgrade by hand restores exactly that content; it is
	// drift from the new revision all the same.
	step("a record made for another digest is not taken for this one", func(t *testing.T) {
		const state = "tandem-state-record"
		saved := kc.run(t, "blue", "-n", "tandem-system", "get", "configmap", state, "-o", `jsonpath={.binaryData.state\.json\.gz}`)
		repo.Write(t, "values/rec-a.yaml", "host: rec-a.record.local\nreplicaCount: 2\nconfig:\n  greeting: again\n")
		repo.Commit(t, "rec-a: two replicas")
		reconcile(t)
		kc.run(t, "blue", "-n", "tandem-system", "patch", "configmap", state, "--type=merge", "-p", `{"binaryData":{"state.json.gz":"`+saved+`"}}`)
		kc.run(t, "blue", "-n", recordNS, "scale", "deployment", "rec-a", "--replicas=1")
		rep, _ := reconcile(t)
		drifted, _ := driftOf(t, rep)
		if d := cmp.Diff([]string{"Deployment " + recordNS + "/rec-a"}, drifted["blue/rec-a"]); d != "" {
			t.Errorf("blue/rec-a scaled back by hand after an upgrade whose run wrote no state record (-want +got):\n%s", d)
		}
		if how := driftChecks(t, rep)["blue/rec-a"]; how != "dry-run" {
			t.Errorf("blue/rec-a: drift check settled by %q, want a dry run (the record is of another digest)", how)
		}
	})
}

// driftChecks is how the drift check settled each release, by
// "cluster/release".
func driftChecks(t *testing.T, rep reconcileReport) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, c := range rep.Clusters {
		for _, r := range c.Releases {
			out[c.Name+"/"+r.Name] = r.DriftCheck
		}
	}
	return out
}
