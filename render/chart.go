package render

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/downloader"
	"helm.sh/helm/v3/pkg/getter"
	"helm.sh/helm/v3/pkg/registry"
	"helm.sh/helm/v3/pkg/repo"
)

// ChartSource says where a chart comes from. Exactly one of Dir, RepoURL or
// OCI is set.
type ChartSource struct {
	// Dir is the absolute path of a chart directory (already checked to stay
	// inside the manifest repository by the caller).
	Dir string
	// RepoURL is an http(s) chart repository; Name is the chart in it.
	RepoURL string
	Name    string
	// OCI is an oci:// chart reference.
	OCI string
	// Version is required for remote charts.
	Version string
}

// String names the chart in errors and logs.
func (s ChartSource) String() string {
	switch {
	case s.Dir != "":
		return s.Dir
	case s.OCI != "":
		return s.OCI + "@" + s.Version
	default:
		return strings.TrimSuffix(s.RepoURL, "/") + "/" + s.Name + "@" + s.Version
	}
}

// DownloadOptions bound the download of a remote chart, so that a chart
// repository or registry that stops answering, or answers without end, fails
// the render of the releases using that chart instead of hanging the run.
// Helm's own HTTP getter has no timeout unless it is given one, and reads a
// whole response into memory. (Once downloaded, Helm's loader caps the
// decompressed chart at loader.MaxDecompressedChartSize.)
type DownloadOptions struct {
	// ConnectTimeout bounds establishing each connection: TCP, then TLS.
	ConnectTimeout time.Duration
	// ResponseTimeout bounds the wait for a response's headers once a
	// request is sent.
	ResponseTimeout time.Duration
	// Timeout bounds one chart's whole download: the repository index and
	// the archive (or the registry's manifest and layers), bodies included.
	Timeout time.Duration
	// MaxIndexBytes bounds what is read for a repository's index.yaml.
	MaxIndexBytes int64
	// MaxChartBytes bounds what is read for a chart archive (for an OCI
	// chart: everything read from the registry).
	MaxChartBytes int64
}

// DefaultDownloadOptions returns the bounds a zero DownloadOptions field
// takes. Public repository indexes run to tens of MiB (Bitnami's passed
// 20 MiB); chart archives are rarely over 1 MiB.
func DefaultDownloadOptions() DownloadOptions {
	return DownloadOptions{
		ConnectTimeout:  30 * time.Second,
		ResponseTimeout: time.Minute,
		Timeout:         5 * time.Minute,
		MaxIndexBytes:   128 << 20,
		MaxChartBytes:   32 << 20,
	}
}

func (o DownloadOptions) withDefaults() DownloadOptions {
	d := DefaultDownloadOptions()
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = d.ConnectTimeout
	}
	if o.ResponseTimeout <= 0 {
		o.ResponseTimeout = d.ResponseTimeout
	}
	if o.Timeout <= 0 {
		o.Timeout = d.Timeout
	}
	if o.MaxIndexBytes <= 0 {
		o.MaxIndexBytes = d.MaxIndexBytes
	}
	if o.MaxChartBytes <= 0 {
		o.MaxChartBytes = d.MaxChartBytes
	}
	return o
}

// transport returns an HTTP transport for one stage of one download (what
// names it in errors). Every connection it makes stops at deadline, and all
// of them together may read at most max bytes. It keeps Helm's choices:
// proxies from the environment and no transparent decompression (which
// would also let a small gzip body inflate past max).
func (o DownloadOptions) transport(deadline time.Time, max int64, what string) *http.Transport {
	budget := &readBudget{max: max, what: what}
	budget.left.Store(max)
	dialer := &net.Dialer{Timeout: o.ConnectTimeout, KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := dialer.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			if err := c.SetDeadline(deadline); err != nil {
				_ = c.Close()
				return nil, err
			}
			return &budgetConn{Conn: c, budget: budget}, nil
		},
		ForceAttemptHTTP2:     true,
		TLSHandshakeTimeout:   o.ConnectTimeout,
		ResponseHeaderTimeout: o.ResponseTimeout,
		IdleConnTimeout:       30 * time.Second,
		DisableCompression:    true,
	}
}

// readBudget is the bytes a download stage may still read, shared by its
// connections.
type readBudget struct {
	left atomic.Int64
	max  int64
	what string
}

// budgetConn fails reads once its budget is spent.
type budgetConn struct {
	net.Conn
	budget *readBudget
}

func (c *budgetConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if c.budget.left.Add(-int64(n)) < 0 {
		return n, fmt.Errorf("%s is larger than %d bytes", c.budget.what, c.budget.max)
	}
	return n, err
}

// chartCache loads each chart once per Renderer. Concurrent requests for the
// same chart wait for one load. Entries are never mutated after loading:
// every render works on its own copy (Helm's dependency processing mutates
// the chart it is given).
type chartCache struct {
	dir   string          // download cache for remote charts
	dl    DownloadOptions // zero fields take DefaultDownloadOptions
	loads int64           // charts loaded, for tests; atomic

	mu      sync.Mutex
	entries map[string]*chartEntry // guarded by mu
}

