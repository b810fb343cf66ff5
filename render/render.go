package render

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
	"helm.sh/helm/v3/pkg/chart"
	"sigs.k8s.io/yaml"
)

// Options configures a Renderer.
type Options struct {
	// CacheDir holds downloaded chart archives and repository indexes.
	CacheDir string
	// Concurrency bounds concurrent renders; 0 means GOMAXPROCS.
	Concurrency int
	// Timeout bounds one release's render, so a template CPU bomb (a runaway
	// range or tpl) fails with an error naming the release.
	Timeout time.Duration
	// Download bounds remote chart downloads; zero fields take
	// DefaultDownloadOptions.
	Download DownloadOptions
	// RegistryConfig is the file OCI registry credentials are read from
	// (Docker's config.json format, as `helm registry login` writes it);
	// empty means Helm's own ($HELM_CONFIG_HOME/registry/config.json), with
	// Docker's (~/.docker/config.json) as fallback. A repository's own
	// credentials in tandem.yaml take precedence.
	RegistryConfig string
	// MaxTotalOutput bounds the rendered bytes (manifests and hooks) one
	// RenderAll call keeps, summed over its results, so that thousands of
	// releases each just under the workers' output bound cannot add up past
	// what this process holds: 0 means DefaultMaxTotalOutput. The render
	// that passes it fails, naming its release.
	MaxTotalOutput int64
	// RenderCacheDir, when set with Isolation, keeps render workers'
	// answers so that a later render of the very same input starts no
	// worker (see renderCache); RenderCacheMax bounds its size in bytes (0:
	// DefaultRenderCacheMax).
	RenderCacheDir string
	RenderCacheMax int64
	// Isolation, when set, runs Helm's template engine in worker processes,
	// so that a render past Timeout, or whose ctx is done, is killed rather
	// than left running (see Isolation). nil renders in this process.
	Isolation *Isolation
}

// DefaultMaxTotalOutput is Options.MaxTotalOutput's default.
const DefaultMaxTotalOutput = 1 << 30

// DefaultOptions returns the options tandem's commands use.
func DefaultOptions() Options {
	return Options{Timeout: 30 * time.Second}
}

// Renderer renders releases client-side. It loads each chart once for its
// lifetime (one reconcile), however many clusters and releases use it, and is
// safe for concurrent use.
type Renderer struct {
	opts   Options
	charts *chartCache
	// setup is what the workers of every call share, made by the first
	// (see workerSetup).
	setup     workerSetup
	setupOnce sync.Once
	// workerStarted, when set (by tests), is called with the pid of every
	// render worker started.
	workerStarted func(pid int)
}

// New returns a Renderer.
func New(opts Options) *Renderer {
	if opts.Concurrency <= 0 {
		opts.Concurrency = runtime.GOMAXPROCS(0)
	}
	return &Renderer{opts: opts, charts: &chartCache{dir: opts.CacheDir, dl: opts.Download, registryConfig: opts.RegistryConfig, entries: map[string]*chartEntry{}}}
}

// workerSetup is what the worker pools of one Renderer's calls share: the
// workers' settings and environment, and the render cache — whose set-up
// checks its directory and every one above it, identifies the worker's
// binary and build and reads the time zone file. It is made once per
// Renderer, which lives for one run (one reconcile, one daemon cycle), not
// once per Render or RenderAll call.
type workerSetup struct {
	iso   Isolation
	env   []string
	cache *renderCache // nil: none
}

// workerSetup returns the Renderer's; call it only with Isolation set.
func (r *Renderer) workerSetup() *workerSetup {
	r.setupOnce.Do(func() {
		iso := r.opts.Isolation.withDefaults(r.opts.Concurrency)
		env := workerEnv(os.Environ(), append(memoryLimitEnv(iso.MemoryLimit), iso.Env...))
		r.setup = workerSetup{iso: iso, env: env, cache: newRenderCache(r.opts.RenderCacheDir, r.opts.RenderCacheMax, iso, env)}
	})
	return &r.setup
}

