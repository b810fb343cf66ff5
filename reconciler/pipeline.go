package reconciler

import (
	"context"
	"fmt"
	"sync"

	"github.com/tandem-gitops/tandem/manifest"
	"github.com/tandem-gitops/tandem/render"
)

// Pipeline is the one path from a loaded manifest to the clusters, shared by
// the one-shot commands and the daemon: render every cluster offline first (a
// manifest that does not render reaches no cluster), then per cluster render
// again with what the cluster says of itself, and apply, diff or read.
//
// Its parts live as long as it does. The daemon keeps one Pipeline for its
// life, so the chart cache and, through ConnectOnce, each cluster's
// connection with its discovery cache outlive a run.
type Pipeline struct {
	Renderer Renderer
	Connect  Connector
}

// Validation counts what a valid manifest holds.
type Validation struct {
	Clusters int `json:"clusters"`
	Releases int `json:"releases"`
	Renders  int `json:"renders"`
	Objects  int `json:"objects"`
}

// Validate renders every release for every cluster offline.
func (p *Pipeline) Validate(ctx context.Context, m *manifest.Manifest) (Validation, error) {
	results, err := Render(ctx, m, p.Renderer, Selection{})
	if err != nil {
		return Validation{}, err
	}
	v := Validation{Clusters: len(m.Clusters), Releases: len(m.Releases), Renders: len(results)}
	for _, r := range results {
		v.Objects += len(r.Objects)
	}
	return v, nil
}

// Render renders the selection offline, as CI can without credentials.
func (p *Pipeline) Render(ctx context.Context, m *manifest.Manifest, sel Selection) ([]*render.Result, error) {
	return Render(ctx, m, p.Renderer, sel)
}

// NotAppliedError says a run wrote nothing because the manifest did not
// render: the clusters stay where they were.
type NotAppliedError struct{ Err error }

func (e *NotAppliedError) Error() string { return "nothing applied: " + e.Err.Error() }
func (e *NotAppliedError) Unwrap() error { return e.Err }

// Reconcile renders m offline, then reconciles it into every selected
// cluster, each rendered again once connected and locked (opts.Renderer
// defaults to the pipeline's). It returns a *NotAppliedError, and no report,
// when the offline render fails; otherwise the report says how each cluster
// went.
func (p *Pipeline) Reconcile(ctx context.Context, m *manifest.Manifest, opts Options) (*Report, error) {
	results, err := Render(ctx, m, p.Renderer, opts.Selection)
	if err != nil {
		return nil, &NotAppliedError{Err: err}
	}
	if opts.Renderer == nil {
		opts.Renderer = p.Renderer
	}
	return Reconcile(ctx, m, results, p.Connect, opts), nil
}

// DiffLive compares what a reconcile would apply with what each cluster
// holds (see DiffLive).
func (p *Pipeline) DiffLive(ctx context.Context, m *manifest.Manifest, opts DiffOptions, commit string) (*DiffReport, error) {
	results, err := Render(ctx, m, p.Renderer, opts.Selection)
	if err != nil {
		return nil, err
	}
	if opts.Renderer == nil {
		opts.Renderer = p.Renderer
	}
	return DiffLive(ctx, m, results, p.Connect, opts, commit), nil
}

// DiffAgainst renders both manifests offline and compares them: what
// replacing from with to changes per cluster.
func (p *Pipeline) DiffAgainst(ctx context.Context, from, to *manifest.Manifest, sel Selection, fromCommit, toCommit string) (*DiffReport, error) {
	fromResults, err := Render(ctx, from, p.Renderer, sel)
	if err != nil {
		return nil, fmt.Errorf("render the manifest at %s: %w", fromCommit, err)
	}
	toResults, err := Render(ctx, to, p.Renderer, sel)
	if err != nil {
		return nil, err
	}
	return DiffAgainst(from, fromResults, to, toResults, fromCommit, toCommit)
}

// Status reads the selected clusters (all when sel names none) concurrently.
func (p *Pipeline) Status(ctx context.Context, m *manifest.Manifest, sel Selection) ([]ClusterStatus, error) {
	if err := sel.Check(m); err != nil {
		return nil, err
	}
	var picked []manifest.Cluster
	for _, c := range m.Clusters {
		if sel.cluster(c.Name) {
			picked = append(picked, c)
		}
	}
	return ReadStatuses(ctx, p.Connect, m.ID, picked)
}

// Live reads the live DNS weights, CronJobs and held workloads of the
// clusters of rows (from Status), for the daemon's metrics.
func (p *Pipeline) Live(ctx context.Context, m *manifest.Manifest, rows []ClusterStatus) ([]LiveStatus, error) {
	return ReadLive(ctx, m, p.Connect, rows)
}

// ConnectOnce wraps connect so that each manifest cluster (by name and
// kubeconfig context) is connected once and its Target reused by every later
// run: a daemon keeps its clients, their discovery caches and rate limiters.
// A failed connection is not remembered; the next run tries again.
func ConnectOnce(connect Connector) Connector {
	type key struct{ name, context string }
	var mu sync.Mutex
	targets := map[key]Target{}
	return func(ctx context.Context, c manifest.Cluster) (Target, error) {
		k := key{c.Name, c.Context}
		mu.Lock()
		t, ok := targets[k]
		mu.Unlock()
		if ok {
			return t, nil
		}
		t, err := connect(ctx, c)
		if err != nil {
			return nil, err
		}
		mu.Lock()
		defer mu.Unlock()
		if prev, ok := targets[k]; ok { // a concurrent call won
			return prev, nil
		}
		targets[k] = t
		return t, nil
	}
}
