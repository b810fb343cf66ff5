package reconciler

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/tandem-gitops/tandem/clusters"
	"github.com/tandem-gitops/tandem/manifest"
	"github.com/tandem-gitops/tandem/render"
)

// GuardMode is --standby-guard: what the Standby guard (a
// ValidatingAdmissionPolicy, see clusters.ApplyGuard) does on Standby
// clusters.
type GuardMode string

const (
	// GuardEnforce refuses scale-ups of what tandem holds down on a Standby.
	GuardEnforce GuardMode = "enforce"
	// GuardWarn lets them through with a warning to the client.
	GuardWarn GuardMode = "warn"
	// GuardOff keeps no guard, and removes one an earlier run installed.
	GuardOff GuardMode = "off"
)

// ParseGuardMode checks a --standby-guard value.
func ParseGuardMode(s string) (GuardMode, error) {
	switch m := GuardMode(s); m {
	case GuardEnforce, GuardWarn, GuardOff:
		return m, nil
	}
	return "", fmt.Errorf("--standby-guard must be enforce, warn or off, not %q", s)
}

// Guard actions in a GuardReport.
const (
	GuardInstall   = "install"
	GuardUpdate    = "update"
	GuardUnchanged = "unchanged"
	GuardRemove    = "remove"
)

// GuardReport is what a run did (or, in a dry run, would do) to a
// cluster's Standby guard.
type GuardReport struct {
	// Mode is the guard's mode after the run: enforce, warn or off.
	Mode GuardMode `json:"mode"`
	// Action is install, update, unchanged or remove.
	Action string `json:"action"`
	// Outcome is ok, failed, or planned (dry run).
	Outcome Outcome `json:"outcome"`
	// Scaled counts the workloads whose scale subresource it guards.
	Scaled int    `json:"scaled"`
	Error  string `json:"error,omitempty"`
}

// GuardTarget is what the guard needs of a cluster; *clusters.Cluster
// provides it. A Target without it (a test's fake) gets no guard.
type GuardTarget interface {
	// Username is the user the cluster authenticates tandem as: the guard
	// lets only that user drop its markers.
	Username(ctx context.Context) (string, error)
	ReadGuard(ctx context.Context, manifestID string) (*clusters.Guard, error)
	ApplyGuard(ctx context.Context, manifestID string, g clusters.Guard) error
	RemoveGuard(ctx context.Context, manifestID string) (bool, error)
}

var _ GuardTarget = ClusterTarget{}

// desiredGuard decides a cluster's guard: none on an Active cluster or with
// the guard off; on a Standby, every workload the rendered releases hold at
// zero. scope, when set, limits the change to those releases (a --release
// run, a switchover step): entries of other releases are kept from current.
// Pure.
func desiredGuard(mode GuardMode, cluster string, role manifest.Role, desired []Desired, current *clusters.Guard, scope map[ReleaseKey]bool) (*clusters.Guard, []string) {
	if mode == GuardOff || role != manifest.RoleStandby {
		return nil, nil
	}
	g := &clusters.Guard{Warn: mode == GuardWarn, Cluster: cluster, Scaled: map[string]string{}, PolicyVersion: clusters.GuardPolicyVersion()}
	if current != nil && scope != nil {
		for k, rel := range current.Scaled {
			if key, ok := parseReleaseKey(rel); !ok || !scope[key] {
				g.Scaled[k] = rel
			}
		}
	}
	var unguarded []string
	for _, d := range desired {
		for _, o := range heldWorkloads(d.Result) {
			key, ok := clusters.GuardKey(o.Namespace, workloadResource(o.Kind), o.Name)
			if !ok {
				unguarded = append(unguarded, o.ID())
				continue
			}
			g.Scaled[key] = d.key().String()
		}
	}
	return g, unguarded
}

// guardAction names the change from current to want.
func guardAction(current, want *clusters.Guard) string {
	switch {
	case want == nil && current == nil:
		return ""
	case want == nil:
		return GuardRemove
	case current == nil:
		return GuardInstall
	case current.Equal(want):
		return GuardUnchanged
	}
	return GuardUpdate
}

