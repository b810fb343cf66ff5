package reconciler

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	udiff "github.com/aymanbagabas/go-udiff"
	"github.com/fluxcd/pkg/ssa/jsondiff"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	"github.com/tandem-gitops/tandem/manifest"
	"github.com/tandem-gitops/tandem/render"
)

// DiffAgainst compares the desired state of two revisions of the manifest,
// cluster by cluster: what merging a change will do to each cluster,
// including overlay effects (a change that only touches Standby shows only
// there). No cluster is contacted.
func DiffAgainst(from *manifest.Manifest, fromResults []*render.Result, to *manifest.Manifest, toResults []*render.Result, fromRev, toRev string) (*DiffReport, error) {
	rep := &DiffReport{Mode: ModeAgainst, From: fromRev, To: toRev}
	mask := NewSecretMask()
	old, cur := byClusterRelease(fromResults), byClusterRelease(toResults)
	for _, c := range orderClusters(to, from) {
		cd := ClusterDiff{Name: c.Name, Role: string(c.Role), Releases: []ReleaseDiff{}}
		keys := unionKeys(old[c.Name], cur[c.Name])
		for _, k := range keys {
			rd, err := diffRelease(old[c.Name][k], cur[c.Name][k], againstIgnores(to, from, old[c.Name][k], cur[c.Name][k]), mask)
			if err != nil {
				return nil, fmt.Errorf("cluster %q: release %s: %w", c.Name, k, err)
			}
			cd.Releases = append(cd.Releases, rd)
		}
		cd.Guard = guardDiff(from, to, c.Name, old[c.Name], cur[c.Name]) // reconciler/guard.go
		rep.Clusters = append(rep.Clusters, cd)
	}
	return rep, nil
}

