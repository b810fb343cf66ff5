package reconciler

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/fluxcd/pkg/ssa/jsondiff"
	"golang.org/x/sync/errgroup"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/tandem-gitops/tandem/clusters"
	"github.com/tandem-gitops/tandem/manifest"
	"github.com/tandem-gitops/tandem/render"
)

// DiffOptions are the per-run settings of DiffLive.
type DiffOptions struct {
	Selection Selection
	// FieldManager is the server-side apply field manager used for dry runs.
	FieldManager string
	// Renderer, when set, renders each cluster's releases again once
	// connected, with its capabilities and live lookup, as reconcile does;
	// nil compares the results given.
	Renderer Renderer

	// mask hides Secret values, one key per report (DiffLive sets it).
	mask *SecretMask
}

// DefaultDiffOptions returns the CLI defaults.
func DefaultDiffOptions() DiffOptions { return DiffOptions{FieldManager: "tandem"} }

// DiffLive compares, for every selected cluster in parallel, what tandem would
// apply with what the cluster holds: release-level state (not installed,
// would be pruned, chart or values changed, stuck) and object-level field
// differences from a server-side-apply dry run, so that API defaulting and
// fields other managers own are not noise.
func DiffLive(ctx context.Context, m *manifest.Manifest, results []*render.Result, connect Connector, opts DiffOptions, rev string) *DiffReport {
	rep := &DiffReport{Mode: ModeLive, To: rev}
	var selected []manifest.Cluster
	for _, c := range orderClusters(m, nil) {
		if opts.Selection.cluster(c.Name) {
			selected = append(selected, c)
		}
	}
	desired := desiredByCluster(m, results)
	opts.mask = NewSecretMask() // one key for the whole report
	rep.Clusters = make([]ClusterDiff, len(selected))
	var wg sync.WaitGroup
	for i, c := range selected {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rep.Clusters[i] = diffCluster(ctx, m, c, desired[c.Name], connect, opts)
		}()
	}
	wg.Wait()
	return rep
}

func diffCluster(ctx context.Context, m *manifest.Manifest, c manifest.Cluster, desired []Desired, connect Connector, opts DiffOptions) ClusterDiff {
	cd := ClusterDiff{Name: c.Name, Role: string(c.Role), Releases: []ReleaseDiff{}}
	t, err := connect(ctx, c)
	if err != nil {
		cd.Error = err.Error()
		return cd
	}
	live, err := t.ListReleases(ctx, nil)
	if err != nil {
		cd.Error = fmt.Sprintf("list releases: %v", err)
		return cd
	}
	if opts.Renderer != nil {
		results, _, err := renderCluster(ctx, m, opts.Renderer, opts.Selection, c, t, existing(deployedFrom(live)))
		if err == nil {
			err = keepGenerated(results, deployedFrom(live))
		}
		if err != nil {
			cd.Error = fmt.Sprintf("render with the cluster's capabilities and lookup: %v", err)
			return cd
		}
		desired = desiredByCluster(m, results)[c.Name]
	}
	byKey := map[ReleaseKey]clusters.Release{}
	for _, l := range live {
		byKey[ReleaseKey{l.Namespace, l.Name}] = l
	}
	plan := Plan(c, desired, deployedFrom(live), PlanOptions{MaxPrune: 1, Healthy: allHealthy(live), ManifestID: m.ID})
	// Releases are compared concurrently, each writing its own slot; live
	// objects are listed once for all of them.
	snap := t.Snapshot()
	rds := make([]ReleaseDiff, len(plan.Steps))
	errs := make([]error, len(plan.Steps))
	g := new(errgroup.Group)
	g.SetLimit(4)
	for i, s := range plan.Steps {
		g.Go(func() error {
			rds[i], errs[i] = diffLiveRelease(ctx, t, snap, c, *s.desired, s, byKey[s.desired.key()], opts)
			return nil
		})
	}
	_ = g.Wait()
	if err := errors.Join(errs...); err != nil {
		cd.Error = err.Error()
		return cd
	}
	cd.Releases = append(cd.Releases, rds...)
	if len(opts.Selection.Releases) == 0 { // a run restricted to some releases says nothing of the others
		for _, s := range plan.Prune {
			rd := ReleaseDiff{Name: s.Name, Namespace: s.Namespace, Change: ChangeRemoved, Notes: []string{"would be uninstalled: no longer in the manifest for this cluster"}}
			objs, err := removedObjects(byKey[ReleaseKey{s.Namespace, s.Name}].Manifest, s.Namespace, nil, opts.mask)
			if err != nil {
				rd.Notes = append(rd.Notes, fmt.Sprintf("its deployed objects could not be listed: %v", err))
			}
			rd.Objects = objs
			cd.Releases = append(cd.Releases, rd)
		}
	}
	return cd
}