// heldWorkloads are the Deployments, StatefulSets and ReplicaSets of a
// render that the overlay holds at zero (they carry AnnotationActiveCount).
func heldWorkloads(res *render.Result) []render.Object {
	if res == nil {
		return nil
	}
	var out []render.Object
	for _, o := range res.Objects {
		if workloadResource(o.Kind) == "" || !strings.HasPrefix(o.APIVersion, "apps/") {
			continue
		}
		var meta struct {
			Metadata struct {
				Annotations map[string]string `json:"annotations"`
			} `json:"metadata"`
		}
		if err := yaml.Unmarshal(o.Body, &meta); err != nil {
			continue // the render parsed it; an unreadable body holds nothing
		}
		if _, ok := meta.Metadata.Annotations[render.AnnotationActiveCount]; ok {
			out = append(out, o)
		}
	}
	return out
}

func workloadResource(kind string) string {
	switch kind {
	case "Deployment":
		return "deployments"
	case "StatefulSet":
		return "statefulsets"
	case "ReplicaSet":
		return "replicasets"
	}
	return ""
}

func parseReleaseKey(s string) (ReleaseKey, bool) {
	ns, name, ok := strings.Cut(s, "/")
	return ReleaseKey{Namespace: ns, Name: name}, ok
}

// reconcileGuard brings a cluster's guard to what the run's role and
// releases ask for, or in a dry run reports what it would do. It runs
// before the releases are applied: a new entry only refuses raising what
// the new render holds at zero, and tandem's own writes never go through
// the scale subresource. It returns nil when the cluster has no guard and
// needs none, or the target cannot hold one.
func (r *run) reconcileGuard(ctx context.Context, cr *clusterRun, desired []Desired) *GuardReport {
	gt, ok := cr.t.(GuardTarget)
	if !ok {
		return nil
	}
	mode := r.opts.StandbyGuard
	if mode == "" {
		mode = GuardEnforce
	}
	rep := &GuardReport{Mode: mode}
	current, err := gt.ReadGuard(ctx, r.m.ID)
	if err != nil {
		rep.Outcome, rep.Error = OutcomeFailed, err.Error()
		return rep
	}
	var scope map[ReleaseKey]bool
	if len(r.opts.Selection.Releases) > 0 {
		scope = map[ReleaseKey]bool{}
		for _, d := range desired {
			scope[d.key()] = true
		}
	}
	want, unguarded := desiredGuard(mode, cr.c.Name, cr.c.Role, desired, current, scope)
	switch {
	case r.opts.DryRun:
		// A dry run asks the cluster nothing it need not (a read-only
		// credential may not even create a SelfSubjectReview), and the
		// credential it runs with need not be the one a real run has.
		if want != nil && current != nil {
			want.Writer = current.Writer
		}
	default:
		if err := withWriter(ctx, gt, want); err != nil {
			rep.Outcome, rep.Error = OutcomeFailed, err.Error()
			return rep
		}
	}
	if len(unguarded) > 0 {
		cr.log.Warn("standby guard: names too long for a guard key; their scale subresource is not guarded", "objects", strings.Join(unguarded, ", "))
	}
	rep.Action = guardAction(current, want)
	if want != nil {
		rep.Scaled = len(want.Scaled)
	} else {
		rep.Mode = GuardOff
	}
	switch {
	case rep.Action == "":
		return nil
	case rep.Action == GuardUnchanged:
		rep.Outcome = OutcomeOK
		return rep
	case r.opts.DryRun:
		rep.Outcome = OutcomePlanned
		return rep
	}
	if err := writeGuard(ctx, gt, r.m.ID, want); err != nil {
		rep.Outcome, rep.Error = OutcomeFailed, err.Error()
		return rep
	}
	rep.Outcome = OutcomeOK
	r.emit(Event{Cluster: cr.c.Name, Role: string(cr.c.Role), Phase: "cluster", Message: fmt.Sprintf("standby guard: %s (%s, %d workloads)", rep.Action, rep.Mode, rep.Scaled)})
	return rep
}

func writeGuard(ctx context.Context, gt GuardTarget, manifestID string, want *clusters.Guard) error {
	if want == nil {
		_, err := gt.RemoveGuard(ctx, manifestID)
		return err
	}
	return gt.ApplyGuard(ctx, manifestID, *want)
}

// withWriter names in want the user tandem writes to the cluster as: the
// one whose writes may drop the guard's markers (its own rollbacks, a
// release turned standby: keep). A guard without it would refuse them.
func withWriter(ctx context.Context, gt GuardTarget, want *clusters.Guard) error {
	if want == nil {
		return nil
	}
	user, err := gt.Username(ctx)
	if err != nil {
		return err
	}
	want.Writer = user
	return nil
}

