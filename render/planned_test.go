package render

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/tandem-gitops/tandem/internal/helmchart"
	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	kubefake "helm.sh/helm/v3/pkg/kube/fake"
	"helm.sh/helm/v3/pkg/postrender"
	"helm.sh/helm/v3/pkg/storage"
	"helm.sh/helm/v3/pkg/storage/driver"
)

// helmConfig is a Helm configuration whose cluster is Helm's printing fake
// and whose release storage is in memory, so installs and upgrades run
// Helm's whole release path without a cluster.
func helmConfig() *action.Configuration {
	return &action.Configuration{
		Releases:     storage.Init(driver.NewMemory()),
		KubeClient:   &kubefake.PrintingKubeClient{Out: io.Discard},
		Capabilities: chartutil.DefaultCapabilities,
		Log:          func(string, ...any) {},
	}
}

// TestPlannedIsWhatHelmInstalls: Helm's install, given the Planned
// post-renderer, records and applies exactly the planned manifest, even for a
// chart whose templates call randAlphaNum (so that Helm's second render
// differs from the plan), and so does an upgrade.
func TestPlannedIsWhatHelmInstalls(t *testing.T) {
	req := testdataRequest(t, "password")
	plan, err := New(DefaultOptions()).Render(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	ch, err := loader.Load(req.Chart.Dir)
	if err != nil {
		t.Fatal(err)
	}
	install := func(pr postrender.PostRenderer) string {
		t.Helper()
		inst := action.NewInstall(&action.Configuration{Log: func(string, ...any) {}})
		inst.DryRun, inst.DryRunOption, inst.ClientOnly = true, "client", true
		inst.ReleaseName, inst.Namespace = req.Release, req.Namespace
		inst.PostRenderer = pr
		rel, err := inst.RunWithContext(context.Background(), helmchart.Copy(ch), map[string]any{})
		if err != nil {
			t.Fatal(err)
		}
		return rel.Manifest
	}
	if got := install(req.Overlay); got == plan.Manifest {
		t.Fatal("Helm's second render equals the plan: the chart does not exercise randAlphaNum")
	}
	planned := Planned{Release: "ns/r", Manifest: plan.Manifest}
	if diff := cmp.Diff(plan.Manifest, install(planned)); diff != "" {
		t.Errorf("client-only install applied other bytes than planned (-planned +applied):\n%s", diff)
	}

	cfg := helmConfig()
	inst := action.NewInstall(cfg)
	inst.ReleaseName, inst.Namespace = req.Release, req.Namespace
	inst.PostRenderer = planned
	rel, err := inst.RunWithContext(context.Background(), helmchart.Copy(ch), map[string]any{})
	if err != nil {
		t.Fatal(err)
	}
	if rel.Manifest != plan.Manifest {
		t.Errorf("install stored other bytes than planned:\n%s", cmp.Diff(plan.Manifest, rel.Manifest))
	}
	up := action.NewUpgrade(cfg)
	up.Namespace = req.Namespace
	up.PostRenderer = planned
	rel, err = up.RunWithContext(context.Background(), req.Release, helmchart.Copy(ch), map[string]any{})
	if err != nil {
		t.Fatal(err)
	}
	if rel.Version != 2 || rel.Manifest != plan.Manifest {
		t.Errorf("upgrade to revision %d stored other bytes than planned:\n%s", rel.Version, cmp.Diff(plan.Manifest, rel.Manifest))
	}
}

// TestPlannedRefusesAnotherRender: an install whose chart renders other
// objects than the plan names (another chart, other values or capabilities
// were handed to it) is refused, naming the release, and applies nothing.
func TestPlannedRefusesAnotherRender(t *testing.T) {
	other, err := New(DefaultOptions()).Render(context.Background(), exampleRequest(t, "blue", RoleActive))
	if err != nil {
		t.Fatal(err)
	}
	ch, err := loader.Load(testdataRequest(t, "password").Chart.Dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg := helmConfig()
	inst := action.NewInstall(cfg)
	inst.ReleaseName, inst.Namespace = "r", "ns"
	inst.PostRenderer = Planned{Release: "ns/r", Manifest: other.Manifest}
	_, err = inst.RunWithContext(context.Background(), ch, map[string]any{})
	if err == nil {
		t.Fatal("want an error")
	}
	for _, w := range []string{`release "ns/r"`, "only planned: example/templates/deployment.yaml: apps/v1 Deployment example,", "only rendered now: password/templates/secret.yaml: v1 Secret r-auth"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %q", err, w)
		}
	}
	if rels, _ := cfg.Releases.History("r"); len(rels) != 0 {
		t.Errorf("a refused install stored %d revisions", len(rels))
	}
}

func TestPlannedRun(t *testing.T) {
	const planned = "---\n# Source: c/templates/a.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  labels:\n    tandem.dev/role: active\n  name: a\n"
	tests := []struct {
		name, helm, wantErr string
	}{
		{name: "same objects, other content", helm: "---\n# Source: c/templates/a.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  x: y\n"},
		{name: "a template that rendered only a comment", helm: "---\n# Source: c/templates/empty.yaml\n# nothing enabled\n---\n# Source: c/templates/a.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n"},
		{name: "another apiVersion", helm: "---\n# Source: c/templates/a.yaml\napiVersion: v2\nkind: ConfigMap\nmetadata:\n  name: a\n",
			wantErr: "only planned: c/templates/a.yaml: v1 ConfigMap a; only rendered now: c/templates/a.yaml: v2 ConfigMap a"},
		{name: "an object twice", helm: "---\n# Source: c/templates/a.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n---\n# Source: c/templates/a.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n",
			wantErr: "the same objects a different number of times"},
		{name: "nothing", helm: "", wantErr: "only planned: c/templates/a.yaml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := Planned{Release: "ns/r", Manifest: planned}.Run(bytes.NewBufferString(tt.helm))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), `release "ns/r"`) {
					t.Fatalf("got %v, want an error naming the release and saying %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if out.String() != planned {
				t.Errorf("got %q, want the planned manifest", out.String())
			}
		})
	}
}
