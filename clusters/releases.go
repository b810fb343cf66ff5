package clusters

import (
	"context"
	"errors"
	"fmt"
	"github.com/tandem-gitops/tandem/internal/helmchart"
	"io"
	"maps"
	"sort"
	"strings"
	"time"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/kube"
	"helm.sh/helm/v3/pkg/postrender"
	"helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/storage"
	"helm.sh/helm/v3/pkg/storage/driver"
	helmtime "helm.sh/helm/v3/pkg/time"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Release statuses as Helm stores them (Release.Status).
const (
	StatusDeployed        = "deployed"
	StatusFailed          = "failed"
	StatusSuperseded      = "superseded"
	StatusUninstalling    = "uninstalling"
	StatusUninstalled     = "uninstalled"
	StatusPendingInstall  = "pending-install"
	StatusPendingUpgrade  = "pending-upgrade"
	StatusPendingRollback = "pending-rollback"
	StatusUnknown         = "unknown"
)

// DefaultReleaseTimeout bounds Helm hooks when a request sets no Timeout,
// and Rollback and Uninstall, which take none.
const DefaultReleaseTimeout = 5 * time.Minute

var (
	// ErrImmutable marks a failure caused by a change to a field the API
	// server refuses to update (a Deployment's selector, a Job's template).
	// ReleaseRequest.Force recreates such objects instead.
	ErrImmutable = errors.New("immutable field changed; set force to recreate the object")
	// ErrNotPending is returned by MarkFailed for a revision that is not in
	// a pending-* state: there is nothing to recover, and overwriting a
	// finished revision's status would rewrite history.
	ErrNotPending = errors.New("revision is not pending")
	// ErrReleaseNotFound is returned when a release or revision does not exist.
	ErrReleaseNotFound = errors.New("release not found")
)

// Release is one revision of a Helm release as stored in the cluster.
type Release struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	// Revision is Helm's release version, 1 for the first install.
	Revision int `json:"revision"`
	// Status is Helm's status: deployed, failed, superseded, pending-install,
	// pending-upgrade, pending-rollback, uninstalling, uninstalled (Status*).
	Status       string `json:"status"`
	Chart        string `json:"chart"`
	ChartVersion string `json:"chartVersion"`
	AppVersion   string `json:"appVersion,omitempty"`
	// Labels are the Helm release labels given at install or upgrade (not
	// Helm's own name/owner/status/version bookkeeping labels).
	Labels map[string]string `json:"labels,omitempty"`
	// Manifest is the rendered multi-document YAML Helm applied.
	Manifest    string    `json:"manifest,omitempty"`
	Updated     time.Time `json:"updated"`
	Description string    `json:"description,omitempty"`
	// Written are the release's objects as the API server answered this
	// process's install or upgrade of them (for an object Helm found
	// unchanged, as Helm read it back), in no particular order; set only by
	// Install and Upgrade.
	Written []*unstructured.Unstructured `json:"-"`
}

// Pending reports whether the revision is an install, upgrade or rollback
// that has not finished; Helm refuses to upgrade such a release.
func (r Release) Pending() bool {
	return release.Status(r.Status).IsPending()
}

// ReleaseRequest is one install or upgrade of a release.
type ReleaseRequest struct {
	Name      string
	Namespace string
	// Chart is a loaded chart. It is copied per operation, because Helm
	// prunes disabled dependencies from the chart it is handed, so one chart
	// may serve concurrent requests.
	Chart *chart.Chart
	// Values are the complete values for this release: an upgrade does not
	// reuse the previous revision's values.
	Values map[string]any
	// PostRenderer, when set, edits the rendered manifest before it is
	// applied (tandem's Active/Standby overlay).
	PostRenderer postrender.PostRenderer
	// Labels are stored as Helm release labels (on the release Secrets, so
	// ListReleases can select by them). Helm's own label names are reserved.
	Labels map[string]string
	// Timeout bounds Helm hooks; 0 means DefaultReleaseTimeout. Install and
	// Upgrade never wait for workloads: see WaitHealthy.
	Timeout time.Duration
	// Force deletes and recreates objects whose update the API server
	// refuses because an immutable field changed. Without it such an upgrade
	// fails with ErrImmutable, naming the objects.
	Force bool
	// Description is stored on the revision (helm history shows it).
	Description string
	// DryRun renders with cluster lookups and validates every object with
	// server-side dry-run requests; nothing is persisted.
	DryRun bool
	// DisableHooks installs or upgrades without running the chart's Helm
	// hooks (helm --no-hooks): a Standby cluster where the release's
	// workloads are scaled to zero must not run a hook Job at full strength.
	DisableHooks bool
}

