package render

import (
	"bytes"
	"fmt"
	"slices"
	"strings"

	"helm.sh/helm/v3/pkg/postrender"
	"sigs.k8s.io/yaml"
)

// Planned is the post-renderer an install or upgrade gets instead of the
// Overlay: it hands Helm the planned manifest (Result.Manifest, already
// overlaid), so that what is applied is byte for byte what was planned,
// digested, diffed and shown, whatever Helm's own second render produced.
// Helm stores the post-renderer's output as the release manifest and
// applies exactly that (Configuration.renderResources, helm v3.22).
//
// Substitution, not verification, is what makes that hold: a chart that
// calls randAlphaNum, now or lookup renders differently every time, so
// comparing the two renders byte for byte would refuse it forever. Run
// checks only that Helm's render names the same objects (source template,
// apiVersion, kind, namespace, name) as the plan, which catches an install
// handed another chart, other values or other capabilities than the plan
// used; on a mismatch it refuses, naming the release and the objects, and
// nothing is applied.
//
// Hooks are not covered: Helm runs its own render's hooks and does not
// post-render them.
type Planned struct {
	// Release names the release in errors, as "namespace/name".
	Release string
	// Manifest is the planned manifest, Result.Manifest.
	Manifest string
}

var _ postrender.PostRenderer = Planned{}

// Run returns the planned manifest in place of Helm's render in.
func (p Planned) Run(in *bytes.Buffer) (*bytes.Buffer, error) {
	got, err := identities(in.String())
	if err != nil {
		return nil, fmt.Errorf("release %q: planned manifest: helm's render: %w", p.Release, err)
	}
	want, err := identities(p.Manifest)
	if err != nil {
		return nil, fmt.Errorf("release %q: planned manifest: %w", p.Release, err)
	}
	if !slices.Equal(got, want) {
		return nil, fmt.Errorf("release %q: refusing to apply: the planned manifest does not name the objects Helm renders now (%s); plan again", p.Release, describeMismatch(want, got))
	}
	return bytes.NewBufferString(p.Manifest), nil
}

// identities lists the objects of a manifest as sorted "source: apiVersion
// kind namespace/name" strings. Documents without content (a template
// that rendered only comments) are no objects: the overlay drops them.
func identities(manifest string) ([]string, error) {
	docs, err := splitDocuments([]byte(manifest))
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(docs))
	for _, d := range docs {
		obj := map[string]any{}
		if err := yaml.Unmarshal(d.body, &obj); err != nil {
			return nil, fmt.Errorf("%s: %w", d.sourceOr("manifest"), err)
		}
		if len(obj) == 0 {
			continue
		}
		// Helm's render holds Lists the plan has flattened: compare the
		// objects Helm would apply.
		objs, err := flattenList(obj)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", d.sourceOr("manifest"), err)
		}
		for _, obj := range objs {
			apiVersion, _ := obj["apiVersion"].(string)
			kind, _ := obj["kind"].(string)
			meta, _ := obj["metadata"].(map[string]any)
			name, _ := meta["name"].(string)
			ns, _ := meta["namespace"].(string)
			ids = append(ids, d.source+": "+apiVersion+" "+Object{Kind: kind, Namespace: ns, Name: name}.ID())
		}
	}
	slices.Sort(ids)
	return ids, nil
}

// describeMismatch names what only one side has.
func describeMismatch(planned, now []string) string {
	var parts []string
	if only := missing(planned, now); len(only) > 0 {
		parts = append(parts, "only planned: "+strings.Join(only, ", "))
	}
	if only := missing(now, planned); len(only) > 0 {
		parts = append(parts, "only rendered now: "+strings.Join(only, ", "))
	}
	if len(parts) == 0 {
		parts = append(parts, "the same objects a different number of times")
	}
	return strings.Join(parts, "; ")
}

// missing returns the entries of a not in b; both are sorted.
func missing(a, b []string) []string {
	var out []string
	for _, s := range a {
		if _, found := slices.BinarySearch(b, s); !found {
			out = append(out, s)
		}
	}
	return out
}
