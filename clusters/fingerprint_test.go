package clusters

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// desiredDeployment is a Deployment as a chart renders it (numbers as
// encoding/json decodes them: float64).
const desiredDeployment = `
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
  labels: {app: web}
  annotations: {team: shop}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: app
          image: registry.local/web:1.0
          ports: [{containerPort: 8080}]
          resources: {limits: {memory: 64Mi}}
`

func fromYAML(t *testing.T, s string) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(s), &u.Object); err != nil {
		t.Fatal(err)
	}
	return u
}

// liveDeployment is desiredDeployment as the API server returns it after
// Helm created it: Helm's markers, defaults, server metadata, integers as
// int64 (the Kubernetes decoders' type).
func liveDeployment(t *testing.T) *unstructured.Unstructured {
	t.Helper()
	u := fromYAML(t, desiredDeployment)
	u.Object = toInt64(u.Object).(map[string]any)
	u.SetLabels(map[string]string{"app": "web", "app.kubernetes.io/managed-by": "Helm"})
	u.SetAnnotations(map[string]string{"team": "shop", "meta.helm.sh/release-name": "web", "meta.helm.sh/release-namespace": "shop"})
	u.SetResourceVersion("100")
	u.SetGeneration(1)
	u.SetUID("6f1c")
	u.SetManagedFields(nil)
	c, _, _ := unstructured.NestedSlice(u.Object, "spec", "template", "spec", "containers")
	c[0].(map[string]any)["imagePullPolicy"] = "IfNotPresent"
	c[0].(map[string]any)["terminationMessagePath"] = "/dev/termination-log"
	unstructured.SetNestedSlice(u.Object, c, "spec", "template", "spec", "containers")
	unstructured.SetNestedField(u.Object, int64(600), "spec", "progressDeadlineSeconds")
	return u
}

func toInt64(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = toInt64(e)
		}
	case []any:
		for i, e := range x {
			x[i] = toInt64(e)
		}
	case float64:
		return int64(x)
	}
	return v
}

func TestFingerprint(t *testing.T) {
	desired := fromYAML(t, desiredDeployment)
	base, ok := Fingerprint("shop", "web", []*unstructured.Unstructured{desired}, []*unstructured.Unstructured{liveDeployment(t)})
	if !ok || !strings.HasPrefix(base, fingerprintVersion) {
		t.Fatalf("Fingerprint = %q, %v", base, ok)
	}
	tests := []struct {
		name string
		edit func(u *unstructured.Unstructured)
		same bool
	}{
		// What moves without anyone editing the object.
		{"status written by the controller", func(u *unstructured.Unstructured) {
			unstructured.SetNestedField(u.Object, int64(2), "status", "availableReplicas")
		}, true},
		{"resourceVersion, generation, managedFields", func(u *unstructured.Unstructured) {
			u.SetResourceVersion("250")
			u.SetGeneration(3)
			u.SetManagedFields(nil)
			unstructured.SetNestedSlice(u.Object, []any{map[string]any{"manager": "kube-controller-manager"}}, "metadata", "managedFields")
		}, true},
		{"an annotation the chart does not set (the controller's revision)", func(u *unstructured.Unstructured) {
			a := u.GetAnnotations()
			a["deployment.kubernetes.io/revision"] = "1"
			u.SetAnnotations(a)
		}, true},
		{"a label the chart does not set", func(u *unstructured.Unstructured) {
			l := u.GetLabels()
			l["added-by"] = "hand"
			u.SetLabels(l)
		}, true},
		// Edits.
		{"image edited", func(u *unstructured.Unstructured) {
			c, _, _ := unstructured.NestedSlice(u.Object, "spec", "template", "spec", "containers")
			c[0].(map[string]any)["image"] = "registry.local/web:HACKED"
			unstructured.SetNestedSlice(u.Object, c, "spec", "template", "spec", "containers")
		}, false},
		{"replicas scaled", func(u *unstructured.Unstructured) {
			unstructured.SetNestedField(u.Object, int64(5), "spec", "replicas")
		}, false},
		{"a defaulted field the chart does not set", func(u *unstructured.Unstructured) {
			unstructured.SetNestedField(u.Object, int64(30), "spec", "progressDeadlineSeconds")
		}, false},
		{"a field added to the spec", func(u *unstructured.Unstructured) {
			unstructured.SetNestedField(u.Object, int64(30), "spec", "minReadySeconds")
		}, false},
		{"a desired label changed", func(u *unstructured.Unstructured) {
			l := u.GetLabels()
			l["app"] = "other"
			u.SetLabels(l)
		}, false},
		{"a desired annotation removed", func(u *unstructured.Unstructured) {
			a := u.GetAnnotations()
			delete(a, "team")
			u.SetAnnotations(a)
		}, false},
		{"Helm's ownership marker removed", func(u *unstructured.Unstructured) {
			a := u.GetAnnotations()
			delete(a, "meta.helm.sh/release-name")
			u.SetAnnotations(a)
		}, false},
		{"deleted and recreated (new uid)", func(u *unstructured.Unstructured) { u.SetUID("9a9a") }, false},
		{"being deleted", func(u *unstructured.Unstructured) {
			unstructured.SetNestedField(u.Object, "2026-12-01T07:00:00Z", "metadata", "deletionTimestamp")
		}, false},
		{"a finalizer added", func(u *unstructured.Unstructured) { u.SetFinalizers([]string{"example.com/hold"}) }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			live := liveDeployment(t)
			tt.edit(live)
			got, ok := Fingerprint("shop", "web", []*unstructured.Unstructured{desired}, []*unstructured.Unstructured{live})
			if !ok {
				t.Fatal("no fingerprint")
			}
			if (got == base) != tt.same {
				t.Errorf("fingerprint equal to the unedited one: %v, want %v", got == base, tt.same)
			}
		})
	}

	t.Run("a missing object has none", func(t *testing.T) {
		if fp, ok := Fingerprint("shop", "web", []*unstructured.Unstructured{desired}, []*unstructured.Unstructured{nil}); ok {
			t.Errorf("Fingerprint with a missing object = %q, true", fp)
		}
		if fp, ok := Fingerprint("shop", "web", nil, nil); ok {
			t.Errorf("Fingerprint of nothing = %q, true", fp)
		}
	})
}

