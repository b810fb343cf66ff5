package clusters

import (
	"context"
	"errors"
	"fmt"
	"time"

	"helm.sh/helm/v3/pkg/engine"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
)

// DefaultLookupTimeout bounds each request a Lookup sends.
const DefaultLookupTimeout = 10 * time.Second

// ErrReadOnly is returned by every Lookup method that would write or watch.
var ErrReadOnly = errors.New("lookup is read-only: only get and list are allowed")

// ErrOutsideNamespace is returned by a read of a namespaced kind in another
// namespace than the Lookup's, or across all namespaces.
var ErrOutsideNamespace = errors.New("lookups are confined to the release's namespace")

// Lookup serves Helm's template function lookup from a cluster, as Helm's
// own install does, so that a render made before an install sees what the
// install would: the live Secret a chart keeps its generated password in.
// It is Helm's engine.ClientProvider, for render.Request.Lookup.
//
// It reads only. A template is code from a chart repository, and Helm's own
// provider hands it a client that could write; this one serves Get and List
// and refuses everything else with ErrReadOnly.
//
// It reads only the release's namespace. Helm's provider reads whatever its
// credentials can, and tandem's are a cluster admin's: a chart in a pull
// request could copy kube-system's Secrets into a ConfigMap that `tandem
// diff` then prints. A namespaced kind is served in the Lookup's namespace
// only; a read in another namespace or across all of them is refused with
// ErrOutsideNamespace before any request. Cluster-scoped kinds (Namespace,
// StorageClass, CustomResourceDefinition...) are still served: charts read
// them, and no built-in cluster-scoped kind holds secret data. A CRD of a
// cluster-scoped kind that does would be readable; that is a known limit.
//
// Each request is bounded by
// the Lookup's timeout (Helm's lookup passes context.Background()), and
// kinds are resolved through the Cluster's shared RESTMapper, so lookups
// cost no discovery of their own.
type Lookup struct {
	cluster string
	mapper  meta.RESTMapper
	dynamic dynamic.Interface
	timeout time.Duration
	// namespace is the only one namespaced reads may name; "" allows none.
	namespace string
}

var _ engine.ClientProvider = (*Lookup)(nil)

// LookupIn returns a read-only lookup provider for a release in namespace:
// namespaced kinds are read there and nowhere else, cluster-scoped kinds
// anywhere. Every request is bounded by timeout (0 means
// DefaultLookupTimeout).
func (c *Cluster) LookupIn(namespace string, timeout time.Duration) *Lookup {
	if timeout <= 0 {
		timeout = DefaultLookupTimeout
	}
	return &Lookup{cluster: c.name, mapper: c.getter.mapper, dynamic: c.dynamic, timeout: timeout, namespace: namespace}
}

// GetClientFor returns a read-only client for the kind and whether the kind
// is namespaced. A kind the cluster does not serve is an error, as in Helm.
func (l *Lookup) GetClientFor(apiVersion, kind string) (dynamic.NamespaceableResourceInterface, bool, error) {
	what := apiVersion + " " + kind
	gv, err := schema.ParseGroupVersion(apiVersion)
	if err != nil {
		return nil, false, fmt.Errorf("cluster %q: lookup %s: %w", l.cluster, what, err)
	}
	m, err := l.mapping(schema.GroupKind{Group: gv.Group, Kind: kind}, gv.Version)
	if err != nil {
		return nil, false, fmt.Errorf("cluster %q: lookup %s: %w", l.cluster, what, err)
	}
	res := l.dynamic.Resource(m.Resource)
	namespaced := m.Scope.Name() == meta.RESTScopeNameNamespace
	r := readOnly{cluster: l.cluster, what: what, timeout: l.timeout, all: res, ri: res, namespaced: namespaced, confine: l.namespace}
	return r, namespaced, nil
}

// mapping resolves a kind within the timeout: on a miss the mapper
// rediscovers, which is a request client-go gives no context to.
func (l *Lookup) mapping(gk schema.GroupKind, version string) (*meta.RESTMapping, error) {
	type result struct {
		m   *meta.RESTMapping
		err error
	}
	done := make(chan result, 1)
	go func() {
		m, err := l.mapper.RESTMapping(gk, version)
		done <- result{m, err}
	}()
	timer := time.NewTimer(l.timeout)
	defer timer.Stop()
	select {
	case r := <-done:
		return r.m, r.err
	case <-timer.C:
		return nil, fmt.Errorf("discovery did not answer within %s", l.timeout)
	}
}