// Request is one release to render for one cluster.
type Request struct {
	Cluster   string
	Release   string
	Namespace string
	Chart     ChartSource
	// Values are the user's layers, lowest precedence first; chart defaults lie below them all.
	Values  []ValuesLayer
	Overlay Overlay
	// Capabilities are the cluster's, as templates see them in
	// .Capabilities; the zero value means nothing is known of the cluster
	// (DefaultKubeVersion, Helm's default API versions).
	Capabilities Capabilities
	// Lookup serves the templates' lookup function from the cluster, as
	// Helm's own install does, so that a chart keeping a generated password
	// through lookup is planned with the live one. nil means lookup finds
	// nothing, as in `helm template`; Result.UsedLookup says whether that
	// mattered.
	Lookup LookupProvider
	// Upgrade says the release exists in the cluster, so Helm will upgrade
	// it: templates see .Release.IsUpgrade, as Helm's upgrade does, where
	// an install's see .Release.IsInstall. A chart may render other objects
	// for each (an initial-admin Secret on install only), and Planned
	// refuses a plan that names other objects than Helm renders when it
	// applies it.
	Upgrade bool
	// AllowAdmissionPolicies lets the chart render admission policies and
	// their bindings, and webhooks on what tandem writes (the release's
	// allowAdmissionPolicies); without it a render that has one fails (see
	// checkReserved).
	AllowAdmissionPolicies bool
}

// Result is a rendered release for one cluster.
type Result struct {
	Cluster   string
	Release   string
	Namespace string
	// Chart is the loaded chart, shared by every result that uses it: read
	// only. Helm mutates the chart it is given, so whoever hands it to Helm
	// copies it first (clusters does, per operation).
	Chart        *chart.Chart
	ChartName    string
	ChartVersion string
	// Values are the merged user values (chart defaults excluded), as Helm stores them.
	Values map[string]any
	// Manifest is the post-rendered manifest with "# Source:" comments, in Helm's install order.
	Manifest string
	// Hooks are the chart's hook manifests; Helm runs them itself and does
	// not post-render them, so they carry no overlay.
	Hooks string
	// Objects are the manifest's objects, in the same order.
	Objects []Object
	// HookObjects are the hooks' objects (Object.Hook says when each runs).
	HookObjects []Object
	// SkipHooks says the install or upgrade on this cluster runs without
	// hooks (Overlay.SkipHooks): HookObjects are not created there.
	SkipHooks bool
	// CRDs are the CustomResourceDefinitions in the crds/ directories of the
	// chart and its enabled subcharts, as `helm template --include-crds`
	// prints them: Helm creates them at a release's first install, before its
	// templates, and never upgrades or deletes them. Neither the overlay nor
	// Planned touches them, and they are not in Digest (an upgrade leaves
	// them alone).
	CRDs []Object
	// Digest identifies the rendered content: equal digests mean an upgrade
	// would change nothing. Generated fields count as a placeholder, so a
	// chart that generates a password digests the same at every render.
	Digest string
	// Generated lists the fields the chart generates afresh at every render
	// (randAlphaNum, uuidv4, now, genCA …), found by rendering a chart that
	// calls such a function twice and comparing. They belong to the
	// cluster once installed: KeepGenerated puts the deployed values back
	// into the plan, so neither an upgrade nor drift correction rotates
	// them. Empty when the two renders hold different objects (a generated
	// name): such a release is planned as rendered.
	Generated []Generated
	// UsedLookup says the templates called lookup. A render without the
	// cluster's Lookup that used it planned what lookup would have found as
	// nothing (a chart's newly generated password, not the live one): it
	// must not be applied.
	UsedLookup bool
}

// Object is one rendered Kubernetes object.
type Object struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Namespace  string `json:"namespace,omitempty"`
	Name       string `json:"name"`
	// Source is the template that produced it, e.g. "example/templates/deployment.yaml".
	Source string `json:"source,omitempty"`
	// Hook is, for a hook, its helm.sh/hook annotation (the events it runs
	// on, e.g. "pre-install,pre-upgrade"); empty for other objects.
	Hook string `json:"hook,omitempty"`
	// Body is the object as YAML.
	Body []byte `json:"-"`
}

// ID names the object as "Kind namespace/name".
func (o Object) ID() string {
	if o.Namespace == "" {
		return o.Kind + " " + o.Name
	}
	return o.Kind + " " + o.Namespace + "/" + o.Name
}

// Render renders one release for one cluster.
func (r *Renderer) Render(ctx context.Context, req Request) (*Result, error) {
	pool := r.workers()
	defer pool.close()
	return r.renderIn(ctx, req, pool)
}

