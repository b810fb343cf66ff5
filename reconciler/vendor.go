package reconciler

import (
	"errors"
	"fmt"
	"io"
	"path"
	"path/filepath"
	"sort"
	"strings"

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
// repositories with their access settings. Credentials are those m holds:
// call m.DropUnreviewedCredentials first when m may come from a pull request.
//
// Before anything is fetched or written, every chart and every file://
// dependency it names (and theirs, recursively) must pass the manifest's tree
// checks: inside the repository, no symlink out of it or into .git, within
// the size caps. Helm packs a file:// dependency into charts/ following
// symlinks, so without this a chart could carry any file the user can read
// into an archive the user then commits. When any is refused, nothing is
// vendored. It returns the chart directories it went through, in order; it
// stops at the first chart that fails.
func Vendor(m *manifest.Manifest, o VendorOptions) ([]string, error) {
	var repos []render.VendorRepository
	for _, r := range m.Repositories {
		a, err := repositoryAccess(m, r)
		if err != nil {
			return nil, err
		}
		a.NoRegistryLogin = !m.RegistryLogin(r.Name, manifest.Release{})
		repos = append(repos, render.VendorRepository{Name: r.Name, URL: r.URL, Access: a})
	}
	seen := map[string]bool{}
	var dirs []string
	var errs []error
	checked := map[string]bool{}
	for _, rel := range m.Releases {
		if !rel.Local() {
			continue
		}
		dir, err := m.Path(rel.Chart)
		if err != nil {
			errs = append(errs, fmt.Errorf("release %s: chart: %w", rel.Name, err))
			continue
		}
		if seen[dir] {
			continue
		}
		seen[dir] = true
		dirs = append(dirs, dir)
		if err := checkLocalChart(m, rel.Chart, false, checked); err != nil {
			errs = append(errs, fmt.Errorf("release %s: chart %s: %w", rel.Name, rel.Chart, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
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

// checkLocalChart runs the manifest's tree checks on the chart directory rel
// (relative to the repository root) and on every file:// dependency its
// Chart.yaml declares or its Chart.lock pins, recursively; checked holds the
// directories already done, and whether as a dependency (a dependency cycle
// ends there; a release's chart is checked again when it is also a
// dependency). A file://
// dependency's path is taken relative to the chart, as Helm takes it; an
// absolute one is refused. A dependency (packed) must moreover hold only
// files git tracks: Helm packs it into the archive the user commits, and a
// working tree holds local files (a .env, decrypted secrets) no pull request
// shows.
func checkLocalChart(m *manifest.Manifest, rel string, packed bool, checked map[string]bool) error {
	key := path.Clean(filepath.ToSlash(rel))
	if wasPacked, ok := checked[key]; ok && (wasPacked || !packed) {
		return nil
	}
	checked[key] = packed
	if err := m.CheckTree(rel); err != nil {
		return err
	}
	if packed {
		if err := m.CheckTracked(rel, render.HelmIgnored); err != nil {
			return err
		}
	}
	dir, err := m.Path(rel)
	if err != nil {
		return err
	}
	deps, err := render.ChartDependencies(dir)
	if err != nil {
		return err
	}
	var errs []error
	done := map[string]bool{} // Chart.yaml and Chart.lock name most dependencies twice
	for _, d := range deps {
		p, ok := d.LocalPath()
		if !ok || done[d.Repository] {
			continue
		}
		done[d.Repository] = true
		if strings.HasPrefix(p, "/") || filepath.IsAbs(p) {
			errs = append(errs, fmt.Errorf("dependency %s (%s): %w (an absolute path; use one relative to the chart)", d.Name, d.Repository, manifest.ErrOutsideRepo))
			continue
		}
		if err := checkLocalChart(m, path.Join(key, filepath.ToSlash(p)), true, checked); err != nil {
			errs = append(errs, fmt.Errorf("dependency %s (%s): %w", d.Name, d.Repository, err))
		}
	}
	return errors.Join(errs...)
}
