package reconciler

import (
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tandem-gitops/tandem/manifest"
	"github.com/tandem-gitops/tandem/render"
)

func TestRenderRequestsForExamples(t *testing.T) {
	m, err := manifest.Load(filepath.Join("..", "examples", "manifest"), manifest.DefaultLoadOptions())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		sel  Selection
		want []string // cluster/release
	}{
		{"all", Selection{}, []string{"blue/platform", "blue/cache", "blue/example", "blue/storefront", "blue/orders-worker", "green/platform", "green/example"}},
		{"one cluster", Selection{Clusters: []string{"green"}}, []string{"green/platform", "green/example"}},
		{"one release", Selection{Releases: []string{"example"}}, []string{"blue/example", "green/example"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reqs, err := RenderRequests(m, tt.sel)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range reqs {
				got = append(got, r.Cluster+"/"+r.Release)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}

	reqs, err := RenderRequests(m, Selection{Clusters: []string{"green"}, Releases: []string{"example"}})
	if err != nil || len(reqs) != 1 {
		t.Fatalf("%v %v", reqs, err)
	}
	ex := reqs[0]
	var sources []string
	for _, l := range ex.Values {
		sources = append(sources, l.Source)
	}
	// chart defaults < values files < set < cluster values < cluster set
	if diff := cmp.Diff([]string{"values/example.yaml", "tandem.yaml: releases[2].set", "values/example-green.yaml"}, sources); diff != "" {
		t.Errorf("values layers (-want +got):\n%s", diff)
	}
	want := render.Overlay{Release: "example", Cluster: "green", Role: render.RoleStandby, ScaleToZero: true,
		DNSPrefix: "external-dns.alpha.kubernetes.io/", ActiveWeight: 100}
	if diff := cmp.Diff(want, ex.Overlay); diff != "" {
		t.Errorf("overlay (-want +got):\n%s", diff)
	}
	platform, _ := RenderRequests(m, Selection{Clusters: []string{"green"}, Releases: []string{"platform"}})
	if platform[0].Overlay.ScaleToZero {
		t.Error("platform has standby: keep and must not be scaled to zero")
	}
	if err := (Selection{Clusters: []string{"purple"}}).Check(m); err == nil {
		t.Error("unknown cluster in a selection must be an error")
	}
}

// Item 3 of the safety issue: offline renders use what tandem.yaml declares
// of each cluster.
func TestRenderRequestsCarryDeclaredCapabilities(t *testing.T) {
	m := &manifest.Manifest{
		Clusters:     []manifest.Cluster{{Name: "blue", Role: manifest.RoleActive, KubeVersion: "v1.31.0", APIVersions: []string{"monitoring.coreos.com/v1"}}},
		Repositories: []manifest.Repository{{Name: "r", URL: "https://charts.example"}},
		Releases:     []manifest.Release{{Name: "web", Namespace: "s", Chart: "r/web", Version: "1.0.0"}},
	}
	reqs, err := RenderRequests(m, Selection{})
	if err != nil {
		t.Fatal(err)
	}
	want := render.Capabilities{KubeVersion: "v1.31.0", APIVersions: []string{"monitoring.coreos.com/v1"}}
	if diff := cmp.Diff(want, reqs[0].Capabilities); diff != "" {
		t.Errorf("capabilities (-want +got):\n%s", diff)
	}
}