// renderIn renders with pool's workers, or in process when pool is nil.
func (r *Renderer) renderIn(ctx context.Context, req Request, pool *workerPool) (*Result, error) {
	res, err := r.render(ctx, req, pool)
	if err != nil {
		return nil, fmt.Errorf("cluster %q: release %q: %w", req.Cluster, req.Release, err)
	}
	return res, nil
}

// RenderAll renders every request concurrently. It returns results in request
// order and, if any failed, an error aggregating every failure (each naming its
// cluster and release); results of failed requests are nil.
func (r *Renderer) RenderAll(ctx context.Context, reqs []Request) ([]*Result, error) {
	results := make([]*Result, len(reqs))
	errs := make([]error, len(reqs))
	// One set of workers for the whole call, at most one per concurrent render.
	pool := r.workers()
	g := new(errgroup.Group)
	g.SetLimit(r.opts.Concurrency)
	maxTotal := r.opts.MaxTotalOutput
	if maxTotal <= 0 {
		maxTotal = DefaultMaxTotalOutput
	}
	var total atomic.Int64
	for i, req := range reqs {
		g.Go(func() error {
			res, err := r.renderIn(ctx, req, pool)
			if err == nil {
				if n := total.Add(int64(len(res.Manifest) + len(res.Hooks))); n > maxTotal {
					res, err = nil, fmt.Errorf("cluster %q: release %q: the renders of this run add up to more than %d MiB (Options.MaxTotalOutput)", req.Cluster, req.Release, maxTotal>>20)
				}
			}
			results[i], errs[i] = res, err
			return nil
		})
	}
	_ = g.Wait()
	pool.close()
	// errors.Join prints one failure per line, each naming its cluster and
	// release (Render wraps them), the way tandem's commands print every
	// aggregated error; errors.Is and errors.As still reach each one.
	return results, errors.Join(append(errs, Conflicts(results))...)
}

func (r *Renderer) render(ctx context.Context, req Request, pool *workerPool) (*Result, error) {
	ch, err := r.charts.get(req.Chart)
	if err != nil {
		return nil, err
	}
	vals, err := MergeValues(req.Values)
	if err != nil {
		return nil, fmt.Errorf("values: %w", err)
	}

	o, err := r.templateWithin(ctx, req, ch, vals, pool)
	if err != nil {
		return nil, err
	}

	var objs, hookObjs []Object
	if o.parsed != nil {
		objs, hookObjs = o.parsed.manifest, o.parsed.hooks
	} else {
		if objs, err = ParseObjects(o.manifest, req.Namespace); err != nil {
			return nil, err
		}
		if hookObjs, err = ParseObjects(o.hooks, req.Namespace); err != nil {
			return nil, fmt.Errorf("hooks: %w", err)
		}
		if o.keep != nil {
			o.keep.store(o, objs, hookObjs)
		}
	}
	crds, err := chartCRDs(ch, vals)
	if err != nil {
		return nil, err
	}
	if err := checkReserved(req, objs, hookObjs, crds); err != nil {
		return nil, err
	}
	var generated []Generated
	if mayGenerate(ch) {
		// What two renders disagree on is generated afresh each time, and
		// is left out of the digest (see Result.Generated). Both renders
		// are without lookup, so that the fields found are the same whether
		// lookup keeps a value (once the release exists) or not (its first
		// install), and the digest with them.
		if generated, err = r.generated(ctx, req, ch, vals, pool, objs, hookObjs); err != nil {
			return nil, err
		}
	}
	res := &Result{
		Generated:    generated,
		CRDs:         crds,
		Cluster:      req.Cluster,
		Release:      req.Release,
		Namespace:    req.Namespace,
		Chart:        ch,
		ChartName:    ch.Metadata.Name,
		ChartVersion: ch.Metadata.Version,
		Values:       vals,
		Manifest:     o.manifest,
		Hooks:        o.hooks,
		Objects:      objs,
		HookObjects:  hookObjs,
		SkipHooks:    req.Overlay.SkipHooks(),
		UsedLookup:   o.usedLookup,
	}
	if res.Digest, err = stableDigest(res); err != nil {
		return nil, err
	}
	return res, nil
}

