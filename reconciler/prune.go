package reconciler

import (
	"context"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/tandem-gitops/tandem/clusters"
)

// pruneIfSafe uninstalls the plan's prunes, unless anything about this run
// says the manifest's view of the cluster may be incomplete: a blocked prune
// (mass prune), any release that failed or was not applied (a skipped
// release may be the new home of a service being moved out of a pruned one),
// or a lost lock.
func (r *run) pruneIfSafe(ctx context.Context, cr *clusterRun, plan ClusterPlan, releases []ReleaseReport) []ReleaseReport {
	if len(plan.Prune) == 0 {
		return nil
	}
	why := plan.PruneBlocked
	if why == "" {
		for _, rr := range releases {
			if rr.Outcome != OutcomeOK {
				why = "not pruned: other releases failed or were not applied on this cluster"
				break
			}
		}
	}
	if why == "" && (cr.lost() || ctx.Err() != nil) {
		why = "not pruned: " + cancelCause(ctx, cr)
	}
	if why != "" {
		return skippedPrunes(plan.Prune, why)
	}
	return r.prune(ctx, cr, plan.Prune)
}

// skippedPrunes reports prunes that did not run; why "" takes each step's
// own reason (the unowned legacy releases).
func skippedPrunes(steps []Step, why string) []ReleaseReport {
	out := make([]ReleaseReport, 0, len(steps))
	for _, s := range steps {
		msg := why
		if msg == "" {
			msg = s.Reason
		}
		out = append(out, ReleaseReport{Name: s.Name, Namespace: s.Namespace, Action: ActionPrune, Outcome: OutcomeSkipped, FromRevision: s.FromRevision, Error: msg})
	}
	return out
}

func (r *run) prune(ctx context.Context, cr *clusterRun, steps []Step) []ReleaseReport {
	c := cr.c
	out := make([]ReleaseReport, len(steps))
	g := new(errgroup.Group)
	g.SetLimit(r.opts.Concurrency)
	for i, s := range steps {
		g.Go(func() error {
			start := time.Now()
			defer func() {
				if err := recovered(recover()); err != nil {
					out[i] = ReleaseReport{Name: s.Name, Namespace: s.Namespace, Action: ActionPrune, FromRevision: s.FromRevision,
						Outcome: OutcomeFailed, Error: err.Error()}
				}
			}()
			out[i] = ReleaseReport{Name: s.Name, Namespace: s.Namespace, Action: ActionPrune, FromRevision: s.FromRevision, Outcome: OutcomeOK}
			r.emit(Event{Cluster: c.Name, Role: string(c.Role), Release: s.Name, Action: ActionPrune, Phase: "start", FromRevision: s.FromRevision})
			ev := Event{Cluster: c.Name, Role: string(c.Role), Release: s.Name, Action: ActionPrune, Phase: "done", FromRevision: s.FromRevision}
			if err := cr.t.Uninstall(ctx, s.Namespace, s.Name, clusters.UninstallOptions{DisableHooks: s.NoHooks}); err != nil {
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
