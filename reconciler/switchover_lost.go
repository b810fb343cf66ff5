package reconciler

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tandem-gitops/tandem/clusters"
	"github.com/tandem-gitops/tandem/manifest"
	"github.com/tandem-gitops/tandem/render"
)

// While a switchover's source cannot be reached (the disaster case), the
// targets serve after phase 2 and phases 3–5 wait for the source. The
// source may still be alive behind a partition, running its CronJobs, so
// the targets' stay suspended until a person declares the source lost
// (tandem reconcile --source-lost): then they resume, and the declaration
// is kept in the targets' state records until the switchover completes.
// Meanwhile later commits are applied to every cluster tandem reaches: the
// targets held at the knobs the switchover left them at.

// declareLost checks the run's --source-lost names against p: each must
// be a source this run could not reach. It returns why not ("" when fine).
func (r *run) declareLost(p *SwitchoverPlan, byName map[string]*swCluster) string {
	for _, name := range r.opts.SourceLost {
		x := byName[name]
		if x == nil || !slices.Contains(p.From, name) {
			return fmt.Sprintf("--source-lost %s: not a cluster this switchover takes from Active to Standby", name)
		}
		if x.ok() {
			return fmt.Sprintf("--source-lost %s: tandem reaches %s and holds its lock, so the switchover runs its phases there: run again without --source-lost", name, name)
		}
		if x.lock != nil {
			// Its API server answers (the lock was taken) but its record
			// could not be read: it may be serving and running its CronJobs.
			return fmt.Sprintf("--source-lost %s: tandem reaches %s and holds its lock, but %v: fix that (or wait for its API server), then run again without --source-lost", name, name, x.err)
		}
	}
	return ""
}

