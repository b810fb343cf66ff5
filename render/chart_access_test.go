package render

import (
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/registry"

	"github.com/tandem-gitops/tandem/internal/chartrepo"
)

const (
	repoUser     = "robot"
	repoPassword = "s3cr3t-Repo-Passw0rd"
	passwordEnv  = "TANDEM_TEST_REPO_PASSWORD"
)

var webChart = chartrepo.Chart{Name: "web", Version: "1.0.0", Archive: chartrepo.Package("web", "1.0.0", map[string]string{
	"cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\ndata:\n  from: original\n",
})}

// loadChart loads src with a fresh cache and returns the error; a loaded
// chart must be webChart's (or the republished one's) ConfigMap.
func loadChart(t *testing.T, src ChartSource, opts ...func(*chartCache)) (string, error) {
	t.Helper()
	c := &chartCache{dir: t.TempDir(), entries: map[string]*chartEntry{}}
	for _, o := range opts {
		o(c)
	}
	ch, err := c.load(src)
	if err != nil {
		if strings.Contains(err.Error(), repoPassword) || strings.Contains(err.Error(), base64.StdEncoding.EncodeToString([]byte(repoUser+":"+repoPassword))) {
			t.Fatalf("the error holds the password: %v", err)
		}
		return "", err
	}
	for _, f := range ch.Templates {
		return string(f.Data), nil
	}
	t.Fatal("chart without templates")
	return "", nil
}

func wantErr(t *testing.T, err error, want string) {
	t.Helper()
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("error = %v, want one containing %q", err, want)
	}
	t.Log(err)
}

// TestHTTPSChartRepositoryAccess covers issue 11 item 3 and issue 14 item 5
// against a real HTTPS chart repository on loopback with a throw-away CA:
// the CA file, basic auth from an environment variable or a file, client
// certificates; credentials go to the repository's own host only and never
// into an error; plain http is refused unless the repository is insecure,
// redirects and archive URLs included.
func TestHTTPSChartRepositoryAccess(t *testing.T) {
	t.Setenv("HELM_CACHE_HOME", t.TempDir())
	t.Setenv("HELM_CONFIG_HOME", t.TempDir())
	t.Setenv(passwordEnv, repoPassword)
	pki := chartrepo.NewPKI(t)
	pwFile := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(pwFile, []byte(repoPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	auth := chartrepo.RepoOptions{Username: repoUser, Password: repoPassword}
	open := chartrepo.StartRepo(t, pki, chartrepo.RepoOptions{}, webChart)
	private := chartrepo.StartRepo(t, pki, auth, webChart)
	mtls := chartrepo.StartRepo(t, pki, chartrepo.RepoOptions{ClientCert: true}, webChart)
	// A repository whose index sends the archive download to another host
	// (another port is another origin, as in Helm's rule).
	elsewhere := chartrepo.StartRepo(t, pki, chartrepo.RepoOptions{}, webChart)
	redirecting := chartrepo.StartRepo(t, pki, chartrepo.RepoOptions{Username: repoUser, Password: repoPassword, ArchiveURL: elsewhere.URL + "/%s"}, webChart)
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(webChart.Archive) }))
	t.Cleanup(plain.Close)
	downgrading := chartrepo.StartRepo(t, pki, chartrepo.RepoOptions{ArchiveURL: plain.URL + "/%s"}, webChart)

	ca := Access{CAFile: pki.CAFile}
	withAuth := func(a Access) Access {
		a.CAFile = pki.CAFile
		a.Username = repoUser
		if a.PasswordFile == "" {
			a.PasswordEnv = passwordEnv
		}
		return a
	}
	src := func(url string, a Access) ChartSource {
		return ChartSource{RepoURL: url, Name: "web", Version: "1.0.0", Access: a}
	}
	tests := []struct {
		name string
		src  ChartSource
		want string // error; "" loads
	}{
		{name: "self-signed server without the CA", src: src(open.URL, Access{}), want: "certificate signed by unknown authority"},
		{name: "CA file", src: src(open.URL, ca)},
		{name: "private without credentials", src: src(private.URL, ca), want: "401"},
		{name: "password from the environment", src: src(private.URL, withAuth(Access{}))},
		{name: "password from a file", src: src(private.URL, withAuth(Access{PasswordFile: pwFile}))},
		{name: "wrong password", src: src(private.URL, Access{CAFile: pki.CAFile, Username: "robot", PasswordEnv: "TANDEM_TEST_WRONG"}), want: "401"},
		{name: "password variable unset", src: src(private.URL, Access{CAFile: pki.CAFile, Username: "robot", PasswordEnv: "TANDEM_TEST_UNSET"}), want: "TANDEM_TEST_UNSET (passwordEnv) is empty or unset"},
		{name: "client certificate required", src: src(mtls.URL, ca), want: "certificate"},
		{name: "client certificate", src: src(mtls.URL, Access{CAFile: pki.CAFile, CertFile: pki.ClientCertFile, KeyFile: pki.ClientKeyFile})},
		{name: "archive on another host gets no credentials", src: src(redirecting.URL, withAuth(Access{}))},
		{name: "http repository refused", src: src(plain.URL, Access{}), want: "only https is allowed unless the repository is marked insecure"},
		{name: "http archive from an https index refused", src: src(downgrading.URL, ca), want: "only https is allowed unless the repository is marked insecure"},
		{name: "http archive allowed when insecure", src: src(downgrading.URL, Access{CAFile: pki.CAFile, Insecure: true})},
	}
	t.Setenv("TANDEM_TEST_WRONG", "not-the-"+repoPassword)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := loadChart(t, tc.src)
			if tc.want != "" {
				wantErr(t, err, tc.want)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(got, "from: original") {
				t.Fatalf("loaded another chart:\n%s", got)
			}
		})
	}
	for _, r := range elsewhere.Requests() {
		if r.Auth != "" {
			t.Errorf("the archive host %s got credentials (%s)", elsewhere.URL, r.Path)
		}
	}
	if n := len(elsewhere.Requests()); n == 0 {
		t.Error("the other host served nothing: the case tested nothing")
	}
}

