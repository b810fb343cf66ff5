package render

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tandem-gitops/tandem/internal/syncbuf"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/downloader"
	"helm.sh/helm/v3/pkg/getter"
	"helm.sh/helm/v3/pkg/helmpath"
	"helm.sh/helm/v3/pkg/registry"
	"helm.sh/helm/v3/pkg/repo"
	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/credentials"
	"sigs.k8s.io/yaml"
)

// VendorRepository is a chart repository (https:// or oci://) a chart's
// dependencies may come from: one of tandem.yaml's repositories.
type VendorRepository struct {
	Name   string
	URL    string
	Access Access
}

// VendorOptions say where dependencies come from and how.
type VendorOptions struct {
	// Repositories are the only places dependencies are fetched from; a
	// dependency naming another repository is refused.
	Repositories []VendorRepository
	// Update resolves Chart.yaml's version ranges anew and rewrites
	// Chart.lock (helm dependency update). Without it a chart with
	// dependencies needs a Chart.lock in step with Chart.yaml, and exactly
	// its versions are fetched (helm dependency build).
	Update bool
	// Download bounds every request; zero fields take DefaultDownloadOptions.
	Download DownloadOptions
	// RegistryConfig is the OCI credentials file for registries without
	// credentials in Repositories (see Options.RegistryConfig).
	RegistryConfig string
	// Out receives Helm's progress lines, scrubbed of credentials.
	Out io.Writer
}

