package manifest

import (
	"fmt"
	"strings"
	"time"
)

// Key identifies a release across the manifest: "namespace/name".
func (r Release) Key() string { return r.Namespace + "/" + r.Name }

// Local reports whether the chart is a directory inside the manifest repository. Load writes
// every local chart in its canonical form ("./" followed by the cleaned path), so on a loaded
// manifest this is exact; a chart written as "charts/web" in tandem.yaml becomes "./charts/web"
// unless "charts" is a declared repository.
func (r Release) Local() bool { return r.Chart == "." || strings.HasPrefix(r.Chart, "./") }

// TimeoutDuration is Timeout as a duration. Load has checked and defaulted it, so the fallback
// to DefaultTimeout only matters for a Release built by hand.
func (r Release) TimeoutDuration() time.Duration {
	if d, err := time.ParseDuration(r.Timeout); err == nil && d > 0 {
		return d
	}
	d, _ := time.ParseDuration(DefaultTimeout)
	return d
}

// Cluster returns the cluster of that name.
func (m *Manifest) Cluster(name string) (Cluster, bool) {
	for _, c := range m.Clusters {
		if c.Name == name {
			return c, true
		}
	}
	return Cluster{}, false
}

// ReleasesFor returns the releases enabled on a cluster, in manifest order: every release when
// the cluster has no releases list, the listed ones when it has (staged enablement), and none
// for an unknown cluster.
func (m *Manifest) ReleasesFor(cluster string) []Release {
	c, ok := m.Cluster(cluster)
	if !ok {
		return nil
	}
	if c.Releases == nil {
		return append([]Release(nil), m.Releases...)
	}
	ix := newReleaseIndex(m.Releases)
	enabled := map[int]bool{}
	for _, ref := range c.Releases {
		if i, err := ix.lookup(ref); err == nil {
			enabled[i] = true
		}
	}
	out := []Release{}
	for i, r := range m.Releases {
		if enabled[i] {
			out = append(out, r)
		}
	}
	return out
}

// releaseIndex resolves the references in `needs` and in a cluster's `releases`: a release
// name when it is unique in the manifest, or "namespace/name".
type releaseIndex struct {
	byName map[string][]int
	byKey  map[string]int
}

func newReleaseIndex(rs []Release) releaseIndex {
	ix := releaseIndex{byName: map[string][]int{}, byKey: map[string]int{}}
	for i, r := range rs {
		if _, dup := ix.byKey[r.Key()]; dup {
			continue
		}
		ix.byKey[r.Key()] = i
		ix.byName[r.Name] = append(ix.byName[r.Name], i)
	}
	return ix
}

func (ix releaseIndex) lookup(ref string) (int, error) {
	if strings.Contains(ref, "/") {
		if i, ok := ix.byKey[ref]; ok {
			return i, nil
		}
		return -1, fmt.Errorf("unknown release %q", ref)
	}
	switch is := ix.byName[ref]; len(is) {
	case 0:
		return -1, fmt.Errorf("unknown release %q", ref)
	case 1:
		return is[0], nil
	default:
		return -1, fmt.Errorf("release name %q is ambiguous: several namespaces have it, so write namespace/name", ref)
	}
}

// Resolve returns the release a reference names, as `needs` and a cluster's `releases` list
// write it: "namespace/name", or a bare name when only one namespace has it.
func (m *Manifest) Resolve(ref string) (Release, bool) {
	i, err := newReleaseIndex(m.Releases).lookup(ref)
	if err != nil {
		return Release{}, false
	}
	return m.Releases[i], true
}
