package helmchart

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chartutil"
)

// TestCopyChartIsolatesHelmsMutations runs Helm's dependency processing,
// which prunes disabled subcharts from the chart it is given, on a copy and
// checks the original keeps them for the next release.
func TestCopyChartIsolatesHelmsMutations(t *testing.T) {
	sub := &chart.Chart{Metadata: &chart.Metadata{Name: "cache", Version: "1.0.0", APIVersion: chart.APIVersionV2}, Values: map[string]any{"size": 1}}
	parent := &chart.Chart{
		Metadata: &chart.Metadata{
			Name: "shop", Version: "1.0.0", APIVersion: chart.APIVersionV2,
			Dependencies: []*chart.Dependency{{Name: "cache", Version: "1.0.0", Condition: "cache.enabled"}},
		},
		Values: map[string]any{"cache": map[string]any{"enabled": true}},
	}
	parent.AddDependency(sub)

	cp := Copy(parent)
	if err := chartutil.ProcessDependenciesWithMerge(cp, map[string]any{"cache": map[string]any{"enabled": false}}); err != nil {
		t.Fatal(err)
	}
	if n := len(cp.Dependencies()); n != 0 {
		t.Fatalf("copy has %d dependencies after disabling cache, want 0 (is the test still exercising Helm's pruning?)", n)
	}
	if n := len(parent.Dependencies()); n != 1 {
		t.Errorf("original has %d dependencies, want 1: Helm's pruning leaked through the copy", n)
	}
	if parent.Dependencies()[0].Parent() != parent {
		t.Error("original's dependency lost its parent")
	}
	if cp2 := Copy(parent); cp2.Dependencies()[0].Parent() != cp2 {
		t.Error("copied dependency's parent is not the copy")
	}

	cp.Values["cache"].(map[string]any)["enabled"] = "changed"
	if diff := cmp.Diff(map[string]any{"cache": map[string]any{"enabled": true}}, parent.Values); diff != "" {
		t.Errorf("original values changed through the copy (-want +got):\n%s", diff)
	}
}

func TestCopyValues(t *testing.T) {
	in := map[string]any{"a": []any{map[string]any{"b": 1}}, "s": "x"}
	out := CopyValues(in)
	out["a"].([]any)[0].(map[string]any)["b"] = 2
	if diff := cmp.Diff(map[string]any{"a": []any{map[string]any{"b": 1}}, "s": "x"}, in); diff != "" {
		t.Errorf("input changed through the copy (-want +got):\n%s", diff)
	}
	if CopyValues(nil) != nil {
		t.Error("CopyValues(nil) != nil")
	}
}