// Vendor fetches the dependencies chartDir's Chart.yaml declares into its
// charts/ directory with Helm's dependency manager, as `helm dependency
// build` (or, with Update, `helm dependency update`) would, but with the
// manifest's repositories and their access settings: every request is HTTPS
// unless the repository is insecure, its CA and client certificate apply,
// and its credentials go only to its own scheme, host and port. Nothing in
// charts/ changes unless every dependency was fetched. A chart without
// dependencies is left alone.
func Vendor(chartDir string, o VendorOptions) (err error) {
	ch, err := loader.LoadDir(chartDir)
	if err != nil {
		return fmt.Errorf("load chart %s: %w", chartDir, err)
	}
	if err := checkLockEntries(ch); err != nil {
		return err
	}
	deps := ch.Metadata.Dependencies
	if len(deps) == 0 {
		return nil
	}
	if ch.Lock == nil && !o.Update {
		return fmt.Errorf("chart %s has dependencies but no Chart.lock: run tandem vendor --update to resolve them and write one, then review and commit it", ch.Metadata.Name)
	}
	used, err := vendorRepositories(ch, o.Repositories)
	if err != nil {
		return err
	}
	// Every declared repository's TLS settings apply to its URLs (an index
	// may point archives at another one); credentials are read only for
	// the repositories the dependencies name.
	var secrets []string
	auths := make([]vendorAuth, len(o.Repositories))
	for i, r := range o.Repositories {
		auths[i] = vendorAuth{repo: r}
		if !slices.ContainsFunc(used, func(u VendorRepository) bool { return u.Name == r.Name }) {
			continue
		}
		user, pass, err := r.Access.basicAuth(os.Getenv)
		if err != nil {
			return fmt.Errorf("repository %q: %w", r.Name, err)
		}
		auths[i].user, auths[i].pass = user, pass
		if pass != "" {
			secrets = append(secrets, pass, base64.StdEncoding.EncodeToString([]byte(user+":"+pass)))
		}
	}
	defer func() { err = scrubSecret(err, secrets...) }()

	tmp, err := os.MkdirTemp("", "tandem-vendor-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	// Helm's repositories file names the repositories (for @name references
	// and its index cache) and holds no credentials: the getter below adds
	// them by URL.
	var rf repo.File
	for _, r := range used {
		if !strings.HasPrefix(r.URL, "oci://") {
			rf.Add(&repo.Entry{Name: r.Name, URL: r.URL})
		}
	}
	repoConfig := filepath.Join(tmp, "repositories.yaml")
	if err := rf.WriteFile(repoConfig, 0o600); err != nil {
		return err
	}
	dl := o.Download.withDefaults()
	deadline := time.Now().Add(dl.Timeout)
	rc, closeRC, err := vendorRegistryClient(ch, auths, dl, deadline, o.RegistryConfig)
	if err != nil {
		return err
	}
	defer closeRC()

	var out syncbuf.Buffer // Helm updates repository indexes in parallel, each printing to Out
	listed := &listedDigests{byURL: map[string]listedArchive{}}
	m := &downloader.Manager{
		Out:              &out,
		ChartPath:        chartDir,
		Verify:           downloader.VerifyNever,
		RepositoryConfig: repoConfig,
		RepositoryCache:  filepath.Join(tmp, "cache"),
		RegistryClient:   rc,
		Getters: getter.Providers{
			{Schemes: []string{"http", "https"}, New: func(opts ...getter.Option) (getter.Getter, error) {
				return &vendorGetter{opts: opts, auths: auths, dl: dl, deadline: deadline, listed: listed}, nil
			}},
			{Schemes: []string{registry.OCIScheme}, New: withOptions(getter.NewOCIGetter, getter.WithRegistryClient(rc))},
		},
	}
	if o.Update {
		err = m.Update()
	} else {
		err = m.Build()
	}
	helmOut := scrubString(out.String(), secrets)
	if o.Out != nil {
		_, _ = io.WriteString(o.Out, helmOut)
	}
	if err != nil {
		// Helm prints a failed index download and goes on to fail for want
		// of the index; the printed cause is the one to see.
		if i := strings.Index(helmOut, "...Unable to get an update"); i >= 0 {
			helmOut, _, _ = strings.Cut(helmOut, "Update Complete.")
			return fmt.Errorf("chart %s: %w; %s", ch.Metadata.Name, err, strings.Join(strings.Fields(helmOut[i+3:]), " "))
		}
		return fmt.Errorf("chart %s: %w", ch.Metadata.Name, err)
	}
	return nil
}

// Dependency is a dependency a chart declares (Chart.yaml, or
// requirements.yaml for apiVersion v1) or pins (Chart.lock).
type Dependency struct {
	Name, Version, Repository string
}

// LocalPath returns the path a file:// dependency names (relative to the
// chart directory, slash-separated) and true; false for any other
// repository. Helm takes a path after file:// that starts with "/" as
// absolute; so does LocalPath, and the caller refuses it.
func (d Dependency) LocalPath() (string, bool) {
	return strings.CutPrefix(d.Repository, "file://")
}

// ChartDependencies loads the chart in dir as Helm's dependency manager
// does and returns the dependencies it declares followed by those its lock
// pins: `helm dependency build` fetches what the lock says, and a lock
// whose digest matches may still name other repositories than Chart.yaml
// (the digest is a plain hash anyone can compute). Load only a directory
// whose tree was checked (manifest's CheckTree): Helm's loader follows
// symlinks.
func ChartDependencies(dir string) ([]Dependency, error) {
	ch, err := loader.LoadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("load chart: %w", err)
	}
	if err := checkLockEntries(ch); err != nil {
		return nil, err
	}
	return chartDependencies(ch), nil
}

func chartDependencies(ch *chart.Chart) []Dependency {
	var deps []Dependency
	for _, d := range ch.Metadata.Dependencies {
		if d != nil { // the loader refuses a nil one; checkLockEntries a nil locked one
			deps = append(deps, Dependency{Name: d.Name, Version: d.Version, Repository: d.Repository})
		}
	}
	if ch.Lock != nil {
		for _, d := range ch.Lock.Dependencies {
			if d != nil {
				deps = append(deps, Dependency{Name: d.Name, Version: d.Version, Repository: d.Repository})
			}
		}
	}
	return deps
}

