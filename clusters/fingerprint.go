package clusters

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"math"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// fingerprintVersion prefixes every fingerprint: a record made by another
// projection is never taken for a match.
const fingerprintVersion = "f1:"

// Fingerprint digests what a release's live objects hold of their desired
// state, so that a later run can tell, from one List per resource type and
// namespace, that nothing a drift check compares has changed since the
// objects were last known to be in their desired state (applied by Helm, or
// found so by a dry run).
//
// The digest covers each live object whole except what a write by someone
// else cannot make drift and what moves without any edit: status,
// resourceVersion, managedFields and generation, and the labels and
// annotations the desired object (with Helm's ownership markers) does not
// set (a controller's deployment.kubernetes.io/revision, say). Every field
// of the spec (or data, rules, ...) is covered whether the chart sets it or
// not, so a hand edit of any of them moves the fingerprint; a status update
// does not, which a resourceVersion alone could not tell apart.
//
// desired and live are in the same order; ok is false when an object is
// missing. namespace and release are the release's, for Helm's markers.
func Fingerprint(namespace, release string, desired, live []*unstructured.Unstructured) (fp string, ok bool) {
	if len(desired) != len(live) || len(desired) == 0 {
		return "", false
	}
	doc := make([]any, 0, 2*len(desired))
	for i, d := range desired {
		l := live[i]
		if l == nil || d == nil {
			return "", false
		}
		want := helmOwned(d, namespace, release)
		doc = append(doc, keyOf(want, want.GetNamespace()).String(), projection(want, l))
	}
	b, err := json.Marshal(doc) // maps marshal with sorted keys: the encoding is canonical
	if err != nil {
		return "", false
	}
	sum := sha256.Sum256(b)
	return fingerprintVersion + base64.RawURLEncoding.EncodeToString(sum[:18]), true
}

func (k objectKey) String() string { return k.group + "/" + k.kind + "/" + k.namespace + "/" + k.name }

// projection is the part of live that Fingerprint digests.
func projection(desired, live *unstructured.Unstructured) map[string]any {
	out := make(map[string]any, len(live.Object))
	for k, v := range live.Object {
		switch k {
		case "status", "apiVersion", "kind": // identity is in the key; a version is a view
		case "metadata":
			m, _ := v.(map[string]any)
			out[k] = projectMeta(desired, m)
		default:
			out[k] = v
		}
	}
	return out
}

func projectMeta(desired *unstructured.Unstructured, m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		switch k {
		case "resourceVersion", "managedFields", "generation":
		case "labels":
			out[k] = only(v, desired.GetLabels())
		case "annotations":
			out[k] = only(v, desired.GetAnnotations())
		default:
			out[k] = v
		}
	}
	return out
}

// only keeps the entries of a live labels or annotations map whose keys the
// desired object sets.
func only(v any, keys map[string]string) map[string]any {
	m, _ := v.(map[string]any)
	out := map[string]any{}
	for k := range keys {
		if lv, ok := m[k]; ok {
			out[k] = lv
		}
	}
	return out
}

// Holds reports whether a live object holds every field of the desired one
// (with Helm's ownership markers) at its desired value: maps may hold more
// keys, lists must have the same length and hold each item in order. Values
// the API server rewrites (a quantity 0.5 read back as 500m) do not hold;
// so a false answer only means a dry run has to decide.
func Holds(namespace, release string, desired, live *unstructured.Unstructured) bool {
	if desired == nil || live == nil {
		return false
	}
	want := helmOwned(desired, namespace, release).Object
	for k, v := range want {
		if k == "status" {
			continue
		}
		if !holds(live.Object[k], v) {
			return false
		}
	}
	return true
}

func holds(live, want any) bool {
	switch w := want.(type) {
	case nil:
		return live == nil
	case map[string]any:
		l, ok := live.(map[string]any)
		if !ok {
			return live == nil && len(w) == 0
		}
		for k, wv := range w {
			lv, found := l[k]
			if !found {
				if empty(wv) {
					continue
				}
				return false
			}
			if !holds(lv, wv) {
				return false
			}
		}
		return true
	case []any:
		l, ok := live.([]any)
		if !ok {
			return live == nil && len(w) == 0
		}
		if len(l) != len(w) {
			return false
		}
		for i := range w {
			if !holds(l[i], w[i]) {
				return false
			}
		}
		return true
	case string, bool:
		return live == want
	}
	return sameNumber(live, want)
}

// empty reports values the API server drops when they are stored: null, {}, [].
func empty(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case map[string]any:
		return len(x) == 0
	case []any:
		return len(x) == 0
	}
	return false
}

// sameNumber compares JSON numbers as decoded by encoding/json (float64,
// json.Number) or the Kubernetes decoders (int64), exactly: integers as
// integers, anything else as float64.
func sameNumber(a, b any) bool {
	ai, aInt := integer(a)
	bi, bInt := integer(b)
	if aInt && bInt {
		return ai == bi
	}
	af, aok := float(a)
	bf, bok := float(b)
	return aok && bok && !aInt && !bInt && af == bf
}

func integer(v any) (int64, bool) {
	switch n := v.(type) {
	case int64:
		return n, true
	case int:
		return int64(n), true
	case int32:
		return int64(n), true
	case float64:
		if n == math.Trunc(n) && math.Abs(n) < 1<<53 {
			return int64(n), true
		}
	case json.Number:
		if i, err := n.Int64(); err == nil {
			return i, true
		}
		if f, err := n.Float64(); err == nil && f == math.Trunc(f) && math.Abs(f) < 1<<53 {
			return int64(f), true
		}
	}
	return 0, false
}

func float(v any) (float64, bool) {
	switch n := v.(type) {
	case float64:
		return n, !math.IsNaN(n)
	case json.Number:
		f, err := n.Float64()
		return f, err == nil
	}
	return 0, false
}
