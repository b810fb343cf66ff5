package localcluster_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/kube"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/tandem-gitops/tandem/e2e/localcluster"
)

// clusters is started by the first test that asks for it and stopped by TestMain.
var clusters = localcluster.NewSuite(localcluster.DefaultOptions())

func TestMain(m *testing.M) { os.Exit(clusters.Run(m)) }

func clientFor(t *testing.T, env *localcluster.Env, name string) kubernetes.Interface {
	t.Helper()
	cfg, err := env.RESTConfig(name)
	if err != nil {
		t.Fatal(err)
	}
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// newNamespace creates a namespace for one test and deletes it afterwards.
func newNamespace(ctx context.Context, t *testing.T, c kubernetes.Interface) string {
	t.Helper()
	ns, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "smoke-"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	t.Cleanup(func() {
		_ = c.CoreV1().Namespaces().Delete(context.Background(), ns.Name, metav1.DeleteOptions{})
	})
	return ns.Name
}

func testDeployment(name string, replicas int32) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				// kwok pulls no images: a made-up one goes Running all the same.
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.local/smoke/" + name + ":1"}}},
			},
		},
	}
}

// waitAvailable waits until the Deployment reports Available with all replicas
// ready and returns its pods.
func waitAvailable(ctx context.Context, t *testing.T, c kubernetes.Interface, ns, name string) []corev1.Pod {
	t.Helper()
	var last string
	err := wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, 90*time.Second, true, func(ctx context.Context) (bool, error) {
		d, err := c.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			last = err.Error()
			return false, nil
		}
		last = fmt.Sprintf("%d of %d ready", d.Status.ReadyReplicas, *d.Spec.Replicas)
		for _, cond := range d.Status.Conditions {
			if cond.Type == appsv1.DeploymentAvailable && cond.Status == corev1.ConditionTrue &&
				d.Status.ObservedGeneration == d.Generation && d.Status.ReadyReplicas == *d.Spec.Replicas {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("deployment %s/%s not Available: %v (last: %s)", ns, name, err, last)
	}
	pods, err := c.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=" + name})
	if err != nil {
		t.Fatal(err)
	}
	return pods.Items
}

type podPlacement struct {
	Phase    corev1.PodPhase
	OnKwok   bool
	HasPodIP bool
}

func placements(pods []corev1.Pod) []podPlacement {
	var out []podPlacement
	for _, p := range pods {
		if p.DeletionTimestamp != nil {
			continue
		}
		out = append(out, podPlacement{p.Status.Phase, strings.HasPrefix(p.Spec.NodeName, "kwok-node-"), p.Status.PodIP != ""})
	}
	return out
}

func TestDeploymentBecomesAvailableOnKwokNodes(t *testing.T) {
	env := clusters.Env(t)
	for _, name := range env.Names() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			c := clientFor(t, env, name)
			nodes, err := c.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if len(nodes.Items) < 2 {
				t.Fatalf("%d nodes, want at least 2", len(nodes.Items))
			}
			// Room for the 1,000-release benchmark (up to 2,000 pods a
			// cluster): kwok's node stage gives a node without capacity a
			// million pods, where a kubelet's default is 110.
			var room int64
			for _, n := range nodes.Items {
				room += n.Status.Allocatable.Pods().Value()
			}
			if room < 2000 {
				t.Errorf("the nodes take %d pods in all, want at least 2000", room)
			}
			ns := newNamespace(ctx, t, c)
			if _, err := c.AppsV1().Deployments(ns).Create(ctx, testDeployment("web", 3), metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			got := placements(waitAvailable(ctx, t, c, ns, "web"))
			want := []podPlacement{{corev1.PodRunning, true, true}, {corev1.PodRunning, true, true}, {corev1.PodRunning, true, true}}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("pods (-want +got):\n%s", diff)
			}
		})
	}
}

func TestServiceGetsClusterIP(t *testing.T) {
	env := clusters.Env(t)
	_, serviceNet, _ := net.ParseCIDR("10.96.0.0/16")
	for _, name := range env.Names() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			c := clientFor(t, env, name)
			ns := newNamespace(ctx, t, c)
			svc, err := c.CoreV1().Services(ns).Create(ctx, &corev1.Service{
				ObjectMeta: metav1.ObjectMeta{Name: "web"},
				Spec: corev1.ServiceSpec{
					Selector: map[string]string{"app": "web"},
					Ports:    []corev1.ServicePort{{Name: "http", Port: 80}},
				},
			}, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			ip := net.ParseIP(svc.Spec.ClusterIP)
			if ip == nil || !serviceNet.Contains(ip) {
				t.Errorf("cluster IP %q, want an address in %s", svc.Spec.ClusterIP, serviceNet)
			}
		})
	}
}

