package clusters

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// passwordChart keeps a generated password through lookup: the Bitnami
// common.secrets.passwords.manage pattern, simplified.
func passwordChart() *chart.Chart {
	const tpl = `{{- $s := lookup "v1" "Secret" .Release.Namespace "x" }}
apiVersion: v1
kind: Secret
metadata:
  name: x
data:
  password: {{ if $s }}{{ index $s.data "password" }}{{ else }}{{ randAlphaNum 16 | b64enc }}{{ end }}
`
	return &chart.Chart{
		Metadata:  &chart.Metadata{APIVersion: "v2", Name: "password", Version: "0.1.0"},
		Templates: []*chart.File{{Name: "templates/secret.yaml", Data: []byte(tpl)}},
	}
}

// methodRecorder records the HTTP method and path of every request.
type methodRecorder struct {
	mu   sync.Mutex
	reqs []string
}

func (m *methodRecorder) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		m.mu.Lock()
		m.reqs = append(m.reqs, req.Method+" "+req.URL.Path)
		m.mu.Unlock()
		return rt.RoundTrip(req)
	})
}

func (m *methodRecorder) since(n int) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.reqs[n:]...)
}

func (m *methodRecorder) len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.reqs)
}

// TestLookupKeepsLivePassword renders, with Helm's own engine and lookup
// function, a chart that keeps a generated password through lookup: with the
// cluster's Lookup and the Secret in place it renders the live password,
// and the Lookup sent nothing but GET requests.
func TestLookupKeepsLivePassword(t *testing.T) {
	var rec methodRecorder
	ctx, c, e := connect(t, func(o *Options) { o.WrapTransport = rec.wrap })
	ns := testNamespace(t)
	admin := adminClient(t, e)
	if _, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ch := passwordChart()
	vals, err := chartutil.ToRenderValues(ch, nil, chartutil.ReleaseOptions{Name: "r", Namespace: ns, IsInstall: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	render := func() string {
		t.Helper()
		files, err := engine.RenderWithClientProvider(ch, vals, c.LookupIn(ns, 0))
		if err != nil {
			t.Fatal(err)
		}
		return files["password/templates/secret.yaml"]
	}

	first := rec.len()
	if out := render(); strings.Contains(out, "bGl2ZS1wYXNzd29yZA==") || !strings.Contains(out, "password: ") {
		t.Fatalf("before the Secret exists, want a generated password:\n%s", out)
	}
	if _, err := admin.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "x"}, Data: map[string][]byte{"password": []byte("live-password")},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if out := render(); !strings.Contains(out, "password: bGl2ZS1wYXNzd29yZA==") {
			t.Errorf("want the live password kept:\n%s", out)
		}
	}
	for _, r := range rec.since(first) {
		if !strings.HasPrefix(r, "GET ") {
			t.Errorf("lookup sent %s", r)
		}
	}
}

// TestLookupReadsOnly: Get and List of namespaced and cluster-scoped kinds
// answer from the cluster, a missing object is NotFound (Helm's lookup turns
// that into an empty map), an unknown kind is an error naming the cluster,
// and every writing verb is refused without a request.
func TestLookupReadsOnly(t *testing.T) {
	var rec methodRecorder
	ctx, c, e := connect(t, func(o *Options) { o.WrapTransport = rec.wrap })
	ns := testNamespace(t)
	admin := adminClient(t, e)
	if _, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cfg"}, Data: map[string]string{"a": "b"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	l := c.LookupIn(ns, 0)

	cms, namespaced, err := l.GetClientFor("v1", "ConfigMap")
	if err != nil {
		t.Fatal(err)
	}
	if !namespaced {
		t.Error("ConfigMap reported cluster-scoped")
	}
	got, err := cms.Namespace(ns).Get(ctx, "cfg", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if v, _, _ := unstructured.NestedString(got.Object, "data", "a"); v != "b" {
		t.Errorf("got %v", got.Object)
	}
	list, err := cms.Namespace(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) == 0 {
		t.Error("List found nothing")
	}
	if _, err := cms.Namespace(ns).Get(ctx, "missing", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("missing object: %v, want NotFound", err)
	}
	nss, namespaced, err := l.GetClientFor("v1", "Namespace")
	if err != nil {
		t.Fatal(err)
	}
	if namespaced {
		t.Error("Namespace reported namespaced")
	}
	if _, err := nss.Get(ctx, ns, metav1.GetOptions{}); err != nil {
		t.Errorf("get namespace: %v", err)
	}
	if _, _, err := l.GetClientFor("nope.tandem.dev/v1", "Nope"); err == nil || !strings.Contains(err.Error(), `cluster "blue"`) {
		t.Errorf("unknown kind: %v, want an error naming the cluster", err)
	}

	before := rec.len()
	obj := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": "cfg", "namespace": ns}}}
	rc := cms.Namespace(ns)
	writes := map[string]error{}
	_, writes["create"] = rc.Create(ctx, obj, metav1.CreateOptions{})
	_, writes["update"] = rc.Update(ctx, obj, metav1.UpdateOptions{})
	_, writes["update status"] = rc.UpdateStatus(ctx, obj, metav1.UpdateOptions{})
	writes["delete"] = rc.Delete(ctx, "cfg", metav1.DeleteOptions{})
	writes["delete collection"] = rc.DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{})
	_, writes["watch"] = rc.Watch(ctx, metav1.ListOptions{})
	_, writes["patch"] = rc.Patch(ctx, "cfg", "application/merge-patch+json", []byte(`{"data":{"a":"x"}}`), metav1.PatchOptions{})
	_, writes["apply"] = rc.Apply(ctx, "cfg", obj, metav1.ApplyOptions{FieldManager: "t"})
	_, writes["apply status"] = rc.ApplyStatus(ctx, "cfg", obj, metav1.ApplyOptions{FieldManager: "t"})
	_, writes["get of a subresource"] = rc.Get(ctx, "cfg", metav1.GetOptions{}, "status")
	for verb, err := range writes {
		if !errors.Is(err, ErrReadOnly) {
			t.Errorf("%s: %v, want ErrReadOnly", verb, err)
		}
	}
	if sent := rec.since(before); len(sent) > 0 {
		t.Errorf("refused verbs still sent %v", sent)
	}
	cm, err := admin.CoreV1().ConfigMaps(ns).Get(ctx, "cfg", metav1.GetOptions{})
	if err != nil || cm.Data["a"] != "b" {
		t.Errorf("the ConfigMap changed: %v %v", cm.Data, err)
	}
}

// TestLookupTimeout: a lookup the API server does not answer fails within
// the Lookup's timeout instead of hanging the render.
func TestLookupTimeout(t *testing.T) {
	stall := func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(req *http.Request) (*http.Response, error) {
			if strings.Contains(req.URL.Path, "/secrets") {
				<-req.Context().Done()
				return nil, req.Context().Err()
			}
			return rt.RoundTrip(req)
		})
	}
	_, c, _ := connect(t, func(o *Options) { o.WrapTransport = stall })
	secrets, _, err := c.LookupIn("default", 300*time.Millisecond).GetClientFor("v1", "Secret")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = secrets.Namespace("default").Get(context.Background(), "x", metav1.GetOptions{})
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), `cluster "blue": lookup v1 Secret default/x`) {
		t.Errorf("got %v, want a deadline error naming cluster and object", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("lookup took %s with a 300ms timeout", d)
	}
}
