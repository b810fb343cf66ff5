package render

import (
	"testing"

	"sigs.k8s.io/yaml"
)

// TestParseObjectsOddKeysAsBefore: ParseObjects reads an object's header
// from the map it already parsed, and must read what the JSON decode it
// replaced read (which is also how Helm tells a hook from a manifest:
// releaseutil.SortManifests decodes the same way, field names in any
// case). A document with a header key in another case — alone, or next to
// the exact one — is read as before: a capitalised hook annotation is still
// a hook (the plan lists when it runs), a second namespace key still counts.
func TestParseObjectsOddKeysAsBefore(t *testing.T) {
	docs := []string{
		"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n",
		"apiVersion: v1\napiversion: other/v1\nkind: ConfigMap\nmetadata: {name: a}\n",
		"apiVersion: v1\nKIND: Secret\nkind: ConfigMap\nmetadata: {name: a}\n",
		"apiVersion: v1\nkind: ConfigMap\nMetadata: {namespace: kube-system}\nmetadata: {name: a}\n",
		"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, NAMESPACE: kube-system}\n",
		"apiVersion: v1\nkind: Job\nmetadata: {name: a, Annotations: {helm.sh/hook: pre-upgrade}}\n",
		"apiVersion: v1\nkind: Job\nmetadata: {name: a, annotations: {x: y}, ANNOTATIONS: {helm.sh/hook: pre-upgrade}}\n",
		"apiVersion: v1\n\u212aind: ConfigMap\nmetadata: {name: a}\n", // Kelvin sign: folds to k
		"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: null}\n",
		"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, annotations: null}\n",
	}
	for _, d := range docs {
		var old objectHeader
		if err := yaml.Unmarshal([]byte(d), &old); err != nil {
			t.Fatalf("%q: %v", d, err)
		}
		objs, err := ParseObjects("---\n"+d, "default")
		if err != nil {
			t.Errorf("%q: %v", d, err)
			continue
		}
		ns := old.Metadata.Namespace
		if ns == "" {
			ns = "default"
		}
		hook, _ := old.Metadata.Annotations[hookAnnotation].(string)
		o := objs[0]
		if o.APIVersion != old.APIVersion || o.Kind != old.Kind || o.Name != old.Metadata.Name || o.Namespace != ns || o.Hook != hook {
			t.Errorf("%q: read as %s %s %s/%s hook %q, before as %s %s %s/%s hook %q", d,
				o.APIVersion, o.Kind, o.Namespace, o.Name, o.Hook, old.APIVersion, old.Kind, ns, old.Metadata.Name, hook)
		}
	}
}
