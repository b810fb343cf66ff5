package reconciler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tandem-gitops/tandem/clusters"
	"github.com/tandem-gitops/tandem/manifest"
	"github.com/tandem-gitops/tandem/render"
)

// SwitchoverReport is what a switchover did, as data.
type SwitchoverReport struct {
	From   []string `json:"from"`
	To     []string `json:"to"`
	Commit string   `json:"commit"`
	// ResumedAt is the phase this run started at when an earlier run had
	// recorded progress (0: started from the beginning).
	ResumedAt int           `json:"resumedAt,omitempty"`
	Phases    []PhaseReport `json:"phases"`
	// Completed says every phase is done on every cluster.
	Completed bool `json:"completed"`
	// Blocked says why it stopped, e.g. "switchover blocked in phase 1:
	// release shop/web not healthy on green: …"; Error any other failure.
	Blocked string `json:"blocked,omitempty"`
	Error   string `json:"error,omitempty"`
	// WaitingFor are the sources it waits for (unreachable): the targets
	// serve, and the sources' phases run once they can be reached. A
	// reconcile then goes on with the rest of the commit on the others.
	WaitingFor []string `json:"waitingFor,omitempty"`
	// SourceLost are the sources declared lost (tandem reconcile
	// --source-lost), as the state records hold them: the targets' CronJobs
	// run although the sources' could not be suspended.
	SourceLost []clusters.LostSource `json:"sourceLost,omitempty"`
	// Serving is when the targets served with full weight (end of phase 2), from the start.
	Serving  Duration  `json:"servingAfter,omitempty"`
	Started  time.Time `json:"started"`
	Duration Duration  `json:"duration"`
}

// PhaseReport is one phase of a SwitchoverReport.
type PhaseReport struct {
	Number int    `json:"number"`
	Name   string `json:"name"`
	// Skipped says why the phase was not applied (its cluster unreachable).
	Skipped  string            `json:"skipped,omitempty"`
	Steps    []PhaseStepReport `json:"steps"`
	Duration Duration          `json:"duration"`
}

// PhaseStepReport is one cluster's part of a phase.
type PhaseStepReport struct {
	Cluster  string          `json:"cluster"`
	Releases []ReleaseReport `json:"releases"`
	Skipped  string          `json:"skipped,omitempty"`
	Error    string          `json:"error,omitempty"`
}

// Failed reports whether the switchover did not complete.
func (r *SwitchoverReport) Failed() bool { return !r.Completed }

// Failure says what stopped the switchover without advice on what to do
// next: the failing phase and its steps' errors, else Blocked or Error.
func (r *SwitchoverReport) Failure() string {
	for i := len(r.Phases) - 1; i >= 0; i-- {
		ph := r.Phases[i]
		var errs []string
		for _, st := range ph.Steps {
			if st.Error != "" {
				errs = append(errs, st.Error)
			}
		}
		if len(errs) > 0 {
			return fmt.Sprintf("phase %d (%s): %s", ph.Number, ph.Name, strings.Join(errs, "; "))
		}
	}
	if r.Blocked != "" {
		return r.Blocked
	}
	return r.Error
}

// swCluster is one cluster a switchover involves.
type swCluster struct {
	c    manifest.Cluster // with its role in git
	t    Target
	uid  string
	err  error // why it cannot be used (unreachable, lock held)
	prev *clusters.State
	ctx  context.Context // cancelled when its lock is lost
	lock Lease
	stop func()
}

func (x *swCluster) ok() bool { return x.err == nil }