func TestHelmInstallIsListedByHelmCLI(t *testing.T) {
	env := clusters.Env(t)
	t.Parallel()
	const cluster, release = "blue", "example-smoke"
	ctx := t.Context()
	c := clientFor(t, env, cluster)
	ns := newNamespace(ctx, t, c)

	chart, err := loader.Load(filepath.Join("..", "..", "examples", "manifest", "charts", "example"))
	if err != nil {
		t.Fatalf("load chart: %v", err)
	}
	cfg := new(action.Configuration)
	if err := cfg.Init(kube.GetConfig(env.Kubeconfig(), cluster, ns), ns, "secret", func(string, ...any) {}); err != nil {
		t.Fatal(err)
	}
	install := action.NewInstall(cfg)
	install.ReleaseName = release
	install.Namespace = ns
	// Wait proves the workload comes up: kwok runs the Deployment's pods.
	install.Wait = true
	install.Timeout = 2 * time.Minute
	rel, err := install.RunWithContext(ctx, chart, nil)
	if err != nil {
		t.Fatalf("helm install: %v", err)
	}
	if got := rel.Info.Status.String(); got != "deployed" {
		t.Fatalf("release status %q, want deployed", got)
	}

	home := t.TempDir()
	cmd := exec.CommandContext(ctx, env.Tool("helm"), "ls", "-A", "--kube-context", cluster, "--kubeconfig", env.Kubeconfig(), "-o", "json")
	cmd.Env = append(os.Environ(), "HELM_CONFIG_HOME="+home, "HELM_CACHE_HOME="+home, "HELM_DATA_HOME="+home)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helm ls: %v\n%s", err, out)
	}
	type listed struct {
		Name, Namespace, Status, Chart string
	}
	var all []listed
	if err := json.Unmarshal(out, &all); err != nil {
		t.Fatalf("helm ls output: %v\n%s", err, out)
	}
	var got []listed
	for _, r := range all {
		if r.Namespace == ns {
			got = append(got, r)
		}
	}
	want := []listed{{Name: release, Namespace: ns, Status: "deployed", Chart: "example-0.1.0"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("helm ls (-want +got):\n%s", diff)
	}
}

func TestRBACDeniesUserWithoutRights(t *testing.T) {
	env := clusters.Env(t)
	t.Parallel()
	const cluster = "green"
	ctx := t.Context()
	admin := clientFor(t, env, cluster)
	ns := newNamespace(ctx, t, admin)
	// A viewer bound to the view role proves RBAC evaluates bindings rather than
	// refusing everyone who is not in system:masters.
	if _, err := admin.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "viewer"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "view"},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: "viewer"}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	as := func(user string) kubernetes.Interface {
		cfg, err := env.UserConfig(cluster, user)
		if err != nil {
			t.Fatal(err)
		}
		c, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	nobody, viewer := as("nobody"), as("viewer")
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "x"}}

	// The binding reaches the authorizer's cache shortly after it is created.
	var listErr error
	_ = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
		_, listErr = viewer.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{})
		return listErr == nil, nil
	})
	_, nobodyList := nobody.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{})
	_, nobodyCreate := nobody.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{})
	_, viewerCreate := viewer.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{})
	_, adminCreate := admin.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{})

	type outcome struct{ OK, Forbidden bool }
	of := func(err error) outcome { return outcome{err == nil, apierrors.IsForbidden(err)} }
	got := map[string]outcome{
		"nobody list": of(nobodyList), "nobody create": of(nobodyCreate),
		"viewer list": of(listErr), "viewer create": of(viewerCreate),
		"admin create": of(adminCreate),
	}
	want := map[string]outcome{
		"nobody list": {Forbidden: true}, "nobody create": {Forbidden: true},
		"viewer list": {OK: true}, "viewer create": {Forbidden: true},
		"admin create": {OK: true},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("outcomes (-want +got):\n%s\nerrors: nobody list %v; nobody create %v; viewer list %v; viewer create %v; admin create %v",
			diff, nobodyList, nobodyCreate, listErr, viewerCreate, adminCreate)
	}
}

