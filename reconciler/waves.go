package reconciler

import (
	"context"
	"fmt"

	"golang.org/x/sync/errgroup"
)

// stepState lets releases of a cluster wait for the releases they need.
type stepState struct {
	done chan struct{}
	ok   bool // written before done is closed
}

// applyWaves runs the plan's steps wave by wave. Within a wave, steps run
// concurrently (bounded) once their needs are healthy; a failure stops the
// later waves of this cluster only. Every step's state is keyed by
// namespace/name, and a panic in a step is that step's failure.
func (r *run) applyWaves(ctx context.Context, cr *clusterRun, plan ClusterPlan) []ReleaseReport {
	c := cr.c
	out := make([]ReleaseReport, len(plan.Steps))
	states := make(map[ReleaseKey]*stepState, len(plan.Steps))
	for _, s := range plan.Steps {
		states[ReleaseKey{s.Namespace, s.Name}] = &stepState{done: make(chan struct{})}
	}
	skip := func(i int, msg string) {
		s := plan.Steps[i]
		out[i] = ReleaseReport{Name: s.Name, Namespace: s.Namespace, Wave: s.Wave, Action: s.Action, Outcome: OutcomeSkipped,
			FromRevision: s.FromRevision, Error: msg}
		r.emit(Event{Cluster: c.Name, Role: string(c.Role), Release: s.Name, Wave: s.Wave, Action: s.Action, Phase: "skipped", Message: msg})
		r.gates.report(c.Name, s.desired.Spec, false, msg)
	}
	waveFailed := false
	for lo := 0; lo < len(plan.Steps); {
		hi := lo
		for hi < len(plan.Steps) && plan.Steps[hi].Wave == plan.Steps[lo].Wave {
			hi++
		}
		if waveFailed || ctx.Err() != nil {
			msg := "skipped: an earlier wave failed on " + c.Name
			if !waveFailed {
				msg = "cancelled before it started: " + cancelCause(ctx, cr)
			}
			for i := lo; i < hi; i++ {
				skip(i, msg)
				close(states[ReleaseKey{plan.Steps[i].Namespace, plan.Steps[i].Name}].done)
			}
			lo = hi
			continue
		}
		g := new(errgroup.Group)
		sem := make(chan struct{}, r.opts.Concurrency)
		for i := lo; i < hi; i++ {
			s := plan.Steps[i]
			g.Go(func() error {
				st := states[ReleaseKey{s.Namespace, s.Name}]
				defer close(st.done)
				defer func() {
					if err := recovered(recover()); err != nil {
						cr.log.Error("panic", "release", ReleaseKey{s.Namespace, s.Name}.String(), "error", err)
						st.ok = false
						out[i] = ReleaseReport{Name: s.Name, Namespace: s.Namespace, Wave: s.Wave, Action: s.Action,
							FromRevision: s.FromRevision, Outcome: OutcomeFailed, Error: err.Error()}
					}
				}()
				if msg := waitNeeds(ctx, cr, r.m, s, states); msg != "" {
					skip(i, msg)
					return nil
				}
				select {
				case sem <- struct{}{}:
					defer func() { <-sem }()
				case <-ctx.Done():
					skip(i, "cancelled before it started: "+cancelCause(ctx, cr))
					return nil
				}
				out[i] = r.safeStep(ctx, cr, s)
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

// safeStep runs one step, turning a panic into the step's failure.
func (r *run) safeStep(ctx context.Context, cr *clusterRun, s Step) (rr ReleaseReport) {
	defer func() {
		if err := recovered(recover()); err != nil {
			cr.log.Error("panic", "release", ReleaseKey{s.Namespace, s.Name}.String(), "error", err, "stack", string(err.(*PanicError).Stack))
			rr = ReleaseReport{Name: s.Name, Namespace: s.Namespace, Wave: s.Wave, Action: s.Action, FromRevision: s.FromRevision,
				Outcome: OutcomeFailed, Error: err.Error()}
		}
	}()
	return r.step(ctx, cr, s)
}

// cancelCause says why a cluster's context ended.
func cancelCause(ctx context.Context, cr *clusterRun) string {
	if err := context.Cause(ctx); err != nil {
		return err.Error()
	}
	if cr.lost() {
		return errLockLost.Error()
	}
	return "cancelled"
}

// waitNeeds blocks until every needed release is done, and says why not if one
// failed. Needs name releases as the manifest does (a bare name when unique,
// else namespace/name) and are resolved to that release's key. Needs outside
// this run (a run restricted with --release) are taken as met; manifest.Load
// guarantees every need is enabled on the cluster and in the same or an
// earlier wave, so waiting cannot deadlock.
func waitNeeds(ctx context.Context, cr *clusterRun, m manifestResolver, s Step, states map[ReleaseKey]*stepState) string {
	for _, ref := range s.desired.Spec.Needs {
		rel, ok := m.Resolve(ref)
		if !ok {
			return fmt.Sprintf("skipped: needs %q, which the manifest does not define", ref)
		}
		st, ok := states[keyOfRelease(rel)]
		if !ok {
			continue
		}
		select {
		case <-st.done:
		case <-ctx.Done():
			return "cancelled before it started: " + cancelCause(ctx, cr)
		}
		if !st.ok {
			return fmt.Sprintf("skipped: needs %s, which did not become healthy", keyOfRelease(rel))
		}
	}
	return ""
}
