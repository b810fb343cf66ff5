package render

import (
	"bytes"
	"fmt"
	"strings"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chartutil"
	"sigs.k8s.io/yaml"

	"github.com/tandem-gitops/tandem/internal/helmchart"
)

// chartCRDs returns the CRDs Helm's install would create for ch with vals:
// the files in the crds/ directories of the chart and of the subcharts its
// values enable (Helm prunes disabled ones before it installs CRDs), in
// Helm's order, each document an Object whose Source is its file.
func chartCRDs(ch *chart.Chart, vals map[string]any) ([]Object, error) {
	if len(ch.CRDObjects()) == 0 {
		return nil, nil
	}
	if len(ch.Metadata.Dependencies) > 0 {
		ch, vals = helmchart.Copy(ch), helmchart.CopyValues(vals)
		if err := chartutil.ProcessDependenciesWithMerge(ch, vals); err != nil {
			return nil, fmt.Errorf("crds: %w", err)
		}
	}
	var out []Object
	for _, crd := range ch.CRDObjects() {
		docs, err := splitDocuments(crd.File.Data)
		if err != nil {
			return nil, fmt.Errorf("crds: %s: %w", crd.Filename, err)
		}
		for _, d := range docs {
			var m struct {
				APIVersion string `json:"apiVersion"`
				Kind       string `json:"kind"`
				Metadata   struct {
					Name      string `json:"name"`
					Namespace string `json:"namespace"`
				} `json:"metadata"`
			}
			if err := yaml.Unmarshal(d.body, &m); err != nil {
				return nil, fmt.Errorf("crds: %s: %w", crd.Filename, err)
			}
			if m.APIVersion == "" && m.Kind == "" && m.Metadata.Name == "" {
				continue // comments only, as a licence header
			}
			if m.APIVersion == "" || m.Kind == "" || m.Metadata.Name == "" {
				return nil, fmt.Errorf("crds: %s: object without apiVersion, kind or metadata.name", crd.Filename)
			}
			if m.Kind != "CustomResourceDefinition" || apiGroup(m.APIVersion) != "apiextensions.k8s.io" {
				// Helm's install would create it before the templates,
				// without the post-renderer: no overlay on a Standby.
				id := m.Metadata.Name
				if m.Metadata.Namespace != "" {
					id = m.Metadata.Namespace + "/" + id
				}
				return nil, fmt.Errorf("crds: %s: %s %s %s is not a CustomResourceDefinition: Helm would create it at the first install without tandem's overlay; move it to templates/", crd.Filename, m.APIVersion, m.Kind, id)
			}
			out = append(out, Object{APIVersion: m.APIVersion, Kind: m.Kind, Name: m.Metadata.Name, Source: crd.Filename, Body: d.body})
		}
	}
	return out, nil
}

// CRDManifest prints crds as `helm template --include-crds` does, each
// document under its "# Source:" comment.
func CRDManifest(crds []Object) string {
	var b strings.Builder
	for _, o := range crds {
		fmt.Fprintf(&b, "---\n# Source: %s\n%s\n", o.Source, bytes.TrimRight(o.Body, "\n"))
	}
	return b.String()
}