// guardStep keeps a cluster's guard in step with a switchover phase.
// Before a step (pre) it only removes: a target's guard goes before its
// first write (it becomes Active, and tandem's warming writes then depend
// on nothing the guard allows), and with --standby-guard off every
// involved cluster's goes before anything is written. After a step has
// applied its releases at the phase's role, a source's entries follow
// what that render holds down (a source scaled down joins the list), and
// its guard comes when it turns Standby. A failure is logged, not fatal:
// the guard is a second line behind tandem's own writes, and the plain
// reconcile after the switchover reports it; a failed switchover is put
// back by the next run, which installs the guard again where it belongs.
func (r *run) guardStep(ctx context.Context, x *swCluster, p *SwitchoverPlan, role manifest.Role, desired []Desired, pre bool) {
	gt, ok := x.t.(GuardTarget)
	if !ok || r.opts.DryRun {
		return
	}
	mode := r.opts.StandbyGuard
	if mode == "" {
		mode = GuardEnforce
	}
	remove := mode == GuardOff || slices.Contains(p.To, x.c.Name)
	if pre && !remove {
		return
	}
	current, err := gt.ReadGuard(ctx, r.m.ID)
	if err == nil {
		var want *clusters.Guard
		if !remove {
			scope := map[ReleaseKey]bool{}
			for _, d := range desired {
				scope[d.key()] = true
			}
			want, _ = desiredGuard(mode, x.c.Name, role, desired, current, scope)
			err = withWriter(ctx, gt, want)
		}
		if err == nil {
			switch guardAction(current, want) {
			case GuardUnchanged, "":
				return
			}
			err = writeGuard(ctx, gt, r.m.ID, want)
		}
	}
	if err != nil {
		r.opts.Logger.Warn("switchover: standby guard not updated", "cluster", x.c.Name, "error", err)
		r.emit(Event{Cluster: x.c.Name, Role: string(role), Phase: "switchover", Message: "standby guard not updated: " + err.Error()})
		return
	}
	if current != nil && remove {
		r.emit(Event{Cluster: x.c.Name, Role: string(role), Phase: "switchover", Message: "standby guard removed"})
	}
}

// guardProblem is a failed guard's part of the cluster's error.
func guardProblem(g *GuardReport) string {
	if g == nil || g.Error == "" {
		return ""
	}
	return "standby guard: " + g.Error
}

// guardDiff is what a change from one manifest to another does to a
// cluster's guard (as enforce would keep it; the mode is the runner's
// flag, not the manifest's). Pure: from the renders of both sides.
func guardDiff(from, to *manifest.Manifest, cluster string, old, cur map[string]*render.Result) *GuardDiff {
	side := func(m *manifest.Manifest, results map[string]*render.Result) *clusters.Guard {
		if m == nil {
			return nil
		}
		c, ok := m.Cluster(cluster)
		if !ok {
			return nil
		}
		var desired []Desired
		for _, res := range results {
			desired = append(desired, Desired{Spec: manifest.Release{Name: res.Release, Namespace: res.Namespace}, Result: res})
		}
		g, _ := desiredGuard(GuardEnforce, cluster, c.Role, desired, nil, nil)
		return g
	}
	before, after := side(from, old), side(to, cur)
	if before == nil && after == nil {
		return nil
	}
	d := &GuardDiff{Change: ChangeUnchanged}
	switch {
	case before == nil:
		d.Change = ChangeAdded
	case after == nil:
		d.Change = ChangeRemoved
	}
	var was, now map[string]string
	if before != nil {
		was = before.Scaled
	}
	if after != nil {
		now = after.Scaled
	}
	for k := range now {
		if _, ok := was[k]; !ok {
			d.Added = append(d.Added, k)
		}
	}
	for k := range was {
		if _, ok := now[k]; !ok {
			d.Removed = append(d.Removed, k)
		}
	}
	slices.Sort(d.Added)
	slices.Sort(d.Removed)
	if d.Change == ChangeUnchanged && (len(d.Added) > 0 || len(d.Removed) > 0) {
		d.Change = ChangeChanged
	}
	return d
}

// Summary is the guard change in a few words, for the text and Markdown reports.
func (d *GuardDiff) Summary() string {
	switch d.Change {
	case ChangeAdded:
		return fmt.Sprintf("installed: the cluster becomes a Standby (%d workloads held at zero)", len(d.Added))
	case ChangeRemoved:
		return "removed: the cluster stops being a Standby"
	case ChangeChanged:
		return fmt.Sprintf("%d workloads added, %d removed", len(d.Added), len(d.Removed))
	}
	return "unchanged"
}
