package render

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/tandem-gitops/tandem/internal/helmchart"
	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart/loader"
)

// TestRenderUpgradeSemantics: a chart that gates an object on
// .Release.IsInstall (an initial-admin Secret) renders it for a release
// Helm will install, and not for one it will upgrade, as Helm's own install
// and upgrade do.
func TestRenderUpgradeSemantics(t *testing.T) {
	tests := []struct {
		name    string
		upgrade bool
		want    []string
	}{
		{name: "install", upgrade: false, want: []string{"Secret ns/initial-admin", "ConfigMap ns/r-config"}},
		{name: "upgrade", upgrade: true, want: []string{"ConfigMap ns/r-config"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := testdataRequest(t, "installonly")
			req.Upgrade = tt.upgrade
			res, err := New(DefaultOptions()).Render(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, o := range res.Objects {
				got = append(got, o.ID())
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("objects (-want +got):\n%s", diff)
			}
		})
	}
}

// TestPlannedUpgradeOfInstallOnlyChart drives Helm's install and upgrade
// against in-memory storage with the Planned post-renderer: a release
// planned as an upgrade (Upgrade true) is upgraded with the planned bytes,
// where a plan rendered as an install names an object Helm's upgrade does
// not render and is refused every time.
func TestPlannedUpgradeOfInstallOnlyChart(t *testing.T) {
	r := New(DefaultOptions())
	req := testdataRequest(t, "installonly")
	installPlan, err := r.Render(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	req.Upgrade = true
	upgradePlan, err := r.Render(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	ch, err := loader.Load(req.Chart.Dir)
	if err != nil {
		t.Fatal(err)
	}

	cfg := helmConfig()
	inst := action.NewInstall(cfg)
	inst.ReleaseName, inst.Namespace = req.Release, req.Namespace
	inst.PostRenderer = Planned{Release: "ns/r", Manifest: installPlan.Manifest}
	rel, err := inst.RunWithContext(context.Background(), helmchart.Copy(ch), map[string]any{})
	if err != nil {
		t.Fatalf("install of the install plan: %v", err)
	}
	if rel.Manifest != installPlan.Manifest {
		t.Errorf("install stored other bytes than planned:\n%s", cmp.Diff(installPlan.Manifest, rel.Manifest))
	}

	upgrade := func(plan *Result) (string, error) {
		up := action.NewUpgrade(cfg)
		up.Namespace = req.Namespace
		up.PostRenderer = Planned{Release: "ns/r", Manifest: plan.Manifest}
		rel, err := up.RunWithContext(context.Background(), req.Release, helmchart.Copy(ch), map[string]any{})
		if err != nil {
			return "", err
		}
		return rel.Manifest, nil
	}
	if _, err := upgrade(installPlan); err == nil || !strings.Contains(err.Error(), "only planned: installonly/templates/initial-admin.yaml: v1 Secret initial-admin") {
		t.Errorf("upgrade with an install plan: got %v, want it refused for the install-only Secret", err)
	}
	got, err := upgrade(upgradePlan)
	if err != nil {
		t.Fatalf("upgrade with an upgrade plan: %v", err)
	}
	if got != upgradePlan.Manifest {
		t.Errorf("upgrade stored other bytes than planned:\n%s", cmp.Diff(upgradePlan.Manifest, got))
	}
}