// readOnly is a dynamic client that serves Get and List, each within a
// timeout, and refuses the rest. Every method is written out rather than the
// real client embedded, so a method client-go adds later cannot write
// through it unnoticed: the build breaks instead.
type readOnly struct {
	cluster, what string
	timeout       time.Duration
	all           dynamic.NamespaceableResourceInterface
	ri            dynamic.ResourceInterface // all, or all.Namespace(ns)
	ns            string                    // "" is all namespaces
	namespaced    bool
	confine       string // Lookup.namespace
}

var _ dynamic.NamespaceableResourceInterface = readOnly{}

func (r readOnly) Namespace(ns string) dynamic.ResourceInterface {
	r.ri, r.ns = r.all.Namespace(ns), ns
	return r
}

func (r readOnly) Get(ctx context.Context, name string, opts metav1.GetOptions, subresources ...string) (*unstructured.Unstructured, error) {
	if len(subresources) > 0 {
		return nil, r.refuse("get of a subresource")
	}
	if err := r.confined(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	obj, err := r.ri.Get(ctx, name, opts)
	return obj, r.explain(err, name)
}

func (r readOnly) List(ctx context.Context, opts metav1.ListOptions) (*unstructured.UnstructuredList, error) {
	if err := r.confined(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	list, err := r.ri.List(ctx, opts)
	return list, r.explain(err, "")
}

// explain names the cluster and object in an error. NotFound stays as the
// API server sent it: Helm's lookup turns it into an empty result.
func (r readOnly) explain(err error, name string) error {
	if err == nil || apierrors.IsNotFound(err) {
		return err
	}
	obj := r.what
	if r.ns != "" || name != "" {
		obj += " " + r.ns
		if r.ns != "" && name != "" {
			obj += "/"
		}
		obj += name
	}
	return fmt.Errorf("cluster %q: lookup %s: %w", r.cluster, obj, err)
}

// confined refuses a read of a namespaced kind anywhere but the Lookup's
// namespace. Helm's lookup reads a namespaced kind across all namespaces
// when the template passes "", so no namespace is refused too. A
// cluster-scoped kind has no namespace to confine.
func (r readOnly) confined() error {
	if !r.namespaced || (r.ns != "" && r.ns == r.confine) {
		return nil
	}
	where := "all namespaces"
	if r.ns != "" {
		where = fmt.Sprintf("namespace %q", r.ns)
	}
	if r.confine == "" {
		return fmt.Errorf("cluster %q: lookup %s in %s: %w, and this lookup was given none", r.cluster, r.what, where, ErrOutsideNamespace)
	}
	return fmt.Errorf("cluster %q: lookup %s in %s: %w %q", r.cluster, r.what, where, ErrOutsideNamespace, r.confine)
}

func (r readOnly) refuse(verb string) error {
	return fmt.Errorf("cluster %q: lookup %s: %s: %w", r.cluster, r.what, verb, ErrReadOnly)
}

func (r readOnly) Create(context.Context, *unstructured.Unstructured, metav1.CreateOptions, ...string) (*unstructured.Unstructured, error) {
	return nil, r.refuse("create")
}

func (r readOnly) Update(context.Context, *unstructured.Unstructured, metav1.UpdateOptions, ...string) (*unstructured.Unstructured, error) {
	return nil, r.refuse("update")
}

func (r readOnly) UpdateStatus(context.Context, *unstructured.Unstructured, metav1.UpdateOptions) (*unstructured.Unstructured, error) {
	return nil, r.refuse("update status")
}

func (r readOnly) Delete(context.Context, string, metav1.DeleteOptions, ...string) error {
	return r.refuse("delete")
}

func (r readOnly) DeleteCollection(context.Context, metav1.DeleteOptions, metav1.ListOptions) error {
	return r.refuse("delete collection")
}

func (r readOnly) Watch(context.Context, metav1.ListOptions) (watch.Interface, error) {
	return nil, r.refuse("watch")
}

func (r readOnly) Patch(context.Context, string, types.PatchType, []byte, metav1.PatchOptions, ...string) (*unstructured.Unstructured, error) {
	return nil, r.refuse("patch")
}

func (r readOnly) Apply(context.Context, string, *unstructured.Unstructured, metav1.ApplyOptions, ...string) (*unstructured.Unstructured, error) {
	return nil, r.refuse("apply")
}

func (r readOnly) ApplyStatus(context.Context, string, *unstructured.Unstructured, metav1.ApplyOptions) (*unstructured.Unstructured, error) {
	return nil, r.refuse("apply status")
}
