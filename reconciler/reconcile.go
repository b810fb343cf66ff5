package reconciler

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"github.com/tandem-gitops/tandem/manifest"
	"github.com/tandem-gitops/tandem/render"
)

// Options are the per-run settings of Reconcile.
type Options struct {
	// Selection narrows the run to some clusters and releases.
	Selection Selection
	// Plan holds the prune policy.
	Plan PlanOptions
	// Concurrency bounds the releases of one wave applied at once on one cluster.
	Concurrency int
	// DryRun plans and reports without taking locks or changing anything.
	DryRun bool
	// LockTimeout is how long to wait for another tandem holding a cluster's lock.
	LockTimeout time.Duration
	// LockDuration is the lease duration of the cluster lock.
	LockDuration time.Duration
	// Holder identifies this run in the lock (e.g. "ci@runner-7:4121"); the
	// lock appends the cluster and a random token, so that one process never
	// holds two manifest clusters' locks under one identity.
	Holder string
	// RunID is a random token that marks the Helm revisions this run writes
	// (label tandem.dev/run), so a later run can tell a revision left pending
	// by a dead tandem run from one a live Helm client is still writing.
	RunID string
	// ClusterTimeout bounds everything done on one cluster; 0 means none
	// beyond each release's own timeout.
	ClusterTimeout time.Duration
	// Commit and Ref identify the manifest revision being applied.
	Commit, Ref string
	// Uncommitted says the manifest was loaded from a working tree that may
	// differ from Commit (uncommitted or untracked files, or a tree re-read
	// every cycle): the state record then names no applied commit.
	Uncommitted bool
	// Progress, if set, receives events from many goroutines at once; it must be safe for that.
	Progress func(Event)
	// ProgressInterval is how often a long health wait reports; default 10 s.
	ProgressInterval time.Duration
	// Logger receives structured logs; nil discards them.
	Logger *slog.Logger
	// DetectDrift compares the objects of unchanged releases with the cluster
	// (one server-side-apply dry run per object) and reports what drifted.
	DetectDrift bool
	// CorrectDrift also puts drifted objects back, without a new Helm revision.
	// Releases with driftCorrection: true are corrected either way.
	CorrectDrift bool
	// FieldManager is the server-side apply field manager for drift dry runs and corrections.
	FieldManager string
	// Renderer, when set, renders each cluster's releases again once it is
	// connected (and locked), with the cluster's own capabilities and a
	// read-only live lookup; that render is what gets planned and applied.
	// When nil, the results given to Reconcile are applied as they are,
	// except a release whose templates called lookup: planned without the
	// cluster, it would rotate what the chart keeps through lookup, so it
	// fails instead.
	Renderer Renderer
	// SourceLost names switchover sources a person declares lost: tandem
	// cannot reach them, and the targets' CronJobs are to resume without
	// theirs being suspended (recorded in the targets' state records).
	SourceLost []string
	// StandbyGuard is what the Standby guard does on Standby clusters
	// (--standby-guard); "" is GuardEnforce.
	StandbyGuard GuardMode
}

// DefaultOptions returns the CLI defaults.
func DefaultOptions() Options {
	return Options{
		Plan:             DefaultPlanOptions(),
		Concurrency:      16,
		LockTimeout:      2 * time.Minute,
		LockDuration:     30 * time.Second,
		ClusterTimeout:   time.Hour,
		ProgressInterval: 10 * time.Second,
		DetectDrift:      true,
		FieldManager:     "tandem",
		StandbyGuard:     GuardEnforce,
	}
}

// Reconcile applies the rendered manifest to every selected cluster in
// parallel. Results must come from Render for the same manifest and selection:
// nothing is rendered here, so a manifest that fails to render never reaches a
// cluster. One cluster's failure never stops another's work; every failure is
// in the report. Reconcile returns only when every goroutine it started has.
func Reconcile(ctx context.Context, m *manifest.Manifest, results []*render.Result, connect Connector, opts Options) *Report {
	if opts.Concurrency <= 0 {
		opts.Concurrency = 1
	}
	if opts.ProgressInterval <= 0 {
		opts.ProgressInterval = 10 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if len(opts.Selection.Releases) > 0 {
		opts.Plan.NoPrune = true
	}
	opts.Plan.ManifestID = m.ID
	start := time.Now()
	report := &Report{Commit: opts.Commit, Ref: opts.Ref, DryRun: opts.DryRun, Started: start}

	var selected []manifest.Cluster
	for _, c := range m.Clusters {
		if opts.Selection.cluster(c.Name) {
			selected = append(selected, c)
		}
	}
	desired := desiredByCluster(m, results)
	r := &run{m: m, opts: opts, gates: newGates(m, selected)}

	// Connect to every cluster first: two manifest clusters that are one
	// API server must be refused before anything is written to either.
	conns := connectAll(ctx, selected, connect)

	// Roles changed in git: the switchover first, phase by phase, holding
	// the locks of every cluster it involves; then, once it completed, the
	// plain reconcile below applies the rest of the commit.
	if !opts.DryRun && r.switchoverFirst(ctx, report, selected, conns) {
		report.Duration = Duration(time.Since(start))
		return report
	}

	report.Clusters = make([]ClusterReport, len(selected))
	var wg sync.WaitGroup // a plain group: one unreachable cluster must not cancel the others
	for i, c := range selected {
		wg.Add(1)
		go func() {
			defer wg.Done()
			report.Clusters[i] = r.cluster(ctx, c, conns[i], desired[c.Name])
		}()
	}
	wg.Wait()
	report.Duration = Duration(time.Since(start))
	return report
}

// desiredByCluster pairs each render result with its manifest release.
func desiredByCluster(m *manifest.Manifest, results []*render.Result) map[string][]Desired {
	out := map[string][]Desired{}
	for _, res := range results {
		if res == nil {
			continue
		}
		for _, rel := range m.Releases {
			if rel.Name == res.Release && rel.Namespace == res.Namespace {
				out[res.Cluster] = append(out[res.Cluster], Desired{Spec: rel, Result: res})
				break
			}
		}
	}
	return out
}

type run struct {
	m     *manifest.Manifest
	opts  Options
	gates *gates
	// held is the switchover the plain reconcile follows while it waits
	// for its sources (nil when none).
	held *heldSwitchover
	// peers are the roles in effect this run leaves, for the state
	// records (clusters.State.Peers); nil in a dry run.
	peers Roles
	// drill marks the switchovers this run records as a drill's.
	drill bool
}

func (r *run) emit(e Event) {
	if r.opts.Progress != nil {
		e.Time = time.Now()
		r.opts.Progress(e)
	}
}

// PanicError is a panic caught in one cluster's or one release's goroutine:
// a bug in tandem, reported as that cluster's failure instead of taking the
// whole run (and the other clusters' locks) down with it.
type PanicError struct {
	Value any
	Stack []byte
}

func (e *PanicError) Error() string { return fmt.Sprintf("internal error (panic): %v", e.Value) }

// recovered turns a recovered panic value into a *PanicError, nil for none.
func recovered(p any) error {
	if p == nil {
		return nil
	}
	return &PanicError{Value: p, Stack: debug.Stack()}
}
