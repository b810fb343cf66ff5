package reconciler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/tandem-gitops/tandem/clusters"
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
	// LockDuration is the lease duration; it is renewed every third of it.
	LockDuration time.Duration
	// Holder identifies this run in the lock (e.g. "ci@runner-7:4121").
	Holder string
	// Commit and Ref identify the manifest revision being applied.
	Commit, Ref string
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
}

// DefaultOptions returns the CLI defaults.
func DefaultOptions() Options {
	return Options{
		Plan:             DefaultPlanOptions(),
		Concurrency:      4,
		LockTimeout:      2 * time.Minute,
		LockDuration:     30 * time.Second,
		ProgressInterval: 10 * time.Second,
		DetectDrift:      true,
		FieldManager:     "tandem",
	}
}

// Reconcile applies the rendered manifest to every selected cluster in
// parallel. Results must come from Render for the same manifest and selection:
// nothing is rendered here, so a manifest that fails to render never reaches a
// cluster. One cluster's failure never stops another's work; every failure is
// in the report.
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
	start := time.Now()
	report := &Report{Commit: opts.Commit, Ref: opts.Ref, DryRun: opts.DryRun, Started: start}

	var selected []manifest.Cluster
	for _, c := range m.Clusters {
		if opts.Selection.cluster(c.Name) {
			selected = append(selected, c)
		}
	}
	desired := desiredByCluster(m, results)
	r := &run{m: m, opts: opts, connect: connect, gates: newGates(m, selected)}

	report.Clusters = make([]ClusterReport, len(selected))
	var wg sync.WaitGroup // a plain group: one unreachable cluster must not cancel the others
	for i, c := range selected {
		wg.Add(1)
		go func() {
			defer wg.Done()
			report.Clusters[i] = r.cluster(ctx, c, desired[c.Name])
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
	m       *manifest.Manifest
	opts    Options
	connect Connector
	gates   *gates
}

func (r *run) emit(e Event) {
	if r.opts.Progress != nil {
		e.Time = time.Now()
		r.opts.Progress(e)
	}
}

// cluster reconciles one cluster and never panics the run: every failure ends
// up in the returned report.
func (r *run) cluster(ctx context.Context, c manifest.Cluster, desired []Desired) (rep ClusterReport) {
	start := time.Now()
	rep = ClusterReport{Name: c.Name, Role: string(c.Role), Commit: r.opts.Commit, Releases: []ReleaseReport{}}
	log := r.opts.Logger.With("cluster", c.Name)
	var t Target
	defer func() {
		// Whatever happened, Active clusters waiting on this Standby must hear about it.
		r.gates.closeCluster(c.Name, rep.Error)
		if t != nil {
			rep.Requests = t.Requests()
		}
		rep.count()
		rep.Duration = Duration(time.Since(start))
		if rep.FinishedAt.IsZero() {
			rep.FinishedAt = time.Now().UTC()
		}
		if rep.Error != "" {
			log.Info("cluster failed", "error", rep.Error)
		}
	}()
	fail := func(format string, args ...any) ClusterReport {
		rep.Error = fmt.Sprintf(format, args...)
		r.emit(Event{Cluster: c.Name, Role: string(c.Role), Phase: "cluster", Message: rep.Error})
		return rep
	}

	var err error
	t, err = r.connect(ctx, c)
	if err != nil {
		return fail("%v", err)
	}

	if !r.opts.DryRun {
		lease, err := t.Lock(ctx, clusters.LockOptions{Holder: r.opts.Holder, Wait: r.opts.LockTimeout, Duration: r.opts.LockDuration})
		if err != nil {
			return fail("%v", err)
		}
		locked := time.Now().UTC()
		rep.LockedAt = &locked
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		defer cancel()
		go func() {
			select {
			case <-lease.Lost():
				log.Error("lost the cluster lock; stopping")
				cancel()
			case <-ctx.Done():
			}
		}()
		defer func() {
			// Done with the cluster: stamp it before the lock goes, so that
			// [lockedAt, finishedAt] of two runs never overlap.
			rep.FinishedAt = time.Now().UTC()
			// Unlock with a fresh context: the run's may be cancelled already.
			uctx, ucancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer ucancel()
			if err := lease.Unlock(uctx); err != nil {
				log.Warn("unlock failed", "error", err)
			}
		}()
	}

	live, err := t.ListReleases(ctx, nil)
	if err != nil {
		return fail("list releases: %v", err)
	}
	deployed := make([]Deployed, 0, len(live))
	for _, l := range live {
		deployed = append(deployed, Deployed{Name: l.Name, Namespace: l.Namespace, Revision: l.Revision, Status: l.Status, Labels: l.Labels})
	}
	plan := Plan(c, desired, deployed, r.opts.Plan)

	if r.opts.DryRun {
		for _, s := range plan.Steps {
			rep.Releases = append(rep.Releases, ReleaseReport{Name: s.Name, Namespace: s.Namespace, Wave: s.Wave, Action: s.Action,
				Outcome: plannedOutcome(s), FromRevision: s.FromRevision, Recovered: s.Recover, Adopted: s.Adopt, Error: s.Error})
			r.gates.report(c.Name, s.desired.Spec, s.Error == "", s.Error)
		}
		for _, s := range plan.Prune {
			o := OutcomePlanned
			if plan.PruneBlocked != "" {
				o = OutcomeSkipped
			}
			rep.Pruned = append(rep.Pruned, ReleaseReport{Name: s.Name, Namespace: s.Namespace, Action: ActionPrune, Outcome: o, FromRevision: s.FromRevision})
		}
		if plan.PruneBlocked != "" {
			rep.Error = plan.PruneBlocked
		}
		return rep
	}

	cr := &clusterRun{snap: t.Snapshot(), checked: checkedByRelease(ctx, t), found: map[string]map[string]string{}}
	rep.Releases = r.applyWaves(ctx, t, cr, c, plan)
	var failed []string
	for _, rr := range rep.Releases {
		if rr.Outcome == OutcomeFailed {
			failed = append(failed, rr.Name)
		}
	}

	switch {
	case len(plan.Prune) == 0:
	case plan.PruneBlocked != "":
		for _, s := range plan.Prune {
			rep.Pruned = append(rep.Pruned, ReleaseReport{Name: s.Name, Namespace: s.Namespace, Action: ActionPrune, Outcome: OutcomeSkipped, FromRevision: s.FromRevision, Error: plan.PruneBlocked})
		}
	case len(failed) > 0:
		for _, s := range plan.Prune {
			rep.Pruned = append(rep.Pruned, ReleaseReport{Name: s.Name, Namespace: s.Namespace, Action: ActionPrune, Outcome: OutcomeSkipped, FromRevision: s.FromRevision, Error: "not pruned: other releases failed"})
		}
	default:
		rep.Pruned = r.prune(ctx, t, c, plan.Prune)
	}

	var problems []string
	if len(failed) > 0 {
		problems = append(problems, fmt.Sprintf("release(s) failed: %s", strings.Join(failed, ", ")))
	}
	if plan.PruneBlocked != "" {
		problems = append(problems, plan.PruneBlocked)
	}
	for _, p := range rep.Pruned {
		if p.Outcome == OutcomeFailed {
			problems = append(problems, fmt.Sprintf("prune %s/%s: %s", p.Namespace, p.Name, p.Error))
		}
	}
	rep.Error = strings.Join(problems, "; ")

	if err := r.writeState(ctx, t, c, rep, desired, cr.found); err != nil {
		log.Warn("state record not written", "error", err)
		if rep.Error == "" {
			rep.Error = fmt.Sprintf("write state record: %v", err)
		}
	}
	return rep
}

func plannedOutcome(s Step) Outcome {
	if s.Error != "" {
		return OutcomeFailed
	}
	if s.Action == ActionUnchanged {
		return OutcomeOK
	}
	return OutcomePlanned
}

// stepState lets releases of a cluster wait for the releases they need.
type stepState struct {
	done chan struct{}
	ok   bool // written before done is closed
}

// applyWaves runs the plan's steps wave by wave. Within a wave, steps run
// concurrently (bounded) once their needs are healthy; a failure stops the
// later waves of this cluster only.
// clusterRun holds what one cluster's releases share during a run.
type clusterRun struct {
	// snap lists live objects once for every drift check.
	snap *clusters.Snapshot
	// checked is the last run's drift-check record, by release key; read only.
	checked map[string]map[string]string

	mu sync.Mutex
	// found is this run's drift-check record, by release key, for the state
	// record; guarded by mu.
	found map[string]map[string]string
}

func (cr *clusterRun) record(release string, checked map[string]string) {
	cr.mu.Lock()
	defer cr.mu.Unlock()
	cr.found[release] = checked
}

// checkedByRelease reads the last run's drift-check record from the state
// record; without one, every object gets a dry run.
func checkedByRelease(ctx context.Context, t Target) map[string]map[string]string {
	out := map[string]map[string]string{}
	st, err := t.ReadState(ctx)
	if err != nil || st == nil {
		return out
	}
	for _, r := range st.Releases {
		if len(r.Checked) > 0 {
			out[r.Namespace+"/"+r.Name] = r.Checked
		}
	}
	return out
}

func (r *run) applyWaves(ctx context.Context, t Target, cr *clusterRun, c manifest.Cluster, plan ClusterPlan) []ReleaseReport {
	out := make([]ReleaseReport, len(plan.Steps))
	states := map[string]*stepState{}
	for _, s := range plan.Steps {
		states[s.Name] = &stepState{done: make(chan struct{})}
	}
	waveFailed := false
	for lo := 0; lo < len(plan.Steps); {
		hi := lo
		for hi < len(plan.Steps) && plan.Steps[hi].Wave == plan.Steps[lo].Wave {
			hi++
		}
		if waveFailed {
			for i := lo; i < hi; i++ {
				s := plan.Steps[i]
				out[i] = ReleaseReport{Name: s.Name, Namespace: s.Namespace, Wave: s.Wave, Action: s.Action, Outcome: OutcomeSkipped,
					FromRevision: s.FromRevision, Error: "skipped: an earlier wave failed on this cluster"}
				r.emit(Event{Cluster: c.Name, Role: string(c.Role), Release: s.Name, Wave: s.Wave, Action: s.Action, Phase: "skipped", Message: out[i].Error})
				r.gates.report(c.Name, s.desired.Spec, false, "an earlier wave failed on "+c.Name)
				close(states[s.Name].done)
			}
			lo = hi
			continue
		}
		g := new(errgroup.Group)
		sem := make(chan struct{}, r.opts.Concurrency)
		for i := lo; i < hi; i++ {
			s := plan.Steps[i]
			g.Go(func() error {
				st := states[s.Name]
				defer close(st.done)
				if msg := waitNeeds(ctx, s.desired.Spec.Needs, states); msg != "" {
					out[i] = ReleaseReport{Name: s.Name, Namespace: s.Namespace, Wave: s.Wave, Action: s.Action, Outcome: OutcomeSkipped, FromRevision: s.FromRevision, Error: msg}
					r.emit(Event{Cluster: c.Name, Role: string(c.Role), Release: s.Name, Wave: s.Wave, Action: s.Action, Phase: "skipped", Message: msg})
					r.gates.report(c.Name, s.desired.Spec, false, msg)
					return nil
				}
				select {
				case sem <- struct{}{}:
					defer func() { <-sem }()
				case <-ctx.Done():
					out[i] = ReleaseReport{Name: s.Name, Namespace: s.Namespace, Wave: s.Wave, Action: s.Action, Outcome: OutcomeSkipped, FromRevision: s.FromRevision, Error: "cancelled: " + ctx.Err().Error()}
					r.gates.report(c.Name, s.desired.Spec, false, out[i].Error)
					return nil
				}
				out[i] = r.step(ctx, t, cr, c, s)
				st.ok = out[i].Outcome == OutcomeOK
				r.gates.report(c.Name, s.desired.Spec, st.ok, out[i].Error)
				return nil
			})
		}
		_ = g.Wait()
		for i := lo; i < hi; i++ {
			waveFailed = waveFailed || out[i].Outcome != OutcomeOK
		}
		lo = hi
	}
	return out
}

// waitNeeds blocks until every needed release is done, and says why not if one
// failed. Needs outside this run (a run restricted with --release) are taken as
// met; manifest.Load guarantees every need is enabled on the cluster and in the
// same or an earlier wave, so waiting cannot deadlock.
func waitNeeds(ctx context.Context, needs []string, states map[string]*stepState) string {
	for _, n := range needs {
		st, ok := states[n]
		if !ok {
			continue
		}
		select {
		case <-st.done:
		case <-ctx.Done():
			return "cancelled: " + ctx.Err().Error()
		}
		if !st.ok {
			return fmt.Sprintf("skipped: needs %q, which did not become healthy", n)
		}
	}
	return ""
}

// step applies one release: recover a stuck release, install or upgrade it,
// wait for health, roll back a failed upgrade.
func (r *run) step(ctx context.Context, t Target, cr *clusterRun, c manifest.Cluster, s Step) ReleaseReport {
	start := time.Now()
	spec := s.desired.Spec
	rr := ReleaseReport{Name: s.Name, Namespace: s.Namespace, Wave: s.Wave, Action: s.Action, FromRevision: s.FromRevision,
		Recovered: s.Recover, Adopted: s.Adopt}
	ev := Event{Cluster: c.Name, Role: string(c.Role), Release: s.Name, Wave: s.Wave, Action: s.Action, FromRevision: s.FromRevision}
	finish := func(o Outcome, err error) ReleaseReport {
		rr.Outcome, rr.Duration = o, Duration(time.Since(start))
		ev.Duration, ev.Revision = time.Since(start), rr.Revision
		if err != nil {
			rr.Error = err.Error()
			ev.Phase, ev.Message = "failed", rr.Error
		} else {
			ev.Phase = "done"
		}
		r.emit(ev)
		return rr
	}
	if s.Error != "" {
		return finish(OutcomeFailed, errors.New(s.Error))
	}
	if s.Action == ActionUnchanged {
		rr.Revision = s.FromRevision
		if r.opts.DetectDrift || r.opts.CorrectDrift || spec.DriftCorrection {
			if err := r.drift(ctx, t, cr, c, s, spec, &rr); err != nil {
				return finish(OutcomeFailed, err)
			}
			ev.Message = driftMessage(rr)
		}
		return finish(OutcomeOK, nil)
	}
	if spec.Rollout == manifest.RolloutStandbyFirst && c.Role == manifest.RoleActive {
		ev.Phase, ev.Message = "waiting", "standby-first: waiting for the Standby clusters"
		r.emit(ev)
		if err := r.gates.wait(ctx, spec); err != nil {
			return finish(OutcomeSkipped, err)
		}
	}
	ev.Phase, ev.Message = "start", ""
	r.emit(ev)

	timeout := spec.TimeoutDuration()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	if s.Recover != "" {
		if err := t.MarkFailed(ctx, s.Namespace, s.Name, s.FromRevision, "tandem: recovered from "+s.Recover+" left by an interrupted run"); err != nil {
			return finish(OutcomeFailed, fmt.Errorf("recover from %s: %w", s.Recover, err))
		}
	}
	res := s.desired.Result
	req := clusters.ReleaseRequest{
		Name:         s.Name,
		Namespace:    s.Namespace,
		Chart:        res.Chart,
		Values:       res.Values,
		PostRenderer: OverlayFor(r.m, c, spec),
		Labels:       map[string]string{LabelManagedBy: ManagedByValue, LabelDigest: res.Digest, LabelCommit: r.opts.Commit},
		Timeout:      timeout,
		Force:        spec.Force,
		Description:  "tandem " + shortCommit(r.opts.Commit),
	}
	var rel *clusters.Release
	var err error
	if s.Action == ActionInstall {
		rel, err = t.Install(ctx, req)
	} else {
		rel, err = t.Upgrade(ctx, req)
	}
	if err != nil {
		return finish(OutcomeFailed, r.afterFailure(ctx, t, s, spec, &rr, fmt.Errorf("%s: %w", s.Action, err)))
	}
	rr.Revision = rel.Revision

	lastReport := time.Now() // the first "waiting" line comes after one interval
	_, err = t.WaitHealthy(ctx, rel.Manifest, clusters.WaitOptions{
		Namespace: s.Namespace,
		Timeout:   time.Until(deadlineOf(ctx, timeout)),
		Interval:  time.Second,
		Progress: func(st []clusters.ObjectStatus) {
			if time.Since(lastReport) < r.opts.ProgressInterval {
				return
			}
			lastReport = time.Now()
			e := ev
			e.Phase, e.Revision, e.Duration, e.Message = "waiting", rel.Revision, time.Since(start), describeWaiting(st)
			r.emit(e)
		},
	})
	if err != nil {
		return finish(OutcomeFailed, r.afterFailure(ctx, t, s, spec, &rr, fmt.Errorf("health: %w", err)))
	}
	return finish(OutcomeOK, nil)
}

// drift compares an unchanged release's objects with the cluster, records
// what drifted and, when asked to, applies the desired objects back. Objects
// whose resourceVersion has not moved since the last check found them in
// their desired state cannot have drifted: when that holds for every object of
// the release, no dry run is needed.
func (r *run) drift(ctx context.Context, t Target, cr *clusterRun, c manifest.Cluster, s Step, spec manifest.Release, rr *ReleaseReport) error {
	if prev := cr.checked[s.desired.key()]; len(prev) > 0 && cr.snap != nil {
		desired, err := desiredObjects(*s.desired)
		if err != nil {
			return fmt.Errorf("drift check: %w", err)
		}
		live, err := cr.snap.Live(ctx, desired)
		if err != nil {
			return fmt.Errorf("drift check: %w", err)
		}
		if unmoved(desired, live, prev) {
			cr.record(s.desired.key(), prev)
			return nil
		}
	}
	objs, err := liveDrift(ctx, t, cr.snap, c, *s.desired, r.opts.FieldManager)
	if err != nil {
		return fmt.Errorf("drift check: %w", err)
	}
	var fix []*unstructured.Unstructured
	checked := map[string]string{}
	for _, o := range objs {
		if o.Change == ChangeUnchanged {
			checked[o.key.String()] = o.liveVersion
			continue
		}
		rr.Drifted = append(rr.Drifted, o.ID())
		fix = append(fix, o.desired)
	}
	cr.record(s.desired.key(), checked)
	if len(fix) == 0 || !(r.opts.CorrectDrift || spec.DriftCorrection) {
		return nil
	}
	if err := t.Apply(ctx, s.Namespace, s.Name, fix, r.opts.FieldManager); err != nil {
		return fmt.Errorf("correct drift: %w", err)
	}
	rr.Corrected = append([]string(nil), rr.Drifted...)
	return nil
}

// unmoved reports whether every desired object exists with the
// resourceVersion recorded when it was last found in its desired state.
func unmoved(desired, live []*unstructured.Unstructured, prev map[string]string) bool {
	if len(prev) != len(desired) {
		return false
	}
	for i, u := range desired {
		v, ok := prev[keyOf(u).String()]
		if !ok || live[i] == nil || live[i].GetResourceVersion() != v {
			return false
		}
	}
	return true
}

func driftMessage(rr ReleaseReport) string {
	switch {
	case len(rr.Corrected) > 0:
		return "drift corrected: " + strings.Join(rr.Corrected, ", ")
	case len(rr.Drifted) > 0:
		return "drifted (left as is; --correct-drift puts it back): " + strings.Join(rr.Drifted, ", ")
	}
	return ""
}

func deadlineOf(ctx context.Context, fallback time.Duration) time.Time {
	if d, ok := ctx.Deadline(); ok {
		return d
	}
	return time.Now().Add(fallback)
}

// afterFailure rolls a failed upgrade back to the last deployed revision
// (onFailure: rollback) and returns the error to report. A revision that is
// kept (an install, or onFailure: keep) but never became healthy is marked
// failed in Helm's storage, so the next run retries it rather than taking the
// unchanged digest for success.
func (r *run) afterFailure(ctx context.Context, t Target, s Step, spec manifest.Release, rr *ReleaseReport, cause error) error {
	// The release's own deadline may have passed: act on a fresh one.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	if spec.OnFailure == manifest.OnFailureKeep || s.Action == ActionInstall {
		if rr.Revision > 0 {
			if err := t.MarkUnhealthy(rctx, s.Namespace, s.Name, rr.Revision, "tandem: not healthy: "+cause.Error()); err != nil {
				return fmt.Errorf("%w; %v", cause, err)
			}
		}
		return cause
	}
	hist, err := t.History(rctx, s.Namespace, s.Name)
	if err != nil {
		return fmt.Errorf("%w; rollback: history: %v", cause, err)
	}
	target := 0
	for _, h := range hist {
		if h.Status == "deployed" && h.Revision != rr.Revision && h.Revision > target {
			target = h.Revision
		}
	}
	if target == 0 {
		for _, h := range hist {
			if h.Status == "superseded" && h.Revision > target {
				target = h.Revision
			}
		}
	}
	if target == 0 {
		return fmt.Errorf("%w; no earlier deployed revision to roll back to", cause)
	}
	if _, err := t.Rollback(rctx, s.Namespace, s.Name, target); err != nil {
		return fmt.Errorf("%w; rollback to revision %d failed: %v", cause, target, err)
	}
	rr.RolledBackTo = target
	return fmt.Errorf("%w — rolled back to revision %d", cause, target)
}

