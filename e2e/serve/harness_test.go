package serve_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/tandem-gitops/tandem/e2e/e2etest"
	"github.com/tandem-gitops/tandem/e2e/gitserver"
	"github.com/tandem-gitops/tandem/e2e/localcluster"
)

// Annotations the overlay writes (README, "The overlay").
const annActiveReplicas = "tandem.dev/active-replicas"

// Where tandem keeps its cluster writer lock (clusters.SystemNamespace,
// clusters.LeaseName) and the default leader Lease namespace.
const (
	systemNamespace = "tandem-system"
	lockLease       = "tandem"
)

// webhookSecret is the secret every test daemon with webhooks is given.
const webhookSecret = "e2e-webhook-secret"

// harness runs `tandem serve` against the shared clusters and a git server
// of the test's own, and looks at what the clusters hold.
type harness struct {
	env      *localcluster.Env
	bin      string
	git      *gitserver.Server
	kube     map[string]kubernetes.Interface
	helmHome string // HELM_*_HOME of the helm CLI, so it never touches $HOME
	secret   string // path of the webhook secret file
}

// newHarness starts the clusters (skipping under -short) and a git server.
// gitserver.Start ties the server to a test's cleanup, so each test has its
// own; it costs a loopback listener and a temporary directory.
func newHarness(t *testing.T) *harness {
	t.Helper()
	env := clusters.Env(t)
	h := &harness{env: env, bin: binary(t), git: gitserver.Start(t, "", ""), helmHome: t.TempDir()}
	kube, err := env.Clientsets()
	if err != nil {
		t.Fatal(err)
	}
	h.kube = kube
	h.secret = filepath.Join(t.TempDir(), "webhook-secret")
	if err := os.WriteFile(h.secret, []byte(webhookSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return h
}

// envBinary points the tests at another tandem binary than the one they
// build from the working tree, e.g. to see them fail on a build from before
// a fix.
const envBinary = "TANDEM_E2E_BIN"

func binary(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv(envBinary); bin != "" {
		t.Logf("testing the tandem binary %s (%s)", bin, envBinary)
		return bin
	}
	return tandem.Path(t)
}

// remote is a manifest repository on the git server, with the working copy
// its commits are pushed from.
type remote struct {
	*e2etest.ManifestRepo
	h    *harness
	name string
	URL  string
	Head string // the last commit pushed to main
}

// newRemote creates repository name on the git server and pushes the
// working copy repo to its main branch.
func (h *harness) newRemote(t *testing.T, name string, repo *e2etest.ManifestRepo) *remote {
	t.Helper()
	h.git.CreateRepo(t, name)
	r := &remote{ManifestRepo: repo, h: h, name: name, URL: h.git.URL(name)}
	r.Push(t, "initial manifest")
	return r
}

// exampleRemote is newRemote with a copy of examples/manifest.
func (h *harness) exampleRemote(t *testing.T, name string) *remote {
	t.Helper()
	return h.newRemote(t, name, e2etest.CopyExample(t))
}

// Push commits the working copy as the new tip of main on the git server
// and returns the commit.
func (r *remote) Push(t *testing.T, message string) string {
	t.Helper()
	r.Head = r.h.git.PushDir(t, r.name, "main", r.Dir, message)
	return r.Head
}

// PushBranch commits the working copy as the new tip of another branch.
func (r *remote) PushBranch(t *testing.T, branch, message string) string {
	t.Helper()
	return r.h.git.PushDir(t, r.name, branch, r.Dir, message)
}

// Remove deletes a file of the working copy.
func (r *remote) Remove(t *testing.T, rel string) {
	t.Helper()
	if err := os.Remove(filepath.Join(r.Dir, filepath.FromSlash(rel))); err != nil {
		t.Fatal(err)
	}
}

// setExampleReplicas sets the example release's replicaCount in
// values/example.yaml (a values change of one release that reaches both
// clusters: replicas on blue, the recorded active count on green).
func setExampleReplicas(t *testing.T, r *remote, n int) {
	t.Helper()
	s := r.Read(t, "values/example.yaml")
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, "replicaCount:") {
			l = "replicaCount: " + strconv.Itoa(n)
		}
		out = append(out, l)
	}
	r.Write(t, "values/example.yaml", strings.Join(out, "\n"))
}

// exampleAt reports whether both clusters run the example release with n
// replicas: n on blue (Active), 0 on green (Standby) with n recorded as the
// active count.
func (h *harness) exampleAt(t *testing.T, n int) error {
	t.Helper()
	want := strconv.Itoa(n)
	blue, err := h.getDeployment("blue", "example", "example")
	if err != nil {
		return err
	}
	if got := specReplicas(blue); got != int32(n) {
		return fmt.Errorf("blue Deployment example/example has %d replicas, want %d", got, n)
	}
	green, err := h.getDeployment("green", "example", "example")
	if err != nil {
		return err
	}
	if got := specReplicas(green); got != 0 {
		return fmt.Errorf("green Deployment example/example has %d replicas, want 0 (Standby)", got)
	}
	if got := green.Annotations[annActiveReplicas]; got != want {
		return fmt.Errorf("green Deployment example/example: %s=%q, want %q", annActiveReplicas, got, want)
	}
	return nil
}

