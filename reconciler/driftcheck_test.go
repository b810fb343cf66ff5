package reconciler

import (
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/tandem-gitops/tandem/clusters"
)

// TestLastInDesiredState: an install's versions record is of the objects as
// its health wait last saw them only when they give the fingerprint of what
// Helm wrote — a status update in between, yes; a hand edit of the spec,
// or another object under the same name, no.
func TestLastInDesiredState(t *testing.T) {
	s := Step{Name: "web", Namespace: "shop", desired: &Desired{}}
	deployment := func(uid, rv string, replicas int64, ready int64) *unstructured.Unstructured {
		u := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "apps/v1", "kind": "Deployment",
			"metadata": map[string]any{"name": "web", "namespace": "shop", "uid": uid, "resourceVersion": rv},
			"spec":     map[string]any{"replicas": replicas},
		}}
		if ready > 0 {
			u.Object["status"] = map[string]any{"readyReplicas": ready}
		}
		return u
	}
	desired := []*unstructured.Unstructured{{Object: map[string]any{
		"apiVersion": "apps/v1", "kind": "Deployment",
		"metadata": map[string]any{"name": "web", "namespace": "shop"},
		"spec":     map[string]any{"replicas": int64(2)},
	}}}
	written := []*unstructured.Unstructured{deployment("u1", "10", 2, 0)}
	fp, ok := driftFingerprint(s, desired, written)
	if !ok {
		t.Fatal("no fingerprint of the written objects")
	}
	seenAs := func(u *unstructured.Unstructured) []clusters.ObjectStatus {
		return []clusters.ObjectStatus{{Kind: "Deployment", Namespace: "shop", Name: "web", Status: "Current", Object: u}}
	}
	for _, c := range []struct {
		name    string
		healthy []clusters.ObjectStatus
		wantRV  string
	}{
		{"status moved", seenAs(deployment("u1", "12", 2, 2)), "12"},
		{"spec edited by hand during the wait", seenAs(deployment("u1", "13", 5, 2)), "10"},
		{"another object of the same name", seenAs(deployment("u2", "14", 2, 2)), "10"},
		{"nothing seen", nil, "10"},
		{"a statusless kind (no object)", seenAs(nil), "10"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := lastInDesiredState(s, desired, written, fp, c.healthy)
			if rv := got[0].GetResourceVersion(); rv != c.wantRV {
				t.Errorf("recorded the Deployment at resourceVersion %s, want %s", rv, c.wantRV)
			}
		})
	}
}
