package reconciler

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/tandem-gitops/tandem/manifest"
	"github.com/tandem-gitops/tandem/render"
)

// The five phases of a switchover, in order.
const (
	PhaseWarm       = 1 // the target's scale-to-zero releases get their replicas; weight 0, CronJobs suspended
	PhaseOpen       = 2 // the target's DNS weight rises: both clusters serve
	PhaseClose      = 3 // the source's DNS weight goes to 0, then the drain wait
	PhaseSingletons = 4 // the source's CronJobs are suspended, then the target's resumed
	PhaseCool       = 5 // the source's scale-to-zero releases go to zero
	PhaseCount      = 5
)

var phaseNames = [PhaseCount + 1]string{"", "warm", "open", "close", "singletons", "cool"}

// PhaseName is the short name of a phase (1..5).
func PhaseName(p int) string {
	if p < 1 || p > PhaseCount {
		return ""
	}
	return phaseNames[p]
}

// SwitchoverPlan is a switchover decided from data: which clusters change
// role, and per phase which releases get which overlay knobs on which
// cluster. The same plan drives `tandem switchover --plan` and the
// execution, so the runbook cannot drift from what runs.
type SwitchoverPlan struct {
	// From are the clusters going from Active to Standby (the sources), To
	// those going from Standby to Active (the targets), in manifest order.
	From []string `json:"from"`
	To   []string `json:"to"`
	// ActiveWeight is the DNS weight the targets get; DrainSeconds the wait after closing the sources.
	ActiveWeight int `json:"activeWeight"`
	DrainSeconds int `json:"drainSeconds"`
	// Blocked lists why the switchover must not run; it is empty when it may.
	Blocked []string `json:"blocked,omitempty"`
	// Warnings are what the manifest allows but makes risky here
	// (dns.drainSeconds: 0), naming the file and field.
	Warnings []string `json:"warnings,omitempty"`
	// Lost are sources declared lost (tandem reconcile --source-lost):
	// from phase 3 on their CronJobs are suspended at once, since the
	// targets' already run.
	Lost   []string `json:"sourceLost,omitempty"`
	Phases []Phase  `json:"phases"`
	// lostFrom is the phase from which a lost source's CronJobs are
	// suspended (0: PhaseClose); suspendLost renders phase 2 with it.
	lostFrom int
}

// Phase is one phase of a switchover.
type Phase struct {
	Number int    `json:"number"`
	Name   string `json:"name"`
	// Steps run in order (phase 4: the sources' CronJobs are suspended
	// before the targets' are resumed); each waits for health.
	Steps []PhaseStep `json:"steps"`
	// DrainSeconds is the wait after the steps (phase 3).
	DrainSeconds int `json:"drainSeconds,omitempty"`
}

// PhaseStep is what a phase does on one cluster.
type PhaseStep struct {
	Cluster string `json:"cluster"`
	// Role is the role label the objects carry after the step: a cluster
	// counts as Active while its DNS weight is up.
	Role     manifest.Role  `json:"role"`
	Releases []PhaseRelease `json:"releases"`
}

// PhaseRelease is one release a phase step renders with new knobs.
type PhaseRelease struct {
	Name      string       `json:"name"`
	Namespace string       `json:"namespace"`
	Knobs     render.Knobs `json:"knobs"`
	// Changes are the objects' fields the step changes, computed by
	// rendering the release before and after (FillChanges); empty when
	// the release renders the same (it is then left alone).
	Changes []FieldChange `json:"changes,omitempty"`
}

func (r PhaseRelease) key() ReleaseKey { return ReleaseKey{r.Namespace, r.Name} }

// FieldChange is one field of one object a phase changes.
type FieldChange struct {
	Object string `json:"object"` // "Kind namespace/name"
	Field  string `json:"field"`  // a dotted path, e.g. spec.replicas
	From   string `json:"from"`   // "" when absent
	To     string `json:"to"`
}

// Roles are the roles of a manifest's clusters, by name.
type Roles map[string]manifest.Role

// GitRoles are the roles tandem.yaml gives.
func GitRoles(m *manifest.Manifest) Roles {
	out := Roles{}
	for _, c := range m.Clusters {
		out[c.Name] = c.Role
	}
	return out
}

// knobsAt are a release's knobs on a cluster after phase p (0: before the
// switchover). A target goes from plain Standby to plain Active, a source
// the other way; every phase in between is an overlay.
func knobsAt(source bool, scaleToZero bool, weight, p int) (render.Knobs, manifest.Role) {
	if source {
		k := render.Knobs{Weight: weight}
		role := manifest.RoleActive
		if p >= PhaseClose {
			k.Weight, role = 0, manifest.RoleStandby
		}
		if p >= PhaseSingletons {
			k.SuspendCronJobs = true // standby: keep too: a Standby runs no CronJob
		}
		if p >= PhaseCool {
			k.ScaleDown = scaleToZero
		}
		return k, role
	}
	k := render.Knobs{ScaleDown: scaleToZero, SuspendCronJobs: true}
	role := manifest.RoleStandby
	if p >= PhaseWarm {
		k.ScaleDown = false
	}
	if p >= PhaseOpen {
		k.Weight, role = weight, manifest.RoleActive
	}
	if p >= PhaseSingletons {
		k.SuspendCronJobs = false
	}
	return k, role
}

