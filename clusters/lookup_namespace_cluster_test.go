package clusters

import (
	"context"
	"errors"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
)

// TestLookupConfinedToReleaseNamespace: a chart's lookup reads namespaced
// kinds in the release's namespace only, and cluster-scoped kinds. A Secret
// in kube-system, a list across all namespaces, or anything namespaced
// through the Lookup that was given no namespace is refused before a request
// is sent: a chart in a pull request must not copy another namespace's
// Secret into what `tandem diff` prints.
func TestLookupConfinedToReleaseNamespace(t *testing.T) {
	var rec methodRecorder
	ctx, c, e := connect(t, func(o *Options) { o.WrapTransport = rec.wrap })
	ns := testNamespace(t)
	admin := adminClient(t, e)
	if _, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "x"}, Data: map[string][]byte{"password": []byte("release-password")},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The Secret a hostile chart is after: without the confinement every
	// read of kube-system below would find it.
	stolen := ns + "-admin"
	if _, err := admin.CoreV1().Secrets("kube-system").Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: stolen}, Data: map[string][]byte{"token": []byte("cluster-admin-token")},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = admin.CoreV1().Secrets("kube-system").Delete(context.Background(), stolen, metav1.DeleteOptions{})
	})

	confined, unconfined := c.LookupIn(ns, 0), c.LookupIn("", 0)
	get := func(namespace, name string) func(context.Context, dynamic.NamespaceableResourceInterface) error {
		return func(ctx context.Context, ri dynamic.NamespaceableResourceInterface) error {
			_, err := ri.Namespace(namespace).Get(ctx, name, metav1.GetOptions{})
			return err
		}
	}
	list := func(namespace string) func(context.Context, dynamic.NamespaceableResourceInterface) error {
		return func(ctx context.Context, ri dynamic.NamespaceableResourceInterface) error {
			_, err := ri.Namespace(namespace).List(ctx, metav1.ListOptions{})
			return err
		}
	}
	// What Helm's lookup does for a namespaced kind and namespace "", and
	// for every cluster-scoped kind: the client without Namespace.
	getAll := func(name string) func(context.Context, dynamic.NamespaceableResourceInterface) error {
		return func(ctx context.Context, ri dynamic.NamespaceableResourceInterface) error {
			_, err := ri.Get(ctx, name, metav1.GetOptions{})
			return err
		}
	}
	listAll := func(ctx context.Context, ri dynamic.NamespaceableResourceInterface) error {
		_, err := ri.List(ctx, metav1.ListOptions{})
		return err
	}
	tests := []struct {
		name             string
		lookup           *Lookup
		apiVersion, kind string
		read             func(context.Context, dynamic.NamespaceableResourceInterface) error
		// refused is how the refusal names where the read asked; "" means allowed.
		refused string
	}{
		{name: "get a Secret in the release namespace", lookup: confined, apiVersion: "v1", kind: "Secret", read: get(ns, "x")},
		{name: "list Secrets in the release namespace", lookup: confined, apiVersion: "v1", kind: "Secret", read: list(ns)},
		{name: "get a Secret in kube-system", lookup: confined, apiVersion: "v1", kind: "Secret", read: get("kube-system", stolen), refused: `namespace "kube-system"`},
		{name: "list Secrets in kube-system", lookup: confined, apiVersion: "v1", kind: "Secret", read: list("kube-system"), refused: `namespace "kube-system"`},
		{name: "list Secrets across all namespaces", lookup: confined, apiVersion: "v1", kind: "Secret", read: listAll, refused: "all namespaces"},
		{name: "list Secrets in namespace empty", lookup: confined, apiVersion: "v1", kind: "Secret", read: list(""), refused: "all namespaces"},
		{name: "get a Secret without a namespace", lookup: confined, apiVersion: "v1", kind: "Secret", read: getAll(stolen), refused: "all namespaces"},
		{name: "list ConfigMaps in kube-system", lookup: confined, apiVersion: "v1", kind: "ConfigMap", read: list("kube-system"), refused: `namespace "kube-system"`},
		{name: "get a Namespace", lookup: confined, apiVersion: "v1", kind: "Namespace", read: getAll(ns)},
		{name: "list Namespaces", lookup: confined, apiVersion: "v1", kind: "Namespace", read: listAll},
		{name: "list StorageClasses", lookup: confined, apiVersion: "storage.k8s.io/v1", kind: "StorageClass", read: listAll},
		{name: "no namespace: get a Secret in the release namespace", lookup: unconfined, apiVersion: "v1", kind: "Secret", read: get(ns, "x"), refused: `namespace "` + ns + `"`},
		{name: "no namespace: list Secrets across all namespaces", lookup: unconfined, apiVersion: "v1", kind: "Secret", read: listAll, refused: "all namespaces"},
		{name: "no namespace: get a Namespace", lookup: unconfined, apiVersion: "v1", kind: "Namespace", read: getAll(ns)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ri, _, err := tt.lookup.GetClientFor(tt.apiVersion, tt.kind)
			if err != nil {
				t.Fatal(err)
			}
			before := rec.len()
			err = tt.read(ctx, ri)
			if tt.refused == "" {
				if err != nil {
					t.Errorf("got %v, want the read served", err)
				}
				return
			}
			if !errors.Is(err, ErrOutsideNamespace) {
				t.Fatalf("got %v, want ErrOutsideNamespace", err)
			}
			for _, w := range []string{`cluster "blue"`, "lookup " + tt.apiVersion + " " + tt.kind + " in " + tt.refused, "confined to the release's namespace"} {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if sent := rec.since(before); len(sent) > 0 {
				t.Errorf("a refused read still sent %v", sent)
			}
		})
	}

	// The attack through Helm's own engine and lookup function: a template
	// copying kube-system's Secret, or every Secret, into a ConfigMap fails
	// to render instead of rendering them.
	for name, args := range map[string]string{"one": `"kube-system" "` + stolen + `"`, "all": `"" ""`} {
		t.Run("helm lookup of "+name, func(t *testing.T) {
			ch := &chart.Chart{
				Metadata: &chart.Metadata{APIVersion: "v2", Name: "steal", Version: "0.1.0"},
				Templates: []*chart.File{{Name: "templates/cm.yaml", Data: []byte(`apiVersion: v1
kind: ConfigMap
metadata:
  name: stolen
data:
  stolen: {{ lookup "v1" "Secret" ` + args + ` | toJson | quote }}
`)}},
			}
			vals, err := chartutil.ToRenderValues(ch, nil, chartutil.ReleaseOptions{Name: "r", Namespace: ns, IsInstall: true}, nil)
			if err != nil {
				t.Fatal(err)
			}
			files, err := engine.RenderWithClientProvider(ch, vals, c.LookupIn(ns, 0))
			if err == nil || !strings.Contains(err.Error(), "confined to the release's namespace") {
				t.Errorf("got %v, want the render refused\n%s", err, files["steal/templates/cm.yaml"])
			}
		})
	}
}
