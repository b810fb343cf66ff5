package reconciler

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/tandem-gitops/tandem/manifest"
	"github.com/tandem-gitops/tandem/render"
)

// Helm release labels tandem stores on every release it owns.
const (
	LabelManagedBy = "tandem.dev/managed-by"
	ManagedByValue = "tandem"
	LabelDigest    = "tandem.dev/digest"
	LabelCommit    = "tandem.dev/commit"
	// LabelRun carries the RunID of the tandem run that wrote a revision, so
	// that a revision left pending can be traced to its (dead) writer.
	LabelRun = "tandem.dev/run"
	// LabelManifest carries the ID of the manifest that owns the release.
	LabelManifest = "tandem.dev/manifest"
	// LabelHooks is "skipped" on a revision tandem wrote without the chart's
	// Helm hooks (render.Overlay.SkipHooks: the release is scaled down on
	// this cluster). A prune of the release uninstalls it without its
	// delete hooks too: its policy is no longer in the manifest.
	LabelHooks   = "tandem.dev/hooks"
	HooksSkipped = "skipped"
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
	// Updated is when the revision was written (Helm's last-deployed time).
	Updated time.Time
	// Manifest is the revision's applied manifest, for a health check.
	Manifest string
	// EarlierRuns holds the tandem.dev/run labels of the release's other
	// revisions (read only for pending releases). Helm copies a release's
	// labels onto the revisions it writes — a person's `helm upgrade` or
	// `helm rollback` included — so a run label seen on an earlier revision
	// says nothing about who wrote this one.
	EarlierRuns map[string]bool
}

func (d Deployed) key() ReleaseKey { return ReleaseKey{d.Namespace, d.Name} }

// owner is the manifest ID a tandem release belongs to, "" for a release
// tandem does not manage. Releases installed before manifests had IDs carry
// no manifest label and belong to the default manifest.
func (d Deployed) owner() string {
	if d.Labels[LabelManagedBy] != ManagedByValue {
		return ""
	}
	if id := d.Labels[LabelManifest]; id != "" {
		return id
	}
	return manifest.DefaultID
}

// ownedBy reports whether the release belongs to the manifest with this ID.
func (d Deployed) ownedBy(id string) bool { return d.owner() == manifestID(id) }

// legacy reports whether the release was labelled before manifests had IDs.
func (d Deployed) legacy() bool {
	return d.Labels[LabelManagedBy] == ManagedByValue && d.Labels[LabelManifest] == ""
}

func manifestID(id string) string {
	if id == "" {
		return manifest.DefaultID
	}
	return id
}
func (d Deployed) pending() bool { return strings.HasPrefix(d.Status, "pending-") }

// Desired is one release a cluster should run.
type Desired struct {
	Spec   manifest.Release
	Result *render.Result
}

func (d Desired) key() ReleaseKey { return keyOfRelease(d.Spec) }

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
	// Verify is set on an unchanged release whose deployed revision tandem
	// never saw healthy (a run ended during its health wait): its health is
	// checked before it counts as done.
	Verify bool `json:"verify,omitempty"`
	// NoHooks, on a prune, uninstalls without the chart's delete hooks: the
	// release's last revision here was written without hooks (LabelHooks).
	NoHooks bool `json:"noHooks,omitempty"`

	desired  *Desired // nil for prunes
	deployed string   // the deployed revision's manifest, for Verify
}

// ClusterPlan is everything one cluster needs, decided from data only.
type ClusterPlan struct {
	Cluster string        `json:"cluster"`
	Role    manifest.Role `json:"role"`
	Steps   []Step        `json:"steps"`
	Prune   []Step        `json:"prune,omitempty"`
	// PruneBlocked, when set, says why the planned prunes will not run.
	PruneBlocked string `json:"pruneBlocked,omitempty"`
	// Unowned are releases the manifest no longer names that tandem cannot
	// prove are this manifest's (labelled before manifest IDs): left alone.
	Unowned []Step `json:"unowned,omitempty"`
}

