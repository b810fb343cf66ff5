package reconciler

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/tandem-gitops/tandem/clusters"
	"github.com/tandem-gitops/tandem/manifest"
)

// DrillReport is what a drill did, as data: the switchover there and back
// with each phase's time, the invariant checks, and whether it passed.
// Its JSON is `tandem drill -o json`'s schema.
type DrillReport struct {
	Commit string   `json:"commit"`
	From   []string `json:"from"` // Active in git, Standby during the drill
	To     []string `json:"to"`   // Standby in git, Active during the drill
	// There is the switchover to the Standby, Back the one back to the
	// roles in git; Return, after a failure There, the way back to them.
	There  *SwitchoverReport `json:"there,omitempty"`
	Back   *SwitchoverReport `json:"back,omitempty"`
	Return *SwitchoverReport `json:"return,omitempty"`
	// ServingAfter is how long after the start the target served with full weight.
	ServingAfter Duration `json:"servingAfter,omitempty"`
	// Checks counts the invariant checks made on the live objects between
	// phases; Violations lists the ones that failed.
	Checks     int      `json:"invariantChecks"`
	Violations []string `json:"violations,omitempty"`
	Passed     bool     `json:"passed"`
	Error      string   `json:"error,omitempty"`
	// RolesInGit says the clusters are back at the roles in git (false when
	// a failure left a switchover for the next reconcile to finish).
	RolesInGit bool      `json:"rolesInGit"`
	Started    time.Time `json:"started"`
	Duration   Duration  `json:"duration"`
}