// RollbackOptions configures a Rollback.
type RollbackOptions struct {
	// DisableHooks rolls back without running the chart's hooks (helm
	// rollback --no-hooks), as ReleaseRequest.DisableHooks.
	DisableHooks bool
}

func (r ReleaseRequest) id() string { return r.Namespace + "/" + r.Name }

func (r ReleaseRequest) validate() error {
	switch {
	case r.Name == "":
		return errors.New("release name is empty")
	case r.Namespace == "":
		return errors.New("namespace is empty")
	case r.Chart == nil:
		return errors.New("no chart")
	}
	return nil
}

func (r ReleaseRequest) timeout() time.Duration {
	if r.Timeout > 0 {
		return r.Timeout
	}
	return DefaultReleaseTimeout
}

// ListReleases returns the latest revision of every Helm release, in all
// namespaces, whose release labels include labels (all releases for nil),
// sorted by namespace and name. It makes one List request; only the
// selected revisions are decoded.
//
// Labels are matched on each release's latest revision, so a release whose
// latest revision no longer carries them is not returned.
func (c *Cluster) ListReleases(ctx context.Context, labels map[string]string) ([]Release, error) {
	list, err := c.clientset.CoreV1().Secrets(metav1.NamespaceAll).List(ctx, metav1.ListOptions{
		LabelSelector: helmOwnerSelector,
		FieldSelector: "type=" + helmSecretType,
	})
	if err != nil {
		return nil, fmt.Errorf("cluster %q: list releases: %w", c.name, err)
	}
	out := []Release{}
	for _, s := range latestRevisions(list.Items) {
		if !matchLabels(customLabels(s.Labels), labels) {
			continue
		}
		r, err := releaseFromSecret(s)
		if err != nil {
			return nil, fmt.Errorf("cluster %q: release secret %q: decode: %w", c.name, s.Namespace+"/"+s.Name, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// History returns every stored revision of a release, oldest first; an
// unknown release has an empty history.
func (c *Cluster) History(ctx context.Context, namespace, name string) ([]Release, error) {
	d := driver.NewSecrets(newSecretStore(ctx, c.clientset.CoreV1().Secrets(namespace), false))
	d.Log = c.helmLog(namespace, name)
	rels, err := d.Query(map[string]string{"name": name, "owner": "helm"})
	if errors.Is(err, driver.ErrReleaseNotFound) {
		return []Release{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cluster %q: release %q: history: %w", c.name, namespace+"/"+name, err)
	}
	out := make([]Release, 0, len(rels))
	for _, r := range rels {
		r.Labels = customLabels(r.Labels)
		out = append(out, fromHelm(r))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Revision < out[j].Revision })
	return out, nil
}

// Install installs a new release, creating its namespace if missing. It
// returns when the objects are created; it does not wait for them to become
// ready (see WaitHealthy).
func (c *Cluster) Install(ctx context.Context, req ReleaseRequest) (*Release, error) {
	r, err := c.install(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("cluster %q: release %q: install: %w", c.name, req.id(), err)
	}
	return r, nil
}

func (c *Cluster) install(ctx context.Context, req ReleaseRequest) (*Release, error) {
	if err := req.validate(); err != nil {
		return nil, err
	}
	cfg, err := c.actionConfig(ctx, req.Namespace, req.Name)
	if err != nil {
		return nil, err
	}
	in := action.NewInstall(cfg)
	in.ReleaseName = req.Name
	in.Namespace = req.Namespace
	in.CreateNamespace = true
	in.Labels = req.Labels
	in.Timeout = req.timeout()
	capt := &capturing{next: req.PostRenderer}
	in.PostRenderer = capt
	in.Description = req.Description
	in.DisableHooks = req.DisableHooks
	if req.DryRun {
		in.DryRun = true
		in.DryRunOption = "server"
	}
	rls, err := in.RunWithContext(ctx, helmchart.Copy(req.Chart), helmchart.CopyValues(req.Values))
	if err != nil {
		return nil, secretsOf(capt, rls).scrub(explainImmutable(err))
	}
	if req.DryRun {
		checks, err := c.preflight(ctx, req.Namespace, "", rls.Manifest)
		if err != nil {
			return nil, secretsOf(capt, rls).scrub(err)
		}
		if err := checksError(checks, req.Force); err != nil {
			return nil, secretsOf(capt, rls).scrub(err)
		}
	} else if definesCRDs(req.Chart, rls.Manifest) {
		c.getter.mapper.Reset()
	}
	r := fromHelm(rls)
	if !req.DryRun {
		r.Written = written(cfg)
	}
	return &r, nil
}

// Upgrade upgrades an existing release to the request's chart and values
// (the previous values are not reused). With Force, objects whose update an
// immutable field would refuse are deleted first and recreated by the
// upgrade. It does not wait for workloads to become ready.
func (c *Cluster) Upgrade(ctx context.Context, req ReleaseRequest) (*Release, error) {
	r, err := c.upgrade(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("cluster %q: release %q: upgrade: %w", c.name, req.id(), err)
	}
	return r, nil
}

func (c *Cluster) newUpgrade(cfg *action.Configuration, req ReleaseRequest) *action.Upgrade {
	up := action.NewUpgrade(cfg)
	up.Namespace = req.Namespace
	up.Labels = req.Labels
	up.Timeout = req.timeout()
	up.PostRenderer = req.PostRenderer
	up.Description = req.Description
	up.DisableHooks = req.DisableHooks
	up.MaxHistory = c.maxHistory
	up.ResetValues = true
	// Helm's own Force replaces objects with PUT, which neither gets past
	// immutable fields nor keeps fields other controllers set (a Service's
	// clusterIP); tandem's Force recreates, see preflight.
	up.Force = false
	return up
}

func (c *Cluster) upgrade(ctx context.Context, req ReleaseRequest) (*Release, error) {
	if err := req.validate(); err != nil {
		return nil, err
	}
	if req.DryRun || req.Force {
		cfg, err := c.actionConfig(ctx, req.Namespace, req.Name)
		if err != nil {
			return nil, err
		}
		dry := c.newUpgrade(cfg, req)
		dry.DryRun = true
		dry.DryRunOption = "server"
		capt := &capturing{next: req.PostRenderer}
		dry.PostRenderer = capt
		planned, err := dry.RunWithContext(ctx, req.Name, helmchart.Copy(req.Chart), helmchart.CopyValues(req.Values))
		if err != nil {
			return nil, secretsOf(capt, planned).scrub(explainImmutable(err))
		}
		secrets := secretsOf(capt, planned)
		history, err := cfg.Releases.History(req.Name)
		if err != nil {
			return nil, fmt.Errorf("history: %w", err)
		}
		base := upgradeBase(history)
		if base == nil {
			return nil, fmt.Errorf("no revision to upgrade from")
		}
		secrets.addManifest(base.Manifest)
		checks, err := c.preflight(ctx, req.Namespace, base.Manifest, planned.Manifest)
		if err != nil {
			return nil, secrets.scrub(err)
		}
		if req.DryRun {
			if err := checksError(checks, req.Force); err != nil {
				return nil, secrets.scrub(err)
			}
			r := fromHelm(planned)
			return &r, nil
		}
		if err := c.recreate(ctx, req.id(), checks, req.timeout()); err != nil {
			return nil, secrets.scrub(err)
		}
	}
	cfg, err := c.actionConfig(ctx, req.Namespace, req.Name)
	if err != nil {
		return nil, err
	}
	up := c.newUpgrade(cfg, req)
	capt := &capturing{next: req.PostRenderer}
	up.PostRenderer = capt
	rls, err := up.RunWithContext(ctx, req.Name, helmchart.Copy(req.Chart), helmchart.CopyValues(req.Values))
	if err != nil {
		return nil, secretsOf(capt, rls).scrub(explainImmutable(err))
	}
	if definesCRDs(req.Chart, rls.Manifest) {
		c.getter.mapper.Reset()
	}
	r := fromHelm(rls)
	r.Written = written(cfg)
	return &r, nil
}

// secretsOf collects the Secret values of what an install or upgrade
// applied (the captured post-rendered manifest) and of the release Helm
// returned with its error (its hooks too), for scrubbing that error.
func secretsOf(capt *capturing, rls *release.Release) secretValues {
	s := secretValues{}
	s.addManifest(capt.manifest)
	s.addRelease(rls)
	return s
}

// upgradeBase picks the revision Helm diffs an upgrade against: the latest
// if deployed, else the last deployed one, else a latest failed or
// superseded one. It returns nil when there is none (e.g. only pending).
func upgradeBase(history []*release.Release) *release.Release {
	var last, deployed *release.Release
	for _, r := range history {
		if r.Info == nil {
			continue
		}
		if last == nil || r.Version > last.Version {
			last = r
		}
		if r.Info.Status == release.StatusDeployed && (deployed == nil || r.Version > deployed.Version) {
			deployed = r
		}
	}
	switch {
	case last == nil || last.Info.Status.IsPending():
		return nil
	case deployed != nil:
		return deployed
	case last.Info.Status == release.StatusFailed || last.Info.Status == release.StatusSuperseded:
		return last
	}
	return nil
}

// Rollback rolls a release back to toRevision (0: the revision before the
// latest) by writing a new revision, as `helm rollback` does, and returns
// that revision. Helm offers no cancellation for a rollback: once started it
// runs to completion, bounded by DefaultReleaseTimeout for hooks.
func (c *Cluster) Rollback(ctx context.Context, namespace, name string, toRevision int, opts RollbackOptions) (*Release, error) {
	r, err := c.rollback(ctx, namespace, name, toRevision, opts)
	if err != nil {
		return nil, fmt.Errorf("cluster %q: release %q: rollback to revision %d: %w", c.name, namespace+"/"+name, toRevision, err)
	}
	return r, nil
}

func (c *Cluster) rollback(ctx context.Context, namespace, name string, toRevision int, opts RollbackOptions) (*Release, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	cfg, err := c.actionConfig(ctx, namespace, name)
	if err != nil {
		return nil, err
	}
	rb := action.NewRollback(cfg)
	rb.Version = toRevision
	rb.DisableHooks = opts.DisableHooks
	rb.Timeout = DefaultReleaseTimeout
	rb.MaxHistory = c.maxHistory
	if err := rb.Run(name); err != nil {
		if errors.Is(err, driver.ErrReleaseNotFound) {
			return nil, fmt.Errorf("%w: %w", ErrReleaseNotFound, err)
		}
		// The rollback applied the target revision over the latest: scrub
		// the Secrets of both (and of whatever Helm stored last).
		secrets := secretValues{}
		if target, err := cfg.Releases.Get(name, toRevision); err == nil {
			secrets.addRelease(target)
		}
		if last, err := cfg.Releases.Last(name); err == nil {
			secrets.addRelease(last)
		}
		if hist, err := cfg.Releases.History(name); err == nil {
			for _, r := range hist {
				if toRevision == 0 || r.Version >= toRevision {
					secrets.addRelease(r)
				}
			}
		}
		return nil, secrets.scrub(explainImmutable(err))
	}
	last, err := cfg.Releases.Last(name)
	if err != nil {
		return nil, fmt.Errorf("read new revision: %w", err)
	}
	r := fromHelm(last)
	return &r, nil
}

// UninstallOptions configures an Uninstall.
type UninstallOptions struct {
	// DisableHooks uninstalls without running the chart's pre-delete and
	// post-delete hooks (helm uninstall --no-hooks), as
	// ReleaseRequest.DisableHooks: a Standby where the release was written
	// without hooks must not run a hook Job at full strength on its way out.
	DisableHooks bool
}

// Uninstall uninstalls a release and deletes its history, as `helm
// uninstall` does. A release that does not exist is already uninstalled.
// Like Rollback it runs to completion once started.
func (c *Cluster) Uninstall(ctx context.Context, namespace, name string, opts UninstallOptions) error {
	if err := c.uninstall(ctx, namespace, name, opts); err != nil {
		return fmt.Errorf("cluster %q: release %q: uninstall: %w", c.name, namespace+"/"+name, err)
	}
	return nil
}

func (c *Cluster) uninstall(ctx context.Context, namespace, name string, opts UninstallOptions) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	cfg, err := c.actionConfig(ctx, namespace, name)
	if err != nil {
		return err
	}
	un := action.NewUninstall(cfg)
	un.IgnoreNotFound = true
	un.DeletionPropagation = string(metav1.DeletePropagationBackground)
	un.Timeout = DefaultReleaseTimeout
	un.DisableHooks = opts.DisableHooks
	_, err = un.Run(name)
	return err
}

// MarkFailed recovers a release stuck in pending-install, pending-upgrade or
// pending-rollback (the process running Helm died): it sets that stored
// revision's status to failed with reason as its description, so a later
// upgrade or rollback proceeds. The write is conditional on the revision
// not having changed since it was read. A revision that is not pending is
// left alone and ErrNotPending returned.
func (c *Cluster) MarkFailed(ctx context.Context, namespace, name string, revision int, reason string) error {
	if err := c.markFailed(ctx, namespace, name, revision, reason, false); err != nil {
		return fmt.Errorf("cluster %q: release %q: revision %d: mark failed: %w", c.name, namespace+"/"+name, revision, err)
	}
	return nil
}

// MarkUnhealthy flips a deployed revision whose objects never became healthy
// to failed, as Helm's own --wait does, so that `helm ls` tells the truth and
// the next reconcile retries it instead of taking it for done.
func (c *Cluster) MarkUnhealthy(ctx context.Context, namespace, name string, revision int, reason string) error {
	if err := c.markFailed(ctx, namespace, name, revision, reason, true); err != nil {
		return fmt.Errorf("cluster %q: release %q: revision %d: mark unhealthy: %w", c.name, namespace+"/"+name, revision, err)
	}
	return nil
}

func (c *Cluster) markFailed(ctx context.Context, namespace, name string, revision int, reason string, deployedToo bool) error {
	d := driver.NewSecrets(newSecretStore(ctx, c.clientset.CoreV1().Secrets(namespace), true))
	d.Log = c.helmLog(namespace, name)
	key := releaseSecretName(name, revision)
	rls, err := d.Get(key)
	if errors.Is(err, driver.ErrReleaseNotFound) {
		return ErrReleaseNotFound
	}
	if err != nil {
		return err
	}
	was := rls.Info.Status
	if !was.IsPending() && !(deployedToo && was == release.StatusDeployed) {
		return fmt.Errorf("%w: it is %s", ErrNotPending, was)
	}
	if reason == "" {
		reason = fmt.Sprintf("marked failed: was stuck in %s", was)
	}
	rls.SetStatus(release.StatusFailed, reason)
	rls.Info.LastDeployed = helmtime.Now()
	if err := d.Update(key, rls); err != nil {
		return err
	}
	c.log.Info("marked release revision failed", "release", namespace+"/"+name, "revision", revision, "was", string(was))
	return nil
}

// actionConfig builds a fresh Helm action configuration for one operation
// on one release. Helm actions mutate their Configuration, so one is never
// shared; what is expensive to build (discovery, RESTMapper, OpenAPI
// schema, capabilities, connection pool) is shared through the Cluster.
func (c *Cluster) actionConfig(ctx context.Context, namespace, name string) (*action.Configuration, error) {
	caps, err := c.capabilities(ctx)
	if err != nil {
		return nil, err
	}
	logf := c.helmLog(namespace, name)
	// Helm writes the release record after the work it records, sometimes
	// from a goroutine that outlives a cancelled ctx; storage calls must
	// still go through so a cancelled operation is recorded as failed
	// rather than left pending.
	d := driver.NewSecrets(newSecretStore(context.WithoutCancel(ctx), c.clientset.CoreV1().Secrets(namespace), false))
	d.Log = logf
	store := storage.Init(d)
	store.Log = logf
	return &action.Configuration{
		RESTClientGetter: c.getter,
		Releases:         store,
		KubeClient:       &writtenClient{Client: &kube.Client{Factory: c.factory, Log: logf, Namespace: namespace}},
		Capabilities:     caps,
		Log:              logf,
		HookOutputFunc:   discardHookOutput,
	}, nil
}

// written returns the objects an action's writes returned (see writtenClient).
func written(cfg *action.Configuration) []*unstructured.Unstructured {
	if w, ok := cfg.KubeClient.(*writtenClient); ok {
		return w.objects()
	}
	return nil
}

func discardHookOutput(_, _, _ string) io.Writer { return io.Discard }

// helmLog adapts Helm's printf-style debug log to slog.
func (c *Cluster) helmLog(namespace, name string) func(string, ...any) {
	log := c.log.With("release", namespace+"/"+name)
	return func(format string, v ...any) {
		log.Debug("helm: " + fmt.Sprintf(format, v...))
	}
}

// fromHelm converts a Helm release to a Release.
func fromHelm(r *release.Release) Release {
	out := Release{
		Name:      r.Name,
		Namespace: r.Namespace,
		Revision:  r.Version,
		Manifest:  r.Manifest,
	}
	if len(r.Labels) > 0 {
		out.Labels = maps.Clone(r.Labels)
	}
	if r.Info != nil {
		out.Status = r.Info.Status.String()
		out.Updated = r.Info.LastDeployed.Time
		out.Description = r.Info.Description
	}
	if r.Chart != nil && r.Chart.Metadata != nil {
		out.Chart = r.Chart.Metadata.Name
		out.ChartVersion = r.Chart.Metadata.Version
		out.AppVersion = r.Chart.Metadata.AppVersion
	}
	return out
}

// explainImmutable marks Helm's update errors caused by immutable fields
// with ErrImmutable; Helm flattens its per-object errors into one string.
func explainImmutable(err error) error {
	if err != nil && strings.Contains(err.Error(), "field is immutable") {
		return fmt.Errorf("%w (%w)", err, ErrImmutable)
	}
	return err
}

// definesCRDs reports whether applying a chart may have added API kinds,
// after which the cached discovery must be refreshed.
func definesCRDs(ch *chart.Chart, manifest string) bool {
	return len(ch.CRDObjects()) > 0 || strings.Contains(manifest, "kind: CustomResourceDefinition")
}
