package guard_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/tandem-gitops/tandem/daemon"
	"github.com/tandem-gitops/tandem/e2e/e2etest"
	"github.com/tandem-gitops/tandem/e2e/localcluster"
)

var update = flag.Bool("update", false, "rewrite testdata/chart.golden.yaml")

// chartValues are the values of the golden render: every optional part on.
var chartValues = []string{
	"--set", "git.repo=https://git.example/shop/manifest.git",
	"--set", "kubeconfigSecret.name=tandem-kubeconfigs",
	"--set", "webhookSecret.name=tandem-webhook",
	"--set", "git.tokenSecret.name=tandem-git",
	"--set", "serviceMonitor.enabled=true",
	"--set", "prometheusRule.enabled=true",
	"--set", "image.tag=v0.1.0",
}

// helm runs the stock helm CLI from the tools directory.
func helm(t *testing.T, args ...string) e2etest.Result {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: the chart tests need the helm CLI from the tools directory")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	dir, err := localcluster.EnsureTools(ctx, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(dir, "helm"), args...)
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+t.TempDir(), "HELM_CONFIG_HOME="+t.TempDir(), "HELM_DATA_HOME="+t.TempDir())
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	res := e2etest.Result{Stdout: out.String(), Stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		res.Code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return res
}

func chartDir(t *testing.T) string {
	return filepath.Join(e2etest.ModuleRoot(t), "deploy", "chart", "tandem")
}

// TestChartLintAndTemplate: helm lint passes, the render with every part
// on matches the golden file, and the schema refuses bad values.
func TestChartLintAndTemplate(t *testing.T) {
	if res := helm(t, append([]string{"lint", "--strict", chartDir(t)}, chartValues...)...); res.Code != 0 {
		t.Fatalf("helm lint: exit %d\n%s%s", res.Code, res.Stdout, res.Stderr)
	}
	res := helm(t, append([]string{"template", "tandem", chartDir(t), "--namespace", "tandem-system"}, chartValues...)...)
	if res.Code != 0 {
		t.Fatalf("helm template: exit %d\n%s", res.Code, res.Stderr)
	}
	golden := filepath.Join("testdata", "chart.golden.yaml")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, []byte(res.Stdout), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), res.Stdout); diff != "" {
		t.Errorf("helm template drifted from %s (-want +got); rerun with -update if intended:\n%s", golden, diff)
	}
	// The golden render has a home cluster (the in-cluster token serves it);
	// without one the pod gets no token of its cluster (review of issue 12, 10).
	if strings.Contains(res.Stdout, "automountServiceAccountToken") {
		t.Error("with homeContext set, the pod's token is not mounted: the home kubeconfig needs it")
	}
	noHome := helm(t, append([]string{"template", "tandem", chartDir(t), "--namespace", "tandem-system", "--set", "homeContext="}, chartValues...)...)
	if noHome.Code != 0 || !strings.Contains(noHome.Stdout, "automountServiceAccountToken: false") {
		t.Errorf("homeContext=\"\": helm template exit %d, want automountServiceAccountToken: false on the pod:\n%s%s", noHome.Code, noHome.Stdout, noHome.Stderr)
	}
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown guard mode", []string{"--set", "git.repo=x", "--set", "args.standbyGuard=bogus"}, "standbyGuard"},
		{"unknown value", []string{"--set", "git.repo=x", "--set", "replicas=3"}, "replicas"},
		{"no repository", nil, "git.repo is required"},
	} {
		res := helm(t, append([]string{"template", "tandem", chartDir(t)}, c.args...)...)
		if res.Code == 0 || !strings.Contains(res.Stderr, c.want) {
			t.Errorf("%s: helm template exit %d, want a failure naming %q:\n%s", c.name, res.Code, c.want, res.Stderr)
		}
	}
}

