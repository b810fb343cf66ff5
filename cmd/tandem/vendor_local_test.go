package main

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chart"

	"github.com/tandem-gitops/tandem/internal/chartrepo"
)

// writeTree writes files (path relative to dir → content) under dir.
func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// tgzHolds reports whether a file in the .tgz at p contains needle.
func tgzHolds(t *testing.T, p, needle string) bool {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	for {
		_, err := tr.Next()
		if err == io.EOF {
			return false
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), needle) {
			return true
		}
	}
}

// lockFor is a Chart.lock pinning lock whose digest matches req, computed
// as Helm computes it (resolver.HashReq: sha256 over the JSON of both), so
// that `helm dependency build` accepts it: anyone can write one.
func lockFor(t *testing.T, req, lock []*chart.Dependency) string {
	t.Helper()
	data, err := json.Marshal([2][]*chart.Dependency{req, lock})
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	var b strings.Builder
	b.WriteString("dependencies:\n")
	for _, d := range lock {
		b.WriteString("- name: " + d.Name + "\n  repository: " + d.Repository + "\n  version: " + d.Version + "\n")
	}
	b.WriteString("digest: sha256:" + hex.EncodeToString(sum[:]) + "\ngenerated: \"2026-01-01T00:00:00Z\"\n")
	return b.String()
}

