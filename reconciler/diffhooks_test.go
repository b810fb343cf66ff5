package reconciler

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tandem-gitops/tandem/manifest"
	"github.com/tandem-gitops/tandem/render"
)

func withHooks(r *render.Result, skip bool, hooks ...string) *render.Result {
	for _, h := range hooks {
		objs, err := render.ParseObjects(h, r.Namespace)
		if err != nil {
			panic(err)
		}
		r.HookObjects = append(r.HookObjects, objs...)
	}
	r.SkipHooks = skip
	return r
}

// Issue 11 item 5: a plan shows a release's hooks — a changed migration Job
// is a difference, marked as a hook and, on a Standby where the release is
// scaled to zero, as not run there — and says which hooks the upgrade runs.
// A Secret shipped as a hook is masked like any other.
func TestDiffAgainstShowsHooks(t *testing.T) {
	job := func(schema string) string {
		return "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: migrate\n  annotations: {helm.sh/hook: pre-upgrade}\nspec: {template: {spec: {containers: [{name: m, args: [" + schema + "]}]}}}\n"
	}
	secret := func(v string) string {
		return "apiVersion: v1\nkind: Secret\nmetadata:\n  name: creds\n  annotations: {helm.sh/hook: pre-upgrade}\nstringData: {password: " + v + "}\n"
	}
	m := &manifest.Manifest{Clusters: []manifest.Cluster{{Name: "blue", Role: manifest.RoleActive}, {Name: "green", Role: manifest.RoleStandby}}}
	from := []*render.Result{withHooks(result("blue", "web", cmOld), false, job("v1"), secret("hook-secret-one")), withHooks(result("green", "web", cmOld), true, job("v1"), secret("hook-secret-one"))}
	to := []*render.Result{withHooks(result("blue", "web", cmOld), false, job("v2"), secret("hook-secret-two")), withHooks(result("green", "web", cmOld), true, job("v2"), secret("hook-secret-two"))}
	to[0].Digest, to[1].Digest = "changed", "changed"
	rep, err := DiffAgainst(m, from, m, to, "a", "b")
	if err != nil {
		t.Fatal(err)
	}
	type row struct{ Cluster, Label, Notes string }
	var got []row
	var all []string
	for _, c := range rep.Clusters {
		for _, r := range c.Releases {
			for _, o := range r.Objects {
				got = append(got, row{c.Name, o.Label(), strings.Join(r.Notes, "; ")})
				all = append(all, o.Diff)
			}
		}
	}
	runs := "hooks the upgrade runs: Job shop/migrate (pre-upgrade), Secret shop/creds (pre-upgrade)"
	skipped := "hooks not run on this cluster (the release is scaled to zero here; standbyHooks: run runs them): Job shop/migrate (pre-upgrade), Secret shop/creds (pre-upgrade)"
	want := []row{
		{"blue", "Job shop/migrate (hook pre-upgrade)", runs},
		{"blue", "Secret shop/creds (hook pre-upgrade)", runs},
		{"green", "Job shop/migrate (hook pre-upgrade, not run on this cluster)", skipped},
		{"green", "Secret shop/creds (hook pre-upgrade, not run on this cluster)", skipped},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if text := strings.Join(all, "\n"); strings.Contains(text, "hook-secret") || !strings.Contains(text, "+        - v2") {
		t.Errorf("hook diffs: want the Job's change and no Secret value:\n%s", text)
	}
}
