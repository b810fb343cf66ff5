package clusters

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

func TestParseManifest(t *testing.T) {
	tests := []struct {
		name     string
		manifest string
		want     []string // kind/name
		wantErr  string
	}{
		{name: "empty", manifest: "", want: []string{}},
		{
			name: "helm style with sources and empty docs",
			manifest: `---
# Source: web/templates/cm.yaml
apiVersion: v1
kind: ConfigMap
metadata:
  name: web
---
---
# Source: web/templates/deploy.yaml
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: other
`,
			want: []string{"ConfigMap/web", "Deployment/web"},
		},
		{
			name: "list is flattened",
			manifest: `apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: a}
- apiVersion: v1
  kind: Secret
  metadata: {name: b}
`,
			want: []string{"ConfigMap/a", "Secret/b"},
		},
		{name: "invalid-missing-name", manifest: "apiVersion: v1\nkind: ConfigMap\n", wantErr: "manifest document 1: apiVersion, kind and metadata.name are required"},
		{name: "invalid-yaml", manifest: "apiVersion: v1\nkind: [\n", wantErr: "manifest document 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs, err := parseManifest(tt.manifest)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseManifest() error = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := []string{}
			for _, o := range objs {
				got = append(got, o.GetKind()+"/"+o.GetName())
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("parseManifest() (-want +got):\n%s", diff)
			}
		})
	}
}

func testMapper() meta.RESTMapper {
	m := meta.NewDefaultRESTMapper(nil)
	m.Add(schema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}, meta.RESTScopeNamespace)
	m.Add(schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}, meta.RESTScopeNamespace)
	m.Add(schema.GroupVersionKind{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "ClusterRole"}, meta.RESTScopeRoot)
	return m
}

func TestResolve(t *testing.T) {
	objs, err := parseManifest(`apiVersion: v1
kind: ConfigMap
metadata: {name: cm}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: other}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: viewer, namespace: ignored}
`)
	if err != nil {
		t.Fatal(err)
	}
	got, err := resolve(testMapper(), objs, "shop")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, o := range got {
		names = append(names, o.String()+" "+o.gvr.Resource)
	}
	want := []string{"ConfigMap shop/cm configmaps", "Deployment other/web deployments", "ClusterRole viewer clusterroles"}
	if diff := cmp.Diff(want, names); diff != "" {
		t.Errorf("resolve() (-want +got):\n%s", diff)
	}

	unknown, _ := parseManifest("apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n")
	if _, err := resolve(testMapper(), unknown, "shop"); err == nil || !strings.Contains(err.Error(), "Widget w") {
		t.Errorf("resolve(unknown kind) error = %v, want it to name Widget w", err)
	}
}
