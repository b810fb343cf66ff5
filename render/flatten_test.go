package render

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart/loader"
	"sigs.k8s.io/yaml"

	"github.com/tandem-gitops/tandem/internal/helmchart"
)

// TestListWrappedObjectsGetTheOverlay: objects a chart wraps in Lists
// (testdata/charts/list-wrapped-workloads-and-secrets) are applied by Helm one
// by one, so on a Standby cluster the wrapped Deployment runs at zero and the
// CronJob two Lists deep is suspended; the result names every wrapped object
// (a kind-less Secret item takes its kind from its SecretList), and no List.
func TestListWrappedObjectsGetTheOverlay(t *testing.T) {
	req := testdataRequest(t, "list-wrapped-workloads-and-secrets")
	req.Cluster = "green"
	req.Overlay = Overlay{Release: "r", Cluster: "green", Role: RoleStandby, ScaleToZero: true, DNSPrefix: prefix, ActiveWeight: 100}
	res, err := New(DefaultOptions()).Render(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	byID := map[string]map[string]any{}
	for _, o := range res.Objects {
		ids = append(ids, o.APIVersion+" "+o.ID()+" ("+o.Source+")")
		obj := map[string]any{}
		if err := yaml.Unmarshal(o.Body, &obj); err != nil {
			t.Fatal(err)
		}
		byID[o.ID()] = obj
	}
	// In Helm's install order, the Lists being unknown kinds, sorted by kind.
	want := []string{
		"v1 Secret ns/r-kindless (list-wrapped-workloads-and-secrets/templates/secretlist.yaml)",
		"apps/v1 Deployment ns/r-wrapped (list-wrapped-workloads-and-secrets/templates/list.yaml)",
		"v1 Secret ns/r-wrapped (list-wrapped-workloads-and-secrets/templates/list.yaml)",
		"batch/v1 CronJob ns/r-nested (list-wrapped-workloads-and-secrets/templates/nested.yaml)",
	}
	if diff := cmp.Diff(want, ids); diff != "" {
		t.Errorf("objects (-want +got):\n%s", diff)
	}
	if strings.Contains(res.Manifest, "kind: List") || strings.Contains(res.Manifest, "items:") {
		t.Errorf("the manifest still holds a List:\n%s", res.Manifest)
	}
	dep := byID["Deployment ns/r-wrapped"]
	if dep == nil || byID["CronJob ns/r-nested"] == nil {
		t.Fatal("the wrapped Deployment or CronJob is not among the objects")
	}
	if got := dep["spec"].(map[string]any)["replicas"]; got != float64(0) {
		t.Errorf("wrapped Deployment on Standby: replicas %v, want 0", got)
	}
	if got := dep["metadata"].(map[string]any)["annotations"].(map[string]any)[AnnotationActiveCount]; got != "3" {
		t.Errorf("wrapped Deployment: %s = %v, want 3", AnnotationActiveCount, got)
	}
	if got := byID["CronJob ns/r-nested"]["spec"].(map[string]any)["suspend"]; got != true {
		t.Errorf("CronJob two Lists deep on Standby: suspend %v, want true", got)
	}
	for id, obj := range byID {
		if got := obj["metadata"].(map[string]any)["labels"].(map[string]any)[LabelRole]; got != "standby" {
			t.Errorf("%s: label %s = %v, want standby", id, LabelRole, got)
		}
	}
}

// TestPlannedAcceptsHelmsUnflattenedLists: Helm's own render of a chart with
// Lists holds the Lists; the plan holds their items. Planned compares the
// objects Helm applies, so the install goes through, and Helm stores (and
// applies) the flattened plan.
func TestPlannedAcceptsHelmsUnflattenedLists(t *testing.T) {
	req := testdataRequest(t, "list-wrapped-workloads-and-secrets")
	plan, err := New(DefaultOptions()).Render(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	ch, err := loader.Load(req.Chart.Dir)
	if err != nil {
		t.Fatal(err)
	}
	inst := action.NewInstall(helmConfig())
	inst.ReleaseName, inst.Namespace = req.Release, req.Namespace
	inst.PostRenderer = Planned{Release: "ns/r", Manifest: plan.Manifest}
	rel, err := inst.RunWithContext(context.Background(), helmchart.Copy(ch), map[string]any{})
	if err != nil {
		t.Fatal(err)
	}
	if rel.Manifest != plan.Manifest {
		t.Errorf("install stored other bytes than planned:\n%s", cmp.Diff(plan.Manifest, rel.Manifest))
	}
}

func TestFlattenListErrors(t *testing.T) {
	deep := "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: List\n  items: []\n"
	for range maxListDepth {
		deep = "apiVersion: v1\nkind: List\nitems:\n- " + strings.ReplaceAll(strings.TrimSuffix(deep, "\n"), "\n", "\n  ") + "\n"
	}
	tests := []struct{ name, in, wantErr string }{
		{"items not a list", "apiVersion: v1\nkind: List\nmetadata: {name: x}\nitems: {a: b}\n", "items: not a list"},
		{"item not an object", "apiVersion: v1\nkind: List\nitems: [3]\n", "items[0]: not an object"},
		{"nested too deep", deep, "nested more than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Overlay{Role: RoleActive}.Run(bytes.NewBufferString("---\n# Source: c/templates/l.yaml\n" + tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "c/templates/l.yaml") {
				t.Errorf("error %v, want one naming the template and %q", err, tt.wantErr)
			}
		})
	}
	// An empty List (items: null or []) stands for no object at all.
	out, err := Overlay{Role: RoleActive}.Run(bytes.NewBufferString("apiVersion: v1\nkind: List\nitems: null\n---\napiVersion: v1\nkind: List\nitems: []\n"))
	if err != nil || out.Len() != 0 {
		t.Errorf("empty Lists: %q, %v; want nothing", out, err)
	}
}
