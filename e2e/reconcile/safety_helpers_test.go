package reconcile_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tandem-gitops/tandem/e2e/e2etest"
	"github.com/tandem-gitops/tandem/reconciler"
)

// Helpers of the issue-8 safety tests (safety_test.go, safety_crash_test.go).
// Those files sort after lifecycle_test.go and recovery_test.go on purpose:
// go test runs tests in file order, TestReconcileLifecycle needs fresh
// clusters, and the safety tests leave nothing behind that the earlier tests
// would see (each deletes its namespaces, and uses a manifest ID of its own so
// that it neither prunes nor is pruned by the example manifest).

// Environment variables that point the safety tests at another tandem binary,
// to see them fail on a build from before the fixes they prove:
//
//	git worktree add /tmp/before 0593b06 && (cd /tmp/before && go build -o /tmp/tandem-before ./cmd/tandem)
//	TANDEM_E2E_BIN=/tmp/tandem-before TANDEM_E2E_NO_MANIFEST_ID=1 go test -run TestSafety1 ./e2e/reconcile/
//
// Builds from before manifest IDs refuse tandem.yaml's `id:` (strict
// loading); TANDEM_E2E_NO_MANIFEST_ID leaves it out. Run one test per go test
// process then, so that default-manifest releases of one test are not
// pruned by the next.
const (
	envBinary       = "TANDEM_E2E_BIN"
	envNoManifestID = "TANDEM_E2E_NO_MANIFEST_ID"
)

// newSafetyHarness is newHarness with the binary taken from TANDEM_E2E_BIN
// when set.
func newSafetyHarness(t *testing.T) *harness {
	t.Helper()
	h := newHarness(t)
	if bin := os.Getenv(envBinary); bin != "" {
		t.Logf("testing the tandem binary %s (%s)", bin, envBinary)
		h.bin = bin
	}
	return h
}

// idLine is tandem.yaml's `id:` line for a manifest ID, or nothing for
// binaries that predate manifest IDs (TANDEM_E2E_NO_MANIFEST_ID).
func idLine(id string) string {
	if os.Getenv(envNoManifestID) != "" {
		return ""
	}
	return "id: " + id + "\n"
}

// twoClusters is the clusters section every safety manifest uses: blue
// (Active) and green (Standby), the local clusters' kubeconfig contexts.
const twoClusters = `clusters:
  - name: blue
    role: active
  - name: green
    role: standby
`

// newProbeRepo makes a manifest repository holding tandem.yaml and the probe
// chart (testdata/charts/probe) as ./charts/probe, and commits it.
func newProbeRepo(t *testing.T, tandemYAML string) *e2etest.ManifestRepo {
	t.Helper()
	repo := &e2etest.ManifestRepo{Dir: filepath.Join(t.TempDir(), "manifest")}
	if err := os.CopyFS(filepath.Join(repo.Dir, "charts", "probe"), os.DirFS(filepath.Join("testdata", "charts", "probe"))); err != nil {
		t.Fatal(err)
	}
	repo.Write(t, "tandem.yaml", tandemYAML)
	repo.Git(t, "init", "-q", "-b", "main")
	repo.Commit(t, "manifest")
	return repo
}

// releaseID is a release on a cluster: Helm release names are unique per
// namespace only.
type releaseID struct{ Namespace, Name string }

func (k releaseID) String() string { return k.Namespace + "/" + k.Name }

// storageByKey reads Helm's release storage of a cluster directly (the
// Secrets helm ls reads), keyed by namespace/name, unlike harness.storage,
// which refuses one name in two namespaces. Only the given namespaces are
// read when any are given.
func (h *harness) storageByKey(t *testing.T, cluster string, namespaces ...string) map[releaseID]stored {
	t.Helper()
	list, err := h.kube[cluster].CoreV1().Secrets("").List(context.Background(), metav1.ListOptions{
		LabelSelector: "owner=helm", FieldSelector: "type=helm.sh/release.v1",
	})
	if err != nil {
		t.Fatalf("cluster %s: list Helm release secrets: %v", cluster, err)
	}
	out := map[releaseID]stored{}
	for _, s := range list.Items {
		if len(namespaces) > 0 && !slices.Contains(namespaces, s.Namespace) {
			continue
		}
		k := releaseID{s.Namespace, s.Labels["name"]}
		rev, err := strconv.Atoi(s.Labels["version"])
		if err != nil {
			t.Fatalf("cluster %s: release secret %s/%s: version label %q", cluster, s.Namespace, s.Name, s.Labels["version"])
		}
		if rev > out[k].Revision {
			out[k] = stored{Namespace: s.Namespace, Revision: rev, Status: s.Labels["status"]}
		}
	}
	return out
}

// revisionStatus is the status of one stored revision ("" once it is gone).
func (h *harness) revisionStatus(t *testing.T, cluster string, k releaseID, revision int) string {
	t.Helper()
	s, err := h.kube[cluster].CoreV1().Secrets(k.Namespace).Get(context.Background(), fmt.Sprintf("sh.helm.release.v1.%s.v%d", k.Name, revision), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return ""
	}
	if err != nil {
		t.Fatalf("cluster %s: release %s revision %d: %v", cluster, k, revision, err)
	}
	return s.Labels["status"]
}

