package reconcile_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/tandem-gitops/tandem/e2e/e2etest"
	"github.com/tandem-gitops/tandem/e2e/localcluster"
	"github.com/tandem-gitops/tandem/reconciler"
)

// runTimeout bounds one tandem run; the test manifests use short release
// timeouts, so a run that takes this long is hung.
const runTimeout = 4 * time.Minute

// Annotations and labels the overlay writes (README, "The overlay").
const (
	annWeight         = "external-dns.alpha.kubernetes.io/aws-weight"
	annSetIdentifier  = "external-dns.alpha.kubernetes.io/set-identifier"
	annActiveReplicas = "tandem.dev/active-replicas"
	labelCluster      = "tandem.dev/cluster"
	labelRole         = "tandem.dev/role"
	labelRelease      = "tandem.dev/release"
)

// harness runs the tandem binary against the shared clusters and looks at
// what they hold.
type harness struct {
	env      *localcluster.Env
	bin      string
	cache    string // TANDEM_CACHE_DIR of every run in one test
	helmHome string // HELM_*_HOME of the helm CLI, so it never touches $HOME
	kube     map[string]kubernetes.Interface
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	env := clusters.Env(t)
	h := &harness{env: env, bin: tandem.Path(t), cache: t.TempDir(), helmHome: t.TempDir()}
	kube, err := env.Clientsets()
	if err != nil {
		t.Fatal(err)
	}
	h.kube = kube
	return h
}

func (h *harness) tandemEnv() []string {
	return []string{"KUBECONFIG=" + h.env.Kubeconfig(), "TANDEM_CACHE_DIR=" + h.cache}
}

func (h *harness) reconcileArgs(dir string, args []string) []string {
	return append([]string{"reconcile", "--manifest-dir", dir, "-o", "json"}, args...)
}

// reconcile runs `tandem reconcile -o json` on the manifest checkout dir.
func (h *harness) reconcile(t *testing.T, dir string, args ...string) e2etest.Result {
	t.Helper()
	return e2etest.Run(t, h.bin, runTimeout, h.tandemEnv(), h.reconcileArgs(dir, args)...)
}

// process is a tandem run started in the background.
type process struct {
	cmd            *exec.Cmd
	args           []string
	stdout, stderr bytes.Buffer // written until done is closed
	done           chan struct{}
	err            error // cmd.Wait's, once done is closed
}

// start starts `tandem reconcile -o json` on dir without waiting for it. The
// test's cleanup kills it if it is still running.
func (h *harness) start(t *testing.T, dir string, args ...string) *process {
	t.Helper()
	p := &process{args: h.reconcileArgs(dir, args), done: make(chan struct{})}
	p.cmd = exec.Command(h.bin, p.args...)
	p.cmd.Env = append(os.Environ(), h.tandemEnv()...)
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	startBackground(t, p.cmd, p.done, &p.err)
	return p
}

// startBackground starts cmd; when it exits, *err is set and done closed.
// The test's cleanup kills it if it is still running.
func startBackground(t *testing.T, cmd *exec.Cmd, done chan struct{}, err *error) {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		*err = cmd.Wait()
		close(done)
	}()
	t.Cleanup(func() {
		select {
		case <-done:
		default:
			_ = cmd.Process.Kill()
			<-done
		}
	})
}

// helmCommand is the stock helm CLI against one cluster, with its homes in
// the test's own directory so it never touches $HOME.
func (h *harness) helmCommand(ctx context.Context, cluster string, args ...string) *exec.Cmd {
	args = append(args, "--kubeconfig", h.env.Kubeconfig(), "--kube-context", cluster)
	cmd := exec.CommandContext(ctx, h.env.Tool("helm"), args...)
	cmd.Env = append(os.Environ(),
		"HELM_CACHE_HOME="+filepath.Join(h.helmHome, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(h.helmHome, "config"),
		"HELM_DATA_HOME="+filepath.Join(h.helmHome, "data"),
	)
	return cmd
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// kill sends SIGKILL, as a CI runner losing its job does, and waits for the exit.
func (p *process) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.done
}

// wait waits for the run to end and returns it like e2etest.Run does.
func (p *process) wait(t *testing.T) e2etest.Result {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(runTimeout):
		t.Fatalf("tandem %s did not finish within %s", strings.Join(p.args, " "), runTimeout)
	}
	res := e2etest.Result{Stdout: p.stdout.String(), Stderr: p.stderr.String()}
	var ee *exec.ExitError
	switch {
	case p.err == nil:
	case errors.As(p.err, &ee):
		res.Code = ee.ExitCode()
	default:
		t.Fatalf("tandem %s: %v", strings.Join(p.args, " "), p.err)
	}
	t.Logf("tandem %s → exit %d\nstderr:\n%s\nstdout:\n%s", strings.Join(p.args, " "), res.Code, res.Stderr, res.Stdout)
	return res
}

