package render

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/yaml"

	"github.com/tandem-gitops/tandem/e2e/localcluster"
)

// TestRenderEqualsHelmTemplate checks that tandem's render of each example
// chart is exactly what the stock helm CLI's `helm template` renders for the
// same chart and values, plus the overlay.
func TestRenderEqualsHelmTemplate(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the helm CLI built from the tools module")
	}
	tools, err := localcluster.EnsureTools(context.Background(), os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	helm := filepath.Join(tools, "helm")
	valuesFile := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(valuesFile, []byte("replicaCount: 4\ngreeting: from a file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, chart := range []string{"example", "storefront", "orders-worker", "cache", "platform"} {
		for _, role := range []Role{RoleActive, RoleStandby} {
			t.Run(chart+"/"+string(role), func(t *testing.T) {
				overlay := Overlay{Release: "rel", Cluster: "c1", Role: role, ScaleToZero: true, DNSPrefix: prefix, ActiveWeight: 100}
				cmd := exec.Command(helm, "template", "rel", exampleDir(t, chart), "--namespace", "shop", "-f", valuesFile, "--set-string", "image.tag=9.9.9")
				cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+t.TempDir(), "HELM_CONFIG_HOME="+t.TempDir(), "HELM_DATA_HOME="+t.TempDir())
				var stderr bytes.Buffer
				cmd.Stderr = &stderr
				out, err := cmd.Output()
				if err != nil {
					t.Fatalf("helm template: %v\n%s", err, stderr.String())
				}
				fromHelm, err := overlay.Run(bytes.NewBuffer(out))
				if err != nil {
					t.Fatal(err)
				}
				res, err := New(DefaultOptions()).Render(context.Background(), Request{
					Cluster: "c1", Release: "rel", Namespace: "shop", Chart: ChartSource{Dir: exampleDir(t, chart)},
					Values: []ValuesLayer{
						{Source: "values.yaml", File: []byte("replicaCount: 4\ngreeting: from a file\n")},
						{Source: "set", Set: map[string]any{"image.tag": "9.9.9"}},
					},
					Overlay: overlay,
				})
				if err != nil {
					t.Fatal(err)
				}
				want, got := objectsBySource(t, fromHelm.String()), objectsBySource(t, res.Manifest)
				if len(want) == 0 {
					t.Fatal("helm rendered nothing")
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("tandem render differs from helm template + overlay (-helm +tandem):\n%s", diff)
				}
			})
		}
	}
}

func objectsBySource(t *testing.T, manifest string) []map[string]any {
	t.Helper()
	docs, err := splitDocuments([]byte(manifest))
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	for _, d := range docs {
		m := map[string]any{}
		if err := yaml.Unmarshal(d.body, &m); err != nil {
			t.Fatal(err)
		}
		if len(m) > 0 {
			m["#source"] = d.source
			out = append(out, m)
		}
	}
	return out
}

// TestRenderWithCapabilitiesEqualsHelmTemplate holds tandem's own rendering
// recipe to `helm template --kube-version/--api-versions` for charts that
// read .Capabilities, and for one with everything the recipe must reproduce:
// hooks (a test hook among them), NOTES.txt in the chart and a subchart,
// several kinds in one template out of install order, an empty document;
// and to `helm template --is-upgrade` for a chart that renders an object on
// install only (Request.Upgrade). Hooks are compared too: helm template
// prints them after the manifest.
func TestRenderWithCapabilitiesEqualsHelmTemplate(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the helm CLI built from the tools module")
	}
	tools, err := localcluster.EnsureTools(context.Background(), os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	helm := filepath.Join(tools, "helm")
	tests := []struct {
		chart   string
		flags   []string
		caps    Capabilities
		upgrade bool
	}{
		{"hooks", []string{"--kube-version", "1.31.0"}, Capabilities{KubeVersion: "1.31.0"}, false},
		{"cronjob", []string{"--kube-version", "v1.20.0"}, Capabilities{KubeVersion: "v1.20.0"}, false},
		{"cronjob", []string{"--kube-version", "v1.33.1"}, Capabilities{KubeVersion: "v1.33.1"}, false},
		{"kubeversion", []string{"--kube-version", "1.30.0"}, Capabilities{KubeVersion: "1.30.0"}, false},
		{"apiversions", []string{"--kube-version", "1.30.0", "--api-versions", "monitoring.coreos.com/v1", "--api-versions", "monitoring.coreos.com/v1/ServiceMonitor"},
			Capabilities{KubeVersion: "1.30.0", APIVersions: []string{"monitoring.coreos.com/v1", "monitoring.coreos.com/v1/ServiceMonitor"}}, false},
		{"installonly", []string{"--kube-version", "1.30.0"}, Capabilities{KubeVersion: "1.30.0"}, false},
		{"installonly", []string{"--kube-version", "1.30.0", "--is-upgrade"}, Capabilities{KubeVersion: "1.30.0"}, true},
	}
	for _, tt := range tests {
		for _, role := range []Role{RoleActive, RoleStandby} {
			t.Run(tt.chart+"/"+strings.Join(tt.flags, " ")+"/"+string(role), func(t *testing.T) {
				dir, err := filepath.Abs(filepath.Join("testdata", "charts", tt.chart))
				if err != nil {
					t.Fatal(err)
				}
				overlay := Overlay{Release: "rel", Cluster: "c1", Role: role, ScaleToZero: true, DNSPrefix: prefix, ActiveWeight: 100}
				cmd := exec.Command(helm, append([]string{"template", "rel", dir, "--namespace", "shop"}, tt.flags...)...)
				cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+t.TempDir(), "HELM_CONFIG_HOME="+t.TempDir(), "HELM_DATA_HOME="+t.TempDir())
				var stderr bytes.Buffer
				cmd.Stderr = &stderr
				out, err := cmd.Output()
				if err != nil {
					t.Fatalf("helm template: %v\n%s", err, stderr.String())
				}
				fromHelm, err := overlay.Run(bytes.NewBuffer(out))
				if err != nil {
					t.Fatal(err)
				}
				res, err := New(DefaultOptions()).Render(context.Background(), Request{
					Cluster: "c1", Release: "rel", Namespace: "shop", Chart: ChartSource{Dir: dir},
					Overlay: overlay, Capabilities: tt.caps, Upgrade: tt.upgrade,
				})
				if err != nil {
					t.Fatal(err)
				}
				// Helm does not post-render hooks; the comparison overlays both sides alike.
				hooks, err := overlay.Run(bytes.NewBufferString(res.Hooks))
				if err != nil {
					t.Fatal(err)
				}
				want, got := objectsBySource(t, fromHelm.String()), objectsBySource(t, res.Manifest+hooks.String())
				if len(want) == 0 {
					t.Fatal("helm rendered nothing")
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("tandem render differs from helm template + overlay (-helm +tandem):\n%s", diff)
				}
			})
		}
	}
}