// inEffect reads the roles in effect from the clusters' state records.
// An unreadable cluster that git makes Standby is taken as still Active
// (the worst case: serving and running CronJobs), so its phases are
// reported as skipped rather than assumed done.
func inEffectRoles(ctx context.Context, m *manifest.Manifest, selected []manifest.Cluster, conns []conn) (Roles, map[string]*clusters.State) {
	roles, states := Roles{}, map[string]*clusters.State{}
	var unknown []manifest.Cluster
	for i, c := range selected {
		if conns[i].err != nil {
			unknown = append(unknown, c)
			continue
		}
		st, err := conns[i].t.ReadState(ctx, m.ID)
		if err != nil {
			unknown = append(unknown, c)
			continue
		}
		states[c.Name] = st
		if role := roleInEffect(c.Name, st); role != "" {
			roles[c.Name] = role
		}
	}
	// What the reachable records say of the others: a down bystander is
	// not a source. Only a cluster no record knows is taken at the worst.
	var unread []manifest.Cluster
	for _, c := range unknown {
		if role := peerRole(c.Name, states); role != "" {
			roles[c.Name] = role
			continue
		}
		unread = append(unread, c)
	}
	if PlanSwitchover(m, roles) == nil && !anySwitchover(states) {
		return roles, states
	}
	for _, c := range unread {
		if c.Role == manifest.RoleStandby {
			roles[c.Name] = manifest.RoleActive
		}
	}
	return roles, states
}

// peerRole is the role in effect of cluster name as the latest written of
// the other clusters' records knows it ("" when none does).
func peerRole(name string, states map[string]*clusters.State) manifest.Role {
	var role manifest.Role
	var at time.Time
	for other, st := range states {
		if st == nil || other == name || st.Peers[name] == "" {
			continue
		}
		t := st.AppliedAt
		if st.Switchover != nil && st.Switchover.UpdatedAt.After(t) {
			t = st.Switchover.UpdatedAt
		}
		if role == "" || t.After(at) {
			role, at = manifest.Role(st.Peers[name]), t
		}
	}
	return role
}

// peersAfter are the roles in effect a record written now holds: prev's,
// updated with roles.
func peersAfter(prev *clusters.State, roles Roles) map[string]string {
	out := map[string]string{}
	if prev != nil {
		maps.Copy(out, prev.Peers)
	}
	for name, role := range roles {
		out[name] = string(role)
	}
	return out
}

func anySwitchover(states map[string]*clusters.State) bool {
	for _, st := range states {
		if underWay(st) != nil {
			return true
		}
	}
	return false
}

// resumePhase is where a switchover resumes: after the furthest phase any
// involved cluster's record shows done, or at the furthest one under way.
// Never earlier: a phase is the state after it, so running an earlier one
// again would undo a later one (close the target again).
func resumePhase(p *SwitchoverPlan, states map[string]*clusters.State) int {
	next := 1
	for _, name := range p.Involved() {
		st := states[name]
		if st == nil || st.Switchover == nil || !slices.Equal(st.Switchover.From, p.From) || !slices.Equal(st.Switchover.To, p.To) {
			continue
		}
		n := st.Switchover.Phase
		if st.Switchover.PhaseDone {
			n++
		}
		next = max(next, n)
	}
	return next
}

// staleSwitchover says, for a run whose roles in git equal the roles in
// effect, whether a record holds a switchover in another direction (its
// commit was reverted) that went past phase 1: the clusters are then half
// way and a plain reconcile would close the only open one. Until phase 1
// nothing served from the target, and the plain reconcile scales it down.
func staleSwitchover(states map[string]*clusters.State) string {
	for name, st := range states {
		if sw := underWay(st); sw != nil && sw.Phase >= PhaseOpen {
			if sw.Drill {
				return fmt.Sprintf("cluster %s's state record shows an interrupted drill (%s → %s, phase %d %s): run tandem drill --to %s again: it returns the clusters to the roles in git first",
					name, strings.Join(sw.From, ","), strings.Join(sw.To, ","), sw.Phase, sw.PhaseName, strings.Join(sw.To, ","))
			}
			return fmt.Sprintf("cluster %s's state record shows the switchover %s → %s in phase %d (%s), and tandem.yaml no longer asks for it: set the roles of that switchover again to finish it, then switch back",
				name, strings.Join(st.Switchover.From, ","), strings.Join(st.Switchover.To, ","), st.Switchover.Phase, st.Switchover.PhaseName)
		}
	}
	return ""
}

