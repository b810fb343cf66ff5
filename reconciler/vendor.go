package reconciler

import (
	"fmt"
	"io"
	"sort"

	"github.com/tandem-gitops/tandem/manifest"
	"github.com/tandem-gitops/tandem/render"
)

// VendorOptions are render.VendorOptions less the repositories, which come
// from the manifest.
type VendorOptions struct {
	Update         bool
	Download       render.DownloadOptions
	RegistryConfig string
	Out            io.Writer
}

// Vendor fetches the declared dependencies of every local chart a release of
// m uses into the chart's charts/ directory (render.Vendor), from m's
// repositories with their access settings. It returns the chart directories
// it went through, in order; it stops at the first chart that fails.
func Vendor(m *manifest.Manifest, o VendorOptions) ([]string, error) {
	var repos []render.VendorRepository
	for _, r := range m.Repositories {
		a, err := repositoryAccess(m, r)
		if err != nil {
			return nil, err
		}
		repos = append(repos, render.VendorRepository{Name: r.Name, URL: r.URL, Access: a})
	}
	seen := map[string]bool{}
	var dirs []string
	for _, rel := range m.Releases {
		if !rel.Local() {
			continue
		}
		dir, err := m.Path(rel.Chart)
		if err != nil {
			return nil, fmt.Errorf("release %s: chart: %w", rel.Name, err)
		}
		if !seen[dir] {
			seen[dir] = true
			dirs = append(dirs, dir)
		}
	}
	sort.Strings(dirs)
	for i, dir := range dirs {
		err := render.Vendor(dir, render.VendorOptions{
			Repositories: repos, Update: o.Update, Download: o.Download,
			RegistryConfig: o.RegistryConfig, Out: o.Out,
		})
		if err != nil {
			return dirs[:i], err
		}
	}
	return dirs, nil
}
