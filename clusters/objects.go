package clusters

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// object is one manifest object resolved against a cluster's API.
type object struct {
	u          *unstructured.Unstructured
	gvr        schema.GroupVersionResource
	namespace  string // "" for cluster-scoped objects
	namespaced bool
}

func (o object) kind() string { return o.u.GetKind() }
func (o object) name() string { return o.u.GetName() }

// String names the object as messages do: "Deployment shop/web", or
// "ClusterRole viewer" for a cluster-scoped one.
func (o object) String() string { return objectName(o.kind(), o.namespace, o.name()) }

func objectName(kind, namespace, name string) string {
	if namespace == "" {
		return kind + " " + name
	}
	return kind + " " + namespace + "/" + name
}

// objectKey identifies an object independently of its API version, so the
// same object rendered under two versions of its group is one object.
type objectKey struct {
	group, kind, namespace, name string
}

func keyOf(u *unstructured.Unstructured, namespace string) objectKey {
	gvk := u.GroupVersionKind()
	return objectKey{gvk.Group, gvk.Kind, namespace, u.GetName()}
}

// parseManifest splits a multi-document YAML (or JSON) manifest, as Helm
// stores it, into objects. Empty documents are skipped and List kinds
// flattened; a document without apiVersion, kind or name is an error
// naming its position.
func parseManifest(manifest string) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(manifest), 4096)
	var out []*unstructured.Unstructured
	for doc := 1; ; doc++ {
		var m map[string]any
		err := dec.Decode(&m)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("manifest document %d: %w", doc, err)
		}
		if len(m) == 0 {
			continue
		}
		u := &unstructured.Unstructured{Object: m}
		if u.IsList() {
			err := u.EachListItem(func(o runtime.Object) error {
				item, ok := o.(*unstructured.Unstructured)
				if !ok {
					return fmt.Errorf("list item is %T", o)
				}
				out = append(out, item)
				return nil
			})
			if err != nil {
				return nil, fmt.Errorf("manifest document %d: %w", doc, err)
			}
			continue
		}
		if u.GetAPIVersion() == "" || u.GetKind() == "" || u.GetName() == "" {
			return nil, fmt.Errorf("manifest document %d: apiVersion, kind and metadata.name are required", doc)
		}
		out = append(out, u)
	}
}

// resolve maps parsed objects to API resources, giving namespaced objects
// without a namespace the default one (the release namespace, as Helm does)
// and dropping any namespace from cluster-scoped ones.
func resolve(mapper meta.RESTMapper, objs []*unstructured.Unstructured, defaultNamespace string) ([]object, error) {
	out := make([]object, 0, len(objs))
	for _, u := range objs {
		gvk := u.GroupVersionKind()
		m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", objectName(gvk.Kind, u.GetNamespace(), u.GetName()), err)
		}
		o := object{u: u, gvr: m.Resource}
		if m.Scope.Name() == meta.RESTScopeNameNamespace {
			o.namespaced = true
			o.namespace = u.GetNamespace()
			if o.namespace == "" {
				o.namespace = defaultNamespace
			}
		}
		out = append(out, o)
	}
	return out, nil
}