// runSwitchover locks every involved cluster and runs the phases from
// where an earlier run left off. The locks are released before it returns.
func (r *run) runSwitchover(ctx context.Context, p *SwitchoverPlan, selected []manifest.Cluster, conns []conn) *SwitchoverReport {
	start := time.Now()
	rep := &SwitchoverReport{From: p.From, To: p.To, Commit: r.opts.Commit, Started: start.UTC()}
	defer func() { rep.Duration = Duration(time.Since(start)) }()
	if len(p.Blocked) > 0 {
		rep.Blocked = "switchover " + p.Title() + " cannot run: " + strings.Join(p.Blocked, "; ")
		return rep
	}
	if r.opts.Renderer == nil {
		rep.Error = "a switchover renders each phase with the cluster: no renderer given"
		return rep
	}
	byName := map[string]*swCluster{}
	var xs []*swCluster
	for i, c := range selected {
		if !slices.Contains(p.Involved(), c.Name) {
			continue
		}
		x := &swCluster{c: c, t: conns[i].t, uid: conns[i].uid, err: conns[i].err, ctx: ctx}
		byName[c.Name], xs = x, append(xs, x)
	}
	for _, name := range p.Involved() {
		if byName[name] == nil {
			rep.Error = fmt.Sprintf("switchover %s: cluster %s is not part of this run: a switchover needs every cluster whose role changes", p.Title(), name)
			return rep
		}
	}
	// Lock every reachable involved cluster, all held to the end.
	var wg sync.WaitGroup
	for _, x := range xs {
		if !x.ok() {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			x.err = r.lockSwitchover(ctx, x)
		}()
	}
	wg.Wait()
	defer func() {
		for _, x := range xs {
			if x.stop != nil {
				x.stop()
			}
		}
	}()
	for _, x := range xs {
		// Another run holds it: that cluster is reachable and busy, not
		// down. Taking the disaster path (the target serves, the source's
		// phases skipped) would act on a cluster that run is changing.
		var held *clusters.LockHeldError
		if errors.As(x.err, &held) {
			rep.Error = fmt.Sprintf("switchover %s: %v: another run holds the cluster's lock; nothing done — run again once it is done", p.Title(), x.err)
			return rep
		}
	}
	for _, name := range p.To {
		if x := byName[name]; !x.ok() {
			rep.Error = fmt.Sprintf("switchover %s: target %s: %v; nothing changed", p.Title(), name, x.err)
			return rep
		}
	}
	states := map[string]*clusters.State{}
	for _, x := range xs {
		if x.ok() {
			states[x.c.Name] = x.prev
		}
	}
	if msg := r.declareLost(p, byName); msg != "" {
		rep.Error = fmt.Sprintf("switchover %s: %s; nothing done", p.Title(), msg)
		return rep
	}
	p = p.withLost(r.m, lostSources(p, states, r.opts.SourceLost))
	// Decided before the locks: another run may have moved the roles in
	// effect since. Running this plan's phases on clusters already past it
	// would close the only open one, so it must still be the plan.
	now := Roles{}
	for _, x := range xs {
		if role := roleInEffect(x.c.Name, x.prev); x.ok() && role != "" {
			now[x.c.Name] = role
		} else if x.c.Role == manifest.RoleStandby {
			now[x.c.Name] = manifest.RoleActive // unreadable: as inEffectRoles takes it
		}
	}
	if q := PlanSwitchover(r.m, now); q == nil || !slices.Equal(q.From, p.From) || !slices.Equal(q.To, p.To) {
		rep.Error = fmt.Sprintf("switchover %s: the roles in effect changed while waiting for the locks (another tandem ran); nothing done — run again", p.Title())
		return rep
	}
	// Clusters the switchover does not involve are read without their
	// locks: only to see whether one is in the middle of another switchover.
	all := maps.Clone(states)
	for i, c := range selected {
		if byName[c.Name] != nil || conns[i].err != nil {
			continue
		}
		if st, err := conns[i].t.ReadState(ctx, r.m.ID); err == nil {
			all[c.Name] = st
		}
	}
	if msg := foreignSwitchover(p, all); msg != "" {
		rep.Blocked = "switchover " + p.Title() + " cannot run: " + msg
		return rep
	}
	first := resumePhase(p, states)
	if first > 1 {
		rep.ResumedAt = first
	}
	stay := stayActive(r.m, p, selected, conns)
	if first < PhaseClose || (first == PhaseClose && !anyDown(p.From, byName)) {
		// Until phase 3 the sources serve untouched: a cluster that is
		// to serve after it must be ready to before the switchover starts.
		var targets []*swCluster
		for _, name := range p.To {
			targets = append(targets, byName[name])
		}
		if bad := unready(ctx, r.m, p, states, targets, stay); len(bad) > 0 {
			done := "nothing done"
			if first > 1 {
				done = "its sources untouched"
			}
			rep.Blocked = fmt.Sprintf("switchover %s blocked: %s; %s keeps serving, %s", p.Title(), strings.Join(bad, "; "), strings.Join(p.From, ", "), done)
			if first >= PhaseClose && len(p.Lost) > 0 {
				// Declared lost: the targets' CronJobs run (suspendLost).
				rep.Blocked += "; its CronJobs suspended (declared lost)"
				if e := r.suspendLost(p, byName); e != "" {
					rep.Blocked += ": failed: " + e
				}
			}
			return rep
		}
	}
	r.runPhases(ctx, p, xs, stay, first, rep, nil)
	if rep.Completed {
		// The switchover records its own end: every involved cluster's
		// role in effect becomes its role in git, in the switchover's
		// locks. A run that dies between these writes leaves records that
		// show phase 5 done, which roleInEffect reads as the new role.
		if err := r.settleRoles(ctx, xs); err != nil {
			rep.Completed = false
			rep.Error = fmt.Sprintf("switchover %s: all phases done; %v: the next run records them", p.Title(), err)
		}
	}
	return rep
}

