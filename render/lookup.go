package render

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"

	"helm.sh/helm/v3/pkg/engine"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	// Only the interface type Helm's engine.ClientProvider returns: render
	// builds no client and talks to no cluster; clusters supplies the live
	// provider.
	"k8s.io/client-go/dynamic"
)

// LookupProvider serves the templates' lookup function: it is Helm's
// engine.ClientProvider, named here so that callers need not import Helm.
// clusters.(*Cluster).LookupIn returns a read-only one backed by a live cluster, confined to the release's namespace.
type LookupProvider = engine.ClientProvider

// recordingLookup notes whether the templates called lookup, and serves the
// calls from next, or, without one, finds nothing, as `helm template` does.
// Knowing that a render used lookup matters: a plan rendered without the
// cluster's answers must never be applied to a release that asks for them
// (it would rotate the secrets the chart means to keep).
type recordingLookup struct {
	next LookupProvider // nil: every lookup finds nothing
	used atomic.Bool
}

var _ LookupProvider = (*recordingLookup)(nil)

func (l *recordingLookup) GetClientFor(apiVersion, kind string) (dynamic.NamespaceableResourceInterface, bool, error) {
	l.used.Store(true)
	if l.next == nil {
		gv, _ := schema.ParseGroupVersion(apiVersion)
		return notFound{gr: schema.GroupResource{Group: gv.Group, Resource: strings.ToLower(kind)}}, true, nil
	}
	return l.next.GetClientFor(apiVersion, kind)
}

// errNoCluster refuses everything but reads of the empty cluster notFound stands for.
var errNoCluster = errors.New("lookup without a cluster: only get and list are served")

// notFound is the cluster of a render without one: Get and List answer
// NotFound, which Helm's lookup turns into the empty map `helm template`
// returns. Every method is written out, rather than a nil interface
// embedded, so that a method client-go adds cannot reach a nil pointer.
type notFound struct{ gr schema.GroupResource }

var _ dynamic.NamespaceableResourceInterface = notFound{}

func (n notFound) Namespace(string) dynamic.ResourceInterface { return n }

func (n notFound) Get(_ context.Context, name string, _ metav1.GetOptions, _ ...string) (*unstructured.Unstructured, error) {
	return nil, apierrors.NewNotFound(n.gr, name)
}

func (n notFound) List(context.Context, metav1.ListOptions) (*unstructured.UnstructuredList, error) {
	return nil, apierrors.NewNotFound(n.gr, "")
}

func (notFound) Create(context.Context, *unstructured.Unstructured, metav1.CreateOptions, ...string) (*unstructured.Unstructured, error) {
	return nil, errNoCluster
}

func (notFound) Update(context.Context, *unstructured.Unstructured, metav1.UpdateOptions, ...string) (*unstructured.Unstructured, error) {
	return nil, errNoCluster
}

func (notFound) UpdateStatus(context.Context, *unstructured.Unstructured, metav1.UpdateOptions) (*unstructured.Unstructured, error) {
	return nil, errNoCluster
}

func (notFound) Delete(context.Context, string, metav1.DeleteOptions, ...string) error {
	return errNoCluster
}

func (notFound) DeleteCollection(context.Context, metav1.DeleteOptions, metav1.ListOptions) error {
	return errNoCluster
}

func (notFound) Watch(context.Context, metav1.ListOptions) (watch.Interface, error) {
	return nil, errNoCluster
}

func (notFound) Patch(context.Context, string, types.PatchType, []byte, metav1.PatchOptions, ...string) (*unstructured.Unstructured, error) {
	return nil, errNoCluster
}

func (notFound) Apply(context.Context, string, *unstructured.Unstructured, metav1.ApplyOptions, ...string) (*unstructured.Unstructured, error) {
	return nil, errNoCluster
}

func (notFound) ApplyStatus(context.Context, string, *unstructured.Unstructured, metav1.ApplyOptions) (*unstructured.Unstructured, error) {
	return nil, errNoCluster
}
