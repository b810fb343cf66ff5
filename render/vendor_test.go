package render

import (
	"bytes"
	"encoding/base64"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/registry"

	"github.com/tandem-gitops/tandem/internal/chartrepo"
)

var webChart110 = chartrepo.Chart{Name: "web", Version: "1.1.0", Archive: chartrepo.Package("web", "1.1.0", map[string]string{
	"cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\ndata:\n  from: newer\n",
})}

// parentChart writes a chart depending on web from repository ref (version
// range rng) and returns its directory.
func parentChart(t *testing.T, ref, rng string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "app")
	if err := os.MkdirAll(filepath.Join(dir, "templates"), 0o755); err != nil {
		t.Fatal(err)
	}
	chartYAML := "apiVersion: v2\nname: app\nversion: 0.1.0\ndependencies:\n  - name: web\n    version: \"" + rng + "\"\n    repository: \"" + ref + "\"\n"
	if err := os.WriteFile(filepath.Join(dir, "Chart.yaml"), []byte(chartYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// vendoredVersions lists the versions of web under dir/charts.
func vendoredVersions(t *testing.T, dir string) []string {
	t.Helper()
	entries, _ := os.ReadDir(filepath.Join(dir, "charts"))
	var got []string
	for _, e := range entries {
		ch, err := loader.Load(filepath.Join(dir, "charts", e.Name()))
		if err != nil {
			t.Fatalf("charts/%s: %v", e.Name(), err)
		}
		got = append(got, ch.Metadata.Name+"-"+ch.Metadata.Version)
	}
	return got
}

func noSecret(t *testing.T, what, s string) {
	t.Helper()
	if strings.Contains(s, repoPassword) || strings.Contains(s, base64.StdEncoding.EncodeToString([]byte(repoUser+":"+repoPassword))) {
		t.Fatalf("%s holds the password: %s", what, s)
	}
}

func vendor(t *testing.T, dir string, o VendorOptions) (string, error) {
	t.Helper()
	var out bytes.Buffer
	o.Out = &out
	err := Vendor(dir, o)
	noSecret(t, "Helm's output", out.String())
	if err != nil {
		noSecret(t, "the error", err.Error())
		t.Log(err)
	}
	return out.String(), err
}

// TestVendorFromHTTPSRepository covers issue 14 item 4 against a real HTTPS
// chart repository on loopback (throw-away CA, basic auth): --update
// resolves and writes Chart.lock; a build fetches exactly the locked version
// even when a newer one matches the range; no lock, a lock out of step with
// Chart.yaml or a tampered lock digest is refused with charts/ untouched; a
// repository tandem.yaml does not declare is refused; credentials go to the
// repository's host only and never into output or errors; plain http is
// refused.
func TestVendorFromHTTPSRepository(t *testing.T) {
	t.Setenv(passwordEnv, repoPassword)
	pki := chartrepo.NewPKI(t)
	srv := chartrepo.StartRepo(t, pki, chartrepo.RepoOptions{Username: repoUser, Password: repoPassword}, webChart)
	repos := []VendorRepository{{Name: "private", URL: srv.URL, Access: Access{CAFile: pki.CAFile, Username: repoUser, PasswordEnv: passwordEnv}}}

	dir := parentChart(t, srv.URL, "^1.0.0")
	if _, err := vendor(t, dir, VendorOptions{Repositories: repos}); err == nil || !strings.Contains(err.Error(), "no Chart.lock: run tandem vendor --update") {
		t.Fatalf("a chart without Chart.lock: err = %v, want a refusal naming --update", err)
	}
	if _, err := vendor(t, dir, VendorOptions{Repositories: repos, Update: true}); err != nil {
		t.Fatal(err)
	}
	if got := vendoredVersions(t, dir); len(got) != 1 || got[0] != "web-1.0.0" {
		t.Fatalf("after --update charts/ holds %v, want web-1.0.0", got)
	}
	lock, err := os.ReadFile(filepath.Join(dir, "Chart.lock"))
	if err != nil {
		t.Fatalf("--update wrote no Chart.lock: %v", err)
	}
	for _, r := range srv.Requests() {
		if r.Auth == "" {
			t.Errorf("request %s went without credentials", r.Path)
		}
	}

	// A newer version matching the range is published: a build keeps the lock's.
	srv.SetCharts(webChart, webChart110)
	if err := os.RemoveAll(filepath.Join(dir, "charts")); err != nil {
		t.Fatal(err)
	}
	if _, err := vendor(t, dir, VendorOptions{Repositories: repos}); err != nil {
		t.Fatal(err)
	}
	if got := vendoredVersions(t, dir); len(got) != 1 || got[0] != "web-1.0.0" {
		t.Fatalf("a build from Chart.lock vendored %v, want the locked web-1.0.0", got)
	}

	// Chart.yaml changed without its lock: refused, charts/ untouched.
	chartYAML, _ := os.ReadFile(filepath.Join(dir, "Chart.yaml"))
	if err := os.WriteFile(filepath.Join(dir, "Chart.yaml"), bytes.Replace(chartYAML, []byte("^1.0.0"), []byte("~1.1.0"), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := vendor(t, dir, VendorOptions{Repositories: repos}); err == nil || !strings.Contains(err.Error(), "out of sync") {
		t.Fatalf("a Chart.lock out of step with Chart.yaml: err = %v, want out of sync", err)
	}
	if got := vendoredVersions(t, dir); len(got) != 1 || got[0] != "web-1.0.0" {
		t.Fatalf("a refused build changed charts/: %v", got)
	}
	if err := os.WriteFile(filepath.Join(dir, "Chart.yaml"), chartYAML, 0o644); err != nil {
		t.Fatal(err)
	}
	// A lock whose digest does not match its dependencies: refused.
	tampered := bytes.Replace(lock, []byte("version: 1.0.0"), []byte("version: 1.1.0"), 1)
	if bytes.Equal(tampered, lock) {
		t.Fatalf("Chart.lock has no version: 1.0.0:\n%s", lock)
	}
	if err := os.WriteFile(filepath.Join(dir, "Chart.lock"), tampered, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := vendor(t, dir, VendorOptions{Repositories: repos}); err == nil || !strings.Contains(err.Error(), "out of sync") {
		t.Fatalf("a Chart.lock with another version than its digest covers: err = %v, want out of sync", err)
	}
	if got := vendoredVersions(t, dir); len(got) != 1 || got[0] != "web-1.0.0" {
		t.Fatalf("a refused build changed charts/: %v", got)
	}
	if err := os.WriteFile(filepath.Join(dir, "Chart.lock"), lock, 0o644); err != nil {
		t.Fatal(err)
	}

	// --update moves to the newest version in the range.
	if _, err := vendor(t, dir, VendorOptions{Repositories: repos, Update: true}); err != nil {
		t.Fatal(err)
	}
	if got := vendoredVersions(t, dir); len(got) != 1 || got[0] != "web-1.1.0" {
		t.Fatalf("--update vendored %v, want web-1.1.0", got)
	}

	t.Run("undeclared repository", func(t *testing.T) {
		_, err := vendor(t, parentChart(t, "https://charts.example.invalid", "1.0.0"), VendorOptions{Repositories: repos, Update: true})
		wantErr(t, err, "https://charts.example.invalid, which is not under repositories: in tandem.yaml")
	})
	t.Run("wrong password", func(t *testing.T) {
		t.Setenv("TANDEM_TEST_WRONG", "not-the-"+repoPassword)
		bad := []VendorRepository{{Name: "private", URL: srv.URL, Access: Access{CAFile: pki.CAFile, Username: repoUser, PasswordEnv: "TANDEM_TEST_WRONG"}}}
		d := parentChart(t, srv.URL, "1.0.0")
		if _, err := vendor(t, d, VendorOptions{Repositories: bad, Update: true}); err == nil {
			t.Fatal("vendored with a wrong password")
		}
		if got := vendoredVersions(t, d); len(got) != 0 {
			t.Fatalf("a failed vendor left %v in charts/", got)
		}
	})
	t.Run("unknown CA", func(t *testing.T) {
		_, err := vendor(t, parentChart(t, srv.URL, "1.0.0"), VendorOptions{Repositories: []VendorRepository{{Name: "private", URL: srv.URL,
			Access: Access{Username: repoUser, PasswordEnv: passwordEnv}}}, Update: true})
		wantErr(t, err, "certificate")
	})
	t.Run("archive on another host gets no credentials", func(t *testing.T) {
		other := chartrepo.StartRepo(t, pki, chartrepo.RepoOptions{}, webChart)
		idx := chartrepo.StartRepo(t, pki, chartrepo.RepoOptions{Username: repoUser, Password: repoPassword, ArchiveURL: other.URL + "/%s"}, webChart)
		r := []VendorRepository{{Name: "idx", URL: idx.URL, Access: Access{CAFile: pki.CAFile, Username: repoUser, PasswordEnv: passwordEnv}}}
		d := parentChart(t, idx.URL, "1.0.0")
		// The other host's certificate is signed by the same CA, which only
		// the idx repository trusts: declare it too, without credentials.
		r = append(r, VendorRepository{Name: "other", URL: other.URL, Access: Access{CAFile: pki.CAFile}})
		if _, err := vendor(t, d, VendorOptions{Repositories: r, Update: true}); err != nil {
			t.Fatal(err)
		}
		if len(other.Requests()) == 0 {
			t.Fatal("the archive was not fetched from the other host")
		}
		for _, q := range other.Requests() {
			if q.Auth != "" {
				t.Fatalf("the other host got credentials on %s", q.Path)
			}
		}
	})
	t.Run("archive unlike its index digest refused", func(t *testing.T) {
		// The index lists web 1.0.0 with another archive's digest: the
		// archive was replaced after the index was written (or on its way).
		swapped := webChart
		swapped.ListedDigest = webChart110.Digest()
		idx := chartrepo.StartRepo(t, pki, chartrepo.RepoOptions{}, swapped)
		r := []VendorRepository{{Name: "idx", URL: idx.URL, Access: Access{CAFile: pki.CAFile}}}
		d := parentChart(t, idx.URL, "1.0.0")
		_, err := vendor(t, d, VendorOptions{Repositories: r, Update: true})
		wantErr(t, err, `repository "idx": chart web version 1.0.0: the archive's sha256 is `+strings.TrimPrefix(webChart.Digest(), "sha256:")+` but the repository's index lists `+strings.TrimPrefix(webChart110.Digest(), "sha256:"))
		if got := vendoredVersions(t, d); len(got) != 0 {
			t.Fatalf("a refused archive is in charts/: %v", got)
		}
		// The same repository with a matching index entry vendors.
		idx.SetCharts(webChart)
		if _, err := vendor(t, d, VendorOptions{Repositories: r, Update: true}); err != nil {
			t.Fatal(err)
		}
		if got := vendoredVersions(t, d); len(got) != 1 || got[0] != "web-1.0.0" {
			t.Fatalf("charts/ holds %v, want web-1.0.0", got)
		}
	})
	t.Run("plain http archive refused", func(t *testing.T) {
		idx := chartrepo.StartRepo(t, pki, chartrepo.RepoOptions{ArchiveURL: "http://127.0.0.1:1/%s"}, webChart)
		_, err := vendor(t, parentChart(t, idx.URL, "1.0.0"), VendorOptions{Repositories: []VendorRepository{{Name: "idx", URL: idx.URL, Access: Access{CAFile: pki.CAFile}}}, Update: true})
		wantErr(t, err, "only https is allowed")
	})
}

// TestVendorFromOCIRegistry: a dependency from a real OCI registry
// (distribution, htpasswd auth, TLS) with the repository's credentials.
func TestVendorFromOCIRegistry(t *testing.T) {
	t.Setenv("HELM_CONFIG_HOME", t.TempDir())
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	t.Setenv(passwordEnv, repoPassword)
	pki := chartrepo.NewPKI(t)
	reg := chartrepo.StartRegistry(t, pki, repoUser, repoPassword)
	tlsCfg, err := Access{CAFile: pki.CAFile}.tlsConfig()
	if err != nil {
		t.Fatal(err)
	}
	pusher, err := registry.NewClient(registry.ClientOptBasicAuth(repoUser, repoPassword),
		registry.ClientOptHTTPClient(&http.Client{Transport: &http.Transport{TLSClientConfig: tlsCfg}}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pusher.Push(webChart.Archive, strings.TrimPrefix(reg.Ref("charts/web"), "oci://")+":1.0.0"); err != nil {
		t.Fatalf("push: %v", err)
	}
	repos := []VendorRepository{{Name: "oci", URL: reg.Ref("charts"), Access: Access{CAFile: pki.CAFile, Username: repoUser, PasswordEnv: passwordEnv}}}
	dir := parentChart(t, reg.Ref("charts"), "1.0.0")
	if _, err := vendor(t, dir, VendorOptions{Repositories: repos, Update: true}); err != nil {
		t.Fatal(err)
	}
	if got := vendoredVersions(t, dir); len(got) != 1 || got[0] != "web-1.0.0" {
		t.Fatalf("charts/ holds %v, want web-1.0.0", got)
	}
	if err := os.RemoveAll(filepath.Join(dir, "charts")); err != nil {
		t.Fatal(err)
	}
	if _, err := vendor(t, dir, VendorOptions{Repositories: repos}); err != nil {
		t.Fatal(err)
	}
	if got := vendoredVersions(t, dir); len(got) != 1 || got[0] != "web-1.0.0" {
		t.Fatalf("a build from Chart.lock vendored %v", got)
	}
	anon := []VendorRepository{{Name: "oci", URL: reg.Ref("charts"), Access: Access{CAFile: pki.CAFile}}}
	if _, err := vendor(t, parentChart(t, reg.Ref("charts"), "1.0.0"), VendorOptions{Repositories: anon, Update: true}); err == nil {
		t.Fatal("vendored from an authenticated registry without credentials")
	}
}

// TestVendorRegistryCredentialsStayWithTheirRegistry: an HTTP repository's
// index may list an archive as an oci:// reference, which Helm pulls with
// the dependency manager's one registry client. That client held the
// declared OCI repository's credentials for every host, and Helm's or
// Docker's registry logins for every registry: an index a pull request
// controls could so have the password sent to a registry it runs, or a
// private chart pulled with the user's login into charts/. Credentials go
// only to the declared OCI repository's registry, and to none for an
// oci:// reference that no declared OCI repository covers.
func TestVendorRegistryCredentialsStayWithTheirRegistry(t *testing.T) {
	t.Setenv("HELM_CONFIG_HOME", t.TempDir())
	docker := t.TempDir()
	t.Setenv("DOCKER_CONFIG", docker)
	t.Setenv(passwordEnv, repoPassword)
	pki := chartrepo.NewPKI(t)
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte(repoUser+":"+repoPassword))
	reg := chartrepo.StartRegistry(t, pki, repoUser, repoPassword)
	tlsCfg, err := Access{CAFile: pki.CAFile}.tlsConfig()
	if err != nil {
		t.Fatal(err)
	}
	pusher, err := registry.NewClient(registry.ClientOptBasicAuth(repoUser, repoPassword),
		registry.ClientOptHTTPClient(&http.Client{Transport: &http.Transport{TLSClientConfig: tlsCfg}}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pusher.Push(webChart.Archive, strings.TrimPrefix(reg.Ref("charts/web"), "oci://")+":1.0.0"); err != nil {
		t.Fatalf("push: %v", err)
	}
	twoDeps := func(t *testing.T, deps string) string {
		dir := filepath.Join(t.TempDir(), "app")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "Chart.yaml"), []byte("apiVersion: v2\nname: app\nversion: 0.1.0\ndependencies:\n"+deps), 0o644); err != nil {
			t.Fatal(err)
		}
		return dir
	}

	t.Run("the declared repository's password", func(t *testing.T) {
		// The pull request's registry asks for credentials (a basic
		// challenge), as any registry may.
		evil := chartrepo.StartRegistry(t, pki, "x", "y")
		idx := chartrepo.StartRepo(t, pki, chartrepo.RepoOptions{}, chartrepo.Chart{
			Name: "tool", Version: "1.0.0", Archive: chartrepo.Package("tool", "1.0.0", nil), URL: evil.Ref("charts/tool") + ":1.0.0",
		})
		repos := []VendorRepository{
			{Name: "oci", URL: reg.Ref("charts"), Access: Access{CAFile: pki.CAFile, Username: repoUser, PasswordEnv: passwordEnv}},
			{Name: "pr", URL: idx.URL, Access: Access{CAFile: pki.CAFile}},
		}
		dir := twoDeps(t, "  - name: web\n    version: 1.0.0\n    repository: "+reg.Ref("charts")+"\n  - name: tool\n    version: 1.0.0\n    repository: \"@pr\"\n")
		_, _ = vendor(t, dir, VendorOptions{Repositories: repos, Update: true})
		if len(evil.Requests()) == 0 {
			t.Fatal("the pull request's registry saw no request: the test does not test")
		}
		for _, q := range evil.Requests() {
			if q.Auth == basic {
				t.Fatalf("the pull request's registry got the declared repository's password on %s", q.Path)
			}
		}
	})
	t.Run("a registry login", func(t *testing.T) {
		// The user is logged in to the registry (docker login). The
		// declared OCI repository is on another registry (anonymous, the
		// same CA), so no dependency may use that login.
		pub := chartrepo.StartRegistry(t, pki, "", "")
		anonPusher, err := registry.NewClient(registry.ClientOptHTTPClient(&http.Client{Transport: &http.Transport{TLSClientConfig: tlsCfg}}))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := anonPusher.Push(chartrepo.Package("lib", "1.0.0", nil), strings.TrimPrefix(pub.Ref("charts/lib"), "oci://")+":1.0.0"); err != nil {
			t.Fatalf("push: %v", err)
		}
		cfg := `{"auths":{"` + reg.Host + `":{"auth":"` + base64.StdEncoding.EncodeToString([]byte(repoUser+":"+repoPassword)) + `"}}}`
		if err := os.WriteFile(filepath.Join(docker, "config.json"), []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		idx := chartrepo.StartRepo(t, pki, chartrepo.RepoOptions{}, chartrepo.Chart{
			Name: "web", Version: "1.0.0", Archive: webChart.Archive, URL: reg.Ref("charts/web") + ":1.0.0",
		})
		before := len(reg.Requests())
		repos := []VendorRepository{
			{Name: "pub", URL: pub.Ref("charts"), Access: Access{CAFile: pki.CAFile}},
			{Name: "pr", URL: idx.URL, Access: Access{CAFile: pki.CAFile}},
		}
		dir := twoDeps(t, "  - name: lib\n    version: 1.0.0\n    repository: "+pub.Ref("charts")+"\n  - name: web\n    version: 1.0.0\n    repository: \"@pr\"\n")
		_, err = vendor(t, dir, VendorOptions{Repositories: repos, Update: true})
		reqs := reg.Requests()[before:]
		if len(reqs) == 0 {
			t.Fatal("the registry saw no request: the test does not test")
		}
		for _, q := range reqs {
			if q.Auth == basic {
				t.Fatalf("the registry got the user's login on %s", q.Path)
			}
		}
		if err == nil {
			t.Fatalf("vendored a private chart through an index with the user's registry login: %v", vendoredVersions(t, dir))
		}
		// A pull request adds an OCI repository on the same registry, at
		// a path the reviewed manifest never used: its login is withheld
		// (NoRegistryLogin), but the chart also depends on the reviewed
		// repository there, and the one registry client served both with
		// the login. Such a mix is refused.
		if _, err := pusher.Push(chartrepo.Package("secret", "1.0.0", nil), strings.TrimPrefix(reg.Ref("private/secret"), "oci://")+":1.0.0"); err != nil {
			t.Fatalf("push: %v", err)
		}
		repos = []VendorRepository{
			{Name: "oci", URL: reg.Ref("charts"), Access: Access{CAFile: pki.CAFile}},
			{Name: "added", URL: reg.Ref("private"), Access: Access{CAFile: pki.CAFile, NoRegistryLogin: true}},
		}
		dir = twoDeps(t, "  - name: secret\n    version: 1.0.0\n    repository: "+reg.Ref("private")+"\n  - name: web\n    version: 1.0.0\n    repository: "+reg.Ref("charts")+"\n")
		_, err = vendor(t, dir, VendorOptions{Repositories: repos, Update: true})
		if err == nil || !strings.Contains(err.Error(), `repositories "added" and "oci" on one registry with different access`) {
			t.Fatalf("vendor = %v (charts/ %v); want a refusal naming both repositories", err, vendoredVersions(t, dir))
		}
		// The login still serves a dependency from an OCI repository
		// declared on that registry.
		repos = []VendorRepository{{Name: "oci", URL: reg.Ref("charts"), Access: Access{CAFile: pki.CAFile}}}
		dir = twoDeps(t, "  - name: web\n    version: 1.0.0\n    repository: "+reg.Ref("charts")+"\n")
		if _, err := vendor(t, dir, VendorOptions{Repositories: repos, Update: true}); err != nil {
			t.Fatalf("the registry login did not serve a declared repository: %v", err)
		}
		if got := vendoredVersions(t, dir); len(got) != 1 || got[0] != "web-1.0.0" {
			t.Fatalf("charts/ holds %v, want web-1.0.0", got)
		}
	})
}