// runPhases runs p's phases from first on the clusters xs, locked by the
// caller, recording each phase in their state records and filling rep.
// stay are the clusters Active before and after p (only read: phase 3
// checks that what the sources serve is served by them or the targets).
// after, if set, runs once each phase is done (the drill checks the
// invariants there).
func (r *run) runPhases(ctx context.Context, p *SwitchoverPlan, xs, stay []*swCluster, first int, rep *SwitchoverReport, after func(phase int)) {
	start := rep.Started
	byName := map[string]*swCluster{}
	for _, x := range xs {
		byName[x.c.Name] = x
	}
	sw := clusters.SwitchoverState{From: p.From, To: p.To, Commit: r.opts.Commit, StartedAt: start.UTC(), Drill: r.drill}
	for _, x := range xs {
		if st := x.prev; x.ok() && st != nil && st.Switchover != nil && slices.Equal(st.Switchover.From, p.From) && slices.Equal(st.Switchover.To, p.To) {
			sw.StartedAt = st.Switchover.StartedAt
			for _, l := range st.Switchover.SourceLost {
				if !slices.ContainsFunc(sw.SourceLost, func(o clusters.LostSource) bool { return o.Cluster == l.Cluster }) {
					sw.SourceLost = append(sw.SourceLost, l)
				}
			}
		}
	}
	for _, name := range r.opts.SourceLost {
		if slices.Contains(p.Lost, name) && !slices.ContainsFunc(sw.SourceLost, func(o clusters.LostSource) bool { return o.Cluster == name }) {
			sw.SourceLost = append(sw.SourceLost, clusters.LostSource{Cluster: name, By: r.opts.Holder, At: time.Now().UTC()})
		}
	}
	if first > 1 {
		// Resumed: until this run records a phase, the records keep
		// saying where the last one left off.
		sw.Phase, sw.PhaseName, sw.PhaseDone = first-1, PhaseName(first-1), true
	}
	var down, downNames []string // sources that cannot be reached
	allLost := true              // and every one of them declared lost
	for _, name := range p.From {
		if x := byName[name]; !x.ok() {
			down, downNames = append(down, fmt.Sprintf("%s: %v", name, x.err)), append(downNames, name)
			allLost = allLost && slices.Contains(p.Lost, name)
		}
	}
	for _, ph := range p.Phases {
		if ph.Number < first {
			continue
		}
		pr := PhaseReport{Number: ph.Number, Name: ph.Name}
		phStart := time.Now()
		if ph.Number == PhaseSingletons && len(down) > 0 && allLost {
			// Declared lost: the targets' CronJobs resume; the sources'
			// half waits for them. The record (phase 2 done) keeps saying
			// phases 3–5 are to run on the sources.
			if !r.singletonsWithoutSources(ctx, p, ph, byName, xs, sw, &pr, rep) {
				return
			}
			sw.Skipped = append(sw.Skipped, fmt.Sprintf("%d %s: the half on %s, declared lost", ph.Number, ph.Name, strings.Join(downNames, ", ")))
			pr.Duration = Duration(time.Since(phStart))
			rep.Phases = append(rep.Phases, pr)
			continue
		}
		if ph.Number >= PhaseClose && len(down) > 0 {
			// The disaster case: the target serves; what touches the source waits for it.
			pr.Skipped = "source unreachable: " + strings.Join(down, "; ")
			sw.Skipped = append(sw.Skipped, fmt.Sprintf("%d %s: %s", ph.Number, ph.Name, pr.Skipped))
			rep.Phases = append(rep.Phases, pr)
			r.emit(Event{Phase: "switchover", Message: fmt.Sprintf("phase %d %s: skipped: %s", ph.Number, ph.Name, pr.Skipped)})
			continue
		}
		if ph.Number == PhaseClose {
			// The last moment the sources can be left serving untouched:
			// read live that their releases are served elsewhere.
			var sources, active []*swCluster
			for _, name := range p.From {
				sources = append(sources, byName[name])
			}
			for _, name := range p.To {
				active = append(active, byName[name])
			}
			if why := r.servedElsewhere(ctx, p, sources, append(active, stay...)); why != "" {
				msg := fmt.Sprintf("switchover %s stopped before phase 3 (close): %s; %s keeps serving, untouched — fix and re-run to resume",
					p.Title(), why, strings.Join(p.From, ", "))
				if len(p.Lost) > 0 {
					msg = fmt.Sprintf("switchover %s stopped before phase 3 (close): %s; %s keeps serving with its CronJobs suspended (declared lost: %s's run) — fix and re-run to resume",
						p.Title(), why, strings.Join(p.From, ", "), strings.Join(p.To, ", "))
					if bad := r.suspendLost(p, byName); bad != "" {
						msg += "; suspending its CronJobs failed: " + bad
					}
				}
				rep.Blocked, sw.Blocked = msg, msg
				if err := r.recordSwitchover(ctx, xs, sw, nil); err != nil {
					r.opts.Logger.Warn("switchover: stop before phase 3 not recorded", "error", err)
				}
				r.emit(Event{Phase: "switchover", Message: msg})
				return
			}
		}
		sw.Phase, sw.PhaseName, sw.PhaseDone, sw.Blocked = ph.Number, ph.Name, false, ""
		if err := r.recordSwitchover(ctx, xs, sw, nil); err != nil {
			rep.Error = fmt.Sprintf("switchover %s: phase %d %s: %v", p.Title(), ph.Number, ph.Name, err)
			rep.Phases = append(rep.Phases, pr)
			return
		}
		r.emit(Event{Phase: "switchover", Message: fmt.Sprintf("phase %d %s: started", ph.Number, ph.Name)})
		var failed string
		for _, st := range ph.Steps {
			x := byName[st.Cluster]
			sr := PhaseStepReport{Cluster: st.Cluster}
			sr.Releases, sr.Error = r.switchoverStep(x, p, ph, st)
			pr.Steps = append(pr.Steps, sr)
			if sr.Error != "" {
				failed = sr.Error
				break // phase 4: the target's CronJobs never resume after the source's failed to suspend
			}
		}
		if failed == "" && ph.DrainSeconds > 0 {
			r.emit(Event{Phase: "switchover", Message: fmt.Sprintf("phase %d %s: draining %d s", ph.Number, ph.Name, ph.DrainSeconds)})
			select {
			case <-time.After(time.Duration(ph.DrainSeconds) * time.Second):
			case <-ctx.Done():
				failed = "drain wait interrupted: " + context.Cause(ctx).Error()
			}
		}
		pr.Duration = Duration(time.Since(phStart))
		rep.Phases = append(rep.Phases, pr)
		if failed != "" {
			msg := fmt.Sprintf("switchover %s stopped in phase %d (%s): %s", p.Title(), ph.Number, ph.Name, failed)
			if ph.Number == PhaseWarm {
				msg = fmt.Sprintf("switchover blocked in phase 1: %s; %s keeps serving, untouched — fix and re-run to resume, or revert the commit to scale %s back down",
					failed, strings.Join(p.From, ", "), strings.Join(p.To, ", "))
			}
			rep.Blocked = msg
			sw.Blocked = msg
			_ = r.recordSwitchover(ctx, xs, sw, pr.Steps)
			r.emit(Event{Phase: "switchover", Message: msg})
			return
		}
		sw.PhaseDone = true
		if err := r.recordSwitchover(ctx, xs, sw, pr.Steps); err != nil {
			rep.Error = fmt.Sprintf("switchover %s: phase %d %s: %v", p.Title(), ph.Number, ph.Name, err)
			return
		}
		if ph.Number == PhaseOpen {
			rep.Serving = Duration(time.Since(start))
		}
		if after != nil {
			after(ph.Number)
		}
		r.emit(Event{Phase: "switchover", Message: fmt.Sprintf("phase %d %s: done %.1fs", ph.Number, ph.Name, time.Duration(pr.Duration).Seconds())})
	}
	if len(down) > 0 {
		if err := r.recordSwitchover(ctx, xs, sw, nil); err != nil {
			r.opts.Logger.Warn("switchover: skipped phases not recorded", "error", err)
		}
		rep.WaitingFor, rep.SourceLost = downNames, sw.SourceLost
		if allLost {
			rep.Error = fmt.Sprintf("switchover %s: %s serves and runs the CronJobs (%s declared lost: %s); phases %d–%d on %s wait until it can be reached (%s): then its weight goes to 0 with its CronJobs suspended, and it becomes Standby",
				p.Title(), strings.Join(p.To, ", "), strings.Join(downNames, ", "), lostText(sw.SourceLost), PhaseClose, PhaseCount, strings.Join(downNames, ", "), strings.Join(down, "; "))
			return
		}
		rep.Error = fmt.Sprintf("switchover %s: %s serves; phases %d–%d skipped until the source can be reached (%s): its weight is never raised again, it becomes Standby when it is back. CronJobs stay suspended on %s until then: it may still be running them (a partition); once you know it is down for good, tandem reconcile --source-lost %s resumes them",
			p.Title(), strings.Join(p.To, ", "), PhaseClose, PhaseCount, strings.Join(down, "; "), strings.Join(p.To, ", "), strings.Join(downNames, ","))
		return
	}
	rep.Completed = true
	return
}