// vendorRepositories returns the repositories ch's dependencies (declared
// or locked) name, and refuses a dependency from a repository the manifest
// does not declare, and a file:// dependency with an absolute path.
func vendorRepositories(ch *chart.Chart, repos []VendorRepository) ([]VendorRepository, error) {
	var used []VendorRepository
	seen := map[string]bool{}
	var errs []error
	for _, d := range chartDependencies(ch) {
		if p, ok := d.LocalPath(); ok {
			if strings.HasPrefix(p, "/") || filepath.IsAbs(p) {
				errs = append(errs, fmt.Errorf("chart %s: dependency %s: %s is an absolute path: a file:// dependency must be a path relative to the chart, inside the manifest repository", ch.Metadata.Name, d.Name, d.Repository))
			}
			continue
		}
		if d.Repository == "" {
			continue
		}
		var found *VendorRepository
		for i, r := range repos {
			if matchesRepository(d.Repository, r) {
				found = &repos[i]
				break
			}
		}
		if found == nil {
			errs = append(errs, fmt.Errorf("chart %s: dependency %s comes from %s, which is not under repositories: in tandem.yaml (declare it there, with its access settings)", ch.Metadata.Name, d.Name, d.Repository))
			continue
		}
		if !seen[found.Name] {
			seen[found.Name] = true
			used = append(used, *found)
		}
	}
	return used, errors.Join(errs...)
}

// matchesRepository reports whether a Chart.yaml repository reference (a
// URL, @name or alias:name) names r.
func matchesRepository(ref string, r VendorRepository) bool {
	if n, ok := strings.CutPrefix(ref, "@"); ok {
		return n == r.Name
	}
	if n, ok := strings.CutPrefix(ref, "alias:"); ok {
		return n == r.Name
	}
	a, b := strings.TrimSuffix(ref, "/"), strings.TrimSuffix(r.URL, "/")
	if strings.HasPrefix(a, "oci://") {
		// An OCI dependency names a registry path; the repository may name
		// that path or one above it.
		return a == b || strings.HasPrefix(a, b+"/")
	}
	return a == b
}

// vendorAuth is a repository with its credentials read.
type vendorAuth struct {
	repo       VendorRepository
	user, pass string
}

// authFor returns the repository whose scheme, host and port href has (the
// longest path match first), or false.
func authFor(auths []vendorAuth, href string) (vendorAuth, bool) {
	u, err := url.Parse(href)
	if err != nil {
		return vendorAuth{}, false
	}
	best, bestLen, ok := vendorAuth{}, -1, false
	for _, a := range auths {
		ru, err := url.Parse(a.repo.URL)
		if err != nil || ru.Scheme != u.Scheme || ru.Host != u.Host {
			continue
		}
		n := 0
		if p := strings.TrimSuffix(ru.Path, "/"); strings.HasPrefix(u.Path, p+"/") {
			n = len(p)
		}
		if n > bestLen {
			best, bestLen, ok = a, n, true
		}
	}
	return best, ok
}

// vendorGetter is Helm's HTTP getter with the access settings of the
// repository a URL belongs to: its TLS material, its insecure flag, and its
// credentials only when the URL has the repository's scheme, host and port.
// A URL of no declared repository (an index pointing archives elsewhere)
// gets HTTPS only, the system's CAs and no credentials. Every request is
// bounded as a render's downloads are.
type vendorGetter struct {
	opts     []getter.Option
	auths    []vendorAuth
	dl       DownloadOptions
	deadline time.Time
	// listed holds the archive digests of the indexes fetched so far in
	// this run, shared by every getter of the run.
	listed *listedDigests
}

// listedArchive is what a repository's index says of one archive URL.
type listedArchive struct {
	repo, chart, version, digest string
}

// listedDigests maps an archive URL (as Helm resolves it against its
// repository) to its index entry. Helm fetches indexes in parallel.
type listedDigests struct {
	mu    sync.Mutex
	byURL map[string]listedArchive
}