// Drill rehearses a switchover: from the same commit, it switches the
// clusters in to over to Active and back, holding every involved cluster's
// lock from the first phase to the last (a daemon waits), checking the
// invariants on the live objects after each phase. On any failure it
// returns the clusters to the roles in git. tandem.yaml is not touched:
// the roles are overridden in memory. It refuses to start while the roles
// in effect differ from git or a switchover is under way.
func Drill(ctx context.Context, m *manifest.Manifest, connect Connector, to []string, opts Options) *DrillReport {
	start := time.Now()
	rep := &DrillReport{Commit: opts.Commit, Started: start.UTC(), To: slices.Clone(to)}
	defer func() { rep.Duration = Duration(time.Since(start)) }()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = 1
	}
	if opts.Renderer == nil {
		rep.Error = "a drill renders each phase with the cluster: no renderer given"
		return rep
	}
	there, err := withRoles(m, to)
	if err != nil {
		rep.Error = err.Error()
		return rep
	}
	pThere := PlanSwitchover(there, GitRoles(m))
	if pThere == nil {
		rep.Error = fmt.Sprintf("nothing to drill: %s already Active in %s", strings.Join(to, ", "), manifest.FileName)
		return rep
	}
	rep.From = pThere.From
	if len(pThere.Blocked) > 0 {
		rep.Error = "the switchover " + pThere.Title() + " cannot run: " + strings.Join(pThere.Blocked, "; ")
		return rep
	}
	conns := connectAll(ctx, m.Clusters, connect)
	r := &run{m: m, opts: opts, gates: &gates{byRelease: map[ReleaseKey]*gate{}}}
	var xs []*swCluster
	for i, c := range m.Clusters {
		if !slices.Contains(pThere.Involved(), c.Name) {
			continue
		}
		if conns[i].err != nil {
			rep.Error = fmt.Sprintf("a drill needs every cluster it involves: %v", conns[i].err)
			return rep
		}
		xs = append(xs, &swCluster{c: c, t: conns[i].t, uid: conns[i].uid, ctx: ctx})
	}
	var wg sync.WaitGroup
	for _, x := range xs {
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
	var interrupted *clusters.SwitchoverState // an earlier drill's way there, killed
	for _, x := range xs {
		sw := underWay(x.prev)
		switch {
		case !x.ok():
			rep.Error = fmt.Sprintf("cluster %s: %v; nothing changed", x.c.Name, x.err)
		case roleInEffect(x.c.Name, x.prev) != x.c.Role:
			rep.Error = fmt.Sprintf("cluster %s: the role in effect is not %s's role in git (%s): reconcile first; nothing changed", x.c.Name, manifest.FileName, x.c.Role)
		case sw != nil && sw.Drill && slices.Equal(sw.From, pThere.From) && slices.Equal(sw.To, pThere.To):
			if interrupted == nil || sw.Phase > interrupted.Phase {
				interrupted = sw
			}
		case sw != nil:
			rep.Error = fmt.Sprintf("cluster %s: a switchover is under way (%s → %s, phase %d): reconcile to finish it first; nothing changed",
				x.c.Name, strings.Join(x.prev.Switchover.From, ","), strings.Join(x.prev.Switchover.To, ","), x.prev.Switchover.Phase)
		}
		if rep.Error != "" {
			return rep
		}
	}
	check := func(leg string) func(int) {
		return func(phase int) {
			n, bad := checkInvariants(ctx, m, xs)
			rep.Checks += n
			for _, b := range bad {
				at := fmt.Sprintf("%s, after phase %d (%s)", leg, phase, PhaseName(phase))
				if phase == 0 {
					at = "before the drill"
				}
				rep.Violations = append(rep.Violations, at+": "+b)
			}
		}
	}
	check("before")(0)
	leg := func(name string, target *manifest.Manifest, p *SwitchoverPlan, first int) *SwitchoverReport {
		sr := &SwitchoverReport{From: p.From, To: p.To, Commit: opts.Commit, Started: time.Now().UTC()}
		if first > 1 {
			sr.ResumedAt = first
		}
		lr := &run{m: target, opts: opts, gates: &gates{byRelease: map[ReleaseKey]*gate{}}, drill: true}
		for _, x := range xs {
			x.c, _ = target.Cluster(x.c.Name)
		}
		r.emit(Event{Phase: "switchover", Message: fmt.Sprintf("drill %s: switchover %s", name, p.Title())})
		legStart := time.Now()
		lr.runPhases(ctx, p, xs, stayActive(target, p, m.Clusters, conns), first, sr, check(name))
		sr.Duration = Duration(time.Since(legStart))
		if sr.Completed {
			if err := r.settleRoles(ctx, xs); err != nil {
				sr.Completed, sr.Error = false, err.Error()
			}
		}
		return sr
	}
	pBack := PlanSwitchover(m, GitRoles(there))
	if interrupted != nil {
		// Killed on its way there: return to the roles in git as a failed
		// drill does (below), then stop: the next drill starts clean.
		way := pBack
		if interrupted.Phase < PhaseClose {
			way = standbyAgain(m, pBack)
		}
		rep.Return = leg("return", m, way, 1)
		rep.RolesInGit = rep.Return.Completed
		prior := fmt.Sprintf("an earlier drill %s was interrupted in phase %d (%s)", pThere.Title(), interrupted.Phase, interrupted.PhaseName)
		if rep.RolesInGit {
			rep.Error = prior + ": returned the clusters to the roles in git; run the drill again"
		} else {
			rep.Error = prior + "; the way back failed: " + failure(rep.Return) + "; " + rerun(xs, pThere)
		}
		return rep
	}
	rep.There = leg("there", there, pThere, 1)
	rep.ServingAfter = rep.There.Serving
	if rep.There.Completed {
		rep.Back = leg("back", m, pBack, 1)
		rep.RolesInGit = rep.Back.Completed
	} else {
		// Half way: return to the roles in git. Until phase 3 the source
		// served untouched, so the target only goes back to its Standby
		// render (weight 0, CronJobs suspended, scaled down) in one step.
		// From phase 3 on the target serves and the source may be closed,
		// so the way back is the whole switchover back, from warming the
		// source (which suspends its CronJobs first).
		if lastPhase(rep.There) < PhaseClose {
			rep.Return = leg("return", m, standbyAgain(m, pBack), 1)
		} else {
			rep.Return = leg("return", m, pBack, 1)
		}
		rep.RolesInGit = rep.Return.Completed
	}
	switch {
	case !rep.There.Completed:
		rep.Error = "drill failed on the way there: " + failure(rep.There)
	case !rep.Back.Completed:
		rep.Error = "drill failed on the way back: " + failure(rep.Back)
	case len(rep.Violations) > 0:
		rep.Error = fmt.Sprintf("%d invariant violations", len(rep.Violations))
	default:
		rep.Passed = true
	}
	if rep.RolesInGit && rep.Return != nil {
		rep.Error += "; the clusters are back at the roles in git"
	}
	if !rep.RolesInGit {
		rep.Error += "; " + rerun(xs, pThere)
	}
	return rep
}

// rerun says what returns the clusters to the roles in git after a drill
// that could not: the records show either the drill's way there (a
// reconcile refuses that; the next drill returns them first) or a way
// back (the next reconcile finishes it, as git asks).
func rerun(xs []*swCluster, there *SwitchoverPlan) string {
	for _, x := range xs {
		if sw := underWay(x.prev); sw != nil && slices.Equal(sw.From, there.From) && slices.Equal(sw.To, there.To) {
			return fmt.Sprintf("the clusters are not back at the roles in git: run tandem drill --to %s again, which returns them first (a reconcile refuses until then)", strings.Join(there.To, ","))
		}
	}
	return "the clusters are not back at the roles in git: the next reconcile (or tandem serve's next run) finishes the way back their state records show"
}

