package clusters

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// TestSnapshotVersions checks the drift check's cheapest record on a real
// API server: the digest a metadata-only List gives equals the one of the
// same objects in hand; it holds while no one writes and moves with any
// write (a label the chart never set included), with a delete and re-create
// of identical content, and with the objects' order; a missing object gives
// none; and one snapshot lists each resource type and namespace once.
func TestSnapshotVersions(t *testing.T) {
	paths := &pathCounter{}
	ctx, c, e := connect(t, func(o *Options) { o.WrapTransport = paths.wrap })
	cs := adminClient(t, e)
	ns := testNamespace(t)
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cs.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{}) })
	for _, name := range []string{"a", "b"} {
		createConfigMap(ctx, t, cs, ns, name)
	}
	role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: ns + "-viewer"}}
	if _, err := cs.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cs.RbacV1().ClusterRoles().Delete(context.Background(), role.Name, metav1.DeleteOptions{}) })

	refs := []ObjectRef{
		{APIVersion: "v1", Kind: "ConfigMap", Namespace: ns, Name: "a"},
		{APIVersion: "v1", Kind: "ConfigMap", Namespace: ns, Name: "b"},
		{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRole", Name: role.Name},
	}
	// versions reads refs' digest from a new snapshot, and the digest of
	// the same objects as a full List of that snapshot gives them.
	versions := func(t *testing.T, refs []ObjectRef) (fromMeta, fromObjects string) {
		t.Helper()
		snap := c.Snapshot()
		v, ok, err := snap.Versions(ctx, refs)
		if err != nil || !ok {
			t.Fatalf("Versions: %q, %v, %v", v, ok, err)
		}
		live, err := snap.Live(ctx, refObjects(refs))
		if err != nil {
			t.Fatal(err)
		}
		w, ok := snap.VersionsOf(refs, live)
		if !ok {
			t.Fatal("VersionsOf: not ok")
		}
		return v, w
	}

	before, inHand := versions(t, refs)
	if before != inHand {
		t.Fatalf("metadata-only List gives %q, the same objects in hand %q", before, inHand)
	}
	if again, _ := versions(t, refs); again != before {
		t.Errorf("no write in between, yet the digest moved: %q → %q", before, again)
	}
	swapped := []ObjectRef{refs[1], refs[0], refs[2]}
	if s, _ := versions(t, swapped); s == before {
		t.Error("the same objects in another order give the same digest")
	}

	// A write that changes nothing a chart sets still moves it.
	b, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, "b", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b.Labels = map[string]string{"by-hand": "yes"}
	if _, err := cs.CoreV1().ConfigMaps(ns).Update(ctx, b, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	labelled, inHand := versions(t, refs)
	if labelled == before {
		t.Error("a label written by hand left the digest as it was")
	}
	if labelled != inHand {
		t.Errorf("after the write: metadata-only List gives %q, the objects in hand %q", labelled, inHand)
	}

	// Deleted and created again with the same content: another object.
	if err := cs.CoreV1().ConfigMaps(ns).Delete(ctx, "a", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	snap := c.Snapshot()
	if v, ok, err := snap.Versions(ctx, refs); err != nil || ok {
		t.Errorf("with a missing object: %q, %v, %v; want not ok", v, ok, err)
	}
	createConfigMap(ctx, t, cs, ns, "a")
	if recreated, _ := versions(t, refs); recreated == labelled {
		t.Error("a deleted and re-created object gives the digest of the one before it")
	}

	// One metadata-only List per resource type and namespace per snapshot.
	snap = c.Snapshot()
	start := paths.snapshot()["/api/v1/namespaces/"+ns+"/configmaps"]
	for range 3 {
		if _, _, err := snap.Versions(ctx, refs); err != nil {
			t.Fatal(err)
		}
	}
	if n := paths.snapshot()["/api/v1/namespaces/"+ns+"/configmaps"] - start; n != 1 {
		t.Errorf("three Versions calls on one snapshot listed the ConfigMaps %d times, want 1", n)
	}
}

func createConfigMap(ctx context.Context, t *testing.T, cs kubernetes.Interface, ns, name string) {
	t.Helper()
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}, Data: map[string]string{"k": "v"}}
	if _, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}
