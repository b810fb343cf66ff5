package reconciler

import (
	"context"

	"github.com/tandem-gitops/tandem/manifest"
	"github.com/tandem-gitops/tandem/render"
)

// Renderer is what the reconciler needs of the render package.
type Renderer interface {
	RenderAll(ctx context.Context, reqs []render.Request) ([]*render.Result, error)
}

var _ Renderer = (*render.Renderer)(nil)

// Render renders every selected release for every selected cluster. Every
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