func (h *harness) getDeployment(cluster, namespace, name string) (*appsv1.Deployment, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, err := h.kube[cluster].AppsV1().Deployments(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("cluster %s: Deployment %s/%s: %w", cluster, namespace, name, err)
	}
	return d, nil
}

func (h *harness) deployment(t *testing.T, cluster, namespace, name string) *appsv1.Deployment {
	t.Helper()
	d, err := h.getDeployment(cluster, namespace, name)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func specReplicas(d *appsv1.Deployment) int32 {
	if d.Spec.Replicas == nil {
		return 1
	}
	return *d.Spec.Replicas
}

// releaseID is a release on a cluster.
type releaseID struct{ Namespace, Name string }

func (k releaseID) String() string { return k.Namespace + "/" + k.Name }

// stored is a release as Helm's storage holds it: its latest revision.
type stored struct {
	Revision int
	Status   string
}

// storage reads Helm's release storage (the Secrets helm ls reads) of a
// cluster directly, keyed by namespace/name; only the given namespaces when
// any are given.
func (h *harness) storage(t *testing.T, cluster string, namespaces ...string) map[releaseID]stored {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	list, err := h.kube[cluster].CoreV1().Secrets("").List(ctx, metav1.ListOptions{
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
			out[k] = stored{Revision: rev, Status: s.Labels["status"]}
		}
	}
	return out
}

// allStorage is storage of every cluster, keyed "cluster namespace/name".
func (h *harness) allStorage(t *testing.T, namespaces ...string) map[string]stored {
	t.Helper()
	out := map[string]stored{}
	for _, c := range h.env.Names() {
		for k, s := range h.storage(t, c, namespaces...) {
			out[c+" "+k.String()] = s
		}
	}
	return out
}

// pending lists the releases whose latest revision is pending-* on any
// cluster, from Helm's storage.
func (h *harness) pending(t *testing.T, namespaces ...string) []string {
	t.Helper()
	var out []string
	for k, s := range h.allStorage(t, namespaces...) {
		if strings.HasPrefix(s.Status, "pending-") {
			out = append(out, fmt.Sprintf("%s at revision %d is %s", k, s.Revision, s.Status))
		}
	}
	slices.Sort(out)
	return out
}

// helm runs the stock helm CLI against one cluster and returns its stdout.
func (h *harness) helm(t *testing.T, cluster string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	args = append(args, "--kubeconfig", h.env.Kubeconfig(), "--kube-context", cluster)
	cmd := exec.CommandContext(ctx, h.env.Tool("helm"), args...)
	cmd.Env = append(os.Environ(),
		"HELM_CACHE_HOME="+filepath.Join(h.helmHome, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(h.helmHome, "config"),
		"HELM_DATA_HOME="+filepath.Join(h.helmHome, "data"),
	)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

// leaseHolder returns the holder of a Lease and whether the holder's term
// is still running (renewed less than its duration ago, by this machine's
// clock: the clusters run here). A Lease that does not exist has no holder.
func (h *harness) leaseHolder(t *testing.T, cluster, namespace, name string) (holder string, live bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l, err := h.kube[cluster].CoordinationV1().Leases(namespace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return "", false
	}
	if err != nil {
		t.Fatalf("cluster %s: Lease %s/%s: %v", cluster, namespace, name, err)
	}
	if l.Spec.HolderIdentity != nil {
		holder = *l.Spec.HolderIdentity
	}
	if holder == "" || l.Spec.RenewTime == nil || l.Spec.LeaseDurationSeconds == nil {
		return holder, false
	}
	end := l.Spec.RenewTime.Add(time.Duration(*l.Spec.LeaseDurationSeconds) * time.Second)
	return holder, time.Now().Before(end)
}

// ensureNamespace creates a namespace on a cluster unless it exists.
func (h *harness) ensureNamespace(t *testing.T, cluster, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := h.kube[cluster].CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("cluster %s: create namespace %s: %v", cluster, name, err)
	}
}

// deleteNamespacesOnCleanup deletes namespaces on every cluster when the
// test ends and waits until they are gone, so the releases stored in them go
// too before the next test.
func (h *harness) deleteNamespacesOnCleanup(t *testing.T, namespaces ...string) {
	t.Helper()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
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
				for {
					_, err := h.kube[c].CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
					if apierrors.IsNotFound(err) {
						break
					}
					if ctx.Err() != nil {
						t.Errorf("cluster %s: namespace %s still there after 2 minutes (last error: %v)", c, ns, err)
						break
					}
					time.Sleep(250 * time.Millisecond)
				}
			}
		}
	})
}

// waitFor polls cond every 100ms until it returns nil, failing the test
// after timeout (with cond's last error) or as soon as one of the daemons
// exits.
func waitFor(t *testing.T, what string, timeout time.Duration, daemons []*serveProc, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		for _, d := range daemons {
			if d.exited() {
				t.Fatalf("%s: daemon %s exited (%v) first; last check: %v", what, d.name, d.err, err)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v", what, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