// allHealthy takes every deployed revision as healthy: diff reports content,
// not health.
func allHealthy(live []clusters.Release) map[ReleaseKey]int {
	out := make(map[ReleaseKey]int, len(live))
	for _, l := range live {
		out[ReleaseKey{l.Namespace, l.Name}] = l.Revision
	}
	return out
}

func diffLiveRelease(ctx context.Context, t Target, snap *clusters.Snapshot, c manifest.Cluster, d Desired, s Step, cur clusters.Release, opts DiffOptions) (ReleaseDiff, error) {
	rd := ReleaseDiff{Name: s.Name, Namespace: s.Namespace, Change: ChangeUnchanged}
	switch {
	case s.Error != "":
		rd.Notes = append(rd.Notes, s.Error)
	case s.Action == ActionInstall:
		rd.Change = ChangeAdded
		rd.Notes = append(rd.Notes, "not installed")
	case s.Recover != "":
		rd.Notes = append(rd.Notes, "stuck in "+s.Recover+"; the next reconcile recovers it")
	case s.Action == ActionUpgrade && cur.Status != "deployed":
		rd.Notes = append(rd.Notes, "last attempt "+cur.Status)
	}
	if s.Action != ActionInstall {
		if cur.Chart != d.Result.ChartName || cur.ChartVersion != d.Result.ChartVersion {
			rd.Notes = append(rd.Notes, fmt.Sprintf("chart %s-%s → %s-%s", cur.Chart, cur.ChartVersion, d.Result.ChartName, d.Result.ChartVersion))
		}
		if s.Action == ActionUpgrade && cur.Labels[LabelDigest] != "" && cur.Labels[LabelDigest] != d.Result.Digest {
			rd.Notes = append(rd.Notes, "values or templates differ from the deployed revision")
		}
	}

	switch s.Action {
	case ActionInstall, ActionUpgrade:
		if n := hooksNote(d.Result, string(s.Action)); n != "" {
			rd.Notes = append(rd.Notes, n)
		}
	}

	drift, err := liveDrift(ctx, t, snap, c, d, opts.FieldManager, opts.mask)
	if err != nil {
		return rd, err
	}
	rendered := map[objectKey]bool{}
	for _, od := range drift {
		rendered[od.key] = true
		if od.Change != ChangeUnchanged {
			rd.Objects = append(rd.Objects, od.ObjectDiff)
		}
	}
	// Objects the deployed revision has that the manifest no longer renders:
	// the next upgrade deletes them.
	removed, err := removedObjects(cur.Manifest, d.Spec.Namespace, rendered, opts.mask)
	if err != nil {
		return rd, fmt.Errorf("release %s: deployed manifest: %w", d.key(), err)
	}
	rd.Objects = append(rd.Objects, removed...)
	crds, notes, err := liveCRDs(ctx, snap, d, s.Action != ActionInstall, opts.mask)
	if err != nil {
		return rd, err
	}
	rd.Objects = append(rd.Objects, crds...)
	rd.Notes = append(rd.Notes, notes...)
	if rd.Change == ChangeUnchanged && (len(rd.Objects) > 0 || len(rd.Notes) > 0) {
		rd.Change = ChangeChanged
	}
	return rd, nil
}

// objectDrift is one desired object compared with the cluster.
type objectDrift struct {
	ObjectDiff
	key objectKey
	// desired is the object to apply to correct the drift, without ignored fields.
	desired *unstructured.Unstructured
	// rendered is the desired object as rendered, live the object as listed
	// (nil if missing): what a fingerprint is made of.
	rendered, live *unstructured.Unstructured
}

func (k objectKey) String() string { return k.group + "/" + k.kind + "/" + k.namespace + "/" + k.name }

// objectKeyOf is keyOf for a rendered object.
func objectKeyOf(o render.Object) objectKey {
	return objectKey{apiGroupOf(o.APIVersion), o.Kind, o.Namespace, o.Name}
}

func keyOf(u *unstructured.Unstructured) objectKey {
	return objectKey{apiGroupOf(u.GetAPIVersion()), u.GetKind(), u.GetNamespace(), u.GetName()}
}

// desiredObjects parses a render result into objects with their namespaces set.
func desiredObjects(d Desired) ([]*unstructured.Unstructured, error) {
	out := make([]*unstructured.Unstructured, 0, len(d.Result.Objects))
	for _, o := range d.Result.Objects {
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal(o.Body, &u.Object); err != nil {
			return nil, fmt.Errorf("release %s: %s: %w", d.key(), o.ID(), err)
		}
		if u.GetNamespace() == "" && o.Namespace != "" {
			u.SetNamespace(o.Namespace)
		}
		out = append(out, u)
	}
	return out, nil
}

