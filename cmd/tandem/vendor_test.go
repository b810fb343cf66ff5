package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tandem-gitops/tandem/internal/chartrepo"
)

// TestVendorCommand: validate names a dependency that is not vendored and
// says tandem vendor fetches it; tandem vendor --update fetches it from the
// manifest's repository (HTTPS, its CA, basic auth from an environment
// variable) and the manifest then validates; a second vendor builds from the
// Chart.lock it wrote; the password appears in no output.
func TestVendorCommand(t *testing.T) {
	const password = "vendor-Passw0rd-s3cret"
	t.Setenv("TANDEM_TEST_VENDOR_PASSWORD", password)
	pki := chartrepo.NewPKI(t)
	web := chartrepo.Chart{Name: "web", Version: "1.0.0", Archive: chartrepo.Package("web", "1.0.0", map[string]string{
		"cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\n",
	})}
	srv := chartrepo.StartRepo(t, pki, chartrepo.RepoOptions{Username: "robot", Password: password}, web)

	dir := t.TempDir()
	files := map[string]string{
		"tandem.yaml": `clusters:
  - name: blue
    role: active
repositories:
  - name: private
    url: ` + srv.URL + `
    username: robot
    passwordEnv: TANDEM_TEST_VENDOR_PASSWORD
    caFile: ` + pki.CAFile + `
releases:
  - name: app
    namespace: app
    chart: ./charts/app
`,
		"charts/app/Chart.yaml":        "apiVersion: v2\nname: app\nversion: 0.1.0\ndependencies:\n  - name: web\n    version: \"^1.0.0\"\n    repository: \"@private\"\n",
		"charts/app/templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\n",
	}
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	noPassword := func(outs ...string) {
		t.Helper()
		for _, o := range outs {
			if strings.Contains(o, password) {
				t.Fatalf("output holds the password: %s", o)
			}
		}
	}

	out, errOut, code := runCLI(t, "validate", "--manifest-dir", dir)
	if code == 0 || !strings.Contains(errOut, "web") || !strings.Contains(errOut, "run tandem vendor") {
		t.Fatalf("validate before vendor: exit %d, stderr %q; want a failure naming web and tandem vendor", code, errOut)
	}
	out, errOut, code = runCLI(t, "vendor", "--manifest-dir", dir)
	noPassword(out, errOut)
	if code == 0 || !strings.Contains(errOut, "no Chart.lock") {
		t.Fatalf("vendor without a lock: exit %d, stderr %q; want a refusal", code, errOut)
	}
	out, errOut, code = runCLI(t, "vendor", "--update", "--manifest-dir", dir)
	noPassword(out, errOut)
	if code != 0 || !strings.Contains(out, "vendored: charts/app") {
		t.Fatalf("vendor --update: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if _, err := os.Stat(filepath.Join(dir, "charts/app/charts/web-1.0.0.tgz")); err != nil {
		t.Fatalf("web not vendored: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "charts/app/Chart.lock")); err != nil {
		t.Fatalf("no Chart.lock written: %v", err)
	}
	out, errOut, code = runCLI(t, "validate", "--manifest-dir", dir)
	if code != 0 {
		t.Fatalf("validate after vendor: exit %d, %s %s", code, out, errOut)
	}
	if err := os.RemoveAll(filepath.Join(dir, "charts/app/charts")); err != nil {
		t.Fatal(err)
	}
	out, errOut, code = runCLI(t, "vendor", "--manifest-dir", dir)
	noPassword(out, errOut)
	if code != 0 {
		t.Fatalf("vendor from Chart.lock: exit %d, %s %s", code, out, errOut)
	}
}