// converge brings both clusters to the manifest in dir, pruning whatever
// tandem owns there that the manifest does not name, and fails the test
// unless that works. Tests that break things start with it, so they do not
// depend on the state an earlier test left.
func (h *harness) converge(t *testing.T, dir string) reconciler.Report {
	t.Helper()
	res := h.reconcile(t, dir, "--allow-mass-prune")
	if res.Code != 0 {
		t.Fatalf("converging the clusters to %s: exit %d\n%s", dir, res.Code, res.Stderr)
	}
	return decodeReport(t, res)
}

// decodeReport decodes a run's JSON report (the stable schema) into
// reconciler.Report.
func decodeReport(t *testing.T, res e2etest.Result) reconciler.Report {
	t.Helper()
	var r reconciler.Report
	res.JSON(t, &r)
	return r
}

// clusterReport returns one cluster's part of a report.
func clusterReport(t *testing.T, r reconciler.Report, name string) reconciler.ClusterReport {
	t.Helper()
	for _, c := range r.Clusters {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("report has no cluster %q", name)
	return reconciler.ClusterReport{}
}

// releaseReport returns one release's part of a cluster report.
func releaseReport(t *testing.T, c reconciler.ClusterReport, name string) reconciler.ReleaseReport {
	t.Helper()
	for _, r := range c.Releases {
		if r.Name == name {
			return r
		}
	}
	t.Fatalf("cluster %s: report has no release %q", c.Name, name)
	return reconciler.ReleaseReport{}
}

// step is the part of a release report a test pins down exactly.
type step struct {
	Action       reconciler.Action
	Outcome      reconciler.Outcome
	FromRevision int
	Revision     int
}

// steps reduces a cluster report's releases to name → step.
func steps(c reconciler.ClusterReport) map[string]step {
	out := map[string]step{}
	for _, r := range c.Releases {
		out[r.Name] = step{r.Action, r.Outcome, r.FromRevision, r.Revision}
	}
	return out
}

// stored is a release as Helm's storage holds it: its latest revision.
type stored struct {
	Namespace string
	Revision  int
	Status    string
}

// storage reads Helm's release storage (the Secrets helm ls reads) of a
// cluster directly, without tandem or the helm CLI: name → latest revision.
func (h *harness) storage(t *testing.T, cluster string) map[string]stored {
	t.Helper()
	list, err := h.kube[cluster].CoreV1().Secrets("").List(context.Background(), metav1.ListOptions{
		LabelSelector: "owner=helm", FieldSelector: "type=helm.sh/release.v1",
	})
	if err != nil {
		t.Fatalf("cluster %s: list Helm release secrets: %v", cluster, err)
	}
	out := map[string]stored{}
	for _, s := range list.Items {
		name := s.Labels["name"]
		rev, err := strconv.Atoi(s.Labels["version"])
		if err != nil {
			t.Fatalf("cluster %s: release secret %s/%s: version label %q", cluster, s.Namespace, s.Name, s.Labels["version"])
		}
		if cur, ok := out[name]; ok && cur.Namespace != s.Namespace {
			t.Fatalf("cluster %s: release %q in two namespaces (%s, %s); the tests use unique names", cluster, name, cur.Namespace, s.Namespace)
		}
		if rev > out[name].Revision {
			out[name] = stored{Namespace: s.Namespace, Revision: rev, Status: s.Labels["status"]}
		}
	}
	return out
}

// revisions is name → latest revision of every release in a cluster's Helm storage.
func (h *harness) revisions(t *testing.T, cluster string) map[string]int {
	t.Helper()
	out := map[string]int{}
	for name, s := range h.storage(t, cluster) {
		out[name] = s.Revision
	}
	return out
}

// releaseLabels returns the labels of one stored revision's Secret (Helm's
// bookkeeping labels and the release labels tandem sets).
func (h *harness) releaseLabels(t *testing.T, cluster, namespace, name string, revision int) map[string]string {
	t.Helper()
	s, err := h.kube[cluster].CoreV1().Secrets(namespace).Get(context.Background(), fmt.Sprintf("sh.helm.release.v1.%s.v%d", name, revision), metav1.GetOptions{})
	if err != nil {
		t.Fatalf("cluster %s: release %s/%s revision %d: %v", cluster, namespace, name, revision, err)
	}
	return s.Labels
}

// helm runs the stock helm CLI against one cluster and returns its stdout.
func (h *harness) helm(t *testing.T, cluster string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := h.helmCommand(ctx, cluster, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

// helmListed is one entry of `helm ls -o json` (its revision is a string).
type helmListed struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	Revision  string `json:"revision"`
	Status    string `json:"status"`
	Chart     string `json:"chart"`
}

// helmRevision is one entry of `helm history -o json`.
type helmRevision struct {
	Revision    int       `json:"revision"`
	Updated     time.Time `json:"updated"`
	Status      string    `json:"status"`
	Description string    `json:"description"`
}

func (h *harness) helmHistory(t *testing.T, cluster, namespace, name string) []helmRevision {
	t.Helper()
	var hist []helmRevision
	out := h.helm(t, cluster, "history", name, "-n", namespace, "-o", "json")
	if err := json.Unmarshal([]byte(out), &hist); err != nil {
		t.Fatalf("helm history %s: %v\n%s", name, err, out)
	}
	sort.Slice(hist, func(i, j int) bool { return hist[i].Revision < hist[j].Revision })
	return hist
}

func (h *harness) deployment(t *testing.T, cluster, namespace, name string) *appsv1.Deployment {
	t.Helper()
	d, err := h.kube[cluster].AppsV1().Deployments(namespace).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("cluster %s: Deployment %s/%s: %v", cluster, namespace, name, err)
	}
	return d
}

// replicas is what a test checks of a Deployment: desired, available, and
// whether the Available condition holds.
type replicas struct {
	Spec, Available int32
	AvailableCond   bool
}

func deploymentReplicas(d *appsv1.Deployment) replicas {
	r := replicas{Available: d.Status.AvailableReplicas}
	if d.Spec.Replicas != nil {
		r.Spec = *d.Spec.Replicas
	}
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentAvailable {
			r.AvailableCond = c.Status == corev1.ConditionTrue
		}
	}
	return r
}

