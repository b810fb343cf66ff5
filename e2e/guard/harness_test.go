package guard_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/tandem-gitops/tandem/clusters"
	"github.com/tandem-gitops/tandem/e2e/e2etest"
	"github.com/tandem-gitops/tandem/e2e/localcluster"
)

// runTimeout bounds one tandem run.
const runTimeout = 4 * time.Minute

// enforceWithin bounds how long the API server may take to enforce a new or
// changed policy (its policy source refreshes about every second).
const enforceWithin = 30 * time.Second

type harness struct {
	env   *localcluster.Env
	bin   string
	cache string
	kube  map[string]kubernetes.Interface
	repo  *e2etest.ManifestRepo
}

// newHarness copies examples/manifest with green running every release
// and a 1 s drain, and converges both clusters to it with the guard in
// mode: blue Active, green Standby.
func newHarness(t *testing.T, mode string) *harness {
	t.Helper()
	env := suite.Env(t)
	h := &harness{env: env, bin: tandem.Path(t), cache: t.TempDir()}
	kube, err := env.Clientsets()
	if err != nil {
		t.Fatal(err)
	}
	h.kube = kube
	h.repo = e2etest.CopyExample(t)
	h.repo.Replace(t, "tandem.yaml", "    releases: [platform, example]\n", "")
	h.repo.Replace(t, "tandem.yaml", "  activeWeight: 100\n", "  activeWeight: 100\n  drainSeconds: 1\n")
	h.repo.Commit(t, "green runs every release; 1 s drain")
	// A failed earlier test may have left green Active: finish that
	// switchover, then switch back.
	if st := h.state(t, "green"); st != nil && (st.Role == "active" || st.Switchover != nil) {
		h.switchTo(t, "green")
		if res := h.reconcile(t, "--allow-mass-prune"); res.Code != 0 {
			t.Fatalf("converging to green: exit %d\n%s", res.Code, res.Stderr)
		}
		h.switchTo(t, "blue")
	}
	if res := h.reconcile(t, "--allow-mass-prune", "--standby-guard", mode); res.Code != 0 {
		t.Fatalf("converging: exit %d\n%s", res.Code, res.Stderr)
	}
	return h
}

func (h *harness) tandemEnv() []string {
	return []string{"KUBECONFIG=" + h.env.Kubeconfig(), "TANDEM_CACHE_DIR=" + h.cache}
}

func (h *harness) reconcile(t *testing.T, args ...string) e2etest.Result {
	t.Helper()
	args = append([]string{"reconcile", "--manifest-dir", h.repo.Dir, "-o", "json", "--lock-duration", "15s", "--detect-drift=false"}, args...)
	return e2etest.Run(t, h.bin, runTimeout, h.tandemEnv(), args...)
}

// switchTo runs `tandem switchover --to name` and commits the edit.
func (h *harness) switchTo(t *testing.T, name string) {
	t.Helper()
	res := e2etest.Run(t, h.bin, time.Minute, h.tandemEnv(), "switchover", "--to", name, "--manifest-dir", h.repo.Dir)
	if res.Code != 0 {
		t.Fatalf("tandem switchover --to %s: exit %d\n%s", name, res.Code, res.Stderr)
	}
	h.repo.Commit(t, "switch over to "+name)
}

// kubectl runs the stock kubectl against a cluster.
func (h *harness) kubectl(t *testing.T, cluster string, args ...string) e2etest.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, h.env.Tool("kubectl"), append([]string{"--kubeconfig", h.env.Kubeconfig(), "--context", cluster}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	res := e2etest.Result{Stdout: out.String(), Stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		res.Code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("kubectl %s: %v", strings.Join(args, " "), err)
	}
	return res
}

// until runs kubectl with args (a server-side dry run) until ok says its
// result is what the test waits for: a new or changed policy takes the
// API server a moment to enforce.
func (h *harness) until(t *testing.T, cluster string, ok func(e2etest.Result) bool, args ...string) e2etest.Result {
	t.Helper()
	deadline := time.Now().Add(enforceWithin)
	for {
		res := h.kubectl(t, cluster, args...)
		if ok(res) || time.Now().After(deadline) {
			return res
		}
		time.Sleep(300 * time.Millisecond)
	}
}

