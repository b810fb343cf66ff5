package reconciler

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/tandem-gitops/tandem/manifest"
	"github.com/tandem-gitops/tandem/render"
)

// Selection narrows a run to some clusters and releases; empty means all.
type Selection struct {
	Clusters []string
	Releases []string
}

func (s Selection) cluster(name string) bool {
	return len(s.Clusters) == 0 || slices.Contains(s.Clusters, name)
}
func (s Selection) release(name string) bool {
	return len(s.Releases) == 0 || slices.Contains(s.Releases, name)
}

// Check reports names in the selection that the manifest does not know.
func (s Selection) Check(m *manifest.Manifest) error {
	var bad []string
	for _, c := range s.Clusters {
		if _, ok := m.Cluster(c); !ok {
			bad = append(bad, fmt.Sprintf("unknown cluster %q", c))
		}
	}
	for _, r := range s.Releases {
		found := false
		for _, rel := range m.Releases {
			found = found || rel.Name == r
		}
		if !found {
			bad = append(bad, fmt.Sprintf("unknown release %q", r))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("%s", strings.Join(bad, "; "))
	}
	return nil
}

// RenderRequests converts a manifest into one render request per cluster and
// enabled release, clusters in manifest order and releases in manifest order
// within each. It reads values files through the manifest (which keeps reads
// inside the repository) and names the file and field of any problem.
func RenderRequests(m *manifest.Manifest, sel Selection) ([]render.Request, error) {
	var reqs []render.Request
	var problems []string
	for _, c := range m.Clusters {
		if !sel.cluster(c.Name) {
			continue
		}
		for _, rel := range m.ReleasesFor(c.Name) {
			if !sel.release(rel.Name) {
				continue
			}
			req, err := renderRequest(m, c, rel)
			if err != nil {
				problems = append(problems, err.Error())
				continue
			}
			reqs = append(reqs, req)
		}
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("%s", strings.Join(problems, "\n"))
	}
	return reqs, nil
}

func renderRequest(m *manifest.Manifest, c manifest.Cluster, rel manifest.Release) (render.Request, error) {
	idx := releaseIndex(m, rel)
	field := fmt.Sprintf("%s: releases[%d]", manifest.FileName, idx)
	chart, err := chartSource(m, rel)
	if err != nil {
		return render.Request{}, fmt.Errorf("%s.chart: %w", field, err)
	}
	var layers []render.ValuesLayer
	addFiles := func(files []string, where string) error {
		for i, f := range files {
			data, err := m.ReadFile(f)
			if err != nil {
				return fmt.Errorf("%s.%s[%d]: %w", field, where, i, err)
			}
			layers = append(layers, render.ValuesLayer{Source: f, File: data})
		}
		return nil
	}
	if err := addFiles(rel.Values, "values"); err != nil {
		return render.Request{}, err
	}
	if len(rel.Set) > 0 {
		layers = append(layers, render.ValuesLayer{Source: field + ".set", Set: rel.Set})
	}
	if ov, ok := rel.Clusters[c.Name]; ok {
		if err := addFiles(ov.Values, "clusters."+c.Name+".values"); err != nil {
			return render.Request{}, err
		}
		if len(ov.Set) > 0 {
			layers = append(layers, render.ValuesLayer{Source: field + ".clusters." + c.Name + ".set", Set: ov.Set})
		}
	}
	return render.Request{
		Cluster:   c.Name,
		Release:   rel.Name,
		Namespace: rel.Namespace,
		Chart:     chart,
		Values:    layers,
		Overlay:   OverlayFor(m, c, rel),
		// What tandem.yaml declares of the cluster, for renders without
		// it (CI); a connected run replaces these with what it discovers.
		Capabilities:           render.Capabilities{KubeVersion: c.KubeVersion, APIVersions: c.APIVersions},
		AllowAdmissionPolicies: rel.AllowAdmissionPolicies,
	}, nil
}

// OverlayFor is the Active/Standby overlay a release gets on a cluster.
func OverlayFor(m *manifest.Manifest, c manifest.Cluster, rel manifest.Release) render.Overlay {
	return render.Overlay{
		Release:      rel.Name,
		Cluster:      c.Name,
		Role:         render.Role(c.Role),
		ScaleToZero:  rel.Standby != manifest.StandbyKeep,
		DNSPrefix:    m.DNS.AnnotationPrefix,
		ActiveWeight: m.DNS.ActiveWeight,
		// standbyHooks: skip is the default (and the zero value).
		RunStandbyHooks: rel.StandbyHooks == manifest.StandbyHooksRun,
	}
}

func chartSource(m *manifest.Manifest, rel manifest.Release) (render.ChartSource, error) {
	switch {
	case strings.HasPrefix(rel.Chart, "oci://"):
		return render.ChartSource{OCI: rel.Chart, Version: rel.Version, Digest: rel.Digest, Access: render.Access{NoRegistryLogin: !m.RegistryLogin("", rel)}}, nil
	case rel.Local():
		dir, err := m.Path(rel.Chart)
		if err != nil {
			return render.ChartSource{}, err
		}
		return render.ChartSource{Dir: dir}, nil
	default:
		repoName, chartName, ok := strings.Cut(rel.Chart, "/")
		if !ok {
			return render.ChartSource{}, fmt.Errorf("%q is neither a local path, repo/chart nor oci://", rel.Chart)
		}
		for _, r := range m.Repositories {
			if r.Name != repoName {
				continue
			}
			access, err := repositoryAccess(m, r)
			if err != nil {
				return render.ChartSource{}, err
			}
			if strings.HasPrefix(r.URL, "oci://") {
				access.NoRegistryLogin = !m.RegistryLogin(r.Name, rel)
				return render.ChartSource{OCI: strings.TrimSuffix(r.URL, "/") + "/" + chartName, Version: rel.Version, Digest: rel.Digest, Access: access}, nil
			}
			return render.ChartSource{RepoURL: r.URL, Name: filepath.Base(chartName), Version: rel.Version, Digest: rel.Digest, Access: access}, nil
		}
		return render.ChartSource{}, fmt.Errorf("unknown repository %q", repoName)
	}
}

// repositoryAccess converts a repository's access settings; a CA file inside
// the manifest repository is resolved there (and kept inside it).
func repositoryAccess(m *manifest.Manifest, r manifest.Repository) (render.Access, error) {
	a := render.Access{
		Insecure: r.Insecure, Username: r.Username, UsernameEnv: r.UsernameEnv,
		PasswordEnv: r.PasswordEnv, PasswordFile: r.PasswordFile,
		CAFile: r.CAFile, CertFile: r.CertFile, KeyFile: r.KeyFile,
	}
	if a.CAFile != "" && !filepath.IsAbs(a.CAFile) {
		p, err := m.Path(a.CAFile)
		if err != nil {
			return render.Access{}, fmt.Errorf("repository %q: caFile: %w", r.Name, err)
		}
		a.CAFile = p
	}
	return a, nil
}

func releaseIndex(m *manifest.Manifest, rel manifest.Release) int {
	for i, r := range m.Releases {
		if r.Name == rel.Name && r.Namespace == rel.Namespace {
			return i
		}
	}
	return -1
}