// TestVendorFileDependencyStaysInTheRepository: Helm packs a file://
// dependency into charts/ with its loader, which follows symlinks and takes
// any path. A pull request could so make `tandem vendor` pack a file from
// outside the repository (a credentials file, /proc/self/environ) into an
// archive the user commits. tandem vendor refuses, before anything is
// written, a file:// dependency (declared in Chart.yaml, pinned only in
// Chart.lock, or a dependency's own) that is absolute, climbs out with "..",
// or holds a symlink out of the repository or a .git; the error names the
// release, the chart, the dependency and the path. A file:// dependency
// inside the repository is still vendored.
func TestVendorFileDependencyStaysInTheRepository(t *testing.T) {
	outside := t.TempDir()
	writeTree(t, outside, map[string]string{
		"credentials":              "aws_secret_access_key=TOPSECRET-1234\n",
		"private/Chart.yaml":       "apiVersion: v2\nname: private\nversion: 0.1.0\n",
		"private/templates/s.yaml": "# TOPSECRET-CHART-CONTENT\n",
	})
	const manifest = "clusters:\n  - name: blue\n    role: active\nreleases:\n  - name: good\n    namespace: good\n    chart: ./charts/good\n  - name: app\n    namespace: app\n    chart: ./charts/app\n"
	const cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n"
	appDependsOn := func(name, repo string) string {
		return "apiVersion: v2\nname: app\nversion: 0.1.0\ndependencies:\n  - name: " + name + "\n    version: 0.1.0\n    repository: " + repo + "\n"
	}
	symlink := func(target, link string) func(t *testing.T, dir string) {
		return func(t *testing.T, dir string) {
			if err := os.Symlink(target, filepath.Join(dir, link)); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, tc := range []struct {
		name  string
		files map[string]string
		setup func(t *testing.T, dir string)
		// want are the parts the error must name besides release and chart.
		want []string
		// args run instead of vendor --update.
		args []string
	}{{
		name: "symlink to a file outside",
		files: map[string]string{
			"charts/app/Chart.yaml":  appDependsOn("leak", "file://../leak"),
			"charts/leak/Chart.yaml": "apiVersion: v2\nname: leak\nversion: 0.1.0\n",
		},
		setup: symlink(filepath.Join(outside, "credentials"), "charts/leak/x.txt"),
		want:  []string{"dependency leak (file://../leak)", `"charts/leak/x.txt"`, "outside the manifest repository"},
	}, {
		name: "symlink to the process environment",
		files: map[string]string{
			"charts/app/Chart.yaml":  appDependsOn("leak", "file://../leak"),
			"charts/leak/Chart.yaml": "apiVersion: v2\nname: leak\nversion: 0.1.0\n",
		},
		setup: symlink("/proc/self/environ", "charts/leak/env.txt"),
		want:  []string{"dependency leak (file://../leak)", `"charts/leak/env.txt"`, "outside the manifest repository"},
	}, {
		name:  "absolute path",
		files: map[string]string{"charts/app/Chart.yaml": appDependsOn("private", "file://"+filepath.Join(outside, "private"))},
		want:  []string{"dependency private (file://" + filepath.Join(outside, "private") + ")", "absolute path"},
	}, {
		name: "climbs out with ..",
		setup: func(t *testing.T, dir string) {
			rel, err := filepath.Rel(filepath.Join(dir, "charts/app"), filepath.Join(outside, "private"))
			if err != nil {
				t.Fatal(err)
			}
			writeTree(t, dir, map[string]string{"charts/app/Chart.yaml": appDependsOn("private", "file://"+rel)})
		},
		want: []string{"dependency private (file://../../", "outside the manifest repository (the path climbs out"},
	}, {
		name: "a dependency's own file:// dependency",
		files: map[string]string{
			"charts/app/Chart.yaml":  appDependsOn("mid", "file://../mid"),
			"charts/mid/Chart.yaml":  "apiVersion: v2\nname: mid\nversion: 0.1.0\ndependencies:\n  - name: leak\n    version: 0.1.0\n    repository: file://../leak\n",
			"charts/leak/Chart.yaml": "apiVersion: v2\nname: leak\nversion: 0.1.0\n",
		},
		setup: symlink(filepath.Join(outside, "credentials"), "charts/leak/x.txt"),
		want:  []string{"dependency mid (file://../mid)", "dependency leak (file://../leak)", `"charts/leak/x.txt"`},
	}, {
		name: "a nested git repository",
		files: map[string]string{
			"charts/app/Chart.yaml":       appDependsOn("leak", "file://../leak"),
			"charts/leak/Chart.yaml":      "apiVersion: v2\nname: leak\nversion: 0.1.0\n",
			"charts/leak/.git/config":     "[remote \"origin\"]\n\turl = https://x-access-token:TOPSECRET@example.com/r\n",
			"charts/leak/templates/x.txt": "",
		},
		want: []string{"dependency leak (file://../leak)", `"charts/leak/.git"`},
	}, {
		name: "pinned only in Chart.lock",
		files: map[string]string{
			"charts/app/Chart.yaml":  appDependsOn("lib", "file://../lib"),
			"charts/lib/Chart.yaml":  "apiVersion: v2\nname: lib\nversion: 0.1.0\n",
			"charts/leak/Chart.yaml": "apiVersion: v2\nname: lib\nversion: 0.1.0\n",
		},
		// Without --update Helm builds from the lock (helm dependency build).
		args: []string{"vendor"},
		setup: func(t *testing.T, dir string) {
			symlink(filepath.Join(outside, "credentials"), "charts/leak/x.txt")(t, dir)
			lock := lockFor(t,
				[]*chart.Dependency{{Name: "lib", Version: "0.1.0", Repository: "file://../lib"}},
				[]*chart.Dependency{{Name: "lib", Version: "0.1.0", Repository: "file://../leak"}})
			if err := os.WriteFile(filepath.Join(dir, "charts/app/Chart.lock"), []byte(lock), 0o644); err != nil {
				t.Fatal(err)
			}
		},
		want: []string{"dependency lib (file://../leak)", `"charts/leak/x.txt"`},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeTree(t, dir, map[string]string{
				"tandem.yaml":                   manifest,
				"charts/app/templates/cm.yaml":  cm,
				"charts/good/Chart.yaml":        "apiVersion: v2\nname: good\nversion: 0.1.0\ndependencies:\n  - name: lib\n    version: 0.1.0\n    repository: file://../lib\n",
				"charts/good/templates/cm.yaml": cm,
				"charts/lib/Chart.yaml":         "apiVersion: v2\nname: lib\nversion: 0.1.0\n",
				"charts/lib/templates/cm.yaml":  cm,
			})
			writeTree(t, dir, tc.files)
			if tc.setup != nil {
				tc.setup(t, dir)
			}
			args := tc.args
			if args == nil {
				args = []string{"vendor", "--update"}
			}
			out, errOut, code := runCLI(t, append(args, "--manifest-dir", dir)...)
			t.Logf("vendor: exit %d, stderr:\n%s", code, errOut)
			if code == 0 {
				t.Errorf("vendor: exit 0, want a refusal\nstdout: %s\nstderr: %s", out, errOut)
			}
			for _, want := range append([]string{"release app: chart ./charts/app: "}, tc.want...) {
				if !strings.Contains(errOut, want) {
					t.Errorf("stderr does not name %q:\n%s", want, errOut)
				}
			}
			// Nothing vendored, for the refused release nor for the good one.
			for _, d := range []string{"charts/app/charts", "charts/good/charts"} {
				entries, err := os.ReadDir(filepath.Join(dir, d))
				if err != nil && !errors.Is(err, fs.ErrNotExist) {
					t.Fatal(err)
				}
				for _, e := range entries {
					if strings.HasSuffix(e.Name(), ".tgz") {
						p := filepath.Join(dir, d, e.Name())
						for _, secret := range []string{"TOPSECRET", "PATH="} {
							if tgzHolds(t, p, secret) {
								t.Errorf("%s holds %s from outside the repository", p, secret)
							}
						}
						t.Errorf("%s written although a dependency was refused", p)
					}
				}
			}
		})
	}

	t.Run("inside the repository", func(t *testing.T) {
		dir := t.TempDir()
		writeTree(t, dir, map[string]string{
			"tandem.yaml":                   "clusters:\n  - name: blue\n    role: active\nreleases:\n  - name: good\n    namespace: good\n    chart: ./charts/good\n",
			"charts/good/Chart.yaml":        "apiVersion: v2\nname: good\nversion: 0.1.0\ndependencies:\n  - name: lib\n    version: 0.1.0\n    repository: file://../lib\n",
			"charts/good/templates/cm.yaml": cm,
			"charts/lib/Chart.yaml":         "apiVersion: v2\nname: lib\nversion: 0.1.0\n",
			"charts/lib/templates/cm.yaml":  "# LIB-CONTENT\n",
			"shared/note.txt":               "SHARED-IN-REPO\n",
		})
		// A symlink that stays inside the repository is fine.
		symlink("../../shared/note.txt", "charts/lib/note.txt")(t, dir)
		out, errOut, code := runCLI(t, "vendor", "--update", "--manifest-dir", dir)
		if code != 0 {
			t.Fatalf("vendor: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
		}
		tgz := filepath.Join(dir, "charts/good/charts/lib-0.1.0.tgz")
		if !tgzHolds(t, tgz, "LIB-CONTENT") || !tgzHolds(t, tgz, "SHARED-IN-REPO") {
			t.Errorf("%s does not hold lib's files", tgz)
		}
	})
}

// TestValidateNamesAStaleVendoredDependency: Helm's own check compares
// dependency names only, so charts/web-0.9.0.tgz under a Chart.lock pinning
// web 1.0.0 rendered silently. validate names the dependency, both versions
// and the command that fixes it; an archive at the pinned version passes.
func TestValidateNamesAStaleVendoredDependency(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{
		"tandem.yaml":                  "clusters:\n  - name: blue\n    role: active\nrepositories:\n  - name: charts\n    url: https://charts.example.com\nreleases:\n  - name: app\n    namespace: app\n    chart: ./charts/app\n",
		"charts/app/Chart.yaml":        "apiVersion: v2\nname: app\nversion: 0.1.0\ndependencies:\n  - name: web\n    version: \"^1.0.0\"\n    repository: \"@charts\"\n",
		"charts/app/Chart.lock":        "dependencies:\n- name: web\n  repository: https://charts.example.com\n  version: 1.0.0\ndigest: sha256:0000000000000000000000000000000000000000000000000000000000000000\ngenerated: \"2026-01-01T00:00:00Z\"\n",
		"charts/app/templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\n",
	})
	web := func(version string) {
		t.Helper()
		archives, _ := filepath.Glob(filepath.Join(dir, "charts/app/charts/*.tgz"))
		for _, a := range archives {
			if err := os.Remove(a); err != nil {
				t.Fatal(err)
			}
		}
		p := filepath.Join(dir, "charts/app/charts/web-"+version+".tgz")
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, chartrepo.Package("web", version, map[string]string{
			"cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\n",
		}), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	web("0.9.0")
	out, errOut, code := runCLI(t, "validate", "--manifest-dir", dir)
	t.Logf("validate: exit %d\n%s%s", code, out, errOut)
	if code == 0 {
		t.Errorf("validate: exit 0 with web 0.9.0 vendored and 1.0.0 locked")
	}
	for _, want := range []string{"web is vendored at 0.9.0 but Chart.lock pins 1.0.0", "run tandem vendor"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr does not say %q", want)
		}
	}

	web("1.0.0")
	if out, errOut, code := runCLI(t, "validate", "--manifest-dir", dir); code != 0 {
		t.Errorf("validate with the pinned version: exit %d\n%s%s", code, out, errOut)
	}
}

// TestVendorPacksOnlyTrackedFiles: the working tree of a manifest
// repository holds files git does not track and no pull request shows: a
// .env, decrypted secrets listed in .gitignore. A pull request could name
// them from a file:// dependency, through a symlink inside the repository
// or with a Chart.yaml beside them, and tandem vendor would pack them into
// an archive the user commits. vendor refuses a file:// dependency that
// holds a file git does not track (naming it and saying why), and writes
// nothing; a file the dependency's .helmignore leaves out, which Helm does
// not pack, is no obstacle.
func TestVendorPacksOnlyTrackedFiles(t *testing.T) {
	const manifest = "clusters:\n  - name: blue\n    role: active\nreleases:\n  - name: app\n    namespace: app\n    chart: ./charts/app\n"
	const cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n"
	appDependsOn := func(name, repo string) string {
		return "apiVersion: v2\nname: app\nversion: 0.1.0\ndependencies:\n  - name: " + name + "\n    version: 0.1.0\n    repository: " + repo + "\n"
	}
	for _, tc := range []struct {
		name      string
		committed map[string]string
		symlinks  map[string]string // link → target, committed
		local     map[string]string // written after the commit: not tracked
		want      []string          // in stderr; nil: vendor succeeds
	}{{
		name: "symlink to an ignored file",
		committed: map[string]string{
			"charts/app/Chart.yaml": appDependsOn("lib", "file://../lib"),
			"charts/lib/Chart.yaml": "apiVersion: v2\nname: lib\nversion: 0.1.0\n",
		},
		symlinks: map[string]string{"charts/lib/env.txt": "../../.env"},
		local:    map[string]string{".env": "AWS_SECRET_ACCESS_KEY=TOPSECRET-ENV\n"},
		want:     []string{"dependency lib (file://../lib)", `"charts/lib/env.txt"`, "not tracked by git"},
	}, {
		name: "a chart beside ignored secrets",
		committed: map[string]string{
			"charts/app/Chart.yaml": appDependsOn("secrets", "file://../../secrets"),
			"secrets/Chart.yaml":    "apiVersion: v2\nname: secrets\nversion: 0.1.0\n",
		},
		local: map[string]string{"secrets/db.dec.yaml": "password: TOPSECRET-SOPS\n"},
		want:  []string{"dependency secrets (file://../../secrets)", `"secrets/db.dec.yaml"`, "not tracked by git"},
	}, {
		name: "a dependency that is also a release's chart, checked first as that",
		committed: map[string]string{
			"tandem.yaml":           "clusters:\n  - name: blue\n    role: active\nreleases:\n  - name: secrets\n    namespace: s\n    chart: ./secrets\n  - name: app\n    namespace: app\n    chart: ./charts/app\n",
			"charts/app/Chart.yaml": appDependsOn("secrets", "file://../../secrets"),
			"secrets/Chart.yaml":    "apiVersion: v2\nname: secrets\nversion: 0.1.0\n",
		},
		local: map[string]string{"secrets/db.dec.yaml": "password: TOPSECRET-SOPS\n"},
		want:  []string{"dependency secrets (file://../../secrets)", `"secrets/db.dec.yaml"`, "not tracked by git"},
	}, {
		name: "an untracked file",
		committed: map[string]string{
			"charts/app/Chart.yaml": appDependsOn("lib", "file://../lib"),
			"charts/lib/Chart.yaml": "apiVersion: v2\nname: lib\nversion: 0.1.0\n",
		},
		local: map[string]string{"charts/lib/templates/new.yaml": "# TOPSECRET-NEW\n"},
		want:  []string{"dependency lib (file://../lib)", `"charts/lib/templates/new.yaml"`, "not tracked by git"},
	}, {
		name: "tracked files, a tracked symlink and a helmignored local file",
		committed: map[string]string{
			"charts/app/Chart.yaml":        appDependsOn("lib", "file://../lib"),
			"charts/lib/Chart.yaml":        "apiVersion: v2\nname: lib\nversion: 0.1.0\n",
			"charts/lib/.helmignore":       "*.swp\n",
			"charts/lib/templates/cm.yaml": "# LIB-CONTENT\n",
			"shared/note.txt":              "SHARED-IN-REPO\n",
		},
		symlinks: map[string]string{"charts/lib/note.txt": "../../shared/note.txt"},
		local:    map[string]string{"charts/lib/templates/.cm.yaml.swp": "TOPSECRET-SWAP\n", "charts/lib/x.swp": "TOPSECRET-SWAP\n"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeTree(t, dir, map[string]string{
				"tandem.yaml":                  manifest,
				"charts/app/templates/cm.yaml": cm,
				".gitignore":                   ".env\nsecrets/*.dec.yaml\n",
			})
			writeTree(t, dir, tc.committed)
			for link, target := range tc.symlinks {
				if err := os.Symlink(target, filepath.Join(dir, link)); err != nil {
					t.Fatal(err)
				}
			}
			git := gitIn(t, dir)
			git("init", "-q", "-b", "main")
			git("add", "-A")
			git("commit", "-qm", "pull request")
			writeTree(t, dir, tc.local)

			out, errOut, code := runCLI(t, "vendor", "--update", "--manifest-dir", dir)
			t.Logf("vendor: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
			archives, _ := filepath.Glob(filepath.Join(dir, "charts/app/charts/*.tgz"))
			for _, a := range archives {
				if tgzHolds(t, a, "TOPSECRET") {
					t.Errorf("%s holds a file git does not track", a)
				}
			}
			if tc.want == nil {
				if code != 0 {
					t.Fatalf("vendor: exit %d", code)
				}
				tgz := filepath.Join(dir, "charts/app/charts/lib-0.1.0.tgz")
				if !tgzHolds(t, tgz, "LIB-CONTENT") || !tgzHolds(t, tgz, "SHARED-IN-REPO") {
					t.Errorf("%s does not hold lib's files", tgz)
				}
				return
			}
			if code == 0 {
				t.Errorf("vendor: exit 0, want a refusal")
			}
			for _, want := range append([]string{"release app: chart ./charts/app: "}, tc.want...) {
				if !strings.Contains(errOut, want) {
					t.Errorf("stderr does not name %q", want)
				}
			}
			if len(archives) > 0 {
				t.Errorf("archives written although a dependency was refused: %v", archives)
			}
		})
	}
}

// TestChartLockWithAnEmptyEntry: Helm's loader does not validate
// Chart.lock, and an entry "- null" is a nil dependency. validate (every
// render of the chart: the PR plan, serve) and vendor dereferenced it and
// the process died; they refuse the chart, naming Chart.lock.
func TestChartLockWithAnEmptyEntry(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{
		"tandem.yaml":                  "clusters:\n  - name: blue\n    role: active\nrepositories:\n  - name: charts\n    url: https://charts.example.com\nreleases:\n  - name: app\n    namespace: app\n    chart: ./charts/app\n",
		"charts/app/Chart.yaml":        "apiVersion: v2\nname: app\nversion: 0.1.0\ndependencies:\n  - name: web\n    version: \"^1.0.0\"\n    repository: \"@charts\"\n",
		"charts/app/Chart.lock":        "dependencies:\n- null\n- name: web\n  repository: https://charts.example.com\n  version: 1.0.0\ndigest: sha256:0000000000000000000000000000000000000000000000000000000000000000\ngenerated: \"2026-01-01T00:00:00Z\"\n",
		"charts/app/templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\n",
	})
	p := filepath.Join(dir, "charts/app/charts/web-1.0.0.tgz")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, chartrepo.Package("web", "1.0.0", nil), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"validate"}, {"vendor"}} {
		out, errOut, code := runCLI(t, append(args, "--manifest-dir", dir)...)
		t.Logf("%s: exit %d\n%s%s", args[0], code, out, errOut)
		if code == 0 || !strings.Contains(errOut, "Chart.lock: dependencies: entry 1 is empty") {
			t.Errorf("%s: exit %d; want a refusal naming Chart.lock's empty entry", args[0], code)
		}
	}
}
