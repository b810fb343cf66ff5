package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/tandem-gitops/tandem/e2e/e2etest"
	"github.com/tandem-gitops/tandem/e2e/localcluster"
)

// clusters is started by the first benchmark that asks for it and stopped by
// TestMain. Their controllers and schedulers are not held back by their
// client-side rate limits (20 and 50 requests a second by default), which a
// thousand releases' Deployments would otherwise queue behind.
var clusters = localcluster.NewSuite(benchClusterOptions())

func benchClusterOptions() localcluster.Options {
	o := localcluster.DefaultOptions()
	o.ControllerQPS = 1000
	return o
}

var tandemBin e2etest.Binary

func TestMain(m *testing.M) {
	code := clusters.Run(m)
	tandemBin.Cleanup()
	os.Exit(code)
}

// clusterNames are the manifest's clusters: blue is Active, green Standby.
var clusterNames = []string{"blue", "green"}

// releaseCount is the number of synthetic releases: TANDEM_BENCH_RELEASES, default 50.
func releaseCount(tb testing.TB) int {
	tb.Helper()
	s := os.Getenv("TANDEM_BENCH_RELEASES")
	if s == "" {
		return 50
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		tb.Fatalf("TANDEM_BENCH_RELEASES=%q: want a positive number", s)
	}
	return n
}

// harness is what every benchmark of the package shares: the clusters, a
// counting proxy in front of each, a kubeconfig pointing at the proxies, the
// tandem and helm binaries, and uncounted admin clients for setup and checks.
type harness struct {
	env        *localcluster.Env
	proxies    map[string]*apiProxy
	kubeconfig string // contexts blue and green, through the proxies
	tandem     string
	helm       string
	clients    map[string]kubernetes.Interface // direct, not counted
	cacheDir   string                          // TANDEM_CACHE_DIR and Helm's homes
	profiles   int                             // CPU profiles written (TANDEM_BENCH_CPUPROFILE)
}

func newHarness(b *testing.B) *harness {
	b.Helper()
	env := clusters.Env(b)
	h := &harness{
		env:      env,
		proxies:  map[string]*apiProxy{},
		clients:  map[string]kubernetes.Interface{},
		tandem:   tandemBin.Path(b),
		helm:     env.Tool("helm"),
		cacheDir: b.TempDir(),
	}
	kc := clientcmdapi.NewConfig()
	for _, name := range clusterNames {
		cfg, err := env.RESTConfig(name)
		if err != nil {
			b.Fatal(err)
		}
		if h.clients[name], err = kubernetes.NewForConfig(cfg); err != nil {
			b.Fatal(err)
		}
		p := startProxy(b, cfg)
		h.proxies[name] = p
		kc.Clusters[name] = &clientcmdapi.Cluster{Server: p.URL, CertificateAuthorityData: p.CA}
		kc.AuthInfos[name] = &clientcmdapi.AuthInfo{} // the proxy authenticates upstream as the admin
		kc.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: name, Namespace: "default"}
	}
	kc.CurrentContext = clusterNames[0]
	h.kubeconfig = filepath.Join(b.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, h.kubeconfig); err != nil {
		b.Fatal(err)
	}
	return h
}

// requests returns the proxies' counts summed over both clusters.
func (h *harness) requests() requestCounts {
	var sum requestCounts
	for _, p := range h.proxies {
		sum = sum.add(p.counts())
	}
	return sum
}

// traffic returns the proxies' time and bytes summed over both clusters.
func (h *harness) traffic() traffic {
	var sum traffic
	for _, p := range h.proxies {
		sum = sum.add(p.traffic())
	}
	return sum
}

// deleteNamespaces deletes namespaces in both clusters and waits until they
// are gone, so the next run starts from nothing (Helm's release Secrets live
// in the release namespace and go with it).
func (h *harness) deleteNamespaces(tb testing.TB, names ...string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for _, c := range clusterNames {
		for _, ns := range names {
			err := h.clients[c].CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{})
			if err != nil && !apierrors.IsNotFound(err) {
				tb.Fatalf("cluster %s: delete namespace %s: %v", c, ns, err)
			}
		}
	}
	for _, c := range clusterNames {
		for _, ns := range names {
			err := wait.PollUntilContextCancel(ctx, 500*time.Millisecond, true, func(ctx context.Context) (bool, error) {
				_, err := h.clients[c].CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
				if apierrors.IsNotFound(err) {
					return true, nil
				}
				return false, err
			})
			if err != nil {
				tb.Fatalf("cluster %s: namespace %s not gone: %v", c, ns, err)
			}
		}
	}
}

// revisions returns, per cluster/namespace/release, the highest Helm revision
// stored in the namespaces (from the release Secrets' labels, so history
// trimming cannot hide a new revision).
func (h *harness) revisions(tb testing.TB, namespaces ...string) map[string]int {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out := map[string]int{}
	for _, c := range clusterNames {
		for _, ns := range namespaces {
			list, err := h.clients[c].CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{LabelSelector: "owner=helm", FieldSelector: "type=helm.sh/release.v1"})
			if err != nil {
				tb.Fatalf("cluster %s: list release secrets in %s: %v", c, ns, err)
			}
			for _, s := range list.Items {
				v, err := strconv.Atoi(s.Labels["version"])
				if err != nil {
					tb.Fatalf("cluster %s: secret %s/%s: version label %q", c, ns, s.Name, s.Labels["version"])
				}
				k := c + "/" + ns + "/" + s.Labels["name"]
				out[k] = max(out[k], v)
			}
		}
	}
	return out
}

// newRevisions counts the revisions created between two revisions() calls.
func newRevisions(before, after map[string]int) int {
	n := 0
	for k, v := range after {
		n += v - before[k]
	}
	return n
}

// mustNoError fails with every error at once.
func mustNoError(tb testing.TB, errs ...error) {
	tb.Helper()
	if err := errors.Join(errs...); err != nil {
		tb.Fatal(err)
	}
}

func fmtMiB(kib int64) string { return fmt.Sprintf("%.0f MiB", float64(kib)/1024) }