// templateWithin runs template within the render's timeout: in a worker
// of pool, or, without one, on a goroutine of this process.
func (r *Renderer) templateWithin(ctx context.Context, req Request, ch *chart.Chart, vals map[string]any, pool *workerPool) (rendered, error) {
	if pool != nil {
		return pool.template(ctx, req, ch, vals)
	}
	type out struct {
		rendered
		err error
	}
	done := make(chan out, 1)
	// Helm's template engine cannot be interrupted; on a deadline the render
	// goroutine is abandoned, still running, and the caller gets an error at
	// once. Options.Isolation kills it instead.
	go func() {
		rd, err := r.template(ctx, req, ch, vals)
		done <- out{rd, err}
	}()
	timer := time.NewTimer(r.opts.Timeout)
	defer timer.Stop()
	select {
	case o := <-done:
		return o.rendered, o.err
	case <-timer.C:
		return rendered{}, fmt.Errorf("render did not finish within %s (a runaway template loop?)", r.opts.Timeout)
	case <-ctx.Done():
		return rendered{}, ctx.Err()
	}
}

// ClusterScoped reports whether kind is one of the well-known kinds that have
// no namespace, so that a rendered object without one is not wrongly put in
// the release namespace.
func ClusterScoped(kind string) bool {
	switch kind {
	case
		"Namespace", "Node", "PersistentVolume", "ClusterRole", "ClusterRoleBinding",
		"CustomResourceDefinition", "StorageClass", "PriorityClass", "IngressClass",
		"ValidatingWebhookConfiguration", "MutatingWebhookConfiguration", "APIService",
		"RuntimeClass", "CSIDriver", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding",
		"GatewayClass", "ClusterIssuer":
		return true
	}
	return false
}

// ParseObjects splits a rendered manifest into objects, putting namespaced
// objects without a namespace into the given one, and a List's items in
// place of the List (as Helm applies them; the overlay has already done so
// for tandem's renders). Objects without apiVersion, kind or metadata.name
// are errors naming their template.
func ParseObjects(manifest, namespace string) ([]Object, error) {
	docs, err := splitDocuments([]byte(manifest))
	if err != nil {
		return nil, err
	}
	var objs []Object
	var problems []string
	for _, d := range expandLists(docs, &problems) {
		m, ok := headerOf(d.obj)
		if !ok {
			// Not a plain object (or not parsed): decode as JSON would,
			// for its lenient field names and its error texts.
			m = objectHeader{}
			if err := yaml.Unmarshal(d.body, &m); err != nil {
				problems = append(problems, fmt.Sprintf("%s: %v", d.sourceOr("manifest"), err))
				continue
			}
		}
		var missing []string
		if m.APIVersion == "" {
			missing = append(missing, "apiVersion")
		}
		if m.Kind == "" {
			missing = append(missing, "kind")
		}
		if m.Metadata.Name == "" {
			missing = append(missing, "metadata.name")
		}
		if len(missing) > 0 {
			problems = append(problems, fmt.Sprintf("%s: object without %s", d.sourceOr("manifest"), strings.Join(missing, ", ")))
			continue
		}
		ns := m.Metadata.Namespace
		if ns == "" && !ClusterScoped(m.Kind) {
			ns = namespace
		}
		hook, _ := m.Metadata.Annotations[hookAnnotation].(string)
		if hook == "" {
			hook = d.hook // an item of a List hook
		}
		objs = append(objs, Object{APIVersion: m.APIVersion, Kind: m.Kind, Namespace: ns, Name: m.Metadata.Name, Source: d.source, Hook: hook, Body: d.body})
	}
	if len(problems) > 0 {
		return nil, errors.New(strings.Join(problems, "; "))
	}
	return objs, nil
}

// objectHeader is what ParseObjects reads of an object.
type objectHeader struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name        string         `json:"name"`
		Namespace   string         `json:"namespace"`
		Annotations map[string]any `json:"annotations"`
	} `json:"metadata"`
}

