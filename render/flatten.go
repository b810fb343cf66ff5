package render

import (
	"fmt"
	"strings"
)

// maxListDepth bounds Lists nested in Lists (kubectl and Helm flatten them
// recursively); a deeper nesting is refused rather than followed.
const maxListDepth = 8

// flattenList returns the objects a document stands for when Helm applies
// it: the document itself, or, for a List, its items, recursively.
//
// Helm's kube client decodes each document with apimachinery's unstructured
// scheme and flattens the result (kube.Client.Build: resource.Builder
// Flatten). That scheme takes any object with an "items" field — whatever
// its kind: v1/List, SecretList, or a custom kind — for a list and applies
// its items one by one, an item without apiVersion and kind getting the
// list's apiVersion and its kind without the "List" suffix
// (unstructuredJSONScheme.decodeToList). A Deployment or a Secret inside
// such a wrapper is applied like any other, so the overlay, the masking
// of Secret values, the object list, the diff and the health wait must see
// it as one: the overlay flattens Lists before anything else looks at the
// manifest, and Helm stores and applies the flattened manifest.
func flattenList(obj map[string]any) ([]map[string]any, error) {
	return flattenDepth(obj, 0)
}

func flattenDepth(obj map[string]any, depth int) ([]map[string]any, error) {
	raw, isList := obj["items"]
	if !isList {
		return []map[string]any{obj}, nil
	}
	if depth >= maxListDepth {
		return nil, fmt.Errorf("lists nested more than %d deep", maxListDepth)
	}
	if raw == nil { // items: null is an empty list to the decoder
		return nil, nil
	}
	items, ok := raw.([]any)
	if !ok {
		return nil, fmt.Errorf("%s: items: not a list (%T)", objectID(obj), raw)
	}
	apiVersion, _ := obj["apiVersion"].(string)
	kind, _ := obj["kind"].(string)
	itemKind := strings.TrimSuffix(kind, "List")
	var out []map[string]any
	for i, it := range items {
		item, ok := it.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%s: items[%d]: not an object", objectID(obj), i)
		}
		ik, _ := item["kind"].(string)
		iv, _ := item["apiVersion"].(string)
		if ik == "" && iv == "" {
			item["kind"], item["apiVersion"] = itemKind, apiVersion
		}
		flat, err := flattenDepth(item, depth+1)
		if err != nil {
			return nil, fmt.Errorf("%s: items[%d]: %w", objectID(obj), i, err)
		}
		out = append(out, flat...)
	}
	return out, nil
}
