package render

import (
	"context"
	"github.com/tandem-gitops/tandem/internal/helmchart"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/repo"
)

func exampleDir(t testing.TB, chart string) string {
	t.Helper()
	d, err := filepath.Abs(filepath.Join("..", "examples", "manifest", "charts", chart))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func exampleRequest(t testing.TB, cluster string, role Role) Request {
	return Request{
		Cluster: cluster, Release: "example", Namespace: "example",
		Chart:   ChartSource{Dir: exampleDir(t, "example")},
		Values:  []ValuesLayer{{Source: "set", Set: map[string]any{"replicaCount": float64(3)}}},
		Overlay: Overlay{Release: "example", Cluster: cluster, Role: role, ScaleToZero: true, DNSPrefix: prefix, ActiveWeight: 100},
	}
}

func TestRenderExampleActiveAndStandby(t *testing.T) {
	r := New(DefaultOptions())
	res, err := r.RenderAll(context.Background(), []Request{exampleRequest(t, "blue", RoleActive), exampleRequest(t, "green", RoleStandby)})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, o := range res[0].Objects {
		ids = append(ids, o.ID())
	}
	want := []string{"Service example/example", "Deployment example/example", "HorizontalPodAutoscaler example/example", "Ingress example/example"}
	if diff := cmp.Diff(want, ids); diff != "" {
		t.Errorf("objects in install order (-want +got):\n%s", diff)
	}
	for _, tc := range []struct {
		res              *Result
		replicas, weight string
	}{{res[0], "replicas: 3", `aws-weight: "100"`}, {res[1], "replicas: 0", `aws-weight: "0"`}} {
		if !strings.Contains(tc.res.Manifest, tc.replicas) || !strings.Contains(tc.res.Manifest, tc.weight) {
			t.Errorf("cluster %s: want %q and %q in:\n%s", tc.res.Cluster, tc.replicas, tc.weight, tc.res.Manifest)
		}
	}
	if res[0].Digest == res[1].Digest {
		t.Error("active and standby renders must have different digests")
	}
	if got := atomic.LoadInt64(&r.charts.loads); got != 1 {
		t.Errorf("chart loaded %d times for two clusters, want 1", got)
	}
}

func TestRenderIsDeterministic(t *testing.T) {
	var first string
	for i := range 5 {
		res, err := New(DefaultOptions()).Render(context.Background(), exampleRequest(t, "green", RoleStandby))
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = res.Manifest
		} else if res.Manifest != first {
			t.Fatalf("render %d differs:\n%s", i, cmp.Diff(first, res.Manifest))
		}
	}
}

