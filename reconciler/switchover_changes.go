package reconciler

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/tandem-gitops/tandem/manifest"
	"github.com/tandem-gitops/tandem/render"
)

// stageKey is one release on one cluster at one phase (0: before).
type stageKey struct {
	cluster string
	release ReleaseKey
	phase   int
}

// RenderSwitchover plans the switchover and fills in, per phase and
// release, the exact fields it changes, by rendering every release it
// touches before and after each phase (offline, as `tandem diff --against`
// renders: with the capabilities tandem.yaml declares). Releases a phase
// would not change are left out of that phase.
func RenderSwitchover(ctx context.Context, m *manifest.Manifest, r Renderer, inEffect Roles) (*SwitchoverPlan, error) {
	p := PlanSwitchover(m, inEffect)
	if p == nil {
		return nil, nil
	}
	var keys []stageKey
	var reqs []render.Request
	want := map[stageKey]bool{}
	add := func(k stageKey) error {
		if want[k] {
			return nil
		}
		want[k] = true
		c, _ := m.Cluster(k.cluster)
		rel, ok := m.Resolve(k.release.String())
		if !ok {
			return fmt.Errorf("release %s: not in the manifest", k.release)
		}
		req, err := renderRequest(m, c, rel)
		if err != nil {
			return err
		}
		req.Overlay = phaseOverlay(m, p, c, rel, k.phase)
		keys, reqs = append(keys, k), append(reqs, req)
		return nil
	}
	for _, ph := range p.Phases {
		for _, st := range ph.Steps {
			for _, rel := range st.Releases {
				for _, n := range []int{ph.Number - 1, ph.Number} {
					if err := add(stageKey{st.Cluster, rel.key(), n}); err != nil {
						return nil, err
					}
				}
			}
		}
	}
	results, err := r.RenderAll(ctx, reqs)
	if err != nil {
		return nil, fmt.Errorf("render the switchover's phases: %w", err)
	}
	byStage := map[stageKey]*render.Result{}
	for i, k := range keys {
		byStage[k] = results[i]
	}
	if err := FillChanges(p, func(cluster string, rel ReleaseKey, phase int) *render.Result {
		return byStage[stageKey{cluster, rel, phase}]
	}); err != nil {
		return nil, err
	}
	return p, nil
}

// FillChanges sets each phase release's Changes from its renders before
// and after the phase (render returns them; nil means not rendered) and
// drops the releases a phase would not change. Pure.
func FillChanges(p *SwitchoverPlan, rendered func(cluster string, rel ReleaseKey, phase int) *render.Result) error {
	for i := range p.Phases {
		ph := &p.Phases[i]
		for j := range ph.Steps {
			st := &ph.Steps[j]
			kept := st.Releases[:0]
			for _, rel := range st.Releases {
				before, after := rendered(st.Cluster, rel.key(), ph.Number-1), rendered(st.Cluster, rel.key(), ph.Number)
				if before == nil || after == nil {
					return fmt.Errorf("phase %d: cluster %q: release %s: not rendered", ph.Number, st.Cluster, rel.key())
				}
				ch, err := objectChanges(before.Objects, after.Objects)
				if err != nil {
					return fmt.Errorf("phase %d: cluster %q: release %s: %w", ph.Number, st.Cluster, rel.key(), err)
				}
				if len(ch) == 0 {
					continue
				}
				rel.Changes = ch
				kept = append(kept, rel)
			}
			st.Releases = kept
		}
	}
	return nil
}

// objectChanges lists the fields that differ between two renders of a
// release, object by object (objects are matched by kind, namespace and
// name; a switchover never adds or removes one).
func objectChanges(before, after []render.Object) ([]FieldChange, error) {
	old := map[string]render.Object{}
	for _, o := range before {
		old[o.ID()] = o
	}
	var out []FieldChange
	for _, o := range after {
		b, ok := old[o.ID()]
		if !ok {
			out = append(out, FieldChange{Object: o.ID(), Field: "(object)", To: "created"})
			continue
		}
		fb, err := flatten(b.Body)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", o.ID(), err)
		}
		fa, err := flatten(o.Body)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", o.ID(), err)
		}
		var paths []string
		for k := range fa {
			paths = append(paths, k)
		}
		for k := range fb {
			if _, ok := fa[k]; !ok {
				paths = append(paths, k)
			}
		}
		sort.Strings(paths)
		for _, k := range paths {
			if fb[k] != fa[k] {
				out = append(out, FieldChange{Object: o.ID(), Field: k, From: fb[k], To: fa[k]})
			}
		}
	}
	return out, nil
}

// flatten maps every scalar of a YAML object to its path: spec.replicas,
// metadata.annotations["tandem.dev/active-replicas"], spec.endpoints[0].x.
func flatten(body []byte) (map[string]string, error) {
	var v any
	if err := yaml.Unmarshal(body, &v); err != nil {
		return nil, err
	}
	out := map[string]string{}
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch t := v.(type) {
		case map[string]any:
			for k, c := range t {
				p := path + "." + k
				if strings.ContainsAny(k, "./") {
					p = fmt.Sprintf("%s[%q]", path, k)
				}
				walk(p, c)
			}
		case []any:
			for i, c := range t {
				walk(fmt.Sprintf("%s[%d]", path, i), c)
			}
		default:
			out[strings.TrimPrefix(path, ".")] = fmt.Sprint(t)
		}
	}
	walk("", v)
	return out, nil
}