// orderClusters lists the clusters of the newer manifest, then any that only
// the older one had, Active ones first.
func orderClusters(newer, older *manifest.Manifest) []manifest.Cluster {
	var out []manifest.Cluster
	seen := map[string]bool{}
	for _, m := range []*manifest.Manifest{newer, older} {
		if m == nil {
			continue
		}
		for _, c := range m.Clusters {
			if !seen[c.Name] {
				seen[c.Name] = true
				out = append(out, c)
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		return out[i].Role == manifest.RoleActive && out[j].Role != manifest.RoleActive
	})
	return out
}

func byClusterRelease(results []*render.Result) map[string]map[string]*render.Result {
	out := map[string]map[string]*render.Result{}
	for _, r := range results {
		if r == nil {
			continue
		}
		if out[r.Cluster] == nil {
			out[r.Cluster] = map[string]*render.Result{}
		}
		out[r.Cluster][r.Namespace+"/"+r.Release] = r
	}
	return out
}

func unionKeys(a, b map[string]*render.Result) []string {
	set := map[string]bool{}
	for k := range a {
		set[k] = true
	}
	for k := range b {
		set[k] = true
	}
	keys := make([]string, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// againstIgnores collects the JSON pointers the release's ignore rules leave
// out of diff --against, per object of either render: the rules the newer and
// the older manifest both hold (a rule the change adds is unreviewed, so it
// does not hide anything in the change's own plan), or the older one's for a
// release the change removes. No rule hides a field tandem's overlay sets
// (overlayFields). (An HPA's replicas, which live diffs leave out on Active
// clusters, are a change a merge applies, so they stay in.)
func againstIgnores(newer, older *manifest.Manifest, old, cur *render.Result) map[objectKey][]string {
	out := generatedPaths(old, cur)
	r := cur
	if r == nil {
		r = old
	}
	if older == nil || r == nil {
		return out
	}
	rules := releaseRules(older, r)
	if cur != nil {
		inNewer := releaseRules(newer, r)
		rules = slices.DeleteFunc(rules, func(rule manifest.IgnoreRule) bool {
			return !slices.ContainsFunc(inNewer, func(n manifest.IgnoreRule) bool {
				return n.Kind == rule.Kind && n.Name == rule.Name && slices.Equal(n.Paths, rule.Paths)
			})
		})
	}
	if len(rules) == 0 {
		return out
	}
	oldObjs, err1 := objectsOf(old)
	curObjs, err2 := objectsOf(cur)
	if err1 != nil || err2 != nil {
		return out // diffRelease reports the parse error
	}
	done := map[objectKey]bool{}
	for _, res := range []*render.Result{old, cur} {
		if res == nil {
			continue
		}
		for _, o := range res.Objects {
			k := objectKeyOf(o)
			if !done[k] {
				done[k] = true
				keep := append(overlayFields(oldObjs[k]), overlayFields(curObjs[k])...)
				out[k] = append(out[k], withoutOverlayFields(rulePaths(rules, o), keep)...)
			}
		}
	}
	for k, p := range out {
		slices.Sort(p)
		out[k] = slices.Compact(p)
	}
	return out
}

// releaseRules returns the ignore rules m gives r's release.
func releaseRules(m *manifest.Manifest, r *render.Result) []manifest.IgnoreRule {
	if m == nil {
		return nil
	}
	for _, rel := range m.Releases {
		if rel.Name == r.Release && rel.Namespace == r.Namespace {
			return slices.Clone(rel.Ignore)
		}
	}
	return nil
}

// overlayFields are the JSON pointers of the fields tandem's overlay set in
// obj: a scaled-down workload's replicas and its active-replicas annotation,
// a suspended CronJob's suspend, KEDA's paused-replicas, DNS weights and set
// identifiers. No ignore rule hides them: a Standby scaled
// up, a CronJob resumed or a weight changed is what decides which cluster
// serves and runs jobs.
func overlayFields(obj map[string]any) []string {
	if obj == nil {
		return nil
	}
	var out []string
	ann, _ := meta(obj)["annotations"].(map[string]any)
	for k := range ann {
		if k == render.AnnotationActiveCount || k == render.AnnotationKEDAPaused || strings.HasSuffix(k, "aws-weight") || strings.HasSuffix(k, "set-identifier") {
			out = append(out, "/metadata/annotations/"+escapePointer(k))
		}
	}
	spec, _ := obj["spec"].(map[string]any)
	if ann[render.AnnotationActiveCount] != nil {
		out = append(out, "/spec/replicas")
	}
	if str(obj, "kind") == "CronJob" && spec["suspend"] == true {
		out = append(out, "/spec/suspend")
	}
	if str(obj, "kind") == "DNSEndpoint" {
		out = append(out, "/spec/endpoints")
	}
	return out
}

// withoutOverlayFields drops from paths each one that is, or holds, one of
// the overlay's fields.
func withoutOverlayFields(paths, overlay []string) []string {
	return slices.DeleteFunc(paths, func(p string) bool {
		return slices.ContainsFunc(overlay, func(f string) bool {
			return f == p || strings.HasPrefix(f, strings.TrimSuffix(p, "/")+"/") || p == "" || p == "/"
		})
	})
}

func escapePointer(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

// generatedPaths collects the fields either render found generated afresh
// (render.Result.Generated) that both renders' objects have: rendered
// without a cluster, they differ at every render and say nothing about the
// change, and reconcile keeps the deployed values there. A generated field
// only one side has — a new Secret key, a new object, a key the change
// removes — is what the merge writes (a fresh value where the deployed
// revision has none) or deletes, and is shown.
func generatedPaths(old, cur *render.Result) map[objectKey][]string {
	out := map[objectKey][]string{}
	if old == nil || cur == nil || (len(old.Generated) == 0 && len(cur.Generated) == 0) {
		return out
	}
	oldObjs, err1 := objectsOf(old)
	curObjs, err2 := objectsOf(cur)
	if err1 != nil || err2 != nil {
		return out // diffRelease reports the parse error
	}
	for _, res := range []*render.Result{old, cur} {
		byID := map[string][]string{}
		for _, g := range res.Generated {
			byID[g.Object] = g.Paths
		}
		for _, o := range res.Objects {
			k := objectKeyOf(o)
			for _, p := range byID[o.Identity()] {
				if render.HasField(oldObjs[k], p) && render.HasField(curObjs[k], p) {
					out[k] = append(out[k], p)
				}
			}
		}
	}
	return out
}

// rulePaths returns the paths of the rules that match o.
func rulePaths(rules []manifest.IgnoreRule, o render.Object) []string {
	var paths []string
	for _, r := range rules {
		if (r.Kind == "" || r.Kind == o.Kind) && (r.Name == "" || r.Name == o.Name) {
			paths = append(paths, r.Paths...)
		}
	}
	return paths
}

// diffRelease compares one release's two renders; either may be nil. ignore
// holds, per object, the JSON pointers left out of the comparison.
func diffRelease(old, cur *render.Result, ignore map[objectKey][]string, mask *SecretMask) (ReleaseDiff, error) {
	var rd ReleaseDiff
	switch {
	case old == nil:
		rd = ReleaseDiff{Name: cur.Release, Namespace: cur.Namespace, Change: ChangeAdded, Notes: []string{"new release on this cluster"}}
	case cur == nil:
		rd = ReleaseDiff{Name: old.Release, Namespace: old.Namespace, Change: ChangeRemoved, Notes: []string{"release would be uninstalled (pruned) from this cluster"}}
	default:
		rd = ReleaseDiff{Name: cur.Release, Namespace: cur.Namespace, Change: ChangeUnchanged}
		if old.ChartName != cur.ChartName || old.ChartVersion != cur.ChartVersion {
			rd.Notes = append(rd.Notes, fmt.Sprintf("chart %s-%s → %s-%s", old.ChartName, old.ChartVersion, cur.ChartName, cur.ChartVersion))
		}
	}
	oldObjs, err := objectsOf(old)
	if err != nil {
		return rd, err
	}
	curObjs, err := objectsOf(cur)
	if err != nil {
		return rd, err
	}
	ignoredOnly := false
	for _, k := range sortedObjectKeys(oldObjs, curObjs) {
		od, err := diffObject(oldObjs[k], curObjs[k], ignore[k], mask)
		if err != nil {
			return rd, err
		}
		if od.Change != ChangeUnchanged {
			rd.Objects = append(rd.Objects, od)
		} else if len(ignore[k]) > 0 && oldObjs[k] != nil && curObjs[k] != nil {
			whole, err := diffObject(oldObjs[k], curObjs[k], nil, mask)
			if err != nil {
				return rd, err
			}
			ignoredOnly = ignoredOnly || whole.Change != ChangeUnchanged
		}
	}
	hookDiffs, err := diffHooks(old, cur, mask)
	if err != nil {
		return rd, err
	}
	rd.Objects = append(rd.Objects, hookDiffs...)
	crds, err := diffCRDs(old, cur, mask)
	if err != nil {
		return rd, err
	}
	if cur == nil {
		if len(old.CRDs) > 0 {
			rd.Notes = append(rd.Notes, "the CRDs of its chart's crds/ stay in the cluster: Helm never deletes them")
		}
	} else if len(crds) > 0 {
		rd.Objects = append(rd.Objects, crds...)
		if old != nil && cur != nil {
			rd.Notes = append(rd.Notes, crdUpgradeNote)
		}
	}
	if rd.Change == ChangeUnchanged && (len(rd.Objects) > 0 || len(rd.Notes) > 0 || old.Digest != cur.Digest) {
		rd.Change = ChangeChanged
		switch {
		case len(rd.Objects) > 0 || len(rd.Notes) > 0:
		case ignoredOnly:
			rd.Notes = append(rd.Notes, "only fields its ignore rules leave out changed; a merge still upgrades it")
		default:
			rd.Notes = append(rd.Notes, "values or hooks changed; the rendered objects are the same")
		}
	}
	if cur != nil && rd.Change != ChangeUnchanged {
		op := "upgrade"
		if rd.Change == ChangeAdded {
			op = "install"
		}
		if n := hooksNote(cur, op); n != "" {
			rd.Notes = append(rd.Notes, n)
		}
	}
	if cur != nil && cur.UsedLookup {
		// Rendered without a cluster, lookup found nothing: what it keeps
		// (a generated password) shows here as new. Reconcile renders
		// with the cluster's lookup, so it keeps the live value.
		rd.UsedLookup = true
		if rd.Change != ChangeUnchanged {
			rd.Notes = append(rd.Notes, "its templates call lookup, which finds nothing without a cluster: values it keeps (a generated password) may show as changed here, while reconcile keeps the live ones")
		}
	}
	return rd, nil
}

// crdUpgradeNote goes with a change to the CRDs of a release that exists.
const crdUpgradeNote = "its chart's crds/ changed: Helm creates CRDs only at a release's first install and never upgrades or deletes them, so apply the change yourself (kubectl apply --server-side -f <chart>/crds/)"

// diffCRDs compares the CRDs of two renders of a release (either may be nil).
func diffCRDs(old, cur *render.Result, mask *SecretMask) ([]ObjectDiff, error) {
	crdsOf := func(r *render.Result) (map[objectKey]map[string]any, error) {
		if r == nil {
			return nil, nil
		}
		return objectsOf(&render.Result{Objects: r.CRDs})
	}
	oldObjs, err := crdsOf(old)
	if err != nil {
		return nil, fmt.Errorf("crds: %w", err)
	}
	curObjs, err := crdsOf(cur)
	if err != nil {
		return nil, fmt.Errorf("crds: %w", err)
	}
	var out []ObjectDiff
	for _, k := range sortedObjectKeys(oldObjs, curObjs) {
		od, err := diffObject(oldObjs[k], curObjs[k], nil, mask)
		if err != nil {
			return nil, err
		}
		if od.Change != ChangeUnchanged {
			out = append(out, od)
		}
	}
	return out, nil
}

// objectKey identifies an object across renders and clusters.
type objectKey struct{ group, kind, namespace, name string }

func objectsOf(r *render.Result) (map[objectKey]map[string]any, error) {
	if r == nil {
		return map[objectKey]map[string]any{}, nil
	}
	return objectsIn(r.Objects)
}

func objectsIn(objs []render.Object) (map[objectKey]map[string]any, error) {
	out := map[objectKey]map[string]any{}
	for _, o := range objs {
		obj := map[string]any{}
		if err := yaml.Unmarshal(o.Body, &obj); err != nil {
			return nil, fmt.Errorf("%s: %w", o.ID(), err)
		}
		if md, ok := obj["metadata"].(map[string]any); ok && o.Namespace != "" {
			md["namespace"] = o.Namespace // Helm leaves it to the install; the diff names it
		}
		out[objectKeyOf(o)] = obj
	}
	return out, nil
}

func sortedObjectKeys(a, b map[objectKey]map[string]any) []objectKey {
	set := map[objectKey]bool{}
	for k := range a {
		set[k] = true
	}
	for k := range b {
		set[k] = true
	}
	keys := make([]objectKey, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		x, y := keys[i], keys[j]
		if x.kind != y.kind {
			return x.kind < y.kind
		}
		if x.namespace != y.namespace {
			return x.namespace < y.namespace
		}
		if x.name != y.name {
			return x.name < y.name
		}
		return x.group < y.group
	})
	return keys
}

// diffObject compares two versions of an object (either may be nil) after
// cleaning server-populated fields, dropping ignored JSON pointers and masking
// Secret values with mask, and returns a unified diff of their YAML.
func diffObject(old, cur map[string]any, ignore []string, mask *SecretMask) (ObjectDiff, error) {
	ref := cur
	if ref == nil {
		ref = old
	}
	od := ObjectDiff{APIVersion: str(ref, "apiVersion"), Kind: str(ref, "kind"), Name: str(meta(ref), "name"), Namespace: str(meta(ref), "namespace")}
	oldY, err := cleanYAML(old, ignore, mask)
	if err != nil {
		return od, err
	}
	curY, err := cleanYAML(cur, ignore, mask)
	if err != nil {
		return od, err
	}
	switch {
	case old == nil:
		od.Change = ChangeAdded
	case cur == nil:
		od.Change = ChangeRemoved
	case oldY == curY:
		od.Change = ChangeUnchanged
		return od, nil
	default:
		od.Change = ChangeChanged
	}
	od.Diff = unifiedDiff(oldY, curY)
	return od, nil
}

// unifiedDiff is a unified diff without the file header lines.
func unifiedDiff(old, cur string) string {
	d := udiff.Unified("live", "desired", old, cur)
	lines := strings.SplitAfter(d, "\n")
	for len(lines) > 0 && (strings.HasPrefix(lines[0], "--- ") || strings.HasPrefix(lines[0], "+++ ")) {
		lines = lines[1:]
	}
	return strings.Join(lines, "")
}

// Fields the API server owns; they never count as a difference.
var serverMetadata = []string{"managedFields", "resourceVersion", "generation", "uid", "creationTimestamp", "selfLink", "deletionTimestamp", "deletionGracePeriodSeconds"}

func cleanYAML(obj map[string]any, ignore []string, mask *SecretMask) (string, error) {
	if obj == nil {
		return "", nil
	}
	c := runtime.DeepCopyJSON(obj)
	delete(c, "status")
	if md, ok := c["metadata"].(map[string]any); ok {
		for _, f := range serverMetadata {
			delete(md, f)
		}
		if ann, ok := md["annotations"].(map[string]any); ok {
			delete(ann, "kubectl.kubernetes.io/last-applied-configuration")
			delete(ann, "deployment.kubernetes.io/revision")
			if len(ann) == 0 {
				delete(md, "annotations")
			}
		}
	}
	if len(ignore) > 0 {
		u := &unstructured.Unstructured{Object: c}
		if err := jsondiff.ApplyPatchToUnstructured(u, jsondiff.GenerateRemovePatch(ignore...)); err != nil {
			return "", fmt.Errorf("ignore rules: %w", err)
		}
		c = u.Object
	}
	mask.Mask(c)
	b, err := yaml.Marshal(c)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

func meta(obj map[string]any) map[string]any {
	m, _ := obj["metadata"].(map[string]any)
	return m
}

func str(m map[string]any, key string) string {
	s, _ := m[key].(string)
	return s
}

func apiGroupOf(apiVersion string) string {
	if i := strings.LastIndex(apiVersion, "/"); i >= 0 {
		return apiVersion[:i]
	}
	return ""
}