// TestAPIServerStopAndStart is not parallel: the parallel tests above wait until it
// has brought green's apiserver back.
func TestAPIServerStopAndStart(t *testing.T) {
	env := clusters.Env(t)
	const down, up = "green", "blue"
	ctx := t.Context()
	before, err := env.RESTConfig(down)
	if err != nil {
		t.Fatal(err)
	}
	green, blue := clientFor(t, env, down), clientFor(t, env, up)

	if err := env.StopAPIServer(down); err != nil {
		t.Fatal(err)
	}
	if _, err := green.CoreV1().Namespaces().List(ctx, metav1.ListOptions{}); err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("green with its apiserver stopped: err = %v, want connection refused", err)
	}
	if _, err := blue.CoreV1().Namespaces().List(ctx, metav1.ListOptions{}); err != nil {
		t.Errorf("blue while green is down: %v", err)
	}

	if err := env.StartAPIServer(ctx, down); err != nil {
		t.Fatal(err)
	}
	after, err := env.RESTConfig(down)
	if err != nil {
		t.Fatal(err)
	}
	if before.Host != after.Host {
		t.Errorf("apiserver moved from %s to %s, want the same address", before.Host, after.Host)
	}
	// The controllers, scheduler and kwok find the apiserver again by themselves.
	ns := newNamespace(ctx, t, green)
	if _, err := green.AppsV1().Deployments(ns).Create(ctx, testDeployment("after-restart", 2), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := len(placements(waitAvailable(ctx, t, green, ns, "after-restart"))); got != 2 {
		t.Errorf("%d pods after restart, want 2", got)
	}
}

// TestStopLeavesNothingBehind uses clusters of its own: it stops them.
func TestStopLeavesNothingBehind(t *testing.T) {
	if testing.Short() {
		t.Skip("localcluster: -short skips tests that start Kubernetes clusters")
	}
	t.Parallel()
	opts := localcluster.DefaultOptions()
	opts.Names = []string{"solo"}
	opts.Nodes = 1
	env, err := localcluster.Start(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	pids := env.PIDsForTest()
	if len(pids) != 5 {
		t.Errorf("%d processes (%v), want 5: etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok", len(pids), pids)
	}
	cpuBefore := cpuTimes(t, env)
	t.Logf("CPU time to start: %v", cpuBefore)
	if got := len(cpuBefore); got == 0 && runtime.GOOS != "linux" {
		t.Log("CPU times are not read off Linux")
	} else if diff := cmp.Diff([]string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"}, slices.Sorted(maps.Keys(cpuBefore))); diff != "" {
		t.Errorf("components with CPU times (-want +got):\n%s", diff)
	}
	for comp, d := range cpuBefore {
		if d <= 0 {
			t.Errorf("%s used %s of CPU to start, want more than nothing", comp, d)
		}
	}
	// A stopped apiserver must not escape Stop either.
	if err := env.StopAPIServer("solo"); err != nil {
		t.Fatal(err)
	}
	if err := env.StartAPIServer(t.Context(), "solo"); err != nil {
		t.Fatal(err)
	}
	pids = append(pids, env.PIDsForTest()...)
	// The first apiserver's time is kept: the figures only grow.
	for comp, d := range cpuTimes(t, env) {
		if d < cpuBefore[comp] || comp == "kube-apiserver" && d == cpuBefore[comp] {
			t.Errorf("%s: CPU time went from %s to %s after a restart of the apiserver", comp, cpuBefore[comp], d)
		}
	}
	if err := env.Stop(); err != nil {
		t.Fatal(err)
	}
	for _, pid := range pids {
		if !localcluster.ProcessGoneForTest(pid) {
			t.Errorf("pid %d still running after Stop", pid)
		}
	}
	if _, err := os.Stat(env.WorkDir()); !os.IsNotExist(err) {
		t.Errorf("work dir %s: %v, want it removed", env.WorkDir(), err)
	}
	if err := env.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	if _, err := env.RESTConfig("nope"); err == nil {
		t.Error("RESTConfig of an unknown cluster: nil error")
	}
}

// cpuTimes is Env.CPUTimes by component for a one-cluster Env; nil off Linux,
// where they are not read.
func cpuTimes(t *testing.T, env *localcluster.Env) map[string]time.Duration {
	t.Helper()
	times, err := env.CPUTimes()
	if runtime.GOOS != "linux" && errors.Is(err, errors.ErrUnsupported) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]time.Duration{}
	for _, c := range times {
		out[c.Component] += c.CPU
	}
	return out
}
