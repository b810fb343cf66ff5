package render

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"helm.sh/helm/v3/pkg/downloader"
	"helm.sh/helm/v3/pkg/getter"
	"helm.sh/helm/v3/pkg/registry"
	"helm.sh/helm/v3/pkg/repo"
	"oras.land/oras-go/v2/registry/remote/auth"
)

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
// would also let a small gzip body inflate past max). tlsConfig (nil for
// Go's defaults) carries a repository's CA and client certificate; unless
// insecure, a plain http:// request — a redirect from https included — is
// refused before it is sent.
func (o DownloadOptions) transport(deadline time.Time, max int64, what string, tlsConfig *tls.Config, insecure bool) *http.Transport {
	budget := &readBudget{max: max, what: what}
	budget.left.Store(max)
	dialer := &net.Dialer{Timeout: o.ConnectTimeout, KeepAlive: 30 * time.Second}
	return &http.Transport{
		// Proxy is the one hook that sees every request's URL before it is
		// sent, redirects included (Helm's getter builds its own
		// http.Client, so CheckRedirect is out of reach).
		Proxy: func(req *http.Request) (*url.URL, error) {
			if req.URL.Scheme != "https" && !insecure {
				return nil, fmt.Errorf("refusing %s://%s: only https is allowed unless the repository is marked insecure", req.URL.Scheme, req.URL.Host)
			}
			return http.ProxyFromEnvironment(req)
		},
		TLSClientConfig: tlsConfig,
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

// download fetches a remote chart archive into the cache directory, keyed by
// its source, unless it is already there, and checks it against src.Digest.
// Every network step is bounded by c.dl: the repository index and the
// archive each get their own transport, so each has its own size cap, and
// one deadline covers both.
func (c *chartCache) download(src ChartSource) (string, error) {
	if src.Version == "" {
		return "", fmt.Errorf("a remote chart needs a version")
	}
	// Access (where credentials are, never what they are) is part of the
	// key: a chart downloaded with credentials is not served to a run that
	// reaches the repository otherwise (a pull request whose repository
	// lost them). A cached chart needing credentials is served only where
	// they can be read (not in a job the password's variable is missing from).
	sum := sha256.Sum256([]byte(fmt.Sprintf("%s#%+v", src, src.Access)))
	dest := filepath.Join(c.dir, "charts", hex.EncodeToString(sum[:12]))
	if _, _, err := src.Access.basicAuth(os.Getenv); err != nil {
		return "", err
	}
	if matches, _ := filepath.Glob(filepath.Join(dest, "*.tgz")); len(matches) == 1 {
		// A cached archive that no longer matches the pin (the pin changed,
		// or the cache was written before it) is fetched again.
		if err := checkDigest(matches[0], src.Digest); err == nil {
			return matches[0], nil
		}
		_ = os.Remove(matches[0])
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
	if err := checkDigest(got, src.Digest); err != nil {
		return "", err
	}
	final := filepath.Join(dest, filepath.Base(got))
	if err := os.Rename(got, final); err != nil {
		return "", err
	}
	return final, nil
}

// checkDigest checks the archive at p against want ("sha256:<hex>"); an
// empty want accepts any archive.
func checkDigest(p, want string) error {
	if want == "" {
		return nil
	}
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return err
	}
	got := "sha256:" + hex.EncodeToString(h.Sum(nil))
	if !strings.EqualFold(got, want) {
		return fmt.Errorf("chart archive digest is %s, the release pins %s: the chart is not the one reviewed", got, want)
	}
	return nil
}

// fetch downloads src into a new temporary directory under c.dir and returns
// the archive's path there; the caller removes the directory. Downloading
// into a temporary directory and renaming means a concurrent process never
// sees a half-written archive. Errors never hold the credentials: they are
// read here, sent only to the repository's own scheme, host and port (the
// registry's, for OCI), and scrubbed from whatever Helm returns.
func (c *chartCache) fetch(src ChartSource, o DownloadOptions, deadline time.Time) (string, error) {
	user, pass, err := src.Access.basicAuth(os.Getenv)
	if err != nil {
		return "", err
	}
	tlsConfig, err := src.Access.tlsConfig()
	if err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(c.dir, "download-")
	if err != nil {
		return "", err
	}
	var got string
	if src.OCI != "" {
		got, err = c.pullOCI(src, o, deadline, tlsConfig, user, pass, tmp)
	} else {
		got, err = c.getHTTP(src, o, deadline, tlsConfig, user, pass, tmp)
	}
	if err != nil {
		_ = os.RemoveAll(tmp)
		return "", scrubSecret(err, pass, base64.StdEncoding.EncodeToString([]byte(user+":"+pass)))
	}
	return got, nil
}

// getHTTP finds src in its repository's index and downloads the archive.
// Basic auth goes with the index request, and with the archive's only when
// the index points at the repository's own scheme and host (Helm's
// same-host rule, with the repository URL as the reference).
func (c *chartCache) getHTTP(src ChartSource, o DownloadOptions, deadline time.Time, tlsConfig *tls.Config, user, pass, tmp string) (string, error) {
	index := o.transport(deadline, o.MaxIndexBytes, "repository index", tlsConfig, src.Access.Insecure)
	defer index.CloseIdleConnections()
	indexProviders := getter.Providers{
		{Schemes: []string{"http", "https"}, New: withOptions(getter.NewHTTPGetter, getter.WithTransport(index), getter.WithTimeout(o.Timeout))},
	}
	u, err := repo.FindChartInAuthAndTLSAndPassRepoURL(src.RepoURL, user, pass, src.Name, src.Version, "", "", "", false, false, indexProviders)
	if err != nil {
		return "", err
	}
	archive := o.transport(deadline, o.MaxChartBytes, "chart archive", tlsConfig, src.Access.Insecure)
	defer archive.CloseIdleConnections()
	g, err := getter.NewHTTPGetter(getter.WithTransport(archive), getter.WithTimeout(o.Timeout),
		getter.WithURL(src.RepoURL), getter.WithBasicAuth(user, pass))
	if err != nil {
		return "", err
	}
	data, err := g.Get(u)
	if err != nil {
		return "", err
	}
	name := src.Name + "-" + src.Version + ".tgz"
	if base := filepath.Base(strings.SplitN(u, "?", 2)[0]); strings.HasSuffix(base, ".tgz") && !strings.ContainsAny(base, `/\`) {
		name = base
	}
	p := filepath.Join(tmp, name)
	if err := os.WriteFile(p, data.Bytes(), 0o644); err != nil {
		return "", err
	}
	return p, nil
}

// pullOCI downloads an OCI chart with Helm's registry client. Credentials
// are the repository's own when it has them, else those Helm's registry
// configuration (then Docker's) holds for the registry.
func (c *chartCache) pullOCI(src ChartSource, o DownloadOptions, deadline time.Time, tlsConfig *tls.Config, user, pass, tmp string) (string, error) {
	archive := o.transport(deadline, o.MaxChartBytes, "chart archive", tlsConfig, src.Access.Insecure)
	defer archive.CloseIdleConnections()
	opts := []registry.ClientOption{registry.ClientOptHTTPClient(&http.Client{Transport: archive, Timeout: o.Timeout})}
	if c.registryConfig != "" {
		opts = append(opts, registry.ClientOptCredentialsFile(c.registryConfig))
	}
	switch {
	case user != "":
		opts = append(opts, registry.ClientOptBasicAuth(user, pass))
	case src.Access.NoRegistryLogin:
		// An authorizer without a Credential function pulls anonymously:
		// Helm's own reads Helm's registry config, then Docker's.
		opts = append(opts, registry.ClientOptAuthorizer(auth.Client{Client: &http.Client{Transport: archive, Timeout: o.Timeout}}))
	}
	if src.Access.Insecure {
		opts = append(opts, registry.ClientOptPlainHTTP())
	}
	rc, err := registry.NewClient(opts...)
	if err != nil {
		return "", err
	}
	d := downloader.ChartDownloader{
		Out:    io.Discard,
		Verify: downloader.VerifyNever,
		Getters: getter.Providers{
			{Schemes: []string{registry.OCIScheme}, New: withOptions(getter.NewOCIGetter, getter.WithRegistryClient(rc))},
		},
		RepositoryConfig: filepath.Join(c.dir, "repositories.yaml"),
		RepositoryCache:  filepath.Join(c.dir, "repository"),
		RegistryClient:   rc,
	}
	got, _, err := d.DownloadTo(src.OCI, src.Version, tmp)
	return got, err
}

// withOptions makes a getter constructor apply opts after the caller's own.
func withOptions(next getter.Constructor, opts ...getter.Option) getter.Constructor {
	return func(o ...getter.Option) (getter.Getter, error) {
		return next(append(o, opts...)...)
	}
}
