package clusters

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chartutil"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"
)

// Options configures a connection to one cluster.
type Options struct {
	// Kubeconfig is the path of a kubeconfig file; "" uses client-go's default
	// loading rules (KUBECONFIG, then ~/.kube/config).
	Kubeconfig string
	// Context is the kubeconfig context; "" uses the file's current context.
	Context string
	// QPS and Burst bound the client-side request rate. client-go's defaults
	// (5/10) throttle a Helm install of a few dozen objects noticeably.
	QPS   float32
	Burst int
	// ConnectTimeout bounds the reachability check Connect makes, so an
	// unreachable cluster fails fast instead of hanging on a dead address.
	ConnectTimeout time.Duration
	// MaxHistory is how many revisions Helm keeps per release (0: unlimited,
	// which lets release Secrets pile up; helm's CLI default is 10).
	MaxHistory int
	// Logger receives debug logs with a "cluster" attribute; nil discards them.
	Logger *slog.Logger
	// WrapTransport, when set, wraps every HTTP round tripper this cluster's
	// clients use (after request counting), e.g. for tracing or tests.
	WrapTransport func(http.RoundTripper) http.RoundTripper
}

// DefaultOptions returns Options with raised client rate limits and helm's
// default history length.
func DefaultOptions() Options {
	return Options{
		QPS:            50,
		Burst:          100,
		ConnectTimeout: 15 * time.Second,
		MaxHistory:     10,
	}
}

// Cluster is a connection to one kube-apiserver. It is safe for concurrent
// use: Helm actions get a fresh action.Configuration per operation, while
// discovery, the RESTMapper, OpenAPI documents and Helm capabilities are
// cached once per Cluster.
type Cluster struct {
	name       string
	log        *slog.Logger
	maxHistory int

	clientset kubernetes.Interface
	dynamic   dynamic.Interface
	metadata  metadata.Interface
	scheme    *runtime.Scheme            // built-in kinds, for strategic merge patches
	discovery *discovery.DiscoveryClient // uncached, for the version check
	getter    *restGetter
	// factory is kubectl's factory, shared by every Helm kube.Client so
	// that the OpenAPI documents and the validator Helm's manifest
	// validation uses are fetched and built once per Cluster (until
	// discovery is reset), not once per action.
	factory *validatorCache

	requests atomic.Int64

	capsMu sync.Mutex
	caps   *chartutil.Capabilities // nil until first needed or after discovery is reset

	fence    fence         // refuses writes once this Cluster's Lock is lost or released (fence.go)
	identity identityCache // the kube-system namespace UID, once read (identity.go)
}

// Connect loads the kubeconfig, builds the cluster's clients and checks
// that the API server answers (GET /version), so an unreachable cluster
// fails here, with its name, rather than halfway through a reconcile.
func Connect(ctx context.Context, name string, opts Options) (*Cluster, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if opts.Kubeconfig != "" {
		rules.ExplicitPath = opts.Kubeconfig
	}
	overrides := &clientcmd.ConfigOverrides{CurrentContext: opts.Context}
	raw := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides)
	config, err := raw.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("cluster %q: load kubeconfig: %w", name, err)
	}
	c, err := newCluster(name, config, raw, opts)
	if err != nil {
		return nil, err
	}
	if opts.ConnectTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, opts.ConnectTimeout)
		defer cancel()
	}
	v, err := c.discovery.ServerVersionWithContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("cluster %q: unreachable: %w", name, err)
	}
	c.log.Debug("connected", "host", config.Host, "version", v.GitVersion)
	return c, nil
}

