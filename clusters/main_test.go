package clusters

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tandem-gitops/tandem/e2e/localcluster"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
)

// env is one real cluster, "blue", shared by this package's cluster tests.
// They run one at a time (none calls t.Parallel): TestConnectUnreachable
// stops the apiserver, and the lock tests use the one tandem Lease.
var env = localcluster.NewSuite(localcluster.Options{Names: []string{"blue"}, Nodes: 2})

func TestMain(m *testing.M) { os.Exit(env.Run(m)) }

const testCluster = "blue"

// testTimeout bounds each cluster test so a hang fails instead of stalling.
const testTimeout = 4 * time.Minute

// connect returns a Cluster for blue (skipping under -short) and a context
// bounded by testTimeout.
func connect(t *testing.T, tweak ...func(*Options)) (context.Context, *Cluster, *localcluster.Env) {
	t.Helper()
	e := env.Env(t)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	opts := DefaultOptions()
	opts.Kubeconfig = e.Kubeconfig()
	opts.Context = testCluster
	for _, f := range tweak {
		f(&opts)
	}
	c, err := Connect(ctx, testCluster, opts)
	if err != nil {
		t.Fatal(err)
	}
	return ctx, c, e
}

// adminClient is a plain clientset for checking what tandem did.
func adminClient(t *testing.T, e *localcluster.Env) kubernetes.Interface {
	t.Helper()
	cfg, err := e.RESTConfig(testCluster)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// adminDynamic is a plain dynamic client for blue.
func adminDynamic(t *testing.T, e *localcluster.Env) dynamic.Interface {
	t.Helper()
	cfg, err := e.RESTConfig(testCluster)
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return dyn
}

// deleteCRDAtCleanup deletes, when the test ends, a CRD its chart
// installs: Helm never deletes the CRDs of a chart's crds/.
func deleteCRDAtCleanup(t *testing.T, e *localcluster.Env, name string) {
	t.Helper()
	admin := adminDynamic(t, e)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		crds := schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
		_ = admin.Resource(crds).Delete(ctx, name, metav1.DeleteOptions{})
	})
}

func loadChart(t *testing.T, name string) *chart.Chart {
	t.Helper()
	ch, err := loader.Load(filepath.Join("testdata", "charts", name))
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

var nonDNS = regexp.MustCompile(`[^a-z0-9-]+`)

// testNamespace is a namespace name of the test's own, so tests sharing
// the cluster do not see each other's releases.
func testNamespace(t *testing.T) string {
	n := strings.Trim(nonDNS.ReplaceAllString(strings.ToLower(t.Name()), "-"), "-")
	if len(n) > 50 {
		n = n[:50]
	}
	return fmt.Sprintf("%s-%d", n, time.Now().UnixNano()%100000)
}

// pathCounter counts requests by URL path, to see what is fetched how often.
type pathCounter struct {
	mu    sync.Mutex
	paths map[string]int
}

func (p *pathCounter) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		p.mu.Lock()
		if p.paths == nil {
			p.paths = map[string]int{}
		}
		p.paths[req.URL.Path]++
		p.mu.Unlock()
		return rt.RoundTrip(req)
	})
}

func (p *pathCounter) snapshot() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]int, len(p.paths))
	for k, v := range p.paths {
		out[k] = v
	}
	return out
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
