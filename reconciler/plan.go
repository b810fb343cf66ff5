package reconciler

import (
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/tandem-gitops/tandem/manifest"
	"github.com/tandem-gitops/tandem/render"
)

// Helm release labels tandem stores on every release it owns.
const (
	LabelManagedBy = "tandem.dev/managed-by"
	ManagedByValue = "tandem"
	LabelDigest    = "tandem.dev/digest"
	LabelCommit    = "tandem.dev/commit"
)

// Action is what a plan does with one release on one cluster.
type Action string

const (
	ActionInstall   Action = "install"
	ActionUpgrade   Action = "upgrade"
	ActionUnchanged Action = "unchanged"
	ActionPrune     Action = "prune"
)

// Deployed is what the plan needs to know of a release in a cluster's Helm storage.
type Deployed struct {
	Name, Namespace string
	Revision        int
	Status          string
	Labels          map[string]string
}

func (d Deployed) key() string   { return d.Namespace + "/" + d.Name }
func (d Deployed) owned() bool   { return d.Labels[LabelManagedBy] == ManagedByValue }
func (d Deployed) pending() bool { return strings.HasPrefix(d.Status, "pending-") }

// Desired is one release a cluster should run.
type Desired struct {
	Spec   manifest.Release
	Result *render.Result
}

func (d Desired) key() string { return d.Spec.Namespace + "/" + d.Spec.Name }

// Step is one release's planned change on one cluster.
type Step struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	Action    Action `json:"action"`
	Wave      int    `json:"wave"`
	// FromRevision is the revision in the cluster before the change (0 for installs).
	FromRevision int `json:"fromRevision,omitempty"`
	// Recover is the stuck status (pending-*) that is cleared before upgrading.
	Recover string `json:"recover,omitempty"`
	// Adopt is true when a release tandem does not own yet is taken over.
	Adopt bool `json:"adopt,omitempty"`
	// Reason says why, in a few words (e.g. "content changed", "last attempt failed").
	Reason string `json:"reason,omitempty"`
	// Error, when set, is why this step cannot run at all (e.g. an unowned release of the same name).
	Error string `json:"error,omitempty"`

	desired *Desired // nil for prunes
}

// ClusterPlan is everything one cluster needs, decided from data only.
type ClusterPlan struct {
	Cluster string        `json:"cluster"`
	Role    manifest.Role `json:"role"`
	Steps   []Step        `json:"steps"`
	Prune   []Step        `json:"prune,omitempty"`
	// PruneBlocked, when set, says why the planned prunes will not run.
	PruneBlocked string `json:"pruneBlocked,omitempty"`
}

// PlanOptions are the policy knobs of Plan.
type PlanOptions struct {
	// MaxPrune is the largest share (0..1) of a cluster's tandem-owned releases one run may uninstall.
	MaxPrune float64
	// AllowMassPrune lifts MaxPrune.
	AllowMassPrune bool
	// NoPrune disables pruning: a run restricted to some releases plans no prune of the others.
	NoPrune bool
}

// DefaultPlanOptions returns the CLI defaults.
func DefaultPlanOptions() PlanOptions { return PlanOptions{MaxPrune: 0.25} }

// Plan decides, from data alone, what one cluster needs: which desired
// releases to install or upgrade, which are unchanged, which stuck releases to
// recover first, and which tandem-owned releases to prune. Steps are ordered by
// wave, then manifest order.
func Plan(cluster manifest.Cluster, desired []Desired, deployed []Deployed, opts PlanOptions) ClusterPlan {
	p := ClusterPlan{Cluster: cluster.Name, Role: cluster.Role}
	live := make(map[string]Deployed, len(deployed))
	for _, d := range deployed {
		live[d.key()] = d
	}
	want := make(map[string]bool, len(desired))
	for i := range desired {
		d := &desired[i]
		want[d.key()] = true
		s := Step{Name: d.Spec.Name, Namespace: d.Spec.Namespace, Wave: d.Spec.Wave, desired: d}
		cur, exists := live[d.key()]
		switch {
		case !exists:
			s.Action, s.Reason = ActionInstall, "not installed"
		case !cur.owned() && !d.Spec.Adopt:
			s.Action = ActionUpgrade
			s.FromRevision = cur.Revision
			s.Error = fmt.Sprintf("a Helm release %s exists that tandem does not manage; set adopt: true on the release to take it over", d.key())
		case cur.pending():
			s.Action, s.FromRevision, s.Recover = ActionUpgrade, cur.Revision, cur.Status
			s.Reason = "recovering a release stuck in " + cur.Status
			s.Adopt = !cur.owned()
		case !cur.owned():
			s.Action, s.FromRevision, s.Adopt, s.Reason = ActionUpgrade, cur.Revision, true, "adopting an existing release"
		case cur.Status != "deployed":
			s.Action, s.FromRevision, s.Reason = ActionUpgrade, cur.Revision, "last attempt "+cur.Status
		case cur.Labels[LabelDigest] != d.Result.Digest:
			s.Action, s.FromRevision, s.Reason = ActionUpgrade, cur.Revision, "content changed"
		default:
			s.Action, s.FromRevision = ActionUnchanged, cur.Revision
		}
		p.Steps = append(p.Steps, s)
	}
	sort.SliceStable(p.Steps, func(i, j int) bool { return p.Steps[i].Wave < p.Steps[j].Wave })

	owned := 0
	for _, d := range deployed {
		if !d.owned() {
			continue
		}
		owned++
		if !want[d.key()] {
			p.Prune = append(p.Prune, Step{Name: d.Name, Namespace: d.Namespace, Action: ActionPrune, FromRevision: d.Revision, Reason: "no longer in the manifest for this cluster"})
		}
	}
	sort.Slice(p.Prune, func(i, j int) bool {
		return p.Prune[i].Namespace+"/"+p.Prune[i].Name < p.Prune[j].Namespace+"/"+p.Prune[j].Name
	})
	switch {
	case len(p.Prune) == 0:
	case opts.NoPrune:
		// Releases outside a run restricted to some releases are not
		// candidates at all: the run says nothing about them.
		p.Prune = nil
	case !opts.AllowMassPrune && len(p.Prune) > maxPrunes(owned, opts.MaxPrune):
		p.PruneBlocked = fmt.Sprintf("refusing to prune %d of %d tandem-owned releases (more than --max-prune %.0f%%); a broken or emptied manifest must not wipe a cluster — rerun with --allow-mass-prune if this is intended",
			len(p.Prune), owned, opts.MaxPrune*100)
	}
	return p
}

// maxPrunes is how many of owned releases one run may prune. It rounds down:
// on a cluster with three releases, a 25% limit allows none.
func maxPrunes(owned int, share float64) int {
	return int(math.Floor(float64(owned)*share + 1e-9))
}

// Changes reports whether the plan changes anything in the cluster.
func (p ClusterPlan) Changes() bool {
	for _, s := range p.Steps {
		if s.Action != ActionUnchanged {
			return true
		}
	}
	return len(p.Prune) > 0 && p.PruneBlocked == ""
}
