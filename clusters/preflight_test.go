package clusters

import (
	"errors"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
)

var deploymentsGK = schema.GroupKind{Group: "apps", Kind: "Deployment"}

func TestIsImmutable(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"plain error", errors.New("field is immutable"), false},
		{"selector", apierrors.NewInvalid(deploymentsGK, "web", field.ErrorList{
			field.Invalid(field.NewPath("spec", "selector"), "x", "field is immutable"),
		}), true},
		{"statefulset spec", apierrors.NewInvalid(schema.GroupKind{Group: "apps", Kind: "StatefulSet"}, "db", field.ErrorList{
			field.Forbidden(field.NewPath("spec"), "updates to statefulset spec for fields other than 'replicas', 'template' are forbidden"),
		}), true},
		{"immutable mixed with a real error is not recreatable", apierrors.NewInvalid(deploymentsGK, "web", field.ErrorList{
			field.Invalid(field.NewPath("spec", "selector"), "x", "field is immutable"),
			field.Invalid(field.NewPath("spec", "replicas"), -1, "must be greater than or equal to 0"),
		}), false},
		{"invalid value", apierrors.NewInvalid(deploymentsGK, "web", field.ErrorList{
			field.Invalid(field.NewPath("spec", "replicas"), -1, "must be greater than or equal to 0"),
		}), false},
		{"conflict", apierrors.NewConflict(schema.GroupResource{Resource: "deployments"}, "web", errors.New("x")), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := isImmutable(tt.err); got != tt.want {
				t.Errorf("isImmutable(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

func TestNamespaceMissing(t *testing.T) {
	nsGone := apierrors.NewNotFound(schema.GroupResource{Resource: "namespaces"}, "shop")
	if !namespaceMissing(nsGone, "shop") {
		t.Error("namespaceMissing(namespace not found) = false")
	}
	if namespaceMissing(nsGone, "other") {
		t.Error("namespaceMissing(other namespace) = true")
	}
	if namespaceMissing(apierrors.NewNotFound(schema.GroupResource{Resource: "configmaps"}, "shop"), "shop") {
		t.Error("namespaceMissing(configmap not found) = true")
	}
}

func TestChecksError(t *testing.T) {
	web := object{u: &unstructured.Unstructured{Object: map[string]any{"kind": "Deployment", "metadata": map[string]any{"name": "web"}}}, namespace: "shop"}
	cm := object{u: &unstructured.Unstructured{Object: map[string]any{"kind": "ConfigMap", "metadata": map[string]any{"name": "cfg"}}}, namespace: "shop"}
	immutable := check{obj: web, immutable: true, err: errors.New("spec.selector: field is immutable")}
	invalid := check{obj: cm, err: errors.New("data: invalid")}

	if err := checksError([]check{{obj: cm}}, false); err != nil {
		t.Errorf("checksError(all ok) = %v", err)
	}
	err := checksError([]check{immutable, invalid}, false)
	if err == nil || !errors.Is(err, ErrImmutable) || !strings.Contains(err.Error(), "Deployment shop/web: ") || !strings.Contains(err.Error(), "ConfigMap shop/cfg: data: invalid") {
		t.Errorf("checksError(immutable, invalid) = %v: want ErrImmutable and both objects named", err)
	}
	err = checksError([]check{immutable, invalid}, true)
	if err == nil || errors.Is(err, ErrImmutable) || strings.Contains(err.Error(), "web") {
		t.Errorf("checksError(force) = %v: want only the invalid ConfigMap", err)
	}
}

func TestThreeWayPatch(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	deploy := func(app string) *unstructured.Unstructured {
		return &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "apps/v1", "kind": "Deployment", "metadata": map[string]any{"name": "web"},
			"spec": map[string]any{"selector": map[string]any{"matchLabels": map[string]any{"app": app}}},
		}}
	}
	p, pt, err := threeWayPatch(scheme, schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}, deploy("web"), deploy("web2"), deploy("web"))
	if err != nil {
		t.Fatal(err)
	}
	if pt != types.StrategicMergePatchType || !strings.Contains(string(p), `"app":"web2"`) {
		t.Errorf("threeWayPatch(selector change) = %s %s, want a strategic merge patch setting app=web2", pt, p)
	}
	p, _, err = threeWayPatch(scheme, schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}, deploy("web"), deploy("web"), deploy("web"))
	if err != nil || string(p) != "{}" {
		t.Errorf("threeWayPatch(no change) = %s, %v; want {}", p, err)
	}
	widget := func(size int64) *unstructured.Unstructured {
		return &unstructured.Unstructured{Object: map[string]any{"apiVersion": "example.com/v1", "kind": "Widget", "spec": map[string]any{"size": size}}}
	}
	p, pt, err = threeWayPatch(scheme, schema.GroupVersionKind{Group: "example.com", Version: "v1", Kind: "Widget"}, widget(1), widget(2), widget(1))
	if err != nil || pt != types.MergePatchType || !strings.Contains(string(p), `"size":2`) {
		t.Errorf("threeWayPatch(custom resource) = %s %s, %v; want a JSON merge patch setting size", pt, p, err)
	}
}