// headerOf reads the header of an object already parsed. It answers only
// for the plain case — every field present with its exact name and type —
// and leaves anything else to a JSON decode of the document.
func headerOf(obj map[string]any) (objectHeader, bool) {
	var h objectHeader
	if obj == nil {
		return h, false
	}
	// The JSON decode matches field names in any case (so does Helm's
	// releaseutil.SortManifests, which tells hooks by it), and merges two
	// keys that match one field: a key that is one of these in another
	// case is left to it.
	if foldedKey(obj, "apiVersion", "kind", "metadata") {
		return h, false
	}
	meta, ok := obj["metadata"].(map[string]any)
	if !ok || foldedKey(meta, "name", "namespace", "annotations") {
		return h, false
	}
	str := func(m map[string]any, k string, optional bool) (string, bool) {
		v, present := m[k]
		if !present {
			return "", optional
		}
		s, ok := v.(string)
		return s, ok && (optional || s != "")
	}
	var ok1, ok2, ok3, ok4 bool
	h.APIVersion, ok1 = str(obj, "apiVersion", false)
	h.Kind, ok2 = str(obj, "kind", false)
	h.Metadata.Name, ok3 = str(meta, "name", false)
	h.Metadata.Namespace, ok4 = str(meta, "namespace", true)
	if !ok1 || !ok2 || !ok3 || !ok4 {
		return h, false
	}
	if a, present := meta["annotations"]; present && a != nil {
		if h.Metadata.Annotations, ok = a.(map[string]any); !ok {
			return h, false
		}
	}
	return h, true
}

// foldedKey reports whether m has a key equal to one of names under case
// folding (as encoding/json matches field names) but not exactly.
func foldedKey(m map[string]any, names ...string) bool {
	for k := range m {
		for _, n := range names {
			if k != n && strings.EqualFold(k, n) {
				return true
			}
		}
	}
	return false
}

// Conflicts reports objects (kind, namespace, name) that two releases render for the same cluster.
func Conflicts(results []*Result) error {
	type key struct{ cluster, group, kind, ns, name string }
	owner := map[key]string{}
	var problems []string
	for _, res := range results {
		if res == nil {
			continue
		}
		for _, o := range res.Objects {
			k := key{res.Cluster, apiGroup(o.APIVersion), o.Kind, o.Namespace, o.Name}
			if prev, ok := owner[k]; ok && prev != res.Release {
				problems = append(problems, fmt.Sprintf("cluster %q: %s is rendered by releases %q and %q", res.Cluster, o.ID(), prev, res.Release))
				continue
			}
			owner[k] = res.Release
		}
	}
	if len(problems) == 0 {
		return nil
	}
	sort.Strings(problems)
	return errors.New(strings.Join(problems, "; "))
}

// digest hashes everything an upgrade would change: the chart's identity, the
// user values Helm stores, the post-rendered manifest and hooks, and the
// namespace. It is 40 hex characters, so it fits a label value.
func digest(r *Result) string {
	vals, _ := json.Marshal(r.Values) // map keys are sorted; values came from YAML, so they marshal
	h := sha256.New()
	for _, s := range []string{r.Namespace, r.ChartName, r.ChartVersion, string(vals), r.Manifest, r.Hooks} {
		fmt.Fprintf(h, "%d:%s\n", len(s), s)
	}
	return hex.EncodeToString(h.Sum(nil))[:40]
}

// hookAnnotation marks a Helm hook and names the events it runs on.
const hookAnnotation = "helm.sh/hook"

// expandLists replaces each List document by one document per item (see
// flattenList); other documents are kept byte for byte. Problems are
// appended to problems, naming the template.
func expandLists(docs []document, problems *[]string) []document {
	out := make([]document, 0, len(docs))
	for _, d := range docs {
		obj := map[string]any{}
		if err := yaml.Unmarshal(d.body, &obj); err != nil {
			out = append(out, d) // the caller reports it
			continue
		}
		if _, isList := obj["items"]; !isList {
			d.obj = obj
			out = append(out, d)
			continue
		}
		items, err := flattenList(obj)
		if err != nil {
			*problems = append(*problems, fmt.Sprintf("%s: %v", d.sourceOr("manifest"), err))
			continue
		}
		// Helm decides what is a hook from the document's own annotation:
		// the items of a List hook run as that hook.
		meta, _ := obj["metadata"].(map[string]any)
		ann, _ := meta["annotations"].(map[string]any)
		hook, _ := ann[hookAnnotation].(string)
		for _, it := range items {
			b, err := yaml.Marshal(it)
			if err != nil {
				*problems = append(*problems, fmt.Sprintf("%s: %v", d.sourceOr("manifest"), err))
				continue
			}
			out = append(out, document{source: d.source, hook: hook, body: b, obj: it})
		}
	}
	return out
}