// TestChartRBACRunsServe installs the chart with the stock helm CLI (on
// blue serving, on green only the target RBAC), then runs `tandem serve
// --leader-elect` as a process with nothing but the chart's ServiceAccount
// tokens: it must lead, install every release on both clusters and keep
// green's Standby guard; the same tokens must not write outside the
// ClusterRole.
func TestChartRBACRunsServe(t *testing.T) {
	env := suite.Env(t)
	bin := tandem.Path(t)
	kube := map[string]kubernetes.Interface{}
	cfgs := map[string]*rest.Config{}
	for _, name := range env.Names() {
		cfg, err := env.RESTConfig(name)
		if err != nil {
			t.Fatal(err)
		}
		cfgs[name] = cfg
		if kube[name], err = kubernetes.NewForConfig(cfg); err != nil {
			t.Fatal(err)
		}
	}
	install := func(cluster string, args ...string) {
		t.Helper()
		res := helm(t, append([]string{"upgrade", "--install", "tandem", chartDir(t), "--kubeconfig", env.Kubeconfig(), "--kube-context", cluster,
			"--namespace", "tandem-system", "--create-namespace"}, args...)...)
		if res.Code != 0 {
			t.Fatalf("helm install on %s: exit %d\n%s", cluster, res.Code, res.Stderr)
		}
	}
	install("blue", "--set", "git.repo=https://git.example/unused.git", "--set", "homeContext=blue", "--set", "replicaCount=1")
	install("green", "--set", "serve=false")
	t.Cleanup(func() {
		for _, c := range env.Names() {
			helm(t, "uninstall", "tandem", "--kubeconfig", env.Kubeconfig(), "--kube-context", c, "--namespace", "tandem-system")
		}
	})

	// A kubeconfig holding only the chart's ServiceAccount tokens.
	kc := clientcmdapi.NewConfig()
	sa := map[string]kubernetes.Interface{}
	for _, name := range env.Names() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		tok, err := kube[name].CoreV1().ServiceAccounts("tandem-system").CreateToken(ctx, "tandem",
			&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr(int64(3600))}}, metav1.CreateOptions{})
		cancel()
		if err != nil {
			t.Fatalf("%s: TokenRequest for tandem-system/tandem: %v", name, err)
		}
		kc.Clusters[name] = &clientcmdapi.Cluster{Server: cfgs[name].Host, CertificateAuthorityData: cfgs[name].CAData}
		kc.AuthInfos[name] = &clientcmdapi.AuthInfo{Token: tok.Status.Token}
		kc.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: name}
		if sa[name], err = kubernetes.NewForConfig(&rest.Config{Host: cfgs[name].Host, BearerToken: tok.Status.Token,
			TLSClientConfig: rest.TLSClientConfig{CAData: cfgs[name].CAData}}); err != nil {
			t.Fatal(err)
		}
	}
	kc.CurrentContext = "blue"
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, kubeconfig); err != nil {
		t.Fatal(err)
	}

	repo := e2etest.CopyExample(t)
	repo.Replace(t, "tandem.yaml", "    releases: [platform, example]\n", "")
	repo.Commit(t, "green runs every release")
	port := freePort(t)
	cmd := exec.Command(bin, "serve", "--manifest-dir", repo.Dir, "--listen", fmt.Sprintf("127.0.0.1:%d", port), "--interval", "5s",
		"--leader-elect", "--leader-elect-namespace", "tandem-system", "--leader-elect-context", "blue", "--lock-duration", "15s", "--allow-mass-prune")
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig, "TANDEM_CACHE_DIR="+t.TempDir())
	logs := &e2etest.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("tandem serve after SIGTERM: %v", err)
			}
		case <-time.After(time.Minute):
			_ = cmd.Process.Kill()
			t.Error("tandem serve did not exit within a minute of SIGTERM")
		}
		if t.Failed() {
			t.Logf("tandem serve output:\n%s", logs.String())
		}
	}()

	// It leads and applies the manifest on both clusters.
	var st daemon.Status
	deadline := time.Now().Add(4 * time.Minute)
	for {
		st = status(t, port)
		if applied(st, "blue") && applied(st, "green") {
			break
		}
		if time.Now().After(deadline) {
			b, _ := json.MarshalIndent(st, "", "  ")
			t.Fatalf("with the chart's ServiceAccount, tandem serve did not apply to both clusters within 4 minutes; /status:\n%s", b)
		}
		time.Sleep(time.Second)
	}
	if !strings.Contains(metrics(t, port), "tandem_leader 1") {
		t.Error("tandem serve does not report tandem_leader 1")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := kube["green"].AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().Get(ctx, "tandem-standby-guard", metav1.GetOptions{}); err != nil {
		t.Errorf("green's Standby guard, written with the chart's RBAC: %v", err)
	}

	// Writes outside the ClusterRole are refused.
	for _, w := range []struct {
		what string
		do   func(context.Context, kubernetes.Interface) error
	}{
		{"create a ClusterRoleBinding to cluster-admin", func(ctx context.Context, c kubernetes.Interface) error {
			_, err := c.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
				ObjectMeta: metav1.ObjectMeta{Name: "e2e-escalate"},
				RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "cluster-admin"},
				Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "tandem", Namespace: "tandem-system"}},
			}, metav1.CreateOptions{})
			return err
		}},
		{"label a Node", func(ctx context.Context, c kubernetes.Interface) error {
			nodes, err := kube["blue"].CoreV1().Nodes().List(ctx, metav1.ListOptions{})
			if err != nil || len(nodes.Items) == 0 {
				return fmt.Errorf("no node to try: %v", err)
			}
			_, err = c.CoreV1().Nodes().Patch(ctx, nodes.Items[0].Name, types.MergePatchType, []byte(`{"metadata":{"labels":{"e2e":"x"}}}`), metav1.PatchOptions{})
			return err
		}},
		{"delete an admission policy that is not the guard's", func(ctx context.Context, c kubernetes.Interface) error {
			return c.AdmissionregistrationV1().ValidatingAdmissionPolicies().Delete(ctx, "someone-elses", metav1.DeleteOptions{})
		}},
		{"create a Pod", func(ctx context.Context, c kubernetes.Interface) error {
			_, err := c.CoreV1().Pods("default").Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "e2e"},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "x"}}}}, metav1.CreateOptions{})
			return err
		}},
	} {
		if err := w.do(ctx, sa["blue"]); !apierrors.IsForbidden(err) {
			t.Errorf("with the chart's ServiceAccount, %s: %v, want Forbidden", w.what, err)
		}
	}
}

// applied says /status shows cluster at the served commit with no error.
func applied(st daemon.Status, cluster string) bool {
	for _, c := range st.Clusters {
		if c.Name == cluster {
			return c.CommitApplied != "" && c.LastError == ""
		}
	}
	return false
}

func status(t *testing.T, port int) daemon.Status {
	t.Helper()
	var st daemon.Status
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/status", port))
	if err != nil {
		return st
	}
	defer resp.Body.Close()
	_ = json.NewDecoder(resp.Body).Decode(&st)
	return st
}

func metrics(t *testing.T, port int) string {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", port))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func ptr[T any](v T) *T { return &v }