type chartEntry struct {
	once  sync.Once
	chart *chart.Chart
	err   error
}

func (c *chartCache) get(src ChartSource) (*chart.Chart, error) {
	key := src.String()
	c.mu.Lock()
	e, ok := c.entries[key]
	if !ok {
		e = &chartEntry{}
		c.entries[key] = e
	}
	c.mu.Unlock()
	e.once.Do(func() { e.chart, e.err = c.load(src) })
	if e.err != nil {
		return nil, e.err
	}
	return e.chart, nil
}

func (c *chartCache) load(src ChartSource) (*chart.Chart, error) {
	atomic.AddInt64(&c.loads, 1)
	if src.Dir != "" {
		ch, err := loader.LoadDir(src.Dir)
		if err != nil {
			return nil, fmt.Errorf("load chart %s: %w", src.Dir, err)
		}
		return ch, nil
	}
	path, err := c.download(src)
	if err != nil {
		return nil, fmt.Errorf("download chart %s: %w", src, err)
	}
	ch, err := loader.LoadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load chart %s: %w", src, err)
	}
	return ch, nil
}

// download fetches a remote chart archive into the cache directory, keyed by
// its source, unless it is already there. Every network step is bounded by
// c.dl: the repository index and the archive each get their own transport,
// so each has its own size cap, and one deadline covers both.
func (c *chartCache) download(src ChartSource) (string, error) {
	if src.Version == "" {
		return "", fmt.Errorf("a remote chart needs a version")
	}
	sum := sha256.Sum256([]byte(src.String()))
	dest := filepath.Join(c.dir, "charts", hex.EncodeToString(sum[:12]))
	if matches, _ := filepath.Glob(filepath.Join(dest, "*.tgz")); len(matches) == 1 {
		return matches[0], nil
	}
	if err := os.MkdirAll(dest, 0o755); err != nil {
		return "", err
	}
	o := c.dl.withDefaults()
	deadline := time.Now().Add(o.Timeout)
	got, err := c.fetch(src, o, deadline)
	if err != nil {
		if time.Now().After(deadline) {
			return "", fmt.Errorf("did not finish within %s: %w", o.Timeout, err)
		}
		return "", err
	}
	defer os.RemoveAll(filepath.Dir(got))
	final := filepath.Join(dest, filepath.Base(got))
	if err := os.Rename(got, final); err != nil {
		return "", err
	}
	return final, nil
}

// fetch downloads src into a new temporary directory under c.dir and returns
// the archive's path there; the caller removes the directory. Downloading
// into a temporary directory and renaming means a concurrent process never
// sees a half-written archive.
func (c *chartCache) fetch(src ChartSource, o DownloadOptions, deadline time.Time) (string, error) {
	archive := o.transport(deadline, o.MaxChartBytes, "chart archive")
	defer archive.CloseIdleConnections()
	providers := getter.Providers{
		{Schemes: []string{"http", "https"}, New: withOptions(getter.NewHTTPGetter, getter.WithTransport(archive), getter.WithTimeout(o.Timeout))},
		{Schemes: []string{registry.OCIScheme}, New: getter.NewOCIGetter},
	}
	ref := src.OCI
	var rc *registry.Client
	if src.OCI != "" {
		var err error
		rc, err = registry.NewClient(registry.ClientOptCredentialsFile(filepath.Join(c.dir, "registry.json")),
			registry.ClientOptHTTPClient(&http.Client{Transport: archive, Timeout: o.Timeout}))
		if err != nil {
			return "", err
		}
		for i := range providers {
			providers[i].New = withOptions(providers[i].New, getter.WithRegistryClient(rc))
		}
	} else {
		index := o.transport(deadline, o.MaxIndexBytes, "repository index")
		defer index.CloseIdleConnections()
		indexProviders := getter.Providers{
			{Schemes: []string{"http", "https"}, New: withOptions(getter.NewHTTPGetter, getter.WithTransport(index), getter.WithTimeout(o.Timeout))},
		}
		u, err := repo.FindChartInRepoURL(src.RepoURL, src.Name, src.Version, "", "", "", indexProviders)
		if err != nil {
			return "", err
		}
		ref = u
	}
	d := downloader.ChartDownloader{
		Out:              io.Discard,
		Verify:           downloader.VerifyNever,
		Getters:          providers,
		RepositoryConfig: filepath.Join(c.dir, "repositories.yaml"),
		RepositoryCache:  filepath.Join(c.dir, "repository"),
		RegistryClient:   rc,
	}
	tmp, err := os.MkdirTemp(c.dir, "download-")
	if err != nil {
		return "", err
	}
	got, _, err := d.DownloadTo(ref, src.Version, tmp)
	if err != nil {
		_ = os.RemoveAll(tmp)
		return "", err
	}
	return got, nil
}

// withOptions makes a getter constructor apply opts after the caller's own.
func withOptions(next getter.Constructor, opts ...getter.Option) getter.Constructor {
	return func(o ...getter.Option) (getter.Getter, error) {
		return next(append(o, opts...)...)
	}
}