// record notes the digests an index fetched from indexURL lists. An index
// that does not parse is left to Helm, which refuses it.
func (l *listedDigests) record(repoName, indexURL string, data []byte) {
	var idx repo.IndexFile
	if err := yaml.Unmarshal(data, &idx); err != nil {
		return
	}
	u, err := url.Parse(indexURL)
	if err != nil {
		return
	}
	u.Path = strings.TrimSuffix(u.Path, "/index.yaml")
	u.RawPath = ""
	base := u.String()
	l.mu.Lock()
	defer l.mu.Unlock()
	for name, versions := range idx.Entries {
		for _, v := range versions {
			if v == nil || v.Metadata == nil || v.Digest == "" {
				continue
			}
			for _, ref := range v.URLs {
				abs, err := repo.ResolveReferenceURL(base, ref)
				if err != nil {
					continue
				}
				l.byURL[normalURL(abs)] = listedArchive{repo: repoName, chart: name, version: v.Version, digest: v.Digest}
			}
		}
	}
}

// check refuses an archive fetched from href whose sha256 differs from the
// digest its repository's index lists for it. An archive no index lists (or
// lists without a digest) passes: Chart.lock pins the version only.
func (l *listedDigests) check(href string, data []byte) error {
	l.mu.Lock()
	a, ok := l.byURL[normalURL(href)]
	l.mu.Unlock()
	if !ok {
		return nil
	}
	sum := sha256.Sum256(data)
	got := hex.EncodeToString(sum[:])
	if want := strings.ToLower(strings.TrimPrefix(a.digest, "sha256:")); got != want {
		return fmt.Errorf("repository %q: chart %s version %s: the archive's sha256 is %s but the repository's index lists %s: refused (republished or tampered with)", a.repo, a.chart, a.version, got, want)
	}
	return nil
}

func normalURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return s
	}
	return u.String()
}

func (g *vendorGetter) Get(href string, options ...getter.Option) (*bytes.Buffer, error) {
	a, ok := authFor(g.auths, href)
	tlsConfig, err := a.repo.Access.tlsConfig()
	if err != nil {
		return nil, fmt.Errorf("repository %q: %w", a.repo.Name, err)
	}
	max, what := g.dl.MaxChartBytes, "chart archive"
	if strings.HasSuffix(strings.SplitN(href, "?", 2)[0], "/index.yaml") {
		max, what = g.dl.MaxIndexBytes, "repository index"
	}
	t := g.dl.transport(g.deadline, max, what, tlsConfig, a.repo.Access.Insecure)
	defer t.CloseIdleConnections()
	opts := append(append(append([]getter.Option{}, g.opts...), options...),
		getter.WithTransport(t), getter.WithTimeout(g.dl.Timeout), getter.WithPassCredentialsAll(false))
	if ok {
		opts = append(opts, getter.WithURL(a.repo.URL), getter.WithBasicAuth(a.user, a.pass))
	} else {
		opts = append(opts, getter.WithBasicAuth("", ""))
	}
	hg, err := getter.NewHTTPGetter(opts...)
	if err != nil {
		return nil, err
	}
	data, err := hg.Get(href)
	if err != nil {
		return nil, err
	}
	if what == "repository index" {
		g.listed.record(a.repo.Name, href, data.Bytes())
	} else if err := g.listed.check(href, data.Bytes()); err != nil {
		return nil, err
	}
	return data, nil
}