// lockSwitchover takes a cluster's lock for the whole switchover and reads
// its state record under it.
func (r *run) lockSwitchover(ctx context.Context, x *swCluster) error {
	lease, err := x.t.Lock(ctx, clusters.LockOptions{Holder: r.opts.Holder, Wait: r.opts.LockTimeout, Duration: r.opts.LockDuration})
	if err != nil {
		return err
	}
	cctx, cancel := context.WithCancelCause(ctx)
	done := make(chan struct{})
	go func() {
		select {
		case <-lease.Lost():
			cancel(errLockLost)
		case <-done:
		}
	}()
	x.ctx, x.lock = cctx, lease
	x.stop = func() {
		close(done)
		cancel(nil)
		uctx, ucancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer ucancel()
		if err := lease.Unlock(uctx); err != nil {
			r.opts.Logger.Warn("unlock failed", "cluster", x.c.Name, "error", err)
		}
	}
	prev, err := x.t.ReadState(cctx, r.m.ID)
	if err != nil {
		return fmt.Errorf("read state record: %w", err)
	}
	if prev != nil && prev.Cluster != "" && prev.Cluster != x.c.Name {
		return fmt.Errorf("this cluster's state record says it is manifest cluster %q; nothing written", prev.Cluster)
	}
	x.prev = prev
	return nil
}