// TestChartDigestPin covers issue 11 item 3: a release's digest: pins the
// chart archive, so a chart republished under the same version (or a cached
// archive that differs) fails instead of being applied unreviewed.
func TestChartDigestPin(t *testing.T) {
	t.Setenv("HELM_CACHE_HOME", t.TempDir())
	t.Setenv("HELM_CONFIG_HOME", t.TempDir())
	pki := chartrepo.NewPKI(t)
	repo := chartrepo.StartRepo(t, pki, chartrepo.RepoOptions{}, webChart)
	src := ChartSource{RepoURL: repo.URL, Name: "web", Version: "1.0.0", Digest: webChart.Digest(), Access: Access{CAFile: pki.CAFile}}
	dir := t.TempDir()
	cache := func(c *chartCache) { c.dir = dir }
	if _, err := loadChart(t, src, cache); err != nil {
		t.Fatalf("the pinned archive: %v", err)
	}

	evil := chartrepo.Chart{Name: "web", Version: "1.0.0", Archive: chartrepo.Package("web", "1.0.0", map[string]string{
		"cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\ndata:\n  from: republished\n",
	})}
	repo.SetCharts(evil)
	// The cache still holds the reviewed archive, which matches.
	if got, err := loadChart(t, src, cache); err != nil || !strings.Contains(got, "original") {
		t.Fatalf("cached pinned archive: %q, %v", got, err)
	}
	// A fresh cache downloads the republished archive, which does not.
	_, err := loadChart(t, src)
	wantErr(t, err, "the chart is not the one reviewed")
	// A pin changed to the new archive refetches a cached archive that no
	// longer matches it.
	src.Digest = evil.Digest()
	if got, err := loadChart(t, src, cache); err != nil || !strings.Contains(got, "republished") {
		t.Fatalf("re-pinned: %q, %v", got, err)
	}
}

