package render

import (
	"bytes"
	"context"
	"fmt"
	"strings"

	"github.com/tandem-gitops/tandem/internal/helmchart"
	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/releaseutil"
)

// rendered is what template returns.
type rendered struct {
	manifest, hooks string
	usedLookup      bool

	// parsed are manifest's and hooks' objects, when the render cache had
	// them (nil: parse them).
	parsed *parsedObjects
	// keep, when set, is where the render cache wants this answer stored
	// once it is parsed (see Renderer.render).
	keep *cacheSlot
}

// parsedObjects are ParseObjects of a render's manifest and hooks.
type parsedObjects struct {
	manifest, hooks []Object
}

// template is the `helm template` recipe (a client-only, dry-run
// action.Install) with two differences: templates see the request's
// capabilities instead of Helm's v1.20.0 defaults, and lookup is served by
// the request's provider and recorded. A request for a release that exists
// renders as `helm template --is-upgrade` does. action.Install offers neither a
// lookup provider nor a way to learn that lookup was called, so this runs
// the steps of its client-only path itself, with Helm's exported pieces and
// in the same order (Install.RunWithContext, Configuration.renderResources
// in helm v3.22): release name check, dependency processing, render values,
// kubeVersion check, engine render, NOTES removal, SortManifests in install
// order, "# Source:" assembly, post-render. TestRenderEqualsHelmTemplate
// holds it to the stock helm CLI.
func (r *Renderer) template(_ context.Context, req Request, ch *chart.Chart, vals map[string]any) (rendered, error) {
	if err := chartutil.ValidateReleaseName(req.Release); err != nil {
		return rendered{}, fmt.Errorf("release name %q: %w", req.Release, err)
	}
	if ch.Metadata.Dependencies != nil {
		// Dependencies come from the chart's charts/ directory only; nothing is fetched during a render.
		if err := action.CheckDependencies(ch, ch.Metadata.Dependencies); err != nil {
			return rendered{}, fmt.Errorf("chart %s: dependencies must be vendored in charts/ (run tandem vendor in the manifest repository, and commit charts/): %w", ch.Metadata.Name, err)
		}
	}
	caps, err := req.Capabilities.helm()
	if err != nil {
		return rendered{}, err
	}
	// Helm prunes disabled dependencies from the chart and coalesces into
	// the values it is handed: both are copies.
	ch, vals = helmchart.Copy(ch), helmchart.CopyValues(vals)
	if err := chartutil.ProcessDependenciesWithMerge(ch, vals); err != nil {
		return rendered{}, fmt.Errorf("template: %w", err)
	}
	// Helm's install renders with IsInstall and its upgrade with IsUpgrade
	// (action.Upgrade.prepareUpgrade); a plan must see what the operation
	// that applies it will, or Planned refuses a chart that renders an
	// object on install only.
	//
	// Revision stays 1 where Helm's upgrade has the new revision number: a
	// revision in the rendered content would change the digest every run,
	// and no release would ever be a no-op. Known limit: a chart that prints
	// .Release.Revision in a value is planned, and (Planned substituting the
	// plan) applied, with 1; its hooks, which Helm renders itself, see the
	// real one. One that puts it in an object's name (a migration Job per
	// revision) names other objects than Helm's render, and Planned refuses
	// its upgrades.
	top, err := chartutil.ToRenderValuesWithSchemaValidation(ch, vals, chartutil.ReleaseOptions{
		Name: req.Release, Namespace: req.Namespace, Revision: 1, IsInstall: !req.Upgrade, IsUpgrade: req.Upgrade,
	}, caps, false)
	if err != nil {
		return rendered{}, fmt.Errorf("template: %w", err)
	}
	if c := ch.Metadata.KubeVersion; c != "" && !chartutil.IsCompatibleRange(c, caps.KubeVersion.String()) {
		return rendered{}, fmt.Errorf("template: chart requires kubeVersion: %s which is incompatible with Kubernetes %s", c, caps.KubeVersion.String())
	}

	lookup := &recordingLookup{next: req.Lookup}
	files, err := engine.RenderWithClientProvider(ch, top, lookup)
	if err != nil {
		return rendered{}, fmt.Errorf("template: %w", err)
	}
	// NOTES.txt is neither a manifest nor a hook; Helm drops every chart's
	// (subcharts' included) before sorting.
	for name := range files {
		if strings.HasSuffix(name, "NOTES.txt") {
			delete(files, name)
		}
	}
	hooks, manifests, err := releaseutil.SortManifests(files, nil, releaseutil.InstallOrder)
	if err != nil {
		return rendered{}, fmt.Errorf("template: %w", err)
	}
	b := new(bytes.Buffer)
	for _, m := range manifests {
		fmt.Fprintf(b, "---\n# Source: %s\n%s\n", m.Name, m.Content)
	}
	out, err := req.Overlay.Run(b)
	if err != nil {
		return rendered{}, fmt.Errorf("template: error while running post render on files: %w", err)
	}
	var hb strings.Builder
	for _, h := range hooks {
		fmt.Fprintf(&hb, "---\n# Source: %s\n%s\n", h.Path, h.Manifest)
	}
	return rendered{manifest: out.String(), hooks: hb.String(), usedLookup: lookup.used.Load()}, nil
}