// switchoverStep renders a phase step's releases with the cluster's
// capabilities and the phase's knobs, plans them against Helm storage (a
// release already at the phase's content is unchanged: every phase is
// idempotent) and applies them with the reconcile's own step machinery:
// real Helm revisions, health waits, rollback on failure.
func (r *run) switchoverStep(x *swCluster, p *SwitchoverPlan, ph Phase, st PhaseStep) ([]ReleaseReport, string) {
	ctx := x.ctx
	c := x.c
	c.Role = st.Role
	r.guardStep(ctx, x, p, c.Role, nil, true) // reconciler/guard.go
	if len(st.Releases) == 0 {
		return nil, ""
	}
	live, err := x.t.ListReleases(ctx, nil)
	if err != nil {
		return nil, fmt.Sprintf("cluster %s: list releases: %v", c.Name, err)
	}
	deployed := deployedFrom(live)
	if err := earlierRuns(ctx, x.t, deployed); err != nil {
		return nil, fmt.Sprintf("cluster %s: %v", c.Name, err)
	}
	caps, err := x.t.Capabilities(ctx)
	if err != nil {
		return nil, fmt.Sprintf("cluster %s: read capabilities: %v", c.Name, err)
	}
	exists := existing(deployed)
	var reqs []render.Request
	var specs []manifest.Release
	for _, pr := range st.Releases {
		rel, ok := r.m.Resolve(pr.key().String())
		if !ok {
			return nil, fmt.Sprintf("release %s: not in the manifest", pr.key())
		}
		req, err := renderRequest(r.m, x.c, rel)
		if err != nil {
			return nil, err.Error()
		}
		req.Overlay = phaseOverlay(r.m, p, x.c, rel, ph.Number)
		req.Capabilities, req.Lookup, req.Upgrade = caps, x.t.Lookup(req.Namespace), exists[pr.key()]
		reqs, specs = append(reqs, req), append(specs, rel)
	}
	results, err := r.opts.Renderer.RenderAll(ctx, reqs)
	if err != nil {
		return nil, fmt.Sprintf("cluster %s: render phase %d: %v", c.Name, ph.Number, err)
	}
	desired := make([]Desired, len(results))
	for i, res := range results {
		desired[i] = Desired{Spec: specs[i], Result: res}
	}
	popts := r.opts.Plan
	popts.NoPrune, popts.ManifestID = true, r.m.ID
	popts.Now, popts.LeaseDuration, popts.RunID = time.Now(), r.opts.LockDuration, r.opts.RunID
	popts.Healthy = healthyRevisions(x.prev)
	plan := Plan(c, desired, deployed, popts)
	plan.Prune = nil

	sub := &run{m: r.m, opts: r.opts, gates: &gates{byRelease: map[ReleaseKey]*gate{}}}
	sub.opts.DetectDrift, sub.opts.CorrectDrift = false, false
	cr := &clusterRun{t: x.t, c: c, log: r.opts.Logger.With("cluster", c.Name), uid: x.uid, prev: x.prev, caps: caps,
		lease: x.lock, snap: x.t.Snapshot()}
	out := sub.applyWaves(ctx, cr, plan)
	var bad []string
	for _, rr := range out {
		switch rr.Outcome {
		case OutcomeFailed:
			bad = append(bad, fmt.Sprintf("release %s/%s not healthy on %s: %s", rr.Namespace, rr.Name, c.Name, rr.Error))
		case OutcomeSkipped:
			bad = append(bad, fmt.Sprintf("release %s/%s not applied on %s (%s)", rr.Namespace, rr.Name, c.Name, rr.Error))
		}
	}
	x.digests(desired)
	if len(bad) == 0 {
		r.guardStep(ctx, x, p, c.Role, desired, false)
	}
	return out, strings.Join(bad, "; ")
}