// withRoles is m with the clusters in to Active and every other Active
// cluster Standby, in memory.
func withRoles(m *manifest.Manifest, to []string) (*manifest.Manifest, error) {
	if len(to) == 0 {
		return nil, fmt.Errorf("name the cluster(s) to make Active")
	}
	for _, name := range to {
		if _, ok := m.Cluster(name); !ok {
			return nil, fmt.Errorf("no cluster %q in %s", name, manifest.FileName)
		}
	}
	out := *m
	out.Clusters = slices.Clone(m.Clusters)
	for i := range out.Clusters {
		c := &out.Clusters[i]
		if slices.Contains(to, c.Name) {
			c.Role = manifest.RoleActive
		} else if c.Role == manifest.RoleActive {
			c.Role = manifest.RoleStandby
		}
	}
	return &out, nil
}

// standbyAgain is the way back from a switchover that never closed its
// source: p (that way back) reduced to its last phase on its sources (the
// drill's targets), with every release, so each gets its plain Standby
// render at once. The phases in between would resume the target's
// CronJobs while the source's run.
func standbyAgain(m *manifest.Manifest, p *SwitchoverPlan) *SwitchoverPlan {
	out := *p
	ph := Phase{Number: PhaseCool, Name: PhaseName(PhaseCool)}
	for _, name := range p.From {
		st := PhaseStep{Cluster: name, Role: manifest.RoleStandby}
		for _, rel := range m.ReleasesFor(name) {
			st.Releases = append(st.Releases, PhaseRelease{Name: rel.Name, Namespace: rel.Namespace})
		}
		ph.Steps = append(ph.Steps, st)
	}
	out.Phases = []Phase{ph}
	return &out
}

// lastPhase is the furthest phase a switchover report started.
func lastPhase(sr *SwitchoverReport) int {
	n := 0
	for _, ph := range sr.Phases {
		n = max(n, ph.Number)
	}
	return n
}

func failure(sr *SwitchoverReport) string { return sr.Failure() }

// settleRoles records a completed switchover: every involved cluster's
// role in effect becomes its role in the leg's manifest, and the
// switchover is no longer under way. (A reconcile does this with its plain
// run after the switchover; a drill has nothing else to apply: after
// phase 5 every object is at its new role's plain render.)
func (r *run) settleRoles(ctx context.Context, xs []*swCluster) error {
	var errs []string
	settled := Roles{}
	for _, x := range xs {
		settled[x.c.Name] = x.c.Role
	}
	for _, x := range xs {
		if x.prev == nil {
			continue
		}
		st := *x.prev
		st.Role, st.Switchover, st.AppliedAt = string(x.c.Role), nil, time.Now().UTC()
		st.AppliedCommit = "" // the roles in effect are not the ones in git
		st.Peers = peersAfter(x.prev, settled)
		wctx, cancel := context.WithTimeout(x.ctx, 30*time.Second)
		err := x.t.WriteState(wctx, st)
		cancel()
		if err != nil {
			errs = append(errs, fmt.Sprintf("cluster %s: record the role: %v", x.c.Name, err))
			continue
		}
		x.prev = &st
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

// checkInvariants reads what every involved cluster serves and checks
// the switchover's invariants across them: for every hostname some weight
// is up; a cluster whose weight is up for a hostname has the release
// behind it available; no CronJob runs unsuspended on two clusters. It
// returns the number of checks made and the violations. A cluster whose
// objects cannot be read is a violation: the drill cannot vouch for it.
func checkInvariants(ctx context.Context, m *manifest.Manifest, xs []*swCluster) (int, []string) {
	live := map[string]*clusters.Serving{}
	var bad []string
	for _, x := range xs {
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		s, err := readServing(rctx, m, x.t)
		cancel()
		if err != nil {
			bad = append(bad, fmt.Sprintf("cannot read %s's live objects: %v", x.c.Name, err))
			continue
		}
		live[x.c.Name] = s
	}
	checks := 0
	total := map[string]int{}
	for name, s := range live {
		for _, rec := range s.Records {
			total[rec.Hostname] += rec.Weight
			if rec.Weight > 0 {
				checks++
				if !s.Available(rec.Release) {
					bad = append(bad, fmt.Sprintf("%s: %s has weight %d but release %s is not available", name, rec.Hostname, rec.Weight, rec.Release))
				}
			}
		}
	}
	for host, w := range total {
		checks++
		if w == 0 {
			bad = append(bad, fmt.Sprintf("%s: every weight is 0", host))
		}
	}
	on := map[string][]string{}
	for name, s := range live {
		for _, cj := range s.CronJobs {
			checks++
			if !cj.Suspended {
				on[cj.Object] = append(on[cj.Object], name)
			}
		}
	}
	for cj, names := range on {
		if len(names) > 1 {
			sort.Strings(names)
			bad = append(bad, fmt.Sprintf("%s unsuspended on %s", cj, strings.Join(names, " and ")))
		}
	}
	sort.Strings(bad)
	return checks, bad
}