func TestRenderDoesNotMutateTheLoadedChart(t *testing.T) {
	r := New(DefaultOptions())
	a, err := r.Render(context.Background(), exampleRequest(t, "blue", RoleActive))
	if err != nil {
		t.Fatal(err)
	}
	before := helmchart.CopyValues(a.Chart.Values)
	req := exampleRequest(t, "green", RoleStandby)
	req.Values = append(req.Values, ValuesLayer{Source: "set", Set: map[string]any{"autoscaling.enabled": false, "image.tag": "x"}})
	b, err := r.Render(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if a.Chart != b.Chart {
		t.Error("results of one chart should share the loaded chart")
	}
	if diff := cmp.Diff(before, b.Chart.Values); diff != "" {
		t.Errorf("rendering changed the loaded chart's values (-before +after):\n%s", diff)
	}
}

func TestRenderErrors(t *testing.T) {
	tests := []struct {
		name  string
		chart string
		opts  func(*Options)
		want  []string
	}{
		{name: "template error names release and template", chart: "testdata/charts/badtpl", want: []string{`release "r"`, "badtpl/templates/broken.yaml"}},
		{name: "object without name", chart: "testdata/charts/noname", want: []string{"noname/templates/cm.yaml", "metadata.name"}},
		{name: "dependency that would reach the network", chart: "testdata/charts/nodeps", want: []string{"redis", "charts/"}},
		{name: "render past its deadline", chart: "testdata/charts/bomb", opts: func(o *Options) { o.Timeout = 20 * time.Millisecond }, want: []string{`release "r"`, "did not finish"}},
		{name: "missing chart", chart: "testdata/charts/nope", want: []string{"load chart", "nope"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := DefaultOptions()
			if tt.opts != nil {
				tt.opts(&opts)
			}
			dir, _ := filepath.Abs(tt.chart)
			_, err := New(opts).Render(context.Background(), Request{Cluster: "blue", Release: "r", Namespace: "ns", Chart: ChartSource{Dir: dir},
				Overlay: Overlay{Release: "r", Cluster: "blue", Role: RoleActive, ActiveWeight: 100}})
			if err == nil {
				t.Fatal("want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestConflicts(t *testing.T) {
	objs := []Object{{APIVersion: "v1", Kind: "ConfigMap", Namespace: "shop", Name: "cfg"}}
	err := Conflicts([]*Result{
		{Cluster: "blue", Release: "a", Objects: objs},
		{Cluster: "blue", Release: "b", Objects: objs},
		{Cluster: "green", Release: "a", Objects: objs},
	})
	if err == nil || !strings.Contains(err.Error(), `cluster "blue": ConfigMap shop/cfg is rendered by releases "a" and "b"`) {
		t.Fatalf("got %v", err)
	}
	if err := Conflicts([]*Result{{Cluster: "blue", Release: "a", Objects: objs}, {Cluster: "green", Release: "a", Objects: objs}}); err != nil {
		t.Fatalf("same object on two clusters is no conflict: %v", err)
	}
}

// TestRenderRemoteChart serves a chart repository on loopback and checks the
// chart is downloaded once and then served from the cache directory.
func TestRenderRemoteChart(t *testing.T) {
	repoDir := t.TempDir()
	ch, err := loader.LoadDir(exampleDir(t, "example"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := chartutil.Save(ch, repoDir); err != nil {
		t.Fatal(err)
	}
	var requests atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		http.FileServer(http.Dir(repoDir)).ServeHTTP(w, r)
	}))
	defer srv.Close()
	idx, err := repo.IndexDirectory(repoDir, srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if err := idx.WriteFile(filepath.Join(repoDir, "index.yaml"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("HELM_CACHE_HOME", t.TempDir())
	t.Setenv("HELM_CONFIG_HOME", t.TempDir())

	cache := t.TempDir()
	req := exampleRequest(t, "blue", RoleActive)
	req.Chart = ChartSource{RepoURL: srv.URL, Name: "example", Version: "0.1.0", Access: Access{Insecure: true}}
	for i := range 2 {
		opts := DefaultOptions()
		opts.CacheDir = cache
		res, err := New(opts).Render(context.Background(), req)
		if err != nil {
			t.Fatalf("render %d: %v", i, err)
		}
		if res.ChartName != "example" || !strings.Contains(res.Manifest, "kind: Deployment") {
			t.Fatalf("render %d: unexpected result %s %s", i, res.ChartName, res.Manifest)
		}
		if i == 0 && requests.Load() == 0 {
			t.Fatal("first render made no request to the repository")
		}
	}
	before := requests.Load()
	opts := DefaultOptions()
	opts.CacheDir = cache
	if _, err := New(opts).Render(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	if requests.Load() != before {
		t.Errorf("a cached chart was fetched again: %d requests, want %d", requests.Load(), before)
	}
	if _, err := os.Stat(filepath.Join(cache, "charts")); err != nil {
		t.Errorf("no chart cache: %v", err)
	}

	req.Chart.Version = ""
	if _, err := New(opts).Render(context.Background(), req); err == nil || !strings.Contains(err.Error(), "version") {
		t.Errorf("remote chart without version: got %v", err)
	}
}