// releaseIn returns one release's part of a cluster report, by namespace and name.
func releaseIn(t *testing.T, c reconciler.ClusterReport, k releaseID) reconciler.ReleaseReport {
	t.Helper()
	for _, r := range c.Releases {
		if r.Namespace == k.Namespace && r.Name == k.Name {
			return r
		}
	}
	t.Fatalf("cluster %s: report has no release %s", c.Name, k)
	return reconciler.ReleaseReport{}
}

// prunedIn returns one release's entry in a cluster report's prunes, if any.
func prunedIn(c reconciler.ClusterReport, k releaseID) (reconciler.ReleaseReport, bool) {
	for _, r := range c.Pruned {
		if r.Namespace == k.Namespace && r.Name == k.Name {
			return r, true
		}
	}
	return reconciler.ReleaseReport{}, false
}

// deleteNamespacesOnCleanup deletes namespaces on both clusters when the test
// ends, and waits until they are gone, so the releases stored in them (Helm
// keeps them as Secrets there) are gone too before the next test.
func (h *harness) deleteNamespacesOnCleanup(t *testing.T, namespaces ...string) {
	t.Helper()
	t.Cleanup(func() {
		ctx := context.Background()
		for _, c := range h.env.Names() {
			for _, ns := range namespaces {
				err := h.kube[c].CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{})
				if err != nil && !apierrors.IsNotFound(err) {
					t.Errorf("cluster %s: delete namespace %s: %v", c, ns, err)
				}
			}
		}
		for _, c := range h.env.Names() {
			for _, ns := range namespaces {
				waitGone(t, "cluster "+c+" namespace "+ns, func() error {
					_, err := h.kube[c].CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
					return err
				})
			}
		}
	})
}

// waitFor polls cond every 100ms until it holds, failing the test after
// timeout or if p (when not nil) exits first.
func waitFor(t *testing.T, what string, timeout time.Duration, p *process, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if p != nil && p.exited() {
			res := p.wait(t)
			t.Fatalf("tandem exited (%d) before %s", res.Code, what)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// killNow sends SIGKILL unless the run has ended already, and reports
// whether it was killed.
func killNow(t *testing.T, p *process) bool {
	t.Helper()
	if p.exited() {
		return false
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		if errors.Is(err, os.ErrProcessDone) {
			<-p.done
			return false
		}
		t.Fatal(err)
	}
	<-p.done
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			return true
		}
	}
	return false
}

// helmProcess is a helm CLI command running in the background, as a person's
// `helm upgrade --wait` in another terminal.
type helmProcess struct {
	cmd    *exec.Cmd
	args   []string
	output bytes.Buffer // written until done is closed
	done   chan struct{}
	err    error
}

// startHelm starts the helm CLI against one cluster without waiting for it;
// the test's cleanup kills it if it still runs.
func (h *harness) startHelm(t *testing.T, cluster string, args ...string) *helmProcess {
	t.Helper()
	p := &helmProcess{args: args, done: make(chan struct{})}
	p.cmd = h.helmCommand(context.Background(), cluster, args...)
	p.cmd.Stdout, p.cmd.Stderr = &p.output, &p.output
	startBackground(t, p.cmd, p.done, &p.err)
	return p
}

func (p *helmProcess) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// wait waits for helm to end and returns its output and error.
func (p *helmProcess) wait(t *testing.T, timeout time.Duration) (string, error) {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		t.Fatalf("helm %s did not finish within %s", strings.Join(p.args, " "), timeout)
	}
	return p.output.String(), p.err
}

// runHelm runs the helm CLI against one cluster and returns its combined
// output and error, for commands expected to fail.
func (h *harness) runHelm(t *testing.T, cluster string, args ...string) (string, error) {
	t.Helper()
	p := h.startHelm(t, cluster, args...)
	return p.wait(t, 3*time.Minute)
}

// logWorkloads logs the Deployments, ReplicaSets and Pods of a namespace,
// to tell on failure why a release is not healthy.
func (h *harness) logWorkloads(t *testing.T, cluster, namespace string) {
	t.Helper()
	ctx := context.Background()
	var b strings.Builder
	if ds, err := h.kube[cluster].AppsV1().Deployments(namespace).List(ctx, metav1.ListOptions{}); err == nil {
		for _, d := range ds.Items {
			fmt.Fprintf(&b, "Deployment %s: generation %d observed %d, replicas %+v, status replicas %d updated %d available %d, node selector %v\n",
				d.Name, d.Generation, d.Status.ObservedGeneration, deploymentReplicas(&d), d.Status.Replicas, d.Status.UpdatedReplicas,
				d.Status.AvailableReplicas, d.Spec.Template.Spec.NodeSelector)
		}
	}
	if rss, err := h.kube[cluster].AppsV1().ReplicaSets(namespace).List(ctx, metav1.ListOptions{}); err == nil {
		for _, rs := range rss.Items {
			fmt.Fprintf(&b, "ReplicaSet %s: replicas %d/%d, node selector %v\n", rs.Name, rs.Status.Replicas, *rs.Spec.Replicas, rs.Spec.Template.Spec.NodeSelector)
		}
	}
	if pods, err := h.kube[cluster].CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{}); err == nil {
		for _, p := range pods.Items {
			fmt.Fprintf(&b, "Pod %s: phase %s node %q deleting %v\n", p.Name, p.Status.Phase, p.Spec.NodeName, p.DeletionTimestamp != nil)
		}
	}
	t.Logf("cluster %s namespace %s:\n%s", cluster, namespace, b.String())
}