// liveDrift compares each desired object of a release with the cluster: a
// server-side-apply dry run per object against the live object, minus the
// fields diffs ignore (see ignorePaths).
func liveDrift(ctx context.Context, t Target, snap *clusters.Snapshot, c manifest.Cluster, d Desired, fieldManager string, mask *SecretMask) ([]objectDrift, error) {
	objs, err := desiredObjects(d)
	if err != nil {
		return nil, err
	}
	states, err := t.DryRun(ctx, snap, d.Spec.Namespace, d.Spec.Name, objs, fieldManager)
	if err != nil {
		return nil, fmt.Errorf("release %s: dry run: %w", d.key(), err)
	}
	ignores := ignorePaths(c, d)
	out := make([]objectDrift, 0, len(objs))
	for i, u := range objs {
		k := objectKey{apiGroupOf(u.GetAPIVersion()), u.GetKind(), u.GetNamespace(), u.GetName()}
		st := states[i]
		var od ObjectDiff
		switch {
		case st.Live == nil:
			od, err = diffObject(nil, u.Object, nil, mask)
		case st.Applied == nil:
			od, err = diffObject(st.Live.Object, u.Object, ignores[k], mask)
		default:
			od, err = diffObject(st.Live.Object, st.Applied.Object, ignores[k], mask)
		}
		if err != nil {
			return nil, fmt.Errorf("release %s: %s %s: %w", d.key(), k.kind, k.name, err)
		}
		desired := u
		if p := ignores[k]; len(p) > 0 {
			desired = u.DeepCopy()
			if err := jsondiff.ApplyPatchToUnstructured(desired, jsondiff.GenerateRemovePatch(p...)); err != nil {
				return nil, fmt.Errorf("release %s: %s %s: ignore rules: %w", d.key(), k.kind, k.name, err)
			}
		}
		out = append(out, objectDrift{ObjectDiff: od, key: k, desired: desired, rendered: u, live: st.Live})
	}
	return out, nil
}

// ignorePaths collects, per object, the JSON pointers a diff leaves out: the
// release's ignore rules, and /spec/replicas of workloads an HPA or KEDA
// ScaledObject scales on an Active cluster (on Standby, any replica count but
// zero is drift worth seeing).
func ignorePaths(c manifest.Cluster, d Desired) map[objectKey][]string {
	out := map[objectKey][]string{}
	for _, o := range d.Result.Objects {
		if p := rulePaths(d.Spec.Ignore, o); len(p) > 0 {
			obj := map[string]any{}
			if yaml.Unmarshal(o.Body, &obj) == nil {
				p = withoutOverlayFields(p, overlayFields(obj)) // a Standby scaled up by hand is drift
			}
			if len(p) > 0 {
				k := objectKeyOf(o)
				out[k] = append(out[k], p...)
			}
		}
	}
	if c.Role != manifest.RoleActive {
		return out
	}
	for _, o := range d.Result.Objects {
		if o.Kind != "HorizontalPodAutoscaler" && o.Kind != "ScaledObject" {
			continue
		}
		obj := map[string]any{}
		if yaml.Unmarshal(o.Body, &obj) != nil {
			continue
		}
		spec, _ := obj["spec"].(map[string]any)
		ref, _ := spec["scaleTargetRef"].(map[string]any)
		kind, name := str(ref, "kind"), str(ref, "name")
		if kind == "" {
			kind = "Deployment" // KEDA's default target kind
		}
		group := "apps"
		if av := str(ref, "apiVersion"); av != "" {
			group = apiGroupOf(av)
		}
		k := objectKey{group, kind, o.Namespace, name}
		out[k] = append(out[k], "/spec/replicas")
	}
	return out
}

// removedObjects lists the objects of a deployed release manifest that are not
// in keep, as removals; namespaced objects without a namespace are in the
// release namespace.
func removedObjects(manifest, namespace string, keep map[objectKey]bool, mask *SecretMask) ([]ObjectDiff, error) {
	objs, err := manifestObjects(manifest)
	if err != nil {
		return nil, err
	}
	var out []ObjectDiff
	for _, o := range objs {
		u := unstructured.Unstructured{Object: o}
		if u.GetNamespace() == "" && !isClusterScoped(u.GetKind()) {
			u.SetNamespace(namespace)
		}
		if keep[keyOf(&u)] {
			continue
		}
		od, err := diffObject(u.Object, nil, nil, mask)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", u.GetKind(), u.GetName(), err)
		}
		out = append(out, od)
	}
	return out, nil
}

func manifestObjects(manifest string) ([]map[string]any, error) {
	objs, err := render.ParseObjects(manifest, "")
	if err != nil {
		return nil, err
	}
	out := make([]map[string]any, 0, len(objs))
	for _, o := range objs {
		m := map[string]any{}
		if err := yaml.Unmarshal(o.Body, &m); err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

func isClusterScoped(kind string) bool { return render.ClusterScoped(kind) }
