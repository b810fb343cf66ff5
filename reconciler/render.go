package reconciler

import (
	"context"
	"fmt"

	"github.com/tandem-gitops/tandem/manifest"
	"github.com/tandem-gitops/tandem/render"
)

// Renderer is what the reconciler needs of the render package.
type Renderer interface {
	RenderAll(ctx context.Context, reqs []render.Request) ([]*render.Result, error)
}

var _ Renderer = (*render.Renderer)(nil)

// Render renders every selected release for every selected cluster, with
// the capabilities each cluster declares in tandem.yaml (or the default) and
// no cluster lookups: what CI can know without credentials. Every
// problem is reported, each naming its cluster, release and file; results of
// the releases that rendered are returned alongside the error.
func Render(ctx context.Context, m *manifest.Manifest, r Renderer, sel Selection) ([]*render.Result, error) {
	if err := sel.Check(m); err != nil {
		return nil, err
	}
	reqs, err := RenderRequests(m, sel)
	if err != nil {
		return nil, err
	}
	return r.RenderAll(ctx, reqs)
}

// renderCluster renders a cluster's selected releases again once connected,
// with what the cluster says of itself (its version and API versions) and a
// read-only live lookup, as Helm's own install would see them: what is then
// planned, digested and applied is this render.
// Releases in exists are rendered as Helm's upgrade renders them.
func renderCluster(ctx context.Context, m *manifest.Manifest, r Renderer, sel Selection, c manifest.Cluster, t Target, exists map[ReleaseKey]bool) ([]*render.Result, render.Capabilities, error) {
	caps, err := t.Capabilities(ctx)
	if err != nil {
		return nil, caps, fmt.Errorf("read capabilities: %w", err)
	}
	one := sel
	one.Clusters = []string{c.Name}
	reqs, err := RenderRequests(m, one)
	if err != nil {
		return nil, caps, err
	}
	for i := range reqs {
		reqs[i].Capabilities = caps
		reqs[i].Lookup = t.Lookup(reqs[i].Namespace)
		reqs[i].Upgrade = exists[ReleaseKey{reqs[i].Namespace, reqs[i].Release}]
	}
	results, err := r.RenderAll(ctx, reqs)
	return results, caps, err
}

// keepGenerated puts the deployed values of generated fields (a password a
// chart generates with randAlphaNum) back into each result of a release Helm
// storage holds, so that the plan, a live diff and drift correction carry
// what the cluster has rather than a fresh value (render.Result.Generated).
func keepGenerated(results []*render.Result, deployed []Deployed) error {
	byKey := make(map[ReleaseKey]string, len(deployed))
	for _, d := range deployed {
		byKey[d.key()] = d.Manifest
	}
	for _, res := range results {
		if res == nil || len(res.Generated) == 0 {
			continue
		}
		if _, err := res.KeepGenerated(byKey[ReleaseKey{res.Namespace, res.Release}]); err != nil {
			return fmt.Errorf("release %s/%s: keep generated values: %w", res.Namespace, res.Release, err)
		}
	}
	return nil
}