// waitGone polls until get reports NotFound, failing the test after a minute.
// Deletions are asynchronous (finalizers, background propagation), so this is
// a wait, not a timing assertion.
func waitGone(t *testing.T, what string, get func() error) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		err := get()
		if apierrors.IsNotFound(err) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still there after a minute (last error: %v)", what, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// progressLine is one line of tandem's stderr progress, split in fields:
// "blue    wave 0  platform       upgrade   rev 1→2     healthy 3.1s".
type progressLine struct {
	Cluster, Release string
	Fields           []string
	Text             string
}

func progressLines(stderr string) []progressLine {
	var out []progressLine
	for _, l := range strings.Split(stderr, "\n") {
		f := strings.Fields(l)
		if len(f) < 5 || f[1] != "wave" {
			continue
		}
		out = append(out, progressLine{Cluster: f[0], Release: f[3], Fields: f, Text: l})
	}
	return out
}

// indexOf returns the index of the first progress line of cluster and release
// having word as one of its fields, or -1.
func indexOf(lines []progressLine, cluster, release, word string) int {
	for i, l := range lines {
		if l.Cluster != cluster || l.Release != release {
			continue
		}
		for _, f := range l.Fields[4:] {
			if f == word {
				return i
			}
		}
	}
	return -1
}

// addChart copies testdata/charts/name into the manifest checkout's charts/.
func addChart(t *testing.T, repo *e2etest.ManifestRepo, name string) {
	t.Helper()
	dst := filepath.Join(repo.Dir, "charts", name)
	if err := os.CopyFS(dst, os.DirFS(filepath.Join("testdata", "charts", name))); err != nil {
		t.Fatal(err)
	}
}

// addRelease inserts a release block at the top of tandem.yaml's releases.
func addRelease(t *testing.T, repo *e2etest.ManifestRepo, block string) {
	t.Helper()
	repo.Replace(t, "tandem.yaml", "\nreleases:\n", "\nreleases:\n"+block)
}

// enableOnGreen adds a release to green's staged-enablement list.
func enableOnGreen(t *testing.T, repo *e2etest.ManifestRepo, name string) {
	t.Helper()
	repo.Replace(t, "tandem.yaml", "releases: [platform, example]", "releases: [platform, example, "+name+"]")
}

// exampleReleases are the releases examples/manifest puts on each cluster.
var exampleReleases = map[string][]string{
	"blue":  {"cache", "example", "orders-worker", "platform", "storefront"},
	"green": {"example", "platform"},
}

func names[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
