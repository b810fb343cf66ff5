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

	"github.com/tandem-gitops/tandem/clusters"
	"github.com/tandem-gitops/tandem/manifest"
	"github.com/tandem-gitops/tandem/render"
)

// conn is one selected cluster after connecting: its target and identity,
// or why it cannot be written to.
type conn struct {
	t   Target
	uid string
	err error
}

// connectTimeout bounds connecting to one cluster and reading its identity:
// one slow API server must not hold up the others.
const connectTimeout = 30 * time.Second

// connectAll connects to every selected cluster in parallel and reads each
// one's identity. Manifest clusters that turn out to be one API server (a
// copy-pasted context, two contexts for one server) are all refused: the
// Standby overlay — zero replicas, DNS weight 0 — must never reach the
// Active cluster under another name.
func connectAll(ctx context.Context, selected []manifest.Cluster, connect Connector) []conn {
	conns := make([]conn, len(selected))
	var wg sync.WaitGroup
	for i, c := range selected {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				if err := recovered(recover()); err != nil {
					conns[i].err = fmt.Errorf("cluster %q: connect: %w", c.Name, err)
				}
			}()
			cctx, cancel := context.WithTimeout(ctx, connectTimeout)
			defer cancel()
			t, err := connect(cctx, c)
			if err != nil {
				conns[i].err = err
				return
			}
			conns[i].t = t
			conns[i].uid, conns[i].err = t.Identity(cctx)
		}()
	}
	wg.Wait()
	byUID := map[string][]int{}
	for i, cn := range conns {
		if cn.err == nil {
			byUID[cn.uid] = append(byUID[cn.uid], i)
		}
	}
	for uid, idx := range byUID {
		if len(idx) < 2 {
			continue
		}
		var names []string
		for _, i := range idx {
			names = append(names, fmt.Sprintf("%q", selected[i].Name))
		}
		for _, i := range idx {
			conns[i].err = fmt.Errorf("cluster %q: manifest clusters %s reach the same cluster (kube-system namespace uid %s); nothing was written to any of them — give each manifest cluster its own kubeconfig context",
				selected[i].Name, strings.Join(names, " and "), uid)
		}
	}
	return conns
}

// clusterRun holds what one cluster's releases share during a run.
type clusterRun struct {
	t    Target
	c    manifest.Cluster
	log  *slog.Logger
	uid  string
	prev *clusters.State     // the state record as this run found it; nil if none
	caps render.Capabilities // discovered, when the cluster was rendered live

	// lease is the cluster's lock (nil in a dry run). Once it is lost,
	// nothing more is written to the cluster: not a rollback, not a mark,
	// not the state record.
	lease Lease

	// snap lists live objects once for every drift check.
	snap *clusters.Snapshot
	// checked is the last run's drift-check record, by release (see
	// driftRecord); read only, may be nil.
	checked map[ReleaseKey]driftRecord

	mu sync.Mutex
	// found is this run's drift-check record, by release, for the state
	// record; guarded by mu, made on first use.
	found map[ReleaseKey]driftRecord
}

func (cr *clusterRun) record(k ReleaseKey, rec driftRecord) {
	cr.mu.Lock()
	defer cr.mu.Unlock()
	if cr.found == nil {
		cr.found = map[ReleaseKey]driftRecord{}
	}
	cr.found[k] = rec
}

// recorded returns this run's drift-check record of a release.
func (cr *clusterRun) recorded(k ReleaseKey) driftRecord {
	cr.mu.Lock()
	defer cr.mu.Unlock()
	return cr.found[k]
}

// lost reports whether the cluster's lock has been lost.
func (cr *clusterRun) lost() bool {
	if cr.lease == nil {
		return false
	}
	select {
	case <-cr.lease.Lost():
		return true
	default:
		return false
	}
}

