package clusters

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/storage/driver"
	helmtime "helm.sh/helm/v3/pkg/time"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// helmCLI runs the stock helm binary against blue and returns its stdout.
func helmCLI(t *testing.T, kubeconfig, helm string, args ...string) []byte {
	t.Helper()
	home := t.TempDir()
	cmd := exec.Command(helm, append(args, "--kube-context", testCluster, "--kubeconfig", kubeconfig)...)
	cmd.Env = append(os.Environ(), "HOME="+home, "HELM_CACHE_HOME="+home, "HELM_CONFIG_HOME="+home, "HELM_DATA_HOME="+home)
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, ee.Stderr)
		}
		t.Fatalf("helm %s: %v", strings.Join(args, " "), err)
	}
	return out
}

func configMapData(t *testing.T, cs kubernetes.Interface, ns, name, key string) string {
	t.Helper()
	cm, err := cs.CoreV1().ConfigMaps(ns).Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return cm.Data[key]
}

func summarize(rs []Release) []string {
	out := []string{}
	for _, r := range rs {
		out = append(out, r.Namespace+"/"+r.Name+" "+r.Status)
	}
	return out
}

func TestReleaseLifecycle(t *testing.T) {
	ctx, c, e := connect(t)
	cs := adminClient(t, e)
	ns := testNamespace(t)
	ch := loadChart(t, "web")
	owned := map[string]string{"tandem.io/managed": "true"}

	// Install: the namespace does not exist yet.
	cost := c.Requests()
	rel, err := c.Install(ctx, ReleaseRequest{
		Name: "web", Namespace: ns, Chart: ch,
		Values:      map[string]any{"message": "one"},
		Labels:      map[string]string{"tandem.io/managed": "true", "tandem.io/digest": "d1"},
		Description: "tandem install",
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("first install (cold caches): %d requests", c.Requests()-cost)
	if rel.Revision != 1 || rel.Status != StatusDeployed || rel.Chart != "web" || rel.ChartVersion != "0.1.0" || rel.Description != "tandem install" {
		t.Errorf("Install() = %+v", *rel)
	}
	if diff := cmp.Diff(map[string]string{"tandem.io/managed": "true", "tandem.io/digest": "d1"}, rel.Labels); diff != "" {
		t.Errorf("Install() labels (-want +got):\n%s", diff)
	}
	if got := configMapData(t, cs, ns, "web", "message"); got != "one" {
		t.Errorf("configmap message = %q, want one", got)
	}

	// The stock helm CLI sees the release in Helm's storage.
	var listed []struct {
		Name, Namespace, Revision, Status, Chart string
	}
	if err := json.Unmarshal(helmCLI(t, e.Kubeconfig(), e.Tool("helm"), "ls", "-A", "-o", "json"), &listed); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, l := range listed {
		if l.Name == "web" && l.Namespace == ns {
			found = true
			if l.Revision != "1" || l.Status != "deployed" || l.Chart != "web-0.1.0" {
				t.Errorf("helm ls shows %+v", l)
			}
		}
	}
	if !found {
		t.Errorf("helm ls -A does not list %s/web: %+v", ns, listed)
	}

	// ListReleases selects by release labels, with one request.
	other, err := c.Install(ctx, ReleaseRequest{Name: "unowned", Namespace: ns, Chart: ch})
	if err != nil {
		t.Fatal(err)
	}
	before := c.Requests()
	got, err := c.ListReleases(ctx, owned)
	if err != nil {
		t.Fatal(err)
	}
	if n := c.Requests() - before; n != 1 {
		t.Errorf("ListReleases made %d requests, want 1", n)
	}
	mine := filterNamespace(got, ns)
	if diff := cmp.Diff([]string{ns + "/web deployed"}, summarize(mine)); diff != "" {
		t.Errorf("ListReleases(owned) (-want +got):\n%s", diff)
	}
	if len(mine) == 1 && !strings.Contains(mine[0].Manifest, "kind: Deployment") {
		t.Errorf("listed release has no manifest: %q", mine[0].Manifest)
	}
	all, err := c.ListReleases(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{ns + "/unowned deployed", ns + "/web deployed"}, summarize(filterNamespace(all, ns))); diff != "" {
		t.Errorf("ListReleases(nil) (-want +got):\n%s", diff)
	}
	if err := c.Uninstall(ctx, ns, other.Name, UninstallOptions{}); err != nil {
		t.Fatal(err)
	}

	// Upgrade: revision 2 with new values (not merged with the old ones) and labels.
	cost = c.Requests()
	rel, err = c.Upgrade(ctx, ReleaseRequest{
		Name: "web", Namespace: ns, Chart: ch,
		Values: map[string]any{"message": "two"},
		Labels: map[string]string{"tandem.io/managed": "true", "tandem.io/digest": "d2"},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("upgrade of 3 objects: %d requests", c.Requests()-cost)
	if rel.Revision != 2 || rel.Status != StatusDeployed || rel.Labels["tandem.io/digest"] != "d2" {
		t.Errorf("Upgrade() = revision %d %s labels %v; want 2 deployed digest d2", rel.Revision, rel.Status, rel.Labels)
	}
	if got := configMapData(t, cs, ns, "web", "message"); got != "two" {
		t.Errorf("configmap message = %q, want two", got)
	}
	got, err = c.ListReleases(ctx, map[string]string{"tandem.io/digest": "d1"})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(filterNamespace(got, ns)); n != 0 {
		t.Errorf("ListReleases(old digest) found %d releases: labels must match the latest revision", n)
	}

	// Rollback to 1 writes revision 3.
	cost = c.Requests()
	rel, err = c.Rollback(ctx, ns, "web", 1, RollbackOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("rollback: %d requests", c.Requests()-cost)
	if rel.Revision != 3 || rel.Status != StatusDeployed {
		t.Errorf("Rollback() = revision %d %s; want 3 deployed", rel.Revision, rel.Status)
	}
	if got := configMapData(t, cs, ns, "web", "message"); got != "one" {
		t.Errorf("configmap message after rollback = %q, want one", got)
	}
	hist, err := c.History(ctx, ns, "web")
	if err != nil {
		t.Fatal(err)
	}
	var revs []string
	for _, h := range hist {
		revs = append(revs, h.Status)
	}
	if diff := cmp.Diff([]string{StatusSuperseded, StatusSuperseded, StatusDeployed}, revs); diff != "" {
		t.Errorf("History() statuses (-want +got):\n%s", diff)
	}
	var helmHist []struct{ Revision int }
	if err := json.Unmarshal(helmCLI(t, e.Kubeconfig(), e.Tool("helm"), "history", "web", "-n", ns, "-o", "json"), &helmHist); err != nil {
		t.Fatal(err)
	}
	if len(helmHist) != 3 {
		t.Errorf("helm history shows %d revisions, want 3", len(helmHist))
	}

	// Uninstall removes the objects and the history; twice is fine.
	cost = c.Requests()
	if err := c.Uninstall(ctx, ns, "web", UninstallOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Logf("uninstall: %d requests", c.Requests()-cost)
	if _, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, "web", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("configmap after uninstall: err = %v, want not found", err)
	}
	hist, err = c.History(ctx, ns, "web")
	if err != nil || len(hist) != 0 {
		t.Errorf("History() after uninstall = %d revisions, %v; want none", len(hist), err)
	}
	if err := c.Uninstall(ctx, ns, "web", UninstallOptions{}); err != nil {
		t.Errorf("second Uninstall() = %v, want nil", err)
	}
	if _, err := c.Rollback(ctx, ns, "web", 1, RollbackOptions{}); !errors.Is(err, ErrReleaseNotFound) || !strings.Contains(err.Error(), `cluster "blue": release "`+ns+`/web"`) {
		t.Errorf("Rollback(uninstalled) = %v, want ErrReleaseNotFound naming cluster and release", err)
	}
}

func filterNamespace(rs []Release, ns string) []Release {
	var out []Release
	for _, r := range rs {
		if r.Namespace == ns {
			out = append(out, r)
		}
	}
	return out
}

func TestMarkFailedUnblocksPendingRelease(t *testing.T) {
	ctx, c, e := connect(t)
	cs := adminClient(t, e)
	ns := testNamespace(t)
	ch := loadChart(t, "web")
	if _, err := c.Install(ctx, ReleaseRequest{Name: "web", Namespace: ns, Chart: ch}); err != nil {
		t.Fatal(err)
	}

	// A CI job killed mid-upgrade leaves revision 2 pending-upgrade in Helm's storage.
	store := driver.NewSecrets(cs.CoreV1().Secrets(ns))
	first, err := store.Get(releaseSecretName("web", 1))
	if err != nil {
		t.Fatal(err)
	}
	pending := *first
	pending.Version = 2
	pending.Info = &release.Info{Status: release.StatusPendingUpgrade, LastDeployed: helmtime.Now(), Description: "Preparing upgrade"}
	if err := store.Create(releaseSecretName("web", 2), &pending); err != nil {
		t.Fatal(err)
	}

	req := ReleaseRequest{Name: "web", Namespace: ns, Chart: ch, Values: map[string]any{"message": "after"}}
	if _, err := c.Upgrade(ctx, req); err == nil || !strings.Contains(err.Error(), "in progress") {
		t.Fatalf("Upgrade(pending) = %v, want Helm's another-operation-in-progress error", err)
	}
	listed, err := c.ListReleases(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if l := filterNamespace(listed, ns); len(l) != 1 || !l[0].Pending() || l[0].Revision != 2 {
		t.Fatalf("ListReleases() = %+v, want revision 2 pending", summarize(l))
	}

	if err := c.MarkFailed(ctx, ns, "web", 1, "x"); !errors.Is(err, ErrNotPending) {
		t.Errorf("MarkFailed(deployed revision) = %v, want ErrNotPending", err)
	}
	if err := c.MarkFailed(ctx, ns, "web", 7, "x"); !errors.Is(err, ErrReleaseNotFound) {
		t.Errorf("MarkFailed(missing revision) = %v, want ErrReleaseNotFound", err)
	}
	if err := c.MarkFailed(ctx, ns, "web", 2, "CI job killed"); err != nil {
		t.Fatal(err)
	}
	hist, err := c.History(ctx, ns, "web")
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != 2 || hist[1].Status != StatusFailed || hist[1].Description != "CI job killed" {
		t.Fatalf("History() after MarkFailed = %+v", hist)
	}

	rel, err := c.Upgrade(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if rel.Revision != 3 || rel.Status != StatusDeployed {
		t.Errorf("Upgrade() after MarkFailed = revision %d %s, want 3 deployed", rel.Revision, rel.Status)
	}
	if got := configMapData(t, cs, ns, "web", "message"); got != "after" {
		t.Errorf("configmap message = %q, want after", got)
	}
}

func TestImmutableFieldChange(t *testing.T) {
	ctx, c, e := connect(t)
	cs := adminClient(t, e)
	ns := testNamespace(t)
	ch := loadChart(t, "selector")
	req := func(selector string, force, dryRun bool) ReleaseRequest {
		return ReleaseRequest{Name: "sel", Namespace: ns, Chart: ch, Values: map[string]any{"selector": selector}, Force: force, DryRun: dryRun}
	}
	if _, err := c.Install(ctx, req("one", false, false)); err != nil {
		t.Fatal(err)
	}
	before, err := cs.AppsV1().Deployments(ns).Get(ctx, "sel", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}

	// A dry run reports the immutable change, naming the object, and stores nothing.
	_, err = c.Upgrade(ctx, req("two", false, true))
	if !errors.Is(err, ErrImmutable) || !strings.Contains(err.Error(), "Deployment "+ns+"/sel") {
		t.Errorf("Upgrade(dry run, selector change) = %v, want ErrImmutable naming Deployment %s/sel", err, ns)
	}
	if _, err := c.Upgrade(ctx, req("two", true, true)); err != nil {
		t.Errorf("Upgrade(dry run, force) = %v, want nil: the object would be recreated", err)
	}
	if hist, _ := c.History(ctx, ns, "sel"); len(hist) != 1 {
		t.Errorf("dry runs stored revisions: history has %d, want 1", len(hist))
	}

	// Without Force the upgrade fails, naming the object.
	_, err = c.Upgrade(ctx, req("two", false, false))
	if !errors.Is(err, ErrImmutable) || !strings.Contains(err.Error(), `"sel"`) || !strings.Contains(err.Error(), "Deployment") {
		t.Fatalf("Upgrade(selector change) = %v, want ErrImmutable naming Deployment sel", err)
	}
	still, err := cs.AppsV1().Deployments(ns).Get(ctx, "sel", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if still.UID != before.UID || still.Spec.Selector.MatchLabels["generation"] != "one" {
		t.Errorf("failed upgrade changed the deployment: uid %s->%s selector %v", before.UID, still.UID, still.Spec.Selector.MatchLabels)
	}

	// With Force the deployment is recreated with the new selector.
	cost := c.Requests()
	rel, err := c.Upgrade(ctx, req("two", true, false))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("forced upgrade recreating 1 of 2 objects: %d requests", c.Requests()-cost)
	if rel.Status != StatusDeployed || rel.Revision != 3 {
		t.Errorf("Upgrade(force) = revision %d %s, want 3 deployed (2 is the failed one)", rel.Revision, rel.Status)
	}
	after, err := cs.AppsV1().Deployments(ns).Get(ctx, "sel", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if after.UID == before.UID || after.Spec.Selector.MatchLabels["generation"] != "two" {
		t.Errorf("after forced upgrade: uid %s (was %s), selector %v; want a new object selecting two", after.UID, before.UID, after.Spec.Selector.MatchLabels)
	}
	if got := configMapData(t, cs, ns, "sel", "selector"); got != "two" {
		t.Errorf("configmap updated in place = %q, want two", got)
	}

	// A dry run also catches objects the server would refuse outright.
	_, err = c.Upgrade(ctx, ReleaseRequest{Name: "sel", Namespace: ns, Chart: ch, Values: map[string]any{"selector": "two", "replicas": -1}, DryRun: true})
	if err == nil || errors.Is(err, ErrImmutable) || !strings.Contains(err.Error(), "Deployment "+ns+"/sel") {
		t.Errorf("Upgrade(dry run, replicas -1) = %v, want an error naming Deployment %s/sel", err, ns)
	}
}

func TestInstallDryRunPersistsNothing(t *testing.T) {
	ctx, c, e := connect(t)
	cs := adminClient(t, e)
	ns := testNamespace(t)
	rel, err := c.Install(ctx, ReleaseRequest{Name: "web", Namespace: ns, Chart: loadChart(t, "web"), DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(rel.Manifest, "kind: Deployment") {
		t.Errorf("dry run manifest = %q", rel.Manifest)
	}
	if _, err := cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("dry run created namespace %s: err = %v", ns, err)
	}
	if hist, err := c.History(ctx, ns, "web"); err != nil || len(hist) != 0 {
		t.Errorf("dry run stored %d revisions (%v)", len(hist), err)
	}
}