// lostSources are p's sources declared lost: by this run, or in the state
// record of a cluster in the middle of p.
func lostSources(p *SwitchoverPlan, states map[string]*clusters.State, declared []string) []string {
	var out []string
	add := func(name string) {
		if slices.Contains(p.From, name) && !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	for _, name := range declared {
		add(name)
	}
	for _, st := range states {
		sw := underWay(st)
		if sw == nil || !slices.Equal(sw.From, p.From) || !slices.Equal(sw.To, p.To) {
			continue
		}
		for _, l := range sw.SourceLost {
			add(l.Cluster)
		}
	}
	slices.Sort(out)
	return out
}

// withLost is p planned again with the sources in lost declared lost (p
// itself when there are none).
func (p *SwitchoverPlan) withLost(m *manifest.Manifest, lost []string) *SwitchoverPlan {
	if len(lost) == 0 {
		return p
	}
	before := Roles{}
	for _, name := range p.From {
		before[name] = manifest.RoleActive
	}
	for _, name := range p.To {
		before[name] = manifest.RoleStandby
	}
	return planSwitchover(m, before, lost)
}

// anyDown says whether a cluster of names cannot be used in this run.
func anyDown(names []string, byName map[string]*swCluster) bool {
	for _, name := range names {
		if x := byName[name]; x == nil || !x.ok() {
			return true
		}
	}
	return false
}

// lostText is "blue (declared by ci@runner-7 at 2026-12-01T07:10:00Z)".
func lostText(ls []clusters.LostSource) string {
	var parts []string
	for _, l := range ls {
		parts = append(parts, fmt.Sprintf("%s (declared by %s at %s)", l.Cluster, l.By, l.At.Format(time.RFC3339)))
	}
	return strings.Join(parts, ", ")
}

// singletonsWithoutSources runs phase 4 on the targets only, every source
// that cannot be reached being declared lost: the declaration is recorded
// before any CronJob resumes. The phase's record stays at phase 2 done, so
// once a source is back its phases 3–5 run. It reports false when the run
// must stop (rep filled).
func (r *run) singletonsWithoutSources(ctx context.Context, p *SwitchoverPlan, ph Phase, byName map[string]*swCluster, xs []*swCluster, sw clusters.SwitchoverState, pr *PhaseReport, rep *SwitchoverReport) bool {
	stop := func(msg string) bool {
		rep.Phases = append(rep.Phases, *pr)
		rep.Error = msg
		return false
	}
	if err := r.recordSwitchover(ctx, xs, sw, nil); err != nil {
		return stop(fmt.Sprintf("switchover %s: record the sources declared lost: %v; no CronJob resumed", p.Title(), err))
	}
	r.emit(Event{Phase: "switchover", Message: fmt.Sprintf("phase %d %s: on %s only, %s", ph.Number, ph.Name, strings.Join(p.To, ", "), lostText(sw.SourceLost))})
	for _, st := range ph.Steps {
		if slices.Contains(p.From, st.Cluster) {
			pr.Steps = append(pr.Steps, PhaseStepReport{Cluster: st.Cluster, Skipped: "declared lost: its CronJobs are suspended once it can be reached"})
			continue
		}
		sr := PhaseStepReport{Cluster: st.Cluster}
		sr.Releases, sr.Error = r.switchoverStep(byName[st.Cluster], p, ph, st)
		pr.Steps = append(pr.Steps, sr)
		if sr.Error != "" {
			msg := fmt.Sprintf("switchover %s stopped in phase %d (%s): %s", p.Title(), ph.Number, ph.Name, sr.Error)
			sw.Blocked = msg
			_ = r.recordSwitchover(ctx, xs, sw, pr.Steps)
			rep.Blocked = msg
			rep.Phases = append(rep.Phases, *pr)
			return false
		}
	}
	if err := r.recordSwitchover(ctx, xs, sw, pr.Steps); err != nil {
		return stop(fmt.Sprintf("switchover %s: phase %d %s: %v", p.Title(), ph.Number, ph.Name, err))
	}
	return true
}

// heldSwitchover is a switchover waiting for its sources, as the plain
// reconcile after it sees it.
type heldSwitchover struct {
	plan *SwitchoverPlan // with the sources declared lost
	// phase is the phase whose knobs the targets keep: 2 (CronJobs
	// suspended), or 4 when every source waited for is declared lost.
	phase int
}

// hold prepares the plain reconcile that follows a switchover waiting for
// its sources: the sources are left out (unreachable; one that answers
// again meanwhile waits for the next run's switchover, which closes it in
// order), the targets are rendered at the knobs the switchover left them
// at, and a source declared lost no longer holds back standby-first
// releases. The targets' records keep the switchover (keepSwitchover).
func (r *run) hold(p *SwitchoverPlan, sw *SwitchoverReport, selected []manifest.Cluster, conns []conn) {
	var lost []string
	for _, l := range sw.SourceLost {
		lost = append(lost, l.Cluster)
	}
	h := &heldSwitchover{plan: p.withLost(r.m, lost), phase: PhaseOpen}
	if !slices.ContainsFunc(sw.WaitingFor, func(name string) bool { return !slices.Contains(lost, name) }) {
		h.phase = PhaseSingletons
	}
	r.held = h
	for i, c := range selected {
		if !slices.Contains(p.From, c.Name) {
			continue
		}
		why := "not reconciled: " + sw.Error
		if conns[i].err != nil {
			conns[i].err = fmt.Errorf("%w; %s", conns[i].err, why)
		} else {
			conns[i].err = fmt.Errorf("%s", why)
		}
	}
	for _, name := range lost {
		r.gates.excuse(name)
	}
	r.opts.Renderer = heldRenderer{Renderer: r.opts.Renderer, m: r.m, held: h}
}

// keepSwitchover keeps, in a target's record written by the plain
// reconcile after a switchover waiting for its sources, the switchover
// and the role before it: the next run resumes the switchover from them.
func (r *run) keepSwitchover(st, prev *clusters.State) {
	if r.held == nil || prev == nil || underWay(prev) == nil || !slices.Contains(r.held.plan.Involved(), st.Cluster) {
		return
	}
	st.Role, st.Switchover = prev.Role, prev.Switchover
}

// heldRenderer renders the targets of a held switchover at its knobs, and
// everything else as asked.
type heldRenderer struct {
	Renderer
	m    *manifest.Manifest
	held *heldSwitchover
}

func (h heldRenderer) RenderAll(ctx context.Context, reqs []render.Request) ([]*render.Result, error) {
	out := slices.Clone(reqs)
	for i := range out {
		if !slices.Contains(h.held.plan.To, out[i].Cluster) {
			continue
		}
		rel, ok := h.m.Resolve(ReleaseKey{out[i].Namespace, out[i].Release}.String())
		if !ok {
			continue
		}
		k, role := h.held.plan.knobs(out[i].Cluster, rel.Standby != manifest.StandbyKeep, h.held.phase)
		out[i].Overlay.Knobs, out[i].Overlay.Role = &k, render.Role(role)
	}
	return h.Renderer.RenderAll(ctx, out)
}

// suspendLost suspends, keeping their weight, the CronJobs of the sources
// declared lost that this run reaches, when the switchover stops before
// closing them (phase 3 refused: a target not ready or not serving): the
// targets' CronJobs already run, and the declaration's window (CronJobs on
// both) must end once tandem reaches the source, not once the targets are
// healthy again. It returns what failed ("" when nothing did).
func (r *run) suspendLost(p *SwitchoverPlan, byName map[string]*swCluster) string {
	q := *p
	q.lostFrom = PhaseOpen
	var bad []string
	for _, name := range p.Lost {
		x := byName[name]
		if x == nil || !x.ok() {
			continue
		}
		st := PhaseStep{Cluster: name}
		for _, rel := range r.m.ReleasesFor(name) {
			k, role := q.knobs(name, rel.Standby != manifest.StandbyKeep, PhaseOpen)
			st.Role = role
			st.Releases = append(st.Releases, PhaseRelease{Name: rel.Name, Namespace: rel.Namespace, Knobs: k})
		}
		if _, e := r.switchoverStep(x, &q, Phase{Number: PhaseOpen, Name: PhaseName(PhaseOpen)}, st); e != "" {
			bad = append(bad, e)
		}
	}
	return strings.Join(bad, "; ")
}
