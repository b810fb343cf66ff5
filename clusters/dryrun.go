package clusters

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/fluxcd/pkg/ssa/normalize"
	"golang.org/x/sync/errgroup"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
)

// DryRunResult is one object's live state and its state after a
// server-side apply of the desired object, computed by the API server
// without persisting anything.
type DryRunResult struct {
	// Live is the object in the cluster, or nil if it does not exist.
	Live *unstructured.Unstructured
	// Applied is the object as it would be after the apply, defaulted by the
	// API server; nil when the dry run could not place it (its namespace does
	// not exist yet). Fields other managers own stay as they are, so they
	// never show up as differences.
	Applied *unstructured.Unstructured
}

// DryRun server-side-applies each object of a Helm release in dry-run mode
// under fieldManager (forcing ownership and adding Helm's ownership markers,
// exactly as Apply would) and returns, in order, the live and the would-be
// objects. Live objects are read with one List per
// resource and namespace, through snap (shared by the dry runs of one run;
// nil lists afresh), rather than one Get per object; the dry run itself is one
// request per object. Objects are never logged: they may be Secrets.
func (c *Cluster) DryRun(ctx context.Context, snap *Snapshot, namespace, release string, objs []*unstructured.Unstructured, fieldManager string) ([]DryRunResult, error) {
	if snap == nil {
		snap = c.Snapshot()
	}
	resolved, err := resolve(c.getter.mapper, withHelmOwnership(objs, namespace, release), "")
	if err != nil {
		return nil, fmt.Errorf("cluster %q: dry run: %w", c.name, err)
	}
	live, err := snap.readLive(ctx, resolved)
	if err != nil {
		return nil, fmt.Errorf("cluster %q: dry run: %w", c.name, err)
	}
	out := make([]DryRunResult, len(resolved))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i, o := range resolved {
		out[i].Live = live[i]
		g.Go(func() error {
			applied, err := c.applyObject(gctx, o, fieldManager, true)
			switch {
			case apierrors.IsNotFound(err) && live[i] == nil:
				return nil // e.g. the namespace does not exist yet: the object is simply missing
			case err != nil:
				return fmt.Errorf("%s: %w", o, err)
			}
			if err := normalize.DryRunUnstructured(applied); err != nil {
				return fmt.Errorf("%s: normalize: %w", o, err)
			}
			out[i].Applied = applied
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("cluster %q: dry run: %w", c.name, scrubbedFor(objs, live).scrub(err))
	}
	return out, nil
}

// Apply server-side-applies objects of a Helm release for real under
// fieldManager, forcing ownership of the fields they set. Drift correction uses
// it to put objects back to their desired state without a new Helm revision.
// Each object gets the ownership markers Helm's install puts on it, so an
// object recreated here still belongs to its release for Helm and its users.
func (c *Cluster) Apply(ctx context.Context, namespace, release string, objs []*unstructured.Unstructured, fieldManager string) error {
	resolved, err := resolve(c.getter.mapper, withHelmOwnership(objs, namespace, release), "")
	if err != nil {
		return fmt.Errorf("cluster %q: apply: %w", c.name, err)
	}
	for _, o := range resolved {
		if _, err := c.applyObject(ctx, o, fieldManager, false); err != nil {
			return fmt.Errorf("cluster %q: apply %s: %w", c.name, o, scrubbedFor(objs, nil).scrub(err))
		}
	}
	return nil
}

// withHelmOwnership returns copies of objs carrying Helm's ownership label
// and annotations, as `helm install` sets them.
func withHelmOwnership(objs []*unstructured.Unstructured, namespace, release string) []*unstructured.Unstructured {
	owned := make([]*unstructured.Unstructured, len(objs))
	for i, u := range objs {
		owned[i] = helmOwned(u, namespace, release)
	}
	return owned
}

func helmOwned(u *unstructured.Unstructured, namespace, release string) *unstructured.Unstructured {
	out := u.DeepCopy()
	labels := out.GetLabels()
	if labels == nil {
		labels = map[string]string{}
	}
	labels["app.kubernetes.io/managed-by"] = "Helm"
	out.SetLabels(labels)
	ann := out.GetAnnotations()
	if ann == nil {
		ann = map[string]string{}
	}
	ann["meta.helm.sh/release-name"] = release
	ann["meta.helm.sh/release-namespace"] = namespace
	out.SetAnnotations(ann)
	return out
}

func (c *Cluster) applyObject(ctx context.Context, o object, fieldManager string, dryRun bool) (*unstructured.Unstructured, error) {
	body := o.u.DeepCopy()
	unstructured.RemoveNestedField(body.Object, "metadata", "managedFields")
	unstructured.RemoveNestedField(body.Object, "metadata", "resourceVersion")
	unstructured.RemoveNestedField(body.Object, "status")
	if o.namespace != "" {
		body.SetNamespace(o.namespace)
	}
	data, err := json.Marshal(body.Object)
	if err != nil {
		return nil, err
	}
	force := true
	opts := metav1.PatchOptions{FieldManager: fieldManager, Force: &force}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	return c.resourceFor(o).Patch(ctx, o.name(), types.ApplyPatchType, data, opts)
}

func (c *Cluster) resourceFor(o object) dynamic.ResourceInterface {
	if o.namespace == "" {
		return c.dynamic.Resource(o.gvr)
	}
	return c.dynamic.Resource(o.gvr).Namespace(o.namespace)
}

// Snapshot caches live objects for one run: each resource type and
// namespace is listed once, however many releases' dry runs read it. It is
// safe for concurrent use. A snapshot reflects the cluster when each list was
// made; take a new one for every run.
type Snapshot struct {
	c *Cluster

	mu     sync.Mutex
	groups map[liveGroup]*liveList // guarded by mu
	metas  map[liveGroup]*metaList // guarded by mu; see Versions
}

type liveGroup struct {
	gvr       schema.GroupVersionResource
	namespace string
}

type liveList struct {
	once  sync.Once
	items map[string]*unstructured.Unstructured
	err   error
}

// Snapshot starts an empty live-object cache for one run.
func (c *Cluster) Snapshot() *Snapshot {
	return &Snapshot{c: c, groups: map[liveGroup]*liveList{}}
}

func (s *Snapshot) list(ctx context.Context, o object) (map[string]*unstructured.Unstructured, error) {
	g := liveGroup{o.gvr, o.namespace}
	s.mu.Lock()
	l, ok := s.groups[g]
	if !ok {
		l = &liveList{}
		s.groups[g] = l
	}
	s.mu.Unlock()
	l.once.Do(func() {
		list, err := s.c.resourceFor(o).List(ctx, metav1.ListOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			l.err = fmt.Errorf("list %s in %q: %w", o.gvr.Resource, o.namespace, err)
			return
		}
		l.items = map[string]*unstructured.Unstructured{}
		if list != nil {
			for i := range list.Items {
				l.items[list.Items[i].GetName()] = &list.Items[i]
			}
		}
	})
	return l.items, l.err
}

// Live returns the live objects (nil where missing), in order, from the
// snapshot's lists.
func (s *Snapshot) Live(ctx context.Context, objs []*unstructured.Unstructured) ([]*unstructured.Unstructured, error) {
	resolved, err := resolve(s.c.getter.mapper, objs, "")
	if err != nil {
		return nil, fmt.Errorf("cluster %q: %w", s.c.name, err)
	}
	live, err := s.readLive(ctx, resolved)
	if err != nil {
		return nil, fmt.Errorf("cluster %q: %w", s.c.name, err)
	}
	return live, nil
}

// readLive picks objects out of the snapshot's lists (one List per resource
// and namespace, shared by every caller of the snapshot).
func (s *Snapshot) readLive(ctx context.Context, objs []object) ([]*unstructured.Unstructured, error) {
	out := make([]*unstructured.Unstructured, len(objs))
	for i, o := range objs {
		items, err := s.list(ctx, o)
		if err != nil {
			return nil, err
		}
		if live := items[o.name()]; live != nil {
			out[i] = live.DeepCopy()
		}
	}
	return out, nil
}

// scrubbedFor collects the Secret values of the objects applied and of the
// live objects, which an error from the API server may echo.
func scrubbedFor(objs, live []*unstructured.Unstructured) secretValues {
	s := secretValues{}
	s.addObjects(objs)
	s.addObjects(live)
	return s
}