// PlanSwitchover decides the switchover from the roles in effect (what
// the clusters' state records say) to the roles in git. It returns nil
// when no cluster changes role. A cluster missing from inEffect (never
// reconciled) takes its git role. Pure: it reads no cluster and renders
// nothing; FillChanges adds the fields each phase changes.
func PlanSwitchover(m *manifest.Manifest, inEffect Roles) *SwitchoverPlan {
	return planSwitchover(m, inEffect, nil)
}

// planSwitchover is PlanSwitchover with the sources declared lost.
func planSwitchover(m *manifest.Manifest, inEffect Roles, lost []string) *SwitchoverPlan {
	p := &SwitchoverPlan{ActiveWeight: m.DNS.ActiveWeight, DrainSeconds: int(m.DNS.Drain().Seconds())}
	for _, c := range m.Clusters {
		was, ok := inEffect[c.Name]
		if !ok || was == c.Role {
			continue
		}
		if c.Role == manifest.RoleStandby {
			p.From = append(p.From, c.Name)
		} else {
			p.To = append(p.To, c.Name)
		}
	}
	if len(p.From) == 0 && len(p.To) == 0 {
		return nil
	}
	for _, name := range lost {
		if slices.Contains(p.From, name) {
			p.Lost = append(p.Lost, name)
		}
	}
	p.Blocked = switchoverBlockers(m, p.From)
	p.Warnings = m.Warnings()
	for n := 1; n <= PhaseCount; n++ {
		ph := Phase{Number: n, Name: PhaseName(n)}
		if n == PhaseClose {
			ph.DrainSeconds = p.DrainSeconds
		}
		var order []string // which clusters this phase touches, in order
		switch n {
		case PhaseWarm, PhaseOpen:
			order = p.To
		case PhaseClose, PhaseCool:
			order = p.From
		case PhaseSingletons:
			order = append(slices.Clone(p.From), p.To...)
		}
		for _, name := range order {
			step := PhaseStep{Cluster: name}
			for _, rel := range m.ReleasesFor(name) {
				stz := rel.Standby != manifest.StandbyKeep
				before, _ := p.knobs(name, stz, n-1)
				after, role := p.knobs(name, stz, n)
				step.Role = role
				if before == after {
					continue // e.g. standby: keep in phases 1 and 5
				}
				step.Releases = append(step.Releases, PhaseRelease{Name: rel.Name, Namespace: rel.Namespace, Knobs: after})
			}
			if step.Role == "" {
				_, step.Role = p.knobs(name, true, n)
			}
			ph.Steps = append(ph.Steps, step)
		}
		p.Phases = append(p.Phases, ph)
	}
	return p
}

// switchoverBlockers are reasons the switchover must not run: a release a
// source runs that no cluster Active after the switchover runs would have
// its DNS names at weight 0 everywhere and its workloads nowhere.
func switchoverBlockers(m *manifest.Manifest, from []string) []string {
	var out []string
	seen := map[ReleaseKey]bool{}
	for _, src := range from {
		for _, rel := range m.ReleasesFor(src) {
			k := keyOfRelease(rel)
			if seen[k] {
				continue
			}
			seen[k] = true
			served := false
			for _, c := range m.Clusters {
				if c.Role == manifest.RoleActive && enabled(m, c, rel) {
					served = true
				}
			}
			if !served {
				out = append(out, fmt.Sprintf("release %s runs on %s, which becomes standby, and on no cluster that becomes active (staged enablement: add it to their releases: list first); its DNS names would have weight 0 everywhere and its workloads would run nowhere", k, src))
			}
		}
	}
	sort.Strings(out)
	return out
}

// phaseOverlay is the overlay of a release on a cluster at phase p.
func phaseOverlay(m *manifest.Manifest, p *SwitchoverPlan, c manifest.Cluster, rel manifest.Release, n int) render.Overlay {
	o := OverlayFor(m, c, rel)
	k, role := p.knobs(c.Name, rel.Standby != manifest.StandbyKeep, n)
	o.Knobs, o.Role = &k, render.Role(role)
	return o
}

// knobs are a release's knobs on cluster name after phase n, as knobsAt,
// except for a source declared lost: the targets' CronJobs resumed while
// it was away, so once it is back its CronJobs are suspended in phase 3,
// with its weight going to 0, not after the drain.
func (p *SwitchoverPlan) knobs(name string, scaleToZero bool, n int) (render.Knobs, manifest.Role) {
	source := slices.Contains(p.From, name)
	k, role := knobsAt(source, scaleToZero, p.ActiveWeight, n)
	from := PhaseClose
	if p.lostFrom > 0 {
		from = p.lostFrom
	}
	if source && n >= from && slices.Contains(p.Lost, name) {
		k.SuspendCronJobs = true
	}
	return k, role
}

// Involved are the clusters the switchover changes, sources first.
func (p *SwitchoverPlan) Involved() []string { return append(slices.Clone(p.From), p.To...) }

// Title is "blue → green".
func (p *SwitchoverPlan) Title() string {
	from, to := strings.Join(p.From, ", "), strings.Join(p.To, ", ")
	if from == "" {
		from = "-"
	}
	if to == "" {
		to = "-"
	}
	return from + " → " + to
}
