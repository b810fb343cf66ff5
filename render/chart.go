package render

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

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

// chartCache loads each chart once per Renderer. Concurrent requests for the
// same chart wait for one load. Entries are never mutated after loading:
// every render works on its own copy (Helm's dependency processing mutates
// the chart it is given).
type chartCache struct {
	dir   string // download cache for remote charts
	loads int64  // charts loaded, for tests; atomic

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
// its source, unless it is already there.
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
	providers := getter.Providers{
		{Schemes: []string{"http", "https"}, New: getter.NewHTTPGetter},
		{Schemes: []string{registry.OCIScheme}, New: getter.NewOCIGetter},
	}
	ref := src.OCI
	var rc *registry.Client
	if src.OCI != "" {
		var err error
		rc, err = registry.NewClient(registry.ClientOptCredentialsFile(filepath.Join(c.dir, "registry.json")))
		if err != nil {
			return "", err
		}
		for i := range providers {
			providers[i].New = withRegistry(providers[i].New, rc)
		}
	} else {
		u, err := repo.FindChartInRepoURL(src.RepoURL, src.Name, src.Version, "", "", "", providers)
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
	// Download into a temporary directory and rename, so a concurrent process
	// never sees a half-written archive.
	tmp, err := os.MkdirTemp(c.dir, "download-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	got, _, err := d.DownloadTo(ref, src.Version, tmp)
	if err != nil {
		return "", err
	}
	final := filepath.Join(dest, filepath.Base(got))
	if err := os.Rename(got, final); err != nil {
		return "", err
	}
	return final, nil
}

func withRegistry(next getter.Constructor, rc *registry.Client) getter.Constructor {
	return func(o ...getter.Option) (getter.Getter, error) {
		return next(append(o, getter.WithRegistryClient(rc))...)
	}
}