// digests remembers what each release was rendered to in this phase.
func (x *swCluster) digests(desired []Desired) {
	if x.prev == nil {
		return
	}
	d := map[ReleaseKey]string{}
	for _, de := range desired {
		d[de.key()] = de.Result.Digest
	}
	for i := range x.prev.Releases {
		rs := &x.prev.Releases[i]
		if v, ok := d[ReleaseKey{rs.Namespace, rs.Name}]; ok {
			rs.Digest = v
		}
	}
}

// recordSwitchover writes the switchover's progress into the state record
// of every reachable involved cluster, with what the phase's steps did to
// their releases; the rest of each record is kept.
func (r *run) recordSwitchover(ctx context.Context, xs []*swCluster, sw clusters.SwitchoverState, steps []PhaseStepReport) error {
	sw.UpdatedAt = time.Now().UTC()
	var errs []string
	for _, x := range xs {
		if !x.ok() {
			continue
		}
		st := clusters.State{Cluster: x.c.Name, Role: string(inverse(x.c.Role)), ClusterUID: x.uid, ManifestID: manifestID(r.m.ID), AppliedAt: time.Now().UTC()}
		if x.prev != nil {
			st = *x.prev
			st.Releases = slices.Clone(x.prev.Releases)
			st.AppliedCommit = "" // a switchover's phase leaves the objects between two renders
			// The role before this switchover: a record left at an
			// earlier, completed switchover may still show the role
			// before that one.
			st.Role = string(inverse(x.c.Role))
		}
		for _, s := range steps {
			if s.Cluster != x.c.Name {
				continue
			}
			for _, rr := range s.Releases {
				rs := clusters.ReleaseState{Name: rr.Name, Namespace: rr.Namespace, Revision: rr.Revision, Outcome: string(rr.Outcome),
					Error: rr.Error, Duration: time.Duration(rr.Duration), Healthy: rr.Outcome == OutcomeOK && rr.RolledBackTo == 0}
				i := slices.IndexFunc(st.Releases, func(o clusters.ReleaseState) bool { return o.Name == rr.Name && o.Namespace == rr.Namespace })
				if i < 0 {
					st.Releases = append(st.Releases, rs)
					continue
				}
				rs.Digest = st.Releases[i].Digest
				st.Releases[i] = rs
			}
		}
		s := sw
		st.Switchover = &s
		if err := context.Cause(x.ctx); err != nil {
			errs = append(errs, fmt.Sprintf("cluster %s: %v", x.c.Name, err))
			continue
		}
		wctx, cancel := context.WithTimeout(x.ctx, 30*time.Second)
		err := x.t.WriteState(wctx, st)
		cancel()
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		x.prev = &st
	}
	if len(errs) > 0 {
		return fmt.Errorf("record the phase: %s", strings.Join(errs, "; "))
	}
	return nil
}

// inverse is the role a cluster had before a switchover gave it role.
func inverse(role manifest.Role) manifest.Role {
	if role == manifest.RoleActive {
		return manifest.RoleStandby
	}
	return manifest.RoleActive
}

// Switchover runs the switchover that the roles in git ask for, if any,
// and nothing else: the drill and tests use it; Reconcile runs it first
// whenever roles change, then the plain reconcile. It returns nil when no
// cluster's role in effect differs from git.
func Switchover(ctx context.Context, m *manifest.Manifest, connect Connector, opts Options) *SwitchoverReport {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = 1
	}
	r := &run{m: m, opts: opts, gates: &gates{byRelease: map[ReleaseKey]*gate{}}}
	conns := connectAll(ctx, m.Clusters, connect)
	roles, _ := inEffectRoles(ctx, m, m.Clusters, conns)
	p := PlanSwitchover(m, roles)
	if p == nil {
		return nil
	}
	return r.runSwitchover(ctx, p, m.Clusters, conns)
}
