package clusters

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestIdentitySameClusterUnderTwoNames is item 5: one API server reached
// through two kubeconfig contexts, and through a different URL (a proxy),
// has one identity, the kube-system namespace's UID.
func TestIdentitySameClusterUnderTwoNames(t *testing.T) {
	ctx, c, e := connect(t)
	ns, err := adminClient(t, e).CoreV1().Namespaces().Get(ctx, "kube-system", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	copyCtx := connectCopy(ctx, t, e.Kubeconfig())
	upstream, err := e.RESTConfig(testCluster)
	if err != nil {
		t.Fatal(err)
	}
	viaProxy := connectVia(ctx, t, newFaultProxy(t, upstream))
	for _, cl := range []*Cluster{c, copyCtx, viaProxy} {
		id, err := cl.Identity(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if id != string(ns.UID) {
			t.Errorf("%s: Identity() = %q, want kube-system's UID %q", cl.Name(), id, ns.UID)
		}
	}
	before := c.Requests()
	if _, err := c.Identity(ctx); err != nil || c.Requests() != before {
		t.Errorf("a second Identity() sent %d requests (%v), want it cached", c.Requests()-before, err)
	}
}