// TestOCIRegistryAccess covers issue 14 item 5 and issue 11 item 3 for OCI
// charts, against distribution's registry with basic auth over HTTPS:
// credentials from the repository's settings or from a Docker-format
// registry config (as `helm registry login` writes it), and the digest pin.
func TestOCIRegistryAccess(t *testing.T) {
	t.Setenv("HELM_CACHE_HOME", t.TempDir())
	t.Setenv("HELM_CONFIG_HOME", t.TempDir())
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	t.Setenv(passwordEnv, repoPassword)
	pki := chartrepo.NewPKI(t)
	reg := chartrepo.StartRegistry(t, pki, repoUser, repoPassword)

	ca := Access{CAFile: pki.CAFile}
	tlsCfg, err := ca.tlsConfig()
	if err != nil {
		t.Fatal(err)
	}
	pusher, err := registry.NewClient(registry.ClientOptBasicAuth(repoUser, repoPassword),
		registry.ClientOptHTTPClient(&http.Client{Transport: &http.Transport{TLSClientConfig: tlsCfg}}))
	if err != nil {
		t.Fatal(err)
	}
	pushed, err := pusher.Push(webChart.Archive, strings.TrimPrefix(reg.Ref("charts/web"), "oci://")+":1.0.0")
	if err != nil {
		t.Fatalf("push: %v", err)
	}
	if pushed.Chart.Digest != webChart.Digest() {
		t.Fatalf("the chart layer's digest %s is not the archive's sha256 %s", pushed.Chart.Digest, webChart.Digest())
	}

	configFile := filepath.Join(t.TempDir(), "config.json")
	basic := base64.StdEncoding.EncodeToString([]byte(repoUser + ":" + repoPassword))
	if err := os.WriteFile(configFile, []byte(`{"auths":{"`+reg.Host+`":{"auth":"`+basic+`"}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	withConfig := func(c *chartCache) { c.registryConfig = configFile }
	src := func(a Access, digest string) ChartSource {
		return ChartSource{OCI: reg.Ref("charts/web"), Version: "1.0.0", Access: a, Digest: digest}
	}
	tests := []struct {
		name string
		src  ChartSource
		opts []func(*chartCache)
		want string
	}{
		{name: "anonymous", src: src(ca, ""), want: "basic credential not found"},
		{name: "repository credentials", src: src(Access{CAFile: pki.CAFile, Username: repoUser, PasswordEnv: passwordEnv}, "")},
		{name: "registry config", src: src(ca, ""), opts: []func(*chartCache){withConfig}},
		// A pull request's plan for a registry the reviewed manifest does not use.
		{name: "registry login withheld", src: src(Access{CAFile: pki.CAFile, NoRegistryLogin: true}, ""), opts: []func(*chartCache){withConfig}, want: "basic credential not found"},
		{name: "pinned digest", src: src(ca, webChart.Digest()), opts: []func(*chartCache){withConfig}},
		{name: "other digest", src: src(ca, "sha256:"+strings.Repeat("0", 64)), opts: []func(*chartCache){withConfig}, want: "the chart is not the one reviewed"},
		{name: "wrong password", src: src(Access{CAFile: pki.CAFile, Username: repoUser, PasswordEnv: "TANDEM_TEST_WRONG"}, ""), want: "401"},
	}
	t.Setenv("TANDEM_TEST_WRONG", "not-the-"+repoPassword)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := loadChart(t, tc.src, tc.opts...)
			if tc.want != "" {
				wantErr(t, err, tc.want)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(got, "from: original") {
				t.Fatalf("loaded another chart:\n%s", got)
			}
		})
	}
}

// TestRenderAllTotalOutputBound covers issue 11 item 7: the renders one
// RenderAll keeps are bounded in sum, and the one past the bound fails
// naming its cluster and release.
func TestRenderAllTotalOutputBound(t *testing.T) {
	req := exampleRequest(t, "blue", RoleActive)
	one, err := New(DefaultOptions()).Render(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	size := int64(len(one.Manifest) + len(one.Hooks))
	opts := DefaultOptions()
	opts.Concurrency = 1
	opts.MaxTotalOutput = 2*size + size/2
	results, err := New(opts).RenderAll(t.Context(), []Request{req, req, req})
	wantErr(t, err, `cluster "blue": release "example": the renders of this run add up to more than`)
	if results[0] == nil || results[1] == nil || results[2] != nil {
		t.Errorf("want the first two results kept and the third dropped, got %v", results)
	}
}

// TestChartCacheNeedsTheCredentials: a private chart one run downloaded with
// credentials is not served from the download cache to a later run without
// them — a pull request whose repository lost its credentials (declared
// otherwise than in the base revision), or a job where the password's
// variable is unset (a fork's pull request) — on a runner that keeps the cache.
func TestChartCacheNeedsTheCredentials(t *testing.T) {
	t.Setenv("HELM_CACHE_HOME", t.TempDir())
	t.Setenv("HELM_CONFIG_HOME", t.TempDir())
	t.Setenv(passwordEnv, repoPassword)
	pki := chartrepo.NewPKI(t)
	private := chartrepo.StartRepo(t, pki, chartrepo.RepoOptions{Username: repoUser, Password: repoPassword}, webChart)
	dir := t.TempDir()
	load := func(a Access) error {
		c := &chartCache{dir: dir, entries: map[string]*chartEntry{}}
		_, err := c.load(ChartSource{RepoURL: private.URL, Name: "web", Version: "1.0.0", Access: a})
		return err
	}
	withCreds := Access{CAFile: pki.CAFile, Username: repoUser, PasswordEnv: passwordEnv}
	if err := load(withCreds); err != nil {
		t.Fatalf("with credentials: %v", err)
	}
	if err := load(Access{CAFile: pki.CAFile}); err == nil {
		t.Error("without credentials, the private chart was served from the cache")
	}
	t.Setenv(passwordEnv, "")
	if err := load(withCreds); err == nil || !strings.Contains(err.Error(), "is empty or unset") {
		t.Errorf("with the password's variable unset: %v, want the variable named", err)
	}
	t.Setenv(passwordEnv, repoPassword)
	before := len(private.Requests())
	if err := load(withCreds); err != nil {
		t.Fatalf("with credentials again: %v", err)
	}
	if n := len(private.Requests()) - before; n != 0 {
		t.Errorf("a cached chart with its credentials made %d requests, want none", n)
	}
}
