package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/registry"

	"github.com/tandem-gitops/tandem/internal/chartrepo"
)

// TestAttackRegistryLoginPrivateChart: the runner is logged in to a registry
// (Helm's registry config, as `helm registry login` writes it). A pull
// request adds an OCI repository on that registry and a release of a private
// chart the reviewed manifest never used: its plan must not pull the chart
// with the runner's login (the chart's content would be in the PR comment),
// and says why it failed.
func TestAttackRegistryLoginPrivateChart(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("no git")
	}
	const user, password, secret = "robot", "s3cr3t-Registry-Passw0rd", "private-chart-content-7f3a"
	t.Setenv("HELM_CACHE_HOME", t.TempDir())
	t.Setenv("HELM_CONFIG_HOME", t.TempDir())
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	pki := chartrepo.NewPKI(t)
	reg := chartrepo.StartRegistry(t, pki, user, password)
	pem, err := os.ReadFile(pki.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	pusher, err := registry.NewClient(registry.ClientOptBasicAuth(user, password),
		registry.ClientOptHTTPClient(&http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}))
	if err != nil {
		t.Fatal(err)
	}
	archive := chartrepo.Package("secret", "1.0.0", map[string]string{
		"cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: secret\ndata:\n  a: " + secret + "\n",
	})
	if _, err := pusher.Push(archive, reg.Host+"/private/secret:1.0.0"); err != nil {
		t.Fatalf("push: %v", err)
	}
	login := filepath.Join(t.TempDir(), "config.json")
	basic := base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
	writeTestFile(t, login, `{"auths":{"`+reg.Host+`":{"auth":"`+basic+`"}}}`)
	t.Setenv("HELM_REGISTRY_CONFIG", login)

	dir := t.TempDir()
	git := func(args ...string) {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-c", "user.name=t", "-c", "user.email=t@example"}, args...)...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	const clusters = "clusters:\n  - name: blue\n    role: active\n"
	git("init", "-q", "-b", "main")
	writeTestFile(t, filepath.Join(dir, "tandem.yaml"), clusters)
	git("add", "-A")
	git("commit", "-qm", "base")
	writeTestFile(t, filepath.Join(dir, "tandem.yaml"), clusters+`repositories:
  - name: private
    url: oci://`+reg.Host+`/private
    caFile: `+pki.CAFile+`
releases:
  - name: steal
    namespace: steal
    chart: private/secret
    version: 1.0.0
`)
	git("commit", "-qam", "pull request")

	out, errOut, code := runCLI(t, "diff", "--against", "HEAD~1", "--manifest-dir", dir, "-o", "markdown")
	if strings.Contains(out+errOut, secret) {
		t.Fatalf("the plan holds the private chart's content (exit %d):\n%s\n%s", code, out, errOut)
	}
	if code != 1 || !strings.Contains(errOut, "basic credential not found") {
		t.Errorf("diff --against: exit %d, want 1 and the registry's refusal; stderr:\n%s", code, errOut)
	}
	// The same manifest, once reviewed, pulls with the login.
	out, errOut, code = runCLI(t, "render", "--manifest-dir", dir)
	if code != 0 || !strings.Contains(out, secret) {
		t.Errorf("render of the reviewed manifest: exit %d, want the chart; stderr:\n%s", code, errOut)
	}
}