// newCluster builds a Cluster from a REST config without touching the network.
func newCluster(name string, config *rest.Config, raw clientcmd.ClientConfig, opts Options) (*Cluster, error) {
	config = rest.CopyConfig(config)
	if opts.QPS > 0 {
		config.QPS = opts.QPS
	}
	if opts.Burst > 0 {
		config.Burst = opts.Burst
	}
	if config.UserAgent == "" {
		config.UserAgent = "tandem"
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Cluster{
		name:       name,
		log:        log.With("cluster", name),
		maxHistory: opts.MaxHistory,
		fence:      fence{cluster: name},
	}
	config.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return &countingTransport{next: rt, n: &c.requests}
	})
	if opts.WrapTransport != nil {
		config.Wrap(opts.WrapTransport)
	}
	// Outermost, so a refused write is neither sent nor counted.
	config.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return &fencingTransport{next: rt, fence: &c.fence}
	})
	c.scheme = runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(c.scheme); err != nil {
		return nil, fmt.Errorf("cluster %q: scheme: %w", name, err)
	}

	var err error
	if c.clientset, err = kubernetes.NewForConfig(config); err != nil {
		return nil, fmt.Errorf("cluster %q: %w", name, err)
	}
	if c.dynamic, err = dynamic.NewForConfig(config); err != nil {
		return nil, fmt.Errorf("cluster %q: %w", name, err)
	}
	if c.metadata, err = metadata.NewForConfig(config); err != nil {
		return nil, fmt.Errorf("cluster %q: %w", name, err)
	}
	if c.discovery, err = discovery.NewDiscoveryClientForConfig(config); err != nil {
		return nil, fmt.Errorf("cluster %q: %w", name, err)
	}
	cached := memory.NewMemCacheClient(c.discovery)
	c.getter = &restGetter{
		config:    config,
		raw:       raw,
		discovery: cached,
		mapper: &refreshingMapper{
			mapper:  restmapper.NewDeferredDiscoveryRESTMapper(cached),
			onReset: c.discoveryReset,
		},
	}
	c.factory = &validatorCache{Factory: cmdutil.NewFactory(c.getter), serverValidates: c.serverValidatesFields}
	return c, nil
}

// Name returns the name the cluster was connected under.
func (c *Cluster) Name() string { return c.name }

// Requests returns how many HTTP requests this Cluster has sent to its API
// server so far, across all clients and Helm actions.
func (c *Cluster) Requests() int64 { return c.requests.Load() }

// capabilities returns Helm's view of the cluster (server version and API
// versions), computed once from the shared discovery cache. Helm would
// otherwise invalidate discovery and refetch it on every action.
func (c *Cluster) capabilities(ctx context.Context) (*chartutil.Capabilities, error) {
	c.capsMu.Lock()
	defer c.capsMu.Unlock()
	if c.caps != nil {
		return c.caps.Copy(), nil
	}
	v, err := c.discovery.ServerVersionWithContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("server version: %w", err)
	}
	apiVersions, err := action.GetVersionSet(c.getter.discovery)
	if err != nil {
		return nil, fmt.Errorf("discovery: %w", err)
	}
	c.caps = &chartutil.Capabilities{
		APIVersions: apiVersions,
		KubeVersion: chartutil.KubeVersion{Version: v.GitVersion, Major: v.Major, Minor: v.Minor},
		HelmVersion: chartutil.DefaultCapabilities.HelmVersion,
	}
	return c.caps.Copy(), nil
}

// discoveryReset forgets what was learnt from discovery; the discovery
// cache has been reset (a kind was not found, or Helm installed CRDs).
func (c *Cluster) discoveryReset() {
	c.dropCapabilities()
	if c.factory != nil {
		c.factory.reset()
	}
}

// dropCapabilities forgets the cached capabilities.
func (c *Cluster) dropCapabilities() {
	c.capsMu.Lock()
	c.caps = nil
	c.capsMu.Unlock()
}

// countingTransport counts every request sent through it.
type countingTransport struct {
	next http.RoundTripper
	n    *atomic.Int64
}

func (t *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	t.n.Add(1)
	return t.next.RoundTrip(req)
}

// WrappedRoundTripper lets client-go see through the wrapper (it looks for
// the underlying transport when upgrading connections).
func (t *countingTransport) WrappedRoundTripper() http.RoundTripper { return t.next }
