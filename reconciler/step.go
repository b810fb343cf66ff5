package reconciler

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/tandem-gitops/tandem/clusters"
	"github.com/tandem-gitops/tandem/manifest"
	"github.com/tandem-gitops/tandem/render"
)

// step applies one release: recover a stuck release, install or upgrade it,
// wait for health, roll back a failed upgrade. An unchanged release is
// checked for drift, and first for health if tandem never saw its revision
// healthy.
func (r *run) step(ctx context.Context, cr *clusterRun, s Step) ReleaseReport {
	c, t := cr.c, cr.t
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
		if s.Verify {
			vctx, cancel := context.WithTimeout(ctx, spec.TimeoutDuration())
			_, err := r.waitHealthy(vctx, cr, s, s.deployed, nil, s.FromRevision, start, ev)
			cancel()
			if err != nil {
				// Not rolled back: the revision may have served for months and
				// be degraded for a moment. Reported, and checked again next run.
				return finish(OutcomeFailed, fmt.Errorf("revision %d was never seen healthy by tandem, and is not healthy now (left as it is): %w", s.FromRevision, err))
			}
		}
		if r.opts.DetectDrift || r.opts.CorrectDrift || spec.DriftCorrection {
			if err := r.drift(ctx, cr, s, spec, &rr); err != nil {
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
			rr.Outcome, rr.Error = OutcomeSkipped, err.Error()
			ev.Phase, ev.Message = "skipped", rr.Error
			rr.Duration = Duration(time.Since(start))
			r.emit(ev)
			return rr
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
		Name:      s.Name,
		Namespace: s.Namespace,
		Chart:     res.Chart,
		Values:    res.Values,
		// The planned bytes, not a second render: what is applied is what
		// was planned, digested and diffed.
		PostRenderer: render.Planned{Release: s.desired.key().String(), Manifest: res.Manifest},
		Labels:       releaseLabels(res.Digest, r.m.ID, res.SkipHooks, r.opts),
		Timeout:      timeout,
		Force:        spec.Force,
		Description:  "tandem " + shortCommit(r.opts.Commit),
		// Hooks are not post-rendered: on a cluster where the overlay
		// scales the release down they would run at full strength.
		DisableHooks: res.SkipHooks,
	}
	var rel *clusters.Release
	var err error
	if s.Action == ActionInstall {
		rel, err = t.Install(ctx, req)
	} else {
		rel, err = t.Upgrade(ctx, req)
	}
	if err != nil {
		if ctx.Err() != nil {
			// Helm gave up waiting, but its apply goes on in the background
			// (it marks the revision failed at once and keeps writing): a
			// rollback now would race it. The next run finds the revision
			// failed (and upgrades) or deployed but never seen healthy
			// (and checks it).
			return finish(OutcomeFailed, fmt.Errorf("%s: %w — not rolled back: Helm may still be applying this revision; the next run checks it", s.Action, err))
		}
		return finish(OutcomeFailed, r.afterFailure(ctx, cr, s, spec, &rr, fmt.Errorf("%s: %w", s.Action, err)))
	}
	rr.Revision = rel.Revision
	healthy, err := r.waitHealthy(ctx, cr, s, rel.Manifest, rel.Written, rel.Revision, start, ev)
	if err != nil {
		return finish(OutcomeFailed, r.afterFailure(ctx, cr, s, spec, &rr, fmt.Errorf("health: %w", err)))
	}
	recordApplied(cr, s, rel.Written, healthy)
	return finish(OutcomeOK, nil)
}

// releaseLabels are the Helm release labels of a revision tandem writes.
func releaseLabels(digest, id string, skipHooks bool, opts Options) map[string]string {
	l := map[string]string{LabelManagedBy: ManagedByValue, LabelDigest: digest, LabelCommit: opts.Commit,
		LabelManifest: manifestID(id)}
	if skipHooks {
		l[LabelHooks] = HooksSkipped
	}
	if opts.RunID != "" {
		l[LabelRun] = opts.RunID
	}
	return l
}

// waitHealthy waits until a revision's objects are healthy, reporting
// progress every ProgressInterval. written are the objects as this run's
// install or upgrade wrote them (nil when verifying an earlier revision):
// the wait starts from them instead of reading them again. It returns the
// objects' statuses once healthy.
func (r *run) waitHealthy(ctx context.Context, cr *clusterRun, s Step, manifest string, written []*unstructured.Unstructured, revision int, start time.Time, ev Event) ([]clusters.ObjectStatus, error) {
	lastReport := time.Now() // the first "waiting" line comes after one interval
	return cr.t.WaitHealthy(ctx, manifest, clusters.WaitOptions{
		Namespace: s.Namespace,
		Timeout:   time.Until(deadlineOf(ctx, s.desired.Spec.TimeoutDuration())),
		Interval:  time.Second,
		Written:   written,
		Progress: func(st []clusters.ObjectStatus) {
			if time.Since(lastReport) < r.opts.ProgressInterval {
				return
			}
			lastReport = time.Now()
			e := ev
			e.Phase, e.Revision, e.Duration, e.Message = "waiting", revision, time.Since(start), describeWaiting(st)
			r.emit(e)
		},
	})
}

func deadlineOf(ctx context.Context, fallback time.Duration) time.Time {
	if d, ok := ctx.Deadline(); ok {
		return d
	}
	return time.Now().Add(fallback)
}

// afterFailure rolls a failed upgrade back to the last deployed revision
// (onFailure: rollback) and returns the error to report. A revision that is
// kept (an install, onFailure: keep, or nothing to roll back to) but never
// became healthy is marked failed in Helm's storage, so the next run retries
// it rather than taking the unchanged digest for success. Once the
// cluster's lock is lost nothing is written: another tandem owns the
// cluster now.
func (r *run) afterFailure(ctx context.Context, cr *clusterRun, s Step, spec manifest.Release, rr *ReleaseReport, cause error) error {
	if cr.lost() {
		return fmt.Errorf("%w; %v: nothing more written (no rollback)", cause, errLockLost)
	}
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		// The run was stopped (--cluster-timeout, an interrupt), not just
		// this release's own deadline: write nothing more.
		return fmt.Errorf("%w; run stopped (%v): not rolled back, the next run checks it", cause, err)
	}
	t := cr.t
	// The release's own deadline may have passed: act on a fresh one.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	markUnhealthy := func(cause error) error {
		if rr.Revision > 0 {
			if err := t.MarkUnhealthy(rctx, s.Namespace, s.Name, rr.Revision, "tandem: not healthy: "+cause.Error()); err != nil {
				return fmt.Errorf("%w; %v", cause, err)
			}
		}
		return cause
	}
	if spec.OnFailure == manifest.OnFailureKeep || s.Action == ActionInstall {
		return markUnhealthy(cause)
	}
	// Helm may still be writing the revision this step started (its
	// upgrade goes on after the step's deadline): roll back only once it has
	// finished, or two Helm operations would race on the release.
	hist, err := settledHistory(rctx, t, s.Namespace, s.Name)
	if err != nil {
		return fmt.Errorf("%w; not rolled back: %v", cause, err)
	}
	target := 0
	for _, h := range hist {
		if h.Status == "deployed" && h.Revision != rr.Revision && h.Revision > target {
			target = h.Revision
		}
	}
	if target == 0 {
		for _, h := range hist {
			if h.Status == "superseded" && h.Revision != rr.Revision && h.Revision > target {
				target = h.Revision
			}
		}
	}
	if target == 0 {
		return markUnhealthy(fmt.Errorf("%w; no earlier deployed revision to roll back to", cause))
	}
	if cr.lost() {
		return fmt.Errorf("%w; %v: nothing more written (no rollback)", cause, errLockLost)
	}
	if _, err := t.Rollback(rctx, s.Namespace, s.Name, target, clusters.RollbackOptions{DisableHooks: s.desired.Result.SkipHooks}); err != nil {
		return fmt.Errorf("%w; rollback to revision %d failed: %v", cause, target, err)
	}
	rr.RolledBackTo = target
	return fmt.Errorf("%w — rolled back to revision %d", cause, target)
}

// settleWait is how long a rollback waits for Helm to finish the revision
// it is rolling back.
const settleWait = time.Minute

// settledHistory returns the release's history once its latest revision is
// no longer pending, waiting up to settleWait.
func settledHistory(ctx context.Context, t Target, namespace, name string) ([]clusters.Release, error) {
	deadline := time.Now().Add(settleWait)
	for {
		hist, err := t.History(ctx, namespace, name)
		if err != nil {
			return nil, fmt.Errorf("history: %w", err)
		}
		if len(hist) == 0 || !hist[len(hist)-1].Pending() {
			return hist, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("Helm is still writing revision %d (%s) after %s", hist[len(hist)-1].Revision, hist[len(hist)-1].Status, settleWait)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
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

func shortCommit(c string) string {
	if len(c) > 7 {
		return c[:7]
	}
	return c
}
