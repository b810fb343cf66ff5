package render

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// A chart's crds/ (and its enabled subcharts') come with the render, apart
// from the manifest: untouched by the overlay, as Helm's install creates them.
func TestRenderIncludesCRDs(t *testing.T) {
	dir, err := filepath.Abs(filepath.Join("testdata", "charts", "crds"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		set  map[string]any
		want []string
	}{
		{"subchart disabled", nil, []string{"crds/crds/widgets.yaml: CustomResourceDefinition widgets.example.com"}},
		{"subchart enabled", map[string]any{"extra.enabled": true}, []string{
			"crds/crds/widgets.yaml: CustomResourceDefinition widgets.example.com",
			"crds/charts/extra/crds/gadgets.yaml: CustomResourceDefinition gadgets.example.com",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := Request{Cluster: "green", Release: "rel", Namespace: "shop", Chart: ChartSource{Dir: dir},
				Overlay: Overlay{Release: "rel", Cluster: "green", Role: RoleStandby, ScaleToZero: true, DNSPrefix: prefix, ActiveWeight: 100}}
			if tc.set != nil {
				req.Values = []ValuesLayer{{Source: "set", Set: tc.set}}
			}
			res, err := New(DefaultOptions()).Render(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, o := range res.CRDs {
				got = append(got, o.Source+": "+o.ID())
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("CRDs (-want +got):\n%s", diff)
			}
			for _, o := range res.CRDs {
				if strings.Contains(string(o.Body), "tandem.dev/") {
					t.Errorf("the overlay reached a CRD:\n%s", o.Body)
				}
			}
			if strings.Contains(res.Manifest, "CustomResourceDefinition") {
				t.Errorf("CRDs in the release manifest (Helm keeps them out of it):\n%s", res.Manifest)
			}
			m := CRDManifest(res.CRDs)
			if !strings.HasPrefix(m, "---\n# Source: crds/crds/widgets.yaml\napiVersion: apiextensions.k8s.io/v1\n") {
				t.Errorf("CRDManifest:\n%s", m)
			}
		})
	}
}

// Helm's install creates every object in crds/, not only CRDs, before the
// templates and without the post-renderer: a CronJob or a Deployment there
// would escape the Standby overlay (and a ClusterRoleBinding the plan's
// templates). Anything but a CustomResourceDefinition is refused, naming
// the file and the object.
func TestRenderRefusesNonCRDsInCRDsDir(t *testing.T) {
	_, err := New(DefaultOptions()).Render(context.Background(), testdataRequest(t, "crds-smuggle"))
	if err == nil || !strings.Contains(err.Error(), "crds-smuggle/crds/jobs.yaml") || !strings.Contains(err.Error(), "CronJob shop/unsuspended") {
		t.Fatalf("a CronJob in crds/: err = %v, want a refusal naming the file and the object", err)
	}
}