// cluster reconciles one cluster. Every failure, a panic included, ends up in
// the returned report; the lock is released on every path.
func (r *run) cluster(ctx context.Context, c manifest.Cluster, cn conn, desired []Desired) (rep ClusterReport) {
	start := time.Now()
	rep = ClusterReport{Name: c.Name, Role: string(c.Role), Commit: r.opts.Commit, Releases: []ReleaseReport{}}
	log := r.opts.Logger.With("cluster", c.Name)
	defer func() {
		// Deferred first, so it runs last: the unlock below has run by now.
		if err := recovered(recover()); err != nil {
			log.Error("panic", "error", err, "stack", string(err.(*PanicError).Stack))
			rep.Error = joinProblems(rep.Error, err.Error())
			r.emit(Event{Cluster: c.Name, Role: string(c.Role), Phase: "cluster", Message: err.Error()})
		}
		// Whatever happened, Active clusters waiting on this Standby must hear about it.
		r.gates.closeCluster(c.Name, rep.Error)
		if cn.t != nil {
			rep.Requests = cn.t.Requests()
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
	fail := func(err error) ClusterReport {
		rep.Error = err.Error()
		r.emit(Event{Cluster: c.Name, Role: string(c.Role), Phase: "cluster", Message: rep.Error})
		return rep
	}
	if cn.err != nil {
		return fail(cn.err)
	}
	if r.opts.ClusterTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, r.opts.ClusterTimeout,
			fmt.Errorf("the cluster's run took longer than --cluster-timeout %s", r.opts.ClusterTimeout))
		defer cancel()
	}
	cr := &clusterRun{t: cn.t, c: c, log: log, uid: cn.uid}

	if !r.opts.DryRun {
		// The lock lives until Unlock below, not until the run's context
		// ends: a run stopped by SIGTERM, --cluster-timeout or a lost
		// leadership still has Helm finishing what it started (marking a
		// cancelled upgrade failed), and those writes must pass the fence
		// rather than leave a pending-* release behind. Waiting for the lock
		// still ends with the run.
		lockCtx, stopLock := context.WithCancel(context.WithoutCancel(ctx))
		defer stopLock() // after the Unlock below: defers run last-in first-out
		stopWaiting := context.AfterFunc(ctx, stopLock)
		lease, err := cn.t.Lock(lockCtx, clusters.LockOptions{Holder: r.opts.Holder, Wait: r.opts.LockTimeout, Duration: r.opts.LockDuration})
		if !stopWaiting() {
			// The run ended while the lock was being taken.
			if err == nil {
				uctx, ucancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
				_ = lease.Unlock(uctx)
				ucancel()
			}
			return fail(fmt.Errorf("take the cluster lock: %w", context.Cause(ctx)))
		}
		if err != nil {
			return fail(err)
		}
		cr.lease = lease
		locked := time.Now().UTC()
		rep.LockedAt = &locked
		var cancel context.CancelCauseFunc
		ctx, cancel = context.WithCancelCause(ctx)
		defer cancel(nil)
		stopWatch := make(chan struct{})
		watched := make(chan struct{})
		go func() {
			defer close(watched)
			select {
			case <-lease.Lost():
				if ctx.Err() == nil { // not just the run ending (timeout, interrupt)
					log.Error("lost the cluster lock; stopping all writes to this cluster")
				}
				cancel(errLockLost)
			case <-stopWatch:
			}
		}()
		defer func() {
			close(stopWatch)
			<-watched
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

	prev, err := cn.t.ReadState(ctx, r.m.ID)
	if err != nil {
		return fail(fmt.Errorf("read state record: %w", err))
	}
	cr.prev = prev
	if prev != nil && prev.Cluster != "" && prev.Cluster != c.Name {
		return fail(fmt.Errorf("cluster %q: this cluster's state record (%s/%s) says it is manifest cluster %q: two manifest clusters must not reach one cluster, so nothing was written — check the kubeconfig context of %q (if the cluster was renamed on purpose, delete that ConfigMap)",
			c.Name, clusters.SystemNamespace, clusters.StateConfigMapFor(r.m.ID), prev.Cluster, c.Name))
	}
	cr.checked = checkedByRelease(prev)

	releases, err := cn.t.ListReleases(ctx, nil)
	if err != nil {
		return fail(fmt.Errorf("list releases: %w", err))
	}
	deployed := deployedFrom(releases)
	if err := earlierRuns(ctx, cn.t, deployed); err != nil {
		return fail(err)
	}

	live := false
	offline := desired
	if r.opts.Renderer != nil {
		results, caps, err := renderCluster(ctx, r.m, r.opts.Renderer, r.opts.Selection, c, cn.t, existing(deployed))
		cr.caps = caps
		if err == nil {
			err = keepGenerated(results, deployed)
		}
		if err != nil {
			return fail(fmt.Errorf("render with the cluster's capabilities and lookup: nothing applied: %w", err))
		}
		desired, live = desiredByCluster(r.m, results)[c.Name], true
	}

	popts := r.opts.Plan
	popts.Now, popts.LeaseDuration, popts.RunID = time.Now(), r.opts.LockDuration, r.opts.RunID
	popts.Healthy = healthyRevisions(prev)
	plan := Plan(c, desired, deployed, popts)
	if live {
		refuseUnreviewedObjects(&plan, offline)
	} else {
		refuseOfflineLookups(&plan)
	}

	rep.Guard = r.reconcileGuard(ctx, cr, desired)
	if r.opts.DryRun {
		r.dryRunReport(&rep, plan)
		rep.Error = joinProblems(rep.Error, guardProblem(rep.Guard))
		return rep
	}

	if err := r.forgetAppliedCommit(ctx, cr, plan); err != nil {
		return fail(fmt.Errorf("write state record before applying (to clear its applied commit): %w; nothing applied", err))
	}
	cr.snap = cn.t.Snapshot()
	rep.Releases = r.applyWaves(ctx, cr, plan)
	rep.Pruned = r.pruneIfSafe(ctx, cr, plan, rep.Releases)
	rep.Pruned = append(rep.Pruned, skippedPrunes(plan.Unowned, "")...)
	rep.Error = joinProblems(problems(rep, plan), guardProblem(rep.Guard))

	if cr.lost() {
		rep.Error = joinProblems(rep.Error, "stopped writing to the cluster ("+cancelCause(ctx, cr)+"); state record not updated")
		return rep
	}
	if err := r.writeState(ctx, cr, rep, desired); err != nil {
		log.Warn("state record not written", "error", err)
		rep.Error = joinProblems(rep.Error, fmt.Sprintf("write state record: %v", err))
	}
	return rep
}

// earlierRuns reads, for each pending release, the run labels of its other
// revisions, so the plan can tell a revision a tandem run wrote from one a
// Helm client wrote with labels copied from an earlier revision.
func earlierRuns(ctx context.Context, t Target, deployed []Deployed) error {
	for i := range deployed {
		d := &deployed[i]
		if !d.pending() || d.Labels[LabelRun] == "" {
			continue
		}
		hist, err := t.History(ctx, d.Namespace, d.Name)
		if err != nil {
			return fmt.Errorf("release %s: history: %w", d.key(), err)
		}
		d.EarlierRuns = map[string]bool{}
		for _, h := range hist {
			if h.Revision != d.Revision && h.Labels[LabelRun] != "" {
				d.EarlierRuns[h.Labels[LabelRun]] = true
			}
		}
	}
	return nil
}

// existing lists the releases Helm storage holds: Helm upgrades those, so
// their templates see .Release.IsUpgrade.
func existing(deployed []Deployed) map[ReleaseKey]bool {
	out := make(map[ReleaseKey]bool, len(deployed))
	for _, d := range deployed {
		out[d.key()] = true
	}
	return out
}

// refuseUnreviewedObjects fails the steps of releases whose templates call
// lookup and whose render with the cluster holds objects the offline render
// — what `tandem diff --against` showed on the pull request, where lookup
// finds nothing — does not. A chart could otherwise show reviewers one thing
// and, reading the live cluster, apply another (say, a ClusterRoleBinding
// only when a lookup finds something). Objects only the offline render has
// are fine: the review saw more, not less. Objects are compared by group,
// kind, namespace and name. Releases that do not call lookup are not held to
// this: their differences come from capabilities (a CRD the cluster serves,
// its version), which tandem.yaml declares and a reviewer sees, and holding
// them to it would freeze every such chart until tandem.yaml lists each CRD.
func refuseUnreviewedObjects(plan *ClusterPlan, offline []Desired) {
	seen := map[ReleaseKey]map[objectKey]bool{}
	for _, d := range offline {
		ids := map[objectKey]bool{}
		for _, o := range d.Result.Objects {
			ids[objectKeyOf(o)] = true
		}
		seen[d.key()] = ids
	}
	for i := range plan.Steps {
		s := &plan.Steps[i]
		if s.Error != "" || s.Action == ActionUnchanged || s.desired == nil || !s.desired.Result.UsedLookup {
			continue
		}
		ids, ok := seen[s.desired.key()]
		if !ok {
			continue // not rendered offline (a caller that passed no offline results)
		}
		var extra []string
		for _, o := range s.desired.Result.Objects {
			if !ids[objectKeyOf(o)] {
				extra = append(extra, o.ID())
			}
		}
		if len(extra) > 0 {
			sort.Strings(extra)
			s.Error = fmt.Sprintf("its templates call lookup, and rendered with the cluster it has objects the offline render (what a pull request's plan shows) does not: %s; nothing applied — check the chart's lookup conditions, or declare the cluster's kubeVersion and apiVersions in tandem.yaml",
				strings.Join(extra, ", "))
		}
	}
}

// refuseOfflineLookups fails the steps of releases whose templates called
// lookup in a render that had no cluster to look in: applying that plan
// would overwrite what the chart keeps through lookup (a generated password).
func refuseOfflineLookups(plan *ClusterPlan) {
	for i := range plan.Steps {
		s := &plan.Steps[i]
		if s.Error == "" && s.Action != ActionUnchanged && s.desired.Result.UsedLookup {
			s.Error = "its templates call lookup, and this plan was rendered without the cluster: applying it could rotate what the chart keeps through lookup (a generated password); nothing applied"
		}
	}
}

// dryRunReport fills a dry run's report from the plan: a step that would
// fail, or a blocked prune, fails the cluster.
func (r *run) dryRunReport(rep *ClusterReport, plan ClusterPlan) {
	var bad []string
	for _, s := range plan.Steps {
		rep.Releases = append(rep.Releases, ReleaseReport{Name: s.Name, Namespace: s.Namespace, Wave: s.Wave, Action: s.Action,
			Outcome: plannedOutcome(s), FromRevision: s.FromRevision, Recovered: s.Recover, Adopted: s.Adopt, Error: s.Error})
		r.gates.report(rep.Name, s.desired.Spec, s.Error == "", s.Error)
		if s.Error != "" {
			bad = append(bad, fmt.Sprintf("release %s: %s", ReleaseKey{s.Namespace, s.Name}, s.Error))
		}
	}
	for _, s := range plan.Prune {
		o := OutcomePlanned
		if plan.PruneBlocked != "" {
			o = OutcomeSkipped
		}
		rep.Pruned = append(rep.Pruned, ReleaseReport{Name: s.Name, Namespace: s.Namespace, Action: ActionPrune, Outcome: o, FromRevision: s.FromRevision})
	}
	rep.Pruned = append(rep.Pruned, skippedPrunes(plan.Unowned, "")...)
	if plan.PruneBlocked != "" {
		bad = append(bad, plan.PruneBlocked)
	}
	rep.Error = strings.Join(bad, "; ")
}

func plannedOutcome(s Step) Outcome {
	switch {
	case s.Error != "":
		return OutcomeFailed
	case s.Action == ActionUnchanged && !s.Verify:
		return OutcomeOK
	}
	return OutcomePlanned
}

// problems is the cluster's error: every release that failed or was not
// applied (skipped is not success: only the user's own --release filter
// leaves a release out, and such releases have no step at all), a blocked
// prune, failed prunes, and prunes the plan holds that did not run for any
// other reason (the run was stopped after its last release): the cluster
// still has a release the manifest removed.
func problems(rep ClusterReport, plan ClusterPlan) string {
	var out []string
	for _, rr := range rep.Releases {
		k := ReleaseKey{rr.Namespace, rr.Name}
		switch rr.Outcome {
		case OutcomeFailed:
			out = append(out, fmt.Sprintf("release %s failed: %s", k, rr.Error))
		case OutcomeSkipped:
			out = append(out, fmt.Sprintf("release %s not applied: %s", k, rr.Error))
		}
	}
	if plan.PruneBlocked != "" {
		out = append(out, plan.PruneBlocked)
	}
	planned := map[ReleaseKey]bool{}
	for _, s := range plan.Prune {
		planned[ReleaseKey{s.Namespace, s.Name}] = true
	}
	explained := len(out) > 0 // a blocked prune, or releases not applied, say why prunes did not run
	for _, p := range rep.Pruned {
		switch {
		case p.Outcome == OutcomeFailed:
			out = append(out, fmt.Sprintf("prune %s/%s: %s", p.Namespace, p.Name, p.Error))
		case p.Outcome == OutcomeSkipped && !explained && planned[ReleaseKey{p.Namespace, p.Name}]:
			out = append(out, fmt.Sprintf("prune %s/%s: %s", p.Namespace, p.Name, p.Error))
		}
	}
	return strings.Join(out, "; ")
}

func joinProblems(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + "; " + b
}

// deployedFrom converts Helm storage's latest revisions for Plan.
func deployedFrom(live []clusters.Release) []Deployed {
	out := make([]Deployed, 0, len(live))
	for _, l := range live {
		out = append(out, Deployed{Name: l.Name, Namespace: l.Namespace, Revision: l.Revision, Status: l.Status, Labels: l.Labels,
			Updated: l.Updated, Manifest: l.Manifest})
	}
	return out
}

// healthyRevisions reads, from the state record, the revision of each
// release that tandem last saw healthy.
func healthyRevisions(st *clusters.State) map[ReleaseKey]int {
	out := map[ReleaseKey]int{}
	if st == nil {
		return out
	}
	// A record written before tandem recorded health (no manifest ID in
	// it) wrote "ok" only after a health wait, or for a release that was
	// unchanged since one: its ok outcomes are trusted.
	legacy := st.ManifestID == ""
	for _, r := range st.Releases {
		if r.Healthy || (legacy && r.Outcome == string(OutcomeOK)) {
			out[ReleaseKey{r.Namespace, r.Name}] = r.Revision
		}
	}
	return out
}

// checkedByRelease reads the last run's drift-check record from the state
// record; a release without one gets a dry run of every object.
func checkedByRelease(st *clusters.State) map[ReleaseKey]driftRecord {
	out := map[ReleaseKey]driftRecord{}
	if st == nil {
		return out
	}
	for _, r := range st.Releases {
		if r.Fingerprint != "" {
			out[ReleaseKey{r.Namespace, r.Name}] = driftRecord{fingerprint: r.Fingerprint, versions: r.Versions, digest: r.Digest}
		}
	}
	return out
}

// sortedKeys returns a map's release keys in order.
func sortedKeys[V any](m map[ReleaseKey]V) []ReleaseKey {
	out := make([]ReleaseKey, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

var errLockLost = errors.New("the cluster's lock was lost")