// PlanOptions are the policy knobs of Plan.
type PlanOptions struct {
	// MaxPrune is the largest share (0..1) of a cluster's tandem-owned releases one run may uninstall.
	MaxPrune float64
	// AllowMassPrune lifts MaxPrune.
	AllowMassPrune bool
	// NoPrune disables pruning: a run restricted to some releases plans no prune of the others.
	NoPrune bool
	// ManifestID is the ID of the manifest being applied: only its releases
	// are pruned or upgraded without adopt ("" means manifest.DefaultID).
	ManifestID string
	// Now is the time the plan judges ages by (stuck releases).
	Now time.Time
	// LeaseDuration is the cluster lock's lease duration: a pending revision
	// older than its release's timeout plus this is abandoned.
	LeaseDuration time.Duration
	// RunID is this run's token (LabelRun): a pending revision labelled with
	// another run's token was left by a tandem run that no longer holds the
	// cluster's lock, so it is abandoned.
	RunID string
	// Healthy maps releases to the revision tandem last saw healthy (from
	// the state record); an unchanged release at another revision is
	// verified before it counts as done.
	Healthy map[ReleaseKey]int
}

// DefaultPlanOptions returns the CLI defaults.
func DefaultPlanOptions() PlanOptions { return PlanOptions{MaxPrune: 0.25} }

// Plan decides, from data alone, what one cluster needs: which desired
// releases to install or upgrade, which are unchanged, which stuck releases to
// recover first, and which tandem-owned releases to prune. Steps are ordered by
// wave, then manifest order.
func Plan(cluster manifest.Cluster, desired []Desired, deployed []Deployed, opts PlanOptions) ClusterPlan {
	p := ClusterPlan{Cluster: cluster.Name, Role: cluster.Role}
	live := make(map[ReleaseKey]Deployed, len(deployed))
	for _, d := range deployed {
		live[d.key()] = d
	}
	want := make(map[ReleaseKey]bool, len(desired))
	for i := range desired {
		d := &desired[i]
		want[d.key()] = true
		s := Step{Name: d.Spec.Name, Namespace: d.Spec.Namespace, Wave: d.Spec.Wave, desired: d}
		cur, exists := live[d.key()]
		switch {
		case !exists:
			s.Action, s.Reason = ActionInstall, "not installed"
		case cur.owner() == "" && !d.Spec.Adopt:
			s.Action = ActionUpgrade
			s.FromRevision = cur.Revision
			s.Error = fmt.Sprintf("a Helm release %s exists that tandem does not manage; set adopt: true on the release to take it over", d.key())
		case !cur.ownedBy(opts.ManifestID) && !d.Spec.Adopt:
			s.Action = ActionUpgrade
			s.FromRevision = cur.Revision
			s.Error = fmt.Sprintf("Helm release %s belongs to tandem manifest %q, not to this one (%q); two manifests must not manage one release — set adopt: true on the release to take it over",
				d.key(), cur.owner(), manifestID(opts.ManifestID))
		case cur.pending():
			s.Action, s.FromRevision = ActionUpgrade, cur.Revision
			if why := abandoned(cur, d.Spec, opts); why != "" {
				s.Recover = cur.Status
				s.Reason = "recovering a release stuck in " + cur.Status + ": " + why
				s.Adopt = !cur.ownedBy(opts.ManifestID)
			} else {
				s.Error = inProgress(cur, opts)
			}
		case !cur.ownedBy(opts.ManifestID):
			s.Action, s.FromRevision, s.Adopt, s.Reason = ActionUpgrade, cur.Revision, true, "adopting an existing release"
		case cur.Status != "deployed":
			s.Action, s.FromRevision, s.Reason = ActionUpgrade, cur.Revision, "last attempt "+cur.Status
		case cur.Labels[LabelDigest] != d.Result.Digest:
			s.Action, s.FromRevision, s.Reason = ActionUpgrade, cur.Revision, "content changed"
		case cur.legacy():
			s.Action, s.FromRevision = ActionUpgrade, cur.Revision
			s.Reason = "recording this manifest's ownership (label " + LabelManifest + ") on a release installed by an earlier tandem"
		default:
			s.Action, s.FromRevision = ActionUnchanged, cur.Revision
			if rev, ok := opts.Healthy[d.key()]; !ok || rev != cur.Revision {
				s.Verify, s.deployed = true, cur.Manifest
				s.Reason = fmt.Sprintf("revision %d was never seen healthy by tandem (a run ended during its health wait?)", cur.Revision)
			}
		}
		p.Steps = append(p.Steps, s)
	}
	sort.SliceStable(p.Steps, func(i, j int) bool { return p.Steps[i].Wave < p.Steps[j].Wave })

	owned := 0
	for _, d := range deployed {
		if !d.ownedBy(opts.ManifestID) {
			continue // another manifest's, or not tandem's: never pruned
		}
		owned++
		if !want[d.key()] && d.legacy() {
			// Installed by a tandem from before manifest IDs: it may be
			// another team's. Wanted, it is relabelled; unwanted, it is
			// reported and left.
			p.Unowned = append(p.Unowned, Step{Name: d.Name, Namespace: d.Namespace, Action: ActionPrune, FromRevision: d.Revision,
				Reason: "not pruned: installed by a tandem from before manifest IDs, so its manifest is unknown; uninstall it with helm if it is this manifest's"})
			continue
		}
		if !want[d.key()] {
			p.Prune = append(p.Prune, Step{Name: d.Name, Namespace: d.Namespace, Action: ActionPrune, FromRevision: d.Revision, Reason: "no longer in the manifest for this cluster",
				NoHooks: d.Labels[LabelHooks] == HooksSkipped})
		}
	}
	sort.Slice(p.Prune, func(i, j int) bool {
		return p.Prune[i].Namespace+"/"+p.Prune[i].Name < p.Prune[j].Namespace+"/"+p.Prune[j].Name
	})
	if opts.NoPrune {
		p.Prune = nil
	}
	switch {
	case len(p.Prune) == 0:
		// Releases outside a run restricted to some releases are not
		// candidates at all (NoPrune): the run says nothing about them.
	case !opts.AllowMassPrune && len(p.Prune) > maxPrunes(owned, opts.MaxPrune):
		p.PruneBlocked = fmt.Sprintf("refusing to prune %d of %d tandem-owned releases (more than --max-prune %.0f%%); a broken or emptied manifest must not wipe a cluster — rerun with --allow-mass-prune if this is intended",
			len(p.Prune), owned, opts.MaxPrune*100)
	}
	return p
}

