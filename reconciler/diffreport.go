package reconciler

// DiffMode says what a DiffReport compares.
type DiffMode string

const (
	// ModeLive compares what tandem would apply with what each cluster holds.
	ModeLive DiffMode = "live"
	// ModeAgainst compares the desired state at two git revisions; no cluster is contacted.
	ModeAgainst DiffMode = "against"
)

// Change classifies a release or an object in a diff.
type Change string

const (
	ChangeAdded     Change = "added"     // release not installed / object missing in the cluster or new in the change
	ChangeRemoved   Change = "removed"   // release would be pruned / object no longer rendered
	ChangeChanged   Change = "changed"   // present on both sides, different
	ChangeUnchanged Change = "unchanged" // present on both sides, equal
)

// DiffReport is the result of `tandem diff`, as data. Its JSON is the stable
// schema of `tandem diff -o json`. Secret values never appear in it: Secret
// data is replaced by key names and short hashes before any diff is computed.
type DiffReport struct {
	Mode DiffMode `json:"mode"`
	// From and To are the compared revisions (commits; From is empty in live mode).
	From string `json:"from,omitempty"`
	To   string `json:"to"`
	// Clusters are ordered Active first, then manifest order.
	Clusters []ClusterDiff `json:"clusters"`
}

// ClusterDiff is one cluster's part of a DiffReport.
type ClusterDiff struct {
	Name     string        `json:"name"`
	Role     string        `json:"role"`
	Releases []ReleaseDiff `json:"releases"`
	// Guard is what the change does to the cluster's Standby guard (diff
	// --against only); nil when the cluster has none before or after.
	Guard *GuardDiff `json:"guard,omitempty"`
	// Error is set when the cluster could not be diffed (unreachable, render failed).
	Error string `json:"error,omitempty"`
}

// GuardDiff is a change to a cluster's Standby guard: added when the
// cluster becomes a Standby, removed when it stops being one, changed when
// the workloads it holds at zero change.
type GuardDiff struct {
	Change Change `json:"change"`
	// Added and Removed are the workloads whose scale subresource the guard
	// starts or stops refusing, as "namespace.resource.name".
	Added   []string `json:"added,omitempty"`
	Removed []string `json:"removed,omitempty"`
}

// ReleaseDiff is one release's part of a ClusterDiff.
type ReleaseDiff struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	Change    Change `json:"change"`
	// Notes are release-level findings: chart version change, values change,
	// a release stuck in a pending state, a release tandem does not own.
	Notes []string `json:"notes,omitempty"`
	// UsedLookup says the release's templates call lookup; in a diff
	// --against, rendered without a cluster, lookup found nothing.
	UsedLookup bool         `json:"usedLookup,omitempty"`
	Objects    []ObjectDiff `json:"objects,omitempty"`
}

// ObjectDiff is one object's difference.
type ObjectDiff struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Namespace  string `json:"namespace,omitempty"`
	Name       string `json:"name"`
	Change     Change `json:"change"`
	// Diff is a unified diff of the object's YAML (old side first), without
	// file headers; empty for unchanged objects. Secret values are masked.
	Diff string `json:"diff,omitempty"`
	// Hook is, for a Helm hook, the events it runs on (its helm.sh/hook
	// annotation, e.g. "pre-install,pre-upgrade"); empty for other objects.
	Hook string `json:"hook,omitempty"`
	// HookSkipped says the hook does not run on this cluster: the release
	// is scaled to zero there (standby: scale-to-zero) and not standbyHooks: run.
	HookSkipped bool `json:"hookSkipped,omitempty"`
}

// Label is ID, marked for a hook: "Job shop/migrate (hook pre-upgrade)", or
// "(hook pre-upgrade, not run on this cluster)".
func (o ObjectDiff) Label() string {
	switch {
	case o.Hook == "":
		return o.ID()
	case o.HookSkipped:
		return o.ID() + " (hook " + o.Hook + ", not run on this cluster)"
	}
	return o.ID() + " (hook " + o.Hook + ")"
}

// ID names the object as "Kind namespace/name".
func (o ObjectDiff) ID() string {
	if o.Namespace == "" {
		return o.Kind + " " + o.Name
	}
	return o.Kind + " " + o.Namespace + "/" + o.Name
}

// Changed reports whether the release differs at all.
func (r ReleaseDiff) Changed() bool { return r.Change != ChangeUnchanged }

// ChangedObjects counts the objects that differ.
func (r ReleaseDiff) ChangedObjects() int {
	n := 0
	for _, o := range r.Objects {
		if o.Change != ChangeUnchanged {
			n++
		}
	}
	return n
}

// HasDifferences reports whether any cluster differs (for --exit-code).
func (d *DiffReport) HasDifferences() bool {
	for _, c := range d.Clusters {
		for _, r := range c.Releases {
			if r.Changed() {
				return true
			}
		}
	}
	return false
}

// Failed lists the clusters that could not be diffed.
func (d *DiffReport) Failed() []string {
	var out []string
	for _, c := range d.Clusters {
		if c.Error != "" {
			out = append(out, c.Name)
		}
	}
	return out
}