func describeWaiting(st []clusters.ObjectStatus) string {
	var parts []string
	for _, s := range st {
		if s.Status == "Current" {
			continue
		}
		p := s.Kind + "/" + s.Name
		if s.Message != "" {
			p += " " + s.Message
		}
		parts = append(parts, p)
	}
	sort.Strings(parts)
	if len(parts) > 3 {
		parts = append(parts[:3], fmt.Sprintf("and %d more", len(parts)-3))
	}
	return "waiting: " + strings.Join(parts, ", ")
}

func (r *run) prune(ctx context.Context, t Target, c manifest.Cluster, steps []Step) []ReleaseReport {
	out := make([]ReleaseReport, len(steps))
	g := new(errgroup.Group)
	g.SetLimit(r.opts.Concurrency)
	for i, s := range steps {
		g.Go(func() error {
			start := time.Now()
			out[i] = ReleaseReport{Name: s.Name, Namespace: s.Namespace, Action: ActionPrune, FromRevision: s.FromRevision, Outcome: OutcomeOK}
			r.emit(Event{Cluster: c.Name, Role: string(c.Role), Release: s.Name, Action: ActionPrune, Phase: "start", FromRevision: s.FromRevision})
			ev := Event{Cluster: c.Name, Role: string(c.Role), Release: s.Name, Action: ActionPrune, Phase: "done", FromRevision: s.FromRevision}
			if err := t.Uninstall(ctx, s.Namespace, s.Name); err != nil {
				out[i].Outcome, out[i].Error = OutcomeFailed, err.Error()
				ev.Phase, ev.Message = "failed", err.Error()
			}
			out[i].Duration = Duration(time.Since(start))
			ev.Duration = time.Since(start)
			r.emit(ev)
			return nil
		})
	}
	_ = g.Wait()
	return out
}

func (r *run) writeState(ctx context.Context, t Target, c manifest.Cluster, rep ClusterReport, desired []Desired, checked map[string]map[string]string) error {
	digests := map[string]string{}
	for _, d := range desired {
		digests[d.key()] = d.Result.Digest
	}
	st := clusters.State{Cluster: c.Name, Role: string(c.Role), Commit: r.opts.Commit, Ref: r.opts.Ref, AppliedAt: time.Now().UTC(), LastError: rep.Error}
	for _, rr := range rep.Releases {
		st.Releases = append(st.Releases, clusters.ReleaseState{Name: rr.Name, Namespace: rr.Namespace, Digest: digests[rr.Namespace+"/"+rr.Name],
			Revision: rr.Revision, Outcome: string(rr.Outcome), Error: rr.Error, Duration: time.Duration(rr.Duration),
			Drifted: rr.Drifted, Corrected: len(rr.Corrected) > 0, Checked: checked[rr.Namespace+"/"+rr.Name]})
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	return t.WriteState(sctx, st)
}

func shortCommit(c string) string {
	if len(c) > 7 {
		return c[:7]
	}
	return c
}