// abandoned says why a pending revision is provably abandoned, or "" when a
// Helm operation may still be running on it: it was written by another
// tandem run (which no longer holds the lock this run holds, and whose
// writes are fenced), or it is older than the release's timeout plus the
// lease duration. A pending revision without tandem's run label may be a
// person's `helm upgrade` or `helm rollback` in progress.
func abandoned(cur Deployed, spec manifest.Release, opts PlanOptions) string {
	if run := cur.Labels[LabelRun]; run != "" && opts.RunID != "" && run != opts.RunID && !cur.EarlierRuns[run] {
		return "left by tandem run " + run + ", which no longer holds the cluster's lock"
	}
	limit := spec.TimeoutDuration() + opts.LeaseDuration
	if !cur.Updated.IsZero() && !opts.Now.IsZero() && opts.Now.Sub(cur.Updated) > limit {
		return fmt.Sprintf("untouched for %s, longer than its timeout plus the lock's lease (%s)", opts.Now.Sub(cur.Updated).Round(time.Second), limit)
	}
	return ""
}

// inProgress is the error of a pending revision that is not abandoned.
func inProgress(cur Deployed, opts PlanOptions) string {
	by := "a Helm client outside tandem (helm upgrade, helm rollback)"
	if run := cur.Labels[LabelRun]; run != "" && !cur.EarlierRuns[run] {
		by = "tandem run " + run
	}
	since := ""
	if !cur.Updated.IsZero() {
		since = " since " + cur.Updated.UTC().Format(time.RFC3339)
	}
	return fmt.Sprintf("operation in progress (by %s): revision %d is %s%s; tandem recovers it only once it is abandoned (older than the release timeout plus the lock's lease duration)",
		by, cur.Revision, cur.Status, since)
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
