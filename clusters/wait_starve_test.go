package clusters

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
)

type noReset struct{ meta.RESTMapper }

func (noReset) Reset() {}

// Found in review of issue 13: a watched object whose events keep coming starved the interval re-read of
// an object that is not watched (here: not found at the first read), so a
// healthy release timed out and was rolled back.
func TestWaitEventsDoNotStarveTheIntervalRead(t *testing.T) {
	depGVR := schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
	svcGVR := schema.GroupVersionResource{Version: "v1", Resource: "services"}
	m := meta.NewDefaultRESTMapper(nil)
	m.Add(schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}, meta.RESTScopeNamespace)
	m.Add(schema.GroupVersionKind{Version: "v1", Kind: "Service"}, meta.RESTScopeNamespace)

	inProgress := deployment(map[string]any{"replicas": int64(2)}, map[string]any{"observedGeneration": int64(1), "replicas": int64(2), "updatedReplicas": int64(2)})
	inProgress.SetResourceVersion("5")
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
		map[schema.GroupVersionResource]string{depGVR: "DeploymentList", svcGVR: "ServiceList"}, inProgress.DeepCopy())
	c := &Cluster{name: "blue", log: slog.New(slog.DiscardHandler), dynamic: dyn,
		getter: &restGetter{mapper: &refreshingMapper{mapper: noReset{m}}}}
	manifest := "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: shop}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\nspec: {type: ClusterIP}\n"

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		time.Sleep(500 * time.Millisecond)
		svc := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Service",
			"metadata": map[string]any{"name": "web", "namespace": "shop"}, "spec": map[string]any{"type": "ClusterIP"}}}
		if _, err := dyn.Resource(svcGVR).Namespace("shop").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
			t.Error(err)
		}
		for n := 0; ctx.Err() == nil && true; n++ {
			d, err := dyn.Resource(depGVR).Namespace("shop").Get(ctx, "web", metav1.GetOptions{})
			if err != nil {
				return
			}
			unstructured.SetNestedMap(d.Object, map[string]any{"observedGeneration": int64(1), "replicas": int64(2), "updatedReplicas": int64(2),
				"readyReplicas": int64(2), "availableReplicas": int64(2), "conditions": []any{
					map[string]any{"type": "Available", "status": "True"},
					map[string]any{"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}}}, "status")
			d.SetAnnotations(map[string]string{"heartbeat": time.Now().String()})
			d.SetResourceVersion("")
			dyn.Resource(depGVR).Namespace("shop").Update(ctx, d, metav1.UpdateOptions{})
			time.Sleep(300 * time.Millisecond)
		}
	}()
	_, err := c.WaitHealthy(ctx, manifest, WaitOptions{Namespace: "shop", Timeout: 15 * time.Second, Interval: time.Second,
		Written: []*unstructured.Unstructured{inProgress}})
	if err != nil {
		t.Fatalf("the Service exists from 0.5 s and the Deployment is Current, interval 1 s; yet: %v", err)
	}
}
