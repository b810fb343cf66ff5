package clusters

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
)

func fakeLookup(t *testing.T, objs ...runtime.Object) (*Lookup, *dynamicfake.FakeDynamicClient) {
	t.Helper()
	secrets := schema.GroupVersionResource{Version: "v1", Resource: "secrets"}
	client := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
		map[schema.GroupVersionResource]string{secrets: "SecretList"}, objs...)
	mapper := meta.NewDefaultRESTMapper(nil)
	mapper.Add(schema.GroupVersionKind{Version: "v1", Kind: "Secret"}, meta.RESTScopeNamespace)
	return &Lookup{cluster: "blue", mapper: mapper, dynamic: client, timeout: time.Second, namespace: "ns"}, client
}

func TestLookupRefusesWrites(t *testing.T) {
	secret := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "Secret", "metadata": map[string]any{"name": "x", "namespace": "ns"}, "data": map[string]any{"password": "cHc="},
	}}
	l, client := fakeLookup(t, secret)
	c, namespaced, err := l.GetClientFor("v1", "Secret")
	if err != nil {
		t.Fatal(err)
	}
	if !namespaced {
		t.Error("Secret reported cluster-scoped")
	}
	ctx := context.Background()
	rc := c.Namespace("ns")
	if got, err := rc.Get(ctx, "x", metav1.GetOptions{}); err != nil || got.GetName() != "x" {
		t.Fatalf("get: %v %v", got, err)
	}
	if list, err := rc.List(ctx, metav1.ListOptions{}); err != nil || len(list.Items) != 1 {
		t.Fatalf("list: %v %v", list, err)
	}
	errs := map[string]error{}
	_, errs["create"] = rc.Create(ctx, secret, metav1.CreateOptions{})
	_, errs["update"] = c.Update(ctx, secret, metav1.UpdateOptions{})
	errs["delete"] = rc.Delete(ctx, "x", metav1.DeleteOptions{})
	errs["delete collection"] = c.DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{})
	_, errs["patch"] = rc.Patch(ctx, "x", "application/merge-patch+json", []byte(`{}`), metav1.PatchOptions{})
	_, errs["apply"] = rc.Apply(ctx, "x", secret, metav1.ApplyOptions{})
	_, errs["watch"] = rc.Watch(ctx, metav1.ListOptions{})
	for verb, err := range errs {
		if !errors.Is(err, ErrReadOnly) || !strings.Contains(err.Error(), `cluster "blue": lookup v1 Secret`) {
			t.Errorf("%s: %v, want ErrReadOnly naming cluster and kind", verb, err)
		}
	}
	for _, a := range client.Actions() {
		if v := a.GetVerb(); v != "get" && v != "list" {
			t.Errorf("a %s reached the client", v)
		}
	}
}

// blockingMapper answers only once released, as a discovery request to a
// stalled API server.
type blockingMapper struct {
	meta.RESTMapper
	release chan struct{}
}

func (m blockingMapper) RESTMapping(schema.GroupKind, ...string) (*meta.RESTMapping, error) {
	<-m.release
	return nil, errors.New("released")
}

func TestLookupMappingTimeout(t *testing.T) {
	l, _ := fakeLookup(t)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	l.mapper, l.timeout = blockingMapper{release: release}, 50*time.Millisecond
	start := time.Now()
	_, _, err := l.GetClientFor("v1", "Secret")
	if err == nil || !strings.Contains(err.Error(), `cluster "blue": lookup v1 Secret: discovery did not answer within 50ms`) {
		t.Errorf("got %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %s", d)
	}
}
