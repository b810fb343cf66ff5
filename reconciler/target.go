package reconciler

import (
	"context"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/tandem-gitops/tandem/clusters"
	"github.com/tandem-gitops/tandem/manifest"
	"github.com/tandem-gitops/tandem/render"
)

// Target is what the reconciler needs of one cluster. *clusters.Cluster
// provides it through ClusterTarget; tests wrap it to inject faults.
type Target interface {
	Name() string
	// Identity is the cluster's stable identity (its kube-system namespace
	// UID): two manifest clusters with one identity are one cluster.
	Identity(ctx context.Context) (string, error)
	Requests() int64
	// Capabilities are the cluster's version and API versions, as
	// templates see them in .Capabilities.
	Capabilities(ctx context.Context) (render.Capabilities, error)
	// Lookup serves templates' lookup function from the cluster, read only
	// and confined to the release's namespace (a chart must not read, and
	// show in a diff, another namespace's Secrets).
	Lookup(namespace string) render.LookupProvider
	ListReleases(ctx context.Context, labels map[string]string) ([]clusters.Release, error)
	Install(ctx context.Context, req clusters.ReleaseRequest) (*clusters.Release, error)
	Upgrade(ctx context.Context, req clusters.ReleaseRequest) (*clusters.Release, error)
	Rollback(ctx context.Context, namespace, name string, toRevision int, opts clusters.RollbackOptions) (*clusters.Release, error)
	Uninstall(ctx context.Context, namespace, name string, opts clusters.UninstallOptions) error
	MarkFailed(ctx context.Context, namespace, name string, revision int, reason string) error
	MarkUnhealthy(ctx context.Context, namespace, name string, revision int, reason string) error
	History(ctx context.Context, namespace, name string) ([]clusters.Release, error)
	WaitHealthy(ctx context.Context, manifest string, opts clusters.WaitOptions) ([]clusters.ObjectStatus, error)
	Lock(ctx context.Context, opts clusters.LockOptions) (Lease, error)
	// DryRun server-side-applies objects in dry-run mode and returns, per
	// object in order, the live object (nil if missing) and the object as it
	// would be after applying (nil if the dry run could not place it, e.g. its
	// namespace does not exist yet).
	// Live objects are read through snap, one list per resource type and
	// namespace for the whole run.
	DryRun(ctx context.Context, snap *clusters.Snapshot, namespace, release string, objs []*unstructured.Unstructured, fieldManager string) ([]clusters.DryRunResult, error)
	// Snapshot starts a per-run cache of live objects for DryRun.
	Snapshot() *clusters.Snapshot
	// Apply server-side-applies a release's objects for real (drift correction).
	Apply(ctx context.Context, namespace, release string, objs []*unstructured.Unstructured, fieldManager string) error
	// ReadState reads the state record of the manifest with this ID;
	// WriteState writes the one State.ManifestID names.
	ReadState(ctx context.Context, manifestID string) (*clusters.State, error)
	WriteState(ctx context.Context, s clusters.State) error
}

// Lease is a held per-cluster writer lock.
type Lease interface {
	Lost() <-chan struct{}
	Unlock(ctx context.Context) error
}

// Connector opens a Target for a manifest cluster.
type Connector func(ctx context.Context, c manifest.Cluster) (Target, error)

// ClusterTarget adapts *clusters.Cluster to Target.
type ClusterTarget struct{ *clusters.Cluster }

var _ Target = ClusterTarget{}

// Lock implements Target.
func (t ClusterTarget) Lock(ctx context.Context, opts clusters.LockOptions) (Lease, error) {
	l, err := t.Cluster.Lock(ctx, opts)
	if err != nil {
		return nil, err
	}
	return l, nil
}

// lookupTimeout bounds one lookup call of a template.
const lookupTimeout = 30 * time.Second

// Capabilities implements Target: the cluster's discovered version and
// API versions, as the cluster's own Helm installs see them.
func (t ClusterTarget) Capabilities(ctx context.Context) (render.Capabilities, error) {
	caps, err := t.Cluster.Capabilities(ctx)
	if err != nil {
		return render.Capabilities{}, err
	}
	return render.Capabilities{KubeVersion: caps.KubeVersion, APIVersions: caps.APIVersions, Discovered: true}, nil
}

// Lookup implements Target with the cluster's read-only lookup.
func (t ClusterTarget) Lookup(namespace string) render.LookupProvider {
	return t.Cluster.LookupIn(namespace, lookupTimeout)
}

// ReadState implements Target with the manifest's own state record.
func (t ClusterTarget) ReadState(ctx context.Context, manifestID string) (*clusters.State, error) {
	return t.Cluster.ReadStateOf(ctx, manifestID)
}