// vendorRegistryClient is the registry client for ch's OCI dependencies:
// with the declared repository's access settings when they come from one
// registry host, else Helm's registry config (then Docker's) unless the
// repository's Access says NoRegistryLogin.
func vendorRegistryClient(ch *chart.Chart, auths []vendorAuth, dl DownloadOptions, deadline time.Time, registryConfig string) (*registry.Client, func(), error) {
	var oci *vendorAuth
	for _, d := range chartDependencies(ch) {
		if !strings.HasPrefix(d.Repository, "oci://") {
			continue
		}
		for i, a := range auths {
			if !matchesRepository(d.Repository, a.repo) {
				continue
			}
			if oci != nil && ociHost(oci.repo.URL) != ociHost(a.repo.URL) {
				return nil, nil, fmt.Errorf("chart %s: dependencies from two OCI registries (%s, %s) are not supported", ch.Metadata.Name, ociHost(oci.repo.URL), ociHost(a.repo.URL))
			}
			// One registry client serves them all, with one access: a
			// repository whose registry login is withheld (one a pull
			// request added) would otherwise be pulled with a reviewed
			// one's.
			if oci != nil && (oci.repo.Access != a.repo.Access || oci.user != a.user || oci.pass != a.pass) {
				return nil, nil, fmt.Errorf("chart %s: dependencies from OCI repositories %q and %q on one registry with different access settings (credentials, registry login, TLS) are not supported", ch.Metadata.Name, oci.repo.Name, a.repo.Name)
			}
			oci = &auths[i]
		}
	}
	var a vendorAuth
	if oci != nil {
		a = *oci
	}
	tlsConfig, err := a.repo.Access.tlsConfig()
	if err != nil {
		return nil, nil, fmt.Errorf("repository %q: %w", a.repo.Name, err)
	}
	t := dl.transport(deadline, dl.MaxChartBytes, "chart archive", tlsConfig, a.repo.Access.Insecure)
	opts := []registry.ClientOption{registry.ClientOptHTTPClient(&http.Client{Transport: t, Timeout: dl.Timeout})}
	if registryConfig != "" {
		opts = append(opts, registry.ClientOptCredentialsFile(registryConfig))
	}
	// The client also pulls the oci:// references an HTTP repository's
	// index lists, from any registry it names. Helm's own authorizer would
	// answer every registry with the basic credentials or the registry
	// login: an index a pull request controls could so have the password
	// sent to a registry it runs, or a private chart pulled with the user's
	// login into charts/. Credentials go to the declared OCI repository's
	// registry only; without one (or with NoRegistryLogin and no
	// credentials), every pull is anonymous.
	authz := auth.Client{Client: &http.Client{Transport: t, Timeout: dl.Timeout}}
	var cred func(context.Context, string) (auth.Credential, error)
	switch {
	case oci == nil:
	case a.user != "":
		c := auth.Credential{Username: a.user, Password: a.pass}
		cred = func(context.Context, string) (auth.Credential, error) { return c, nil }
	case !a.repo.Access.NoRegistryLogin:
		store, err := registryLogins(registryConfig)
		if err != nil {
			return nil, nil, err
		}
		cred = credentials.Credential(store)
	}
	if cred != nil {
		host := ociHost(a.repo.URL)
		authz.Credential = func(ctx context.Context, hostport string) (auth.Credential, error) {
			if hostport != host {
				return auth.EmptyCredential, nil
			}
			return cred(ctx, hostport)
		}
	}
	opts = append(opts, registry.ClientOptAuthorizer(authz))
	if a.repo.Access.Insecure {
		opts = append(opts, registry.ClientOptPlainHTTP())
	}
	rc, err := registry.NewClient(opts...)
	if err != nil {
		return nil, nil, err
	}
	return rc, t.CloseIdleConnections, nil
}

// registryLogins is the credential store Helm's registry client reads:
// Helm's registry config (registryConfig, else Helm's default), then
// Docker's.
func registryLogins(registryConfig string) (credentials.Store, error) {
	if registryConfig == "" {
		registryConfig = helmpath.ConfigPath(registry.CredentialsFileBasename)
	}
	opts := credentials.StoreOptions{DetectDefaultNativeStore: true}
	store, err := credentials.NewStore(registryConfig, opts)
	if err != nil && strings.Contains(err.Error(), "invalid config format: EOF") {
		store, err = credentials.NewStore("", opts) // an empty file, as Helm takes it
	}
	if err != nil {
		return nil, fmt.Errorf("registry config %s: %w", registryConfig, err)
	}
	if docker, err := credentials.NewStoreFromDocker(opts); err == nil {
		return credentials.NewStoreWithFallbacks(store, docker), nil
	}
	return store, nil
}

func ociHost(u string) string {
	h, _, _ := strings.Cut(strings.TrimPrefix(u, "oci://"), "/")
	return h
}

// scrubString replaces every secret (of 4 bytes or more) in s.
func scrubString(s string, secrets []string) string {
	for _, sec := range secrets {
		if len(sec) >= 4 {
			s = strings.ReplaceAll(s, sec, "***")
		}
	}
	return s
}
