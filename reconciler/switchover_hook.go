package reconciler

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tandem-gitops/tandem/clusters"
	"github.com/tandem-gitops/tandem/manifest"
)

// switchoverFirst is Reconcile's hook: when the roles in git differ from
// the roles in effect (the clusters' state records), it runs the
// switchover before anything else. It returns true when the run must stop
// there (the switchover did not complete, or cannot run), with report
// filled; false when the plain reconcile should follow (no role change, or
// the switchover completed: the plain reconcile then applies the rest of
// the commit and records the new roles).
func (r *run) switchoverFirst(ctx context.Context, report *Report, selected []manifest.Cluster, conns []conn) bool {
	roles, states := inEffectRoles(ctx, r.m, selected, conns)
	p := PlanSwitchover(r.m, roles)
	if p != nil || staleSwitchover(states) != "" {
		// Another run (a drill, a reconcile of the same commit) may be
		// half way through: decide again once it is done, from the
		// records read under every cluster's lock.
		roles, states = r.inEffectLocked(ctx, selected, conns)
		p = PlanSwitchover(r.m, roles)
	}
	if msg := renamedWithRoles(ctx, r.m, selected, conns, states); msg != "" {
		failAll(report, r, selected, msg)
		return true
	}
	r.peers = peersLeft(p, roles, selected, conns)
	if p == nil {
		if msg := staleSwitchover(states); msg != "" {
			failAll(report, r, selected, msg)
			return true
		}
		if len(r.opts.SourceLost) > 0 {
			failAll(report, r, selected, fmt.Sprintf("--source-lost %s: no switchover waits for it (the roles in %s equal the roles in effect); nothing done",
				strings.Join(r.opts.SourceLost, ","), manifest.FileName))
			return true
		}
		return false
	}
	if len(selected) < len(r.m.Clusters) {
		// The other side of the switchover is not in this run: applying
		// the new role to one cluster alone could close the only open one.
		failAll(report, r, selected, fmt.Sprintf("the roles in git differ from those in effect (switchover %s): a switchover needs every cluster in the run, not --cluster", p.Title()))
		return true
	}
	if len(r.opts.Selection.Releases) > 0 {
		failAll(report, r, selected, fmt.Sprintf("the roles in git differ from those in effect (switchover %s): a switchover needs a run of every release, not --release", p.Title()))
		return true
	}
	sw := r.runSwitchover(ctx, p, selected, conns)
	report.Switchover = sw
	if sw.Completed {
		for _, name := range p.Involved() {
			c, _ := r.m.Cluster(name)
			r.peers[name] = c.Role
		}
		return false
	}
	if len(sw.WaitingFor) > 0 {
		// The targets serve; the rest of the commit goes on without the
		// sources, their phases still reported as skipped.
		r.hold(p, sw, selected, conns)
		return false
	}
	msg := sw.Blocked
	if msg == "" {
		msg = sw.Error
	}
	report.Clusters = make([]ClusterReport, len(selected))
	for i, c := range selected {
		cr := ClusterReport{Name: c.Name, Role: string(c.Role), Commit: r.opts.Commit, Releases: []ReleaseReport{}, FinishedAt: time.Now().UTC()}
		for _, ph := range sw.Phases {
			for _, st := range ph.Steps {
				if st.Cluster == c.Name {
					cr.Releases = append(cr.Releases, st.Releases...)
				}
			}
		}
		switch {
		case conns[i].err != nil:
			cr.Error = conns[i].err.Error() + "; " + msg
		case slices.Contains(p.Involved(), c.Name):
			cr.Error = msg
		default:
			cr.Error = "not reconciled: " + msg
		}
		if conns[i].t != nil {
			cr.Requests = conns[i].t.Requests()
		}
		cr.count()
		report.Clusters[i] = cr
	}
	return true
}

func failAll(report *Report, r *run, selected []manifest.Cluster, msg string) {
	report.Clusters = make([]ClusterReport, len(selected))
	for i, c := range selected {
		report.Clusters[i] = ClusterReport{Name: c.Name, Role: string(c.Role), Commit: r.opts.Commit, Releases: []ReleaseReport{},
			Error: msg, FinishedAt: time.Now().UTC()}
	}
}

// inEffectLocked is inEffectRoles read while holding the lock of every
// reachable cluster (waiting for it as a reconcile does); the locks are
// released before it returns. A cluster whose lock cannot be had is read
// without it.
func (r *run) inEffectLocked(ctx context.Context, selected []manifest.Cluster, conns []conn) (Roles, map[string]*clusters.State) {
	leases := make([]Lease, len(conns))
	var wg sync.WaitGroup
	for i := range conns {
		if conns[i].err != nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			l, err := conns[i].t.Lock(ctx, clusters.LockOptions{Holder: r.opts.Holder, Wait: r.opts.LockTimeout, Duration: r.opts.LockDuration})
			if err != nil {
				r.opts.Logger.Warn("switchover: roles in effect read without the lock", "cluster", selected[i].Name, "error", err)
				return
			}
			leases[i] = l
		}()
	}
	wg.Wait()
	defer func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		for i, l := range leases {
			if l != nil {
				if err := l.Unlock(uctx); err != nil {
					r.opts.Logger.Warn("unlock failed", "cluster", selected[i].Name, "error", err)
				}
			}
		}
	}()
	return inEffectRoles(ctx, r.m, selected, conns)
}

// peersLeft are the roles in effect a plain reconcile after the switchover
// step leaves, before that switchover completes: the clusters it involves
// keep their roles in effect (a completed one sets them to git's), every
// other reachable cluster is at its role in git, and an unreachable one
// keeps what was known of it.
func peersLeft(p *SwitchoverPlan, roles Roles, selected []manifest.Cluster, conns []conn) Roles {
	out := maps.Clone(roles)
	for i, c := range selected {
		if conns[i].err == nil && (p == nil || !slices.Contains(p.Involved(), c.Name)) {
			out[c.Name] = c.Role
		}
	}
	return out
}
