package render

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
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
	// Digest, when set, pins a remote chart's archive: "sha256:" and the
	// hex SHA-256 of the .tgz (for OCI, the chart layer's digest). A
	// download that does not match fails, so what was reviewed is what is
	// rendered and applied.
	Digest string
	// Access says how to reach the repository or registry (plain HTTP
	// allowed or not, credentials, TLS). It names where secrets are and
	// holds none.
	Access Access
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
	dir string          // download cache for remote charts
	dl  DownloadOptions // zero fields take DefaultDownloadOptions
	// registryConfig is the OCI registry credentials file (Docker's
	// config.json format); empty means Helm's, with Docker's as fallback.
	registryConfig string
	loads          int64 // charts loaded, for tests; atomic

	mu      sync.Mutex
	entries map[string]*chartEntry // guarded by mu
}

type chartEntry struct {
	once  sync.Once
	chart *chart.Chart
	err   error
}

func (c *chartCache) get(src ChartSource) (*chart.Chart, error) {
	// Access is part of the key: the same chart reached with other
	// credentials is another download (they may see other content).
	key := fmt.Sprintf("%s#%s#%+v", src, src.Digest, src.Access)
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
		if err := checkVendoredVersions(ch); err != nil {
			return nil, err
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

// checkVendoredVersions refuses a local chart whose charts/ holds a
// dependency at another version than its Chart.lock pins, or none of a
// dependency the lock pins: Helm's CheckDependencies compares names only, so
// a stale archive would render silently (helm dependency list calls it
// "wrong version"). A remote chart is taken as published.
func checkVendoredVersions(ch *chart.Chart) error {
	if err := checkLockEntries(ch); err != nil {
		return err
	}
	if ch.Lock == nil {
		return nil
	}
	vendored := map[string][]string{}
	for _, sub := range ch.Dependencies() {
		vendored[sub.Name()] = append(vendored[sub.Name()], sub.Metadata.Version)
	}
	var problems []string
	for _, d := range ch.Lock.Dependencies {
		if d.Repository == "" {
			continue // a chart kept in charts/ by hand: Helm locks its version range
		}
		have, ok := vendored[d.Name]
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("%s %s is pinned by Chart.lock but not in charts/", d.Name, d.Version))
		case !slices.Contains(have, d.Version):
			problems = append(problems, fmt.Sprintf("%s is vendored at %s but Chart.lock pins %s", d.Name, strings.Join(have, ", "), d.Version))
		}
	}
	if len(problems) == 0 {
		return nil
	}
	return fmt.Errorf("chart %s: dependencies: %s (run tandem vendor in the manifest repository, and commit charts/)", ch.Metadata.Name, strings.Join(problems, "; "))
}

// checkLockEntries refuses a Chart.lock (requirements.lock) with an empty
// entry ("- null"): Helm's loader does not validate the lock, and a nil
// dependency crashes whatever reads it.
func checkLockEntries(ch *chart.Chart) error {
	if ch.Lock == nil {
		return nil
	}
	for i, d := range ch.Lock.Dependencies {
		if d == nil {
			return fmt.Errorf("chart %s: Chart.lock: dependencies: entry %d is empty", ch.Metadata.Name, i+1)
		}
	}
	return nil
}
