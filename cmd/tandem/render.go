package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/tandem-gitops/tandem/manifest"
	"github.com/tandem-gitops/tandem/reconciler"
	"github.com/tandem-gitops/tandem/render"
)

type renderFlags struct {
	source   sourceFlags
	clusters []string
	releases []string
}

func newRenderCmd(g *globalFlags, s streams) *cobra.Command {
	f := &renderFlags{}
	cmd := &cobra.Command{
		Use:   "render",
		Short: "Print what would be applied to each cluster, overlays included",
		Long: `render renders every enabled release for every cluster (or the ones named) client-side,
exactly as helm template would, plus tandem's Active/Standby overlay, and prints the result with
"# Source:" comments. It needs no cluster access. The CRDs in a chart's crds/ come first, as
helm template --include-crds prints them: Helm creates them at a release's first install only.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			m, _, err := f.source.load(ctx)
			if err != nil {
				return err
			}
			results, err := g.pipeline(s, 50, 100).Render(ctx, m, reconciler.Selection{Clusters: f.clusters, Releases: f.releases})
			if err != nil {
				return err
			}
			switch g.output {
			case "", "yaml":
				return writeRenderYAML(s.Out, m, results)
			case "json":
				return writeRenderJSON(s.Out, results)
			default:
				return fmt.Errorf("unknown output format %q (want yaml or json)", g.output)
			}
		},
	}
	f.source.register(cmd)
	cmd.Flags().StringSliceVar(&f.clusters, "cluster", nil, "only these clusters (repeatable)")
	cmd.Flags().StringSliceVar(&f.releases, "release", nil, "only these releases (repeatable)")
	return cmd
}

// renderOptions are the render options of every command. Templates run in
// worker processes (this binary's render-worker command), as the daemon's
// do, so that a hostile chart's template that expands to gigabytes, or runs
// for ever, is killed at the workers' memory and output bounds instead of
// taking the CI runner or laptop down with it (issue 11 item 7).
func renderOptions() render.Options {
	o := render.DefaultOptions()
	o.CacheDir = cacheDir()
	if iso, err := renderIsolation(); err == nil {
		o.Isolation = iso
		if os.Getenv("TANDEM_RENDER_CACHE") != "off" {
			o.RenderCacheDir = filepath.Join(o.CacheDir, "renders")
		}
	}
	// As the helm CLI's --registry-config defaults; empty is Helm's own file.
	o.RegistryConfig = os.Getenv("HELM_REGISTRY_CONFIG")
	return o
}

func writeRenderYAML(w io.Writer, m *manifest.Manifest, results []*render.Result) error {
	var b strings.Builder
	for _, r := range results {
		c, _ := m.Cluster(r.Cluster)
		fmt.Fprintf(&b, "# tandem: cluster %s (%s), release %s/%s, chart %s-%s\n", r.Cluster, c.Role, r.Namespace, r.Release, r.ChartName, r.ChartVersion)
		b.WriteString(render.CRDManifest(r.CRDs)) // first, as helm template --include-crds prints them
		b.WriteString(r.Manifest)
		if r.SkipHooks && r.Hooks != "" {
			fmt.Fprintf(&b, "# tandem: the hooks below are not run on cluster %s: the release is scaled to zero there (standbyHooks: run runs them)\n", r.Cluster)
		}
		b.WriteString(r.Hooks)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// renderedRelease is the JSON shape of `tandem render -o json`.
type renderedRelease struct {
	Cluster      string           `json:"cluster"`
	Release      string           `json:"release"`
	Namespace    string           `json:"namespace"`
	Chart        string           `json:"chart"`
	ChartVersion string           `json:"chartVersion"`
	Digest       string           `json:"digest"`
	Objects      []map[string]any `json:"objects"`
	// Hooks are the chart's Helm hooks, which carry no overlay; HooksSkipped
	// says they are not run on this cluster (scaled to zero there).
	Hooks        []map[string]any `json:"hooks"`
	HooksSkipped bool             `json:"hooksSkipped,omitempty"`
	// CRDs are the chart's crds/, which Helm creates at the first install only.
	CRDs []map[string]any `json:"crds,omitempty"`
	// Generated are the fields the chart generates afresh at every render.
	Generated []render.Generated `json:"generated,omitempty"`
}

func writeRenderJSON(w io.Writer, results []*render.Result) error {
	out := make([]renderedRelease, 0, len(results))
	for _, r := range results {
		rr := renderedRelease{Cluster: r.Cluster, Release: r.Release, Namespace: r.Namespace, Chart: r.ChartName, Generated: r.Generated,
			ChartVersion: r.ChartVersion, Digest: r.Digest, Objects: []map[string]any{}, Hooks: []map[string]any{}, HooksSkipped: r.SkipHooks}
		for _, list := range []struct {
			objs []render.Object
			out  *[]map[string]any
		}{{r.Objects, &rr.Objects}, {r.HookObjects, &rr.Hooks}} {
			for _, o := range list.objs {
				obj := map[string]any{}
				if err := yaml.Unmarshal(o.Body, &obj); err != nil {
					return fmt.Errorf("cluster %q: release %q: %s: %w", r.Cluster, r.Release, o.ID(), err)
				}
				*list.out = append(*list.out, obj)
			}
		}
		for _, o := range r.CRDs {
			obj := map[string]any{}
			if err := yaml.Unmarshal(o.Body, &obj); err != nil {
				return fmt.Errorf("cluster %q: release %q: %s: %w", r.Cluster, r.Release, o.Source, err)
			}
			rr.CRDs = append(rr.CRDs, obj)
		}
		out = append(out, rr)
	}
	return writeJSON(w, out)
}