func refused(r e2etest.Result) bool { return r.Code != 0 }

// deployment is the name of release's Deployment in namespace ns on cluster.
func (h *harness) deployment(t *testing.T, cluster, ns, release string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l, err := h.kube[cluster].AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{LabelSelector: "tandem.dev/release=" + release})
	if err != nil || len(l.Items) == 0 {
		t.Fatalf("%s: no Deployment of release %s in %s: %v", cluster, release, ns, err)
	}
	return l.Items[0].Name
}

// replicas reads a Deployment's spec.replicas.
func (h *harness) replicas(t *testing.T, cluster, ns, name string) int32 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d, err := h.kube[cluster].AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if d.Spec.Replicas == nil {
		return 1
	}
	return *d.Spec.Replicas
}

// hasGuard reports whether the default manifest's guard binding exists on cluster.
func (h *harness) hasGuard(t *testing.T, cluster string) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := h.kube[cluster].AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().Get(ctx, clusters.GuardName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	return true
}

// state reads a cluster's state record as tandem does.
func (h *harness) state(t *testing.T, cluster string) *clusters.State {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cm, err := h.kube[cluster].CoreV1().ConfigMaps(clusters.SystemNamespace).Get(ctx, clusters.StateConfigMap, metav1.GetOptions{})
	if err != nil {
		return nil
	}
	st, err := clusters.DecodeState(cm)
	if err != nil {
		t.Fatalf("%s: state record: %v", cluster, err)
	}
	return st
}

// cronJob is the name of release's CronJob in namespace ns on cluster.
func (h *harness) cronJob(t *testing.T, cluster, ns, release string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l, err := h.kube[cluster].BatchV1().CronJobs(ns).List(ctx, metav1.ListOptions{LabelSelector: "tandem.dev/release=" + release})
	if err != nil || len(l.Items) == 0 {
		t.Fatalf("%s: no CronJob of release %s in %s: %v", cluster, release, ns, err)
	}
	return l.Items[0].Name
}

func itoa(n int32) string { return strconv.Itoa(int(n)) }

// helm runs the stock helm CLI against a cluster, with Helm's own
// directories in the test's temporary directory.
func (h *harness) helm(t *testing.T, cluster string, args ...string) e2etest.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, h.env.Tool("helm"), append([]string{"--kubeconfig", h.env.Kubeconfig(), "--kube-context", cluster}, args...)...)
	dir := t.TempDir()
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+dir+"/cache", "HELM_CONFIG_HOME="+dir+"/config", "HELM_DATA_HOME="+dir+"/data")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	res := e2etest.Result{Stdout: out.String(), Stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		res.Code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("helm %s: %v", strings.Join(args, " "), err)
	}
	return res
}

// activeEraRevision is the latest revision of release in green's Helm
// history that was rendered while green was Active (its manifest has no
// tandem.dev/active-replicas), or 0.
func (h *harness) activeEraRevision(t *testing.T, ns, release string) int {
	t.Helper()
	res := h.helm(t, "green", "-n", ns, "history", release, "-o", "json", "--max", "50")
	if res.Code != 0 {
		t.Fatalf("helm history %s on green: exit %d\n%s", release, res.Code, res.Stderr)
	}
	var hist []struct {
		Revision int `json:"revision"`
	}
	res.JSON(t, &hist)
	for i := len(hist) - 1; i >= 0; i-- {
		rev := hist[i].Revision
		m := h.helm(t, "green", "-n", ns, "get", "manifest", release, "--revision", strconv.Itoa(rev))
		if m.Code == 0 && strings.Contains(m.Stdout, "kind: Deployment") && !strings.Contains(m.Stdout, clusters.GuardReplicasAnnotation) {
			return rev
		}
	}
	return 0
}

// setGuardWriter makes the default guard's parameter on cluster name
// another user as its writer, as a tandem running as that user writes it.
func (h *harness) setGuardWriter(t *testing.T, cluster, user string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	patch := []byte(`{"data":{"writer":"` + user + `"}}`)
	if _, err := h.kube[cluster].CoreV1().ConfigMaps(clusters.SystemNamespace).Patch(ctx, clusters.GuardName, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatalf("%s: set the guard's writer: %v", cluster, err)
	}
}