func TestHolds(t *testing.T) {
	desired := fromYAML(t, desiredDeployment)
	tests := []struct {
		name string
		edit func(u *unstructured.Unstructured)
		want bool
	}{
		{"as created, with defaults and markers", func(*unstructured.Unstructured) {}, true},
		{"a value differs", func(u *unstructured.Unstructured) {
			unstructured.SetNestedField(u.Object, int64(3), "spec", "replicas")
		}, false},
		{"a field missing", func(u *unstructured.Unstructured) {
			unstructured.RemoveNestedField(u.Object, "spec", "selector")
		}, false},
		{"Helm's marker missing", func(u *unstructured.Unstructured) {
			u.SetLabels(map[string]string{"app": "web"})
		}, false},
		{"a desired label missing", func(u *unstructured.Unstructured) {
			u.SetLabels(map[string]string{"app.kubernetes.io/managed-by": "Helm"})
		}, false},
		{"a list item more", func(u *unstructured.Unstructured) {
			c, _, _ := unstructured.NestedSlice(u.Object, "spec", "template", "spec", "containers")
			c = append(c, map[string]any{"name": "sidecar", "image": "x"})
			unstructured.SetNestedSlice(u.Object, c, "spec", "template", "spec", "containers")
		}, false},
		{"a quantity the server rewrote", func(u *unstructured.Unstructured) {
			c, _, _ := unstructured.NestedSlice(u.Object, "spec", "template", "spec", "containers")
			c[0].(map[string]any)["resources"] = map[string]any{"limits": map[string]any{"memory": "67108864"}}
			unstructured.SetNestedSlice(u.Object, c, "spec", "template", "spec", "containers")
		}, false},
		{"a number as a string", func(u *unstructured.Unstructured) {
			unstructured.SetNestedField(u.Object, "2", "spec", "replicas")
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			live := liveDeployment(t)
			tt.edit(live)
			if got := Holds("shop", "web", desired, live); got != tt.want {
				t.Errorf("Holds = %v, want %v", got, tt.want)
			}
		})
	}
	if Holds("shop", "web", desired, nil) {
		t.Error("Holds(desired, nil) = true")
	}
	empty := fromYAML(t, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: shop, annotations: {}}\ndata: {}\n")
	live := fromYAML(t, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: shop, labels: {app.kubernetes.io/managed-by: Helm}, annotations: {meta.helm.sh/release-name: web, meta.helm.sh/release-namespace: shop}}\n")
	if !Holds("shop", "web", empty, live) {
		t.Error("empty maps in the render must hold against a live object where the server dropped them")
	}
}

func TestSameNumber(t *testing.T) {
	tests := []struct {
		a, b any
		want bool
	}{
		{int64(2), float64(2), true},
		{int64(2), float64(2.5), false},
		{float64(0.5), float64(0.5), true},
		{int64(1 << 60), float64(1 << 60), false}, // past float64's exact integers: not trusted
		{"2", int64(2), false},
	}
	for _, tt := range tests {
		if got := sameNumber(tt.a, tt.b); got != tt.want {
			t.Errorf("sameNumber(%#v, %#v) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}
