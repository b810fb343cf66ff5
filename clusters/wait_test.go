package clusters

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
)

func deployment(spec, status map[string]any) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apps/v1", "kind": "Deployment",
		"metadata": map[string]any{"name": "web", "namespace": "shop", "generation": int64(1)},
		"spec":     spec, "status": status,
	}}
}

func TestObjectStatusOf(t *testing.T) {
	web := object{u: deployment(nil, nil), namespace: "shop"}
	cm := object{u: &unstructured.Unstructured{Object: map[string]any{"kind": "ConfigMap", "metadata": map[string]any{"name": "cfg"}}}, namespace: "shop"}
	tests := []struct {
		name  string
		obj   object
		live  *unstructured.Unstructured
		found bool
		want  ObjectStatus
	}{
		{name: "missing", obj: web, want: ObjectStatus{Kind: "Deployment", Namespace: "shop", Name: "web", Status: "NotFound", Message: "not found"}},
		{name: "statusless kind that exists", obj: cm, found: true, want: ObjectStatus{Kind: "ConfigMap", Namespace: "shop", Name: "cfg", Status: "Current", Message: "exists"}},
		{
			name: "available deployment", obj: web, found: true,
			live: deployment(map[string]any{"replicas": int64(2)}, map[string]any{
				"observedGeneration": int64(1), "replicas": int64(2), "updatedReplicas": int64(2), "readyReplicas": int64(2), "availableReplicas": int64(2),
				"conditions": []any{
					map[string]any{"type": "Available", "status": "True"},
					map[string]any{"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"},
				},
			}),
			want: ObjectStatus{Kind: "Deployment", Namespace: "shop", Name: "web", Status: "Current", Message: "Deployment is available. Replicas: 2"},
		},
		{
			name: "unavailable deployment", obj: web, found: true,
			live: deployment(map[string]any{"replicas": int64(3)}, map[string]any{
				"observedGeneration": int64(1), "replicas": int64(3), "updatedReplicas": int64(3),
			}),
			want: ObjectStatus{Kind: "Deployment", Namespace: "shop", Name: "web", Status: "InProgress", Message: "Available: 0/3"},
		},
		{
			name: "deadline exceeded is failed", obj: web, found: true,
			live: deployment(map[string]any{"replicas": int64(1)}, map[string]any{
				"observedGeneration": int64(1),
				"conditions":         []any{map[string]any{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}},
			}),
			want: ObjectStatus{Kind: "Deployment", Namespace: "shop", Name: "web", Status: "Failed", Message: "Progress deadline exceeded"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := objectStatusOf(tt.obj, tt.live, tt.found)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("objectStatusOf() (-want +got):\n%s", diff)
			}
		})
	}
}

func TestHealthErrorNamesObjects(t *testing.T) {
	e := &HealthError{
		Cluster: "blue",
		Objects: []ObjectStatus{{Kind: "Deployment", Namespace: "shop", Name: "web", Status: "InProgress", Message: "Available: 0/3"}},
		Waited:  30 * time.Second,
		Err:     context.DeadlineExceeded,
	}
	want := `cluster "blue": not healthy after 30s (context deadline exceeded): Deployment shop/web: InProgress: Available: 0/3`
	if got := e.Error(); got != want {
		t.Errorf("Error() = %q\nwant        %q", got, want)
	}
	if !errors.Is(e, context.DeadlineExceeded) {
		t.Error("HealthError does not unwrap to its context error")
	}
	failed := &HealthError{Cluster: "blue", Objects: []ObjectStatus{{Kind: "Job", Namespace: "shop", Name: "migrate", Status: "Failed", Message: "Job Failed"}}}
	if got := failed.Error(); !strings.HasPrefix(got, `cluster "blue": object failed: Job shop/migrate: Failed`) {
		t.Errorf("Error() = %q", got)
	}
}

func TestNotCurrent(t *testing.T) {
	in := []ObjectStatus{{Name: "a", Status: "Current"}, {Name: "b", Status: "InProgress"}, {Name: "c", Status: "Failed"}}
	notReady, failed := notCurrent(in)
	if diff := cmp.Diff([]ObjectStatus{in[1], in[2]}, notReady); diff != "" {
		t.Errorf("notReady (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]ObjectStatus{in[2]}, failed); diff != "" {
		t.Errorf("failed (-want +got):\n%s", diff)
	}
}

func TestNewPollerGroupsByResourceAndNamespace(t *testing.T) {
	deploys := schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
	cms := schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
	mk := func(gvr schema.GroupVersionResource, ns string) object {
		return object{u: &unstructured.Unstructured{Object: map[string]any{}}, gvr: gvr, namespace: ns}
	}
	p := newPoller([]object{mk(deploys, "a"), mk(cms, "a"), mk(deploys, "a"), mk(deploys, "b")})
	var got [][]int
	for _, g := range p.groups {
		got = append(got, g.idx)
	}
	if diff := cmp.Diff([][]int{{0, 2}, {1}, {3}}, got); diff != "" {
		t.Errorf("groups (-want +got):\n%s", diff)
	}
}

func TestStatusless(t *testing.T) {
	for gr, want := range map[schema.GroupResource]bool{
		{Resource: "configmaps"}:                                 true,
		{Resource: "secrets"}:                                    true,
		{Resource: "services"}:                                   false,
		{Resource: "pods"}:                                       false,
		{Group: "apps", Resource: "deployments"}:                 false,
		{Group: "rbac.authorization.k8s.io", Resource: "roles"}:  true,
		{Group: "example.com", Resource: "configmaps"}:           false,
		{Group: "storage.k8s.io", Resource: "storageclasses"}:    true,
		{Group: "storage.k8s.io", Resource: "volumeattachments"}: false,
	} {
		if got := statusless(gr); got != want {
			t.Errorf("statusless(%s) = %v, want %v", gr, got, want)
		}
	}
}

func TestWatchEventsApplyInOrder(t *testing.T) {
	web := object{u: deployment(nil, nil), namespace: "shop"}
	p := newPoller([]object{web})
	at := func(rv string) *unstructured.Unstructured {
		u := deployment(nil, nil)
		u.SetResourceVersion(rv)
		return u
	}
	p.live[0], p.found[0], p.read[0], p.version[0] = at("20"), true, true, "20"
	w := newWatches(nil, 1)
	x := watch.NewFake()
	w.open[0] = x
	w.apply(p, objectEvent{i: 0, w: x, ev: watch.Event{Type: watch.Modified, Object: at("19")}})
	if got := p.live[0].GetResourceVersion(); got != "20" {
		t.Errorf("an event older than the last read replaced it: holds %s", got)
	}
	w.apply(p, objectEvent{i: 0, w: x, ev: watch.Event{Type: watch.Modified, Object: at("25")}})
	if got := p.live[0].GetResourceVersion(); got != "25" {
		t.Errorf("a newer event was not taken: holds %s", got)
	}
	w.apply(p, objectEvent{i: 0, w: watch.NewFake(), ev: watch.Event{Type: watch.Deleted, Object: at("30")}})
	if !p.found[0] {
		t.Error("an event of a replaced watch was taken")
	}
	w.apply(p, objectEvent{i: 0, w: x, ev: watch.Event{Type: watch.Deleted, Object: at("31")}})
	if p.found[0] || p.live[0] != nil {
		t.Error("a deletion was not taken")
	}
	w.apply(p, objectEvent{i: 0, w: x, closed: true})
	if w.open[0] != nil || p.version[0] != "" {
		t.Error("an ended watch is still counted as open, or its version kept")
	}
}
