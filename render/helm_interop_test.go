package render

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
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
