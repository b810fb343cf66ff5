package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/tandem-gitops/tandem/internal/chartrepo"
)

// ciSecret stands for the credential a CI checkout leaves in .git/config
// (actions/checkout's persisted http.extraheader, GitLab's job token in the
// remote URL) or in the working tree (a cloud login's credentials file).
const ciSecret = "ghs_TandemTestCredential0123456789"

// attackRepo copies testdata/NAME (symlinks kept) into a fresh git
// repository, commits it, and plants ciSecret where a CI checkout keeps its
// credential: .git/config's extraheader, as actions/checkout writes it.
func attackRepo(t *testing.T, name string) string {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("no git")
	}
	dir := filepath.Join(t.TempDir(), "repo")
	if out, err := exec.Command("cp", "-a", filepath.Join("testdata", name), dir).CombinedOutput(); err != nil {
		t.Fatalf("copy %s: %v\n%s", name, err, out)
	}
	for _, args := range [][]string{
		{"init", "-q", "-b", "main"}, {"add", "-A"},
		{"-c", "user.name=t", "-c", "user.email=t@example", "commit", "-qm", "pull request"},
		{"config", "http.https://github.com/.extraheader", "AUTHORIZATION: basic " + ciSecret},
	} {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	return dir
}

// TestAttackChartReadsGitDir covers issue 11 item 1: a pull request may not
// make a chart, or a values file, read the checkout's .git directory, by a
// symlink inside the repository, a path into .git, or a chart at the
// repository root. No command prints the credential; those that render the
// working tree refuse and name the file.
func TestAttackChartReadsGitDir(t *testing.T) {
	tests := []struct {
		fixture string
		setup   func(t *testing.T, dir string)
		want    string // in the error
	}{
		{fixture: "attack-symlink-git-config", want: `charts/x/files/cfg`},
		{fixture: "attack-root-chart-git-dir", want: `.git`},
		{
			fixture: "attack-git-values",
			setup: func(t *testing.T, dir string) {
				writeTestFile(t, filepath.Join(dir, ".git", "leak.yaml"), "token: "+ciSecret+"\n")
			},
			want: `.git/leak.yaml`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.fixture, func(t *testing.T) {
			dir := attackRepo(t, tc.fixture)
			if tc.setup != nil {
				tc.setup(t, dir)
			}
			for _, args := range [][]string{
				{"render", "--manifest-dir", dir},
				{"validate", "--manifest-dir", dir},
				{"diff", "--against", "HEAD", "--manifest-dir", dir, "-o", "markdown"},
				{"diff", "--against", "HEAD", "--working-tree", "--manifest-dir", dir, "-o", "markdown"},
			} {
				out, errOut, code := runCLI(t, args...)
				if strings.Contains(out+errOut, ciSecret) {
					t.Fatalf("tandem %s printed the CI credential:\n%s\n%s", strings.Join(args[:len(args)-2], " "), out, errOut)
				}
				if args[0] == "diff" && args[3] != "--working-tree" {
					// Rendered from the commit: there is no .git to read, so
					// the render may fail (a dangling symlink) or pass.
					continue
				}
				if code != 1 || !strings.Contains(errOut, tc.want) {
					t.Errorf("tandem %s: exit %d, want 1 and an error naming %q; stderr:\n%s", args[0], code, tc.want, errOut)
				}
			}
		})
	}
}

// TestAttackUntrackedFileNotRendered covers issue 11 item 1: the pull
// request's side of diff --against is the commit, so a file CI wrote into
// the working tree (a cloud login's credentials) is not part of the render;
// --working-tree renders the working tree and says so.
func TestAttackUntrackedFileNotRendered(t *testing.T) {
	dir := attackRepo(t, "attack-untracked-file")
	writeTestFile(t, filepath.Join(dir, "charts", "x", "files", "creds.json"), `{"token":"`+ciSecret+`"}`)

	out, errOut, code := runCLI(t, "diff", "--against", "HEAD", "--manifest-dir", dir, "-o", "markdown")
	if code != 0 {
		t.Fatalf("diff --against: exit %d\n%s", code, errOut)
	}
	if strings.Contains(out+errOut, ciSecret) {
		t.Fatalf("diff --against rendered an untracked file:\n%s\n%s", out, errOut)
	}
	if !strings.Contains(errOut, "uncommitted") {
		t.Errorf("diff --against on a dirty tree does not say the uncommitted files are left out; stderr:\n%s", errOut)
	}

	out, errOut, code = runCLI(t, "diff", "--against", "HEAD", "--working-tree", "--manifest-dir", dir, "-o", "markdown")
	if code != 0 {
		t.Fatalf("diff --against --working-tree: exit %d\n%s", code, errOut)
	}
	if !strings.Contains(out, "working tree") {
		t.Errorf("--working-tree output does not say it rendered the working tree:\n%s", out)
	}
}

func writeTestFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestAttackRedirectRepositoryCredentials covers issue 11 item 3 and issue
// 14 item 5: a pull request that points a reviewed repository, credentials
// and all, at a server of its own gets a plan, but that server never sees
// CI's credentials — only repositories declared alike in the base revision
// get them — and the output says so.
func TestAttackRedirectRepositoryCredentials(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("no git")
	}
	const user, password = "robot", "s3cr3t-Repo-Passw0rd"
	t.Setenv("TANDEM_TEST_REPO_PASSWORD", password)
	t.Setenv("HELM_CACHE_HOME", t.TempDir())
	t.Setenv("HELM_CONFIG_HOME", t.TempDir())
	pki := chartrepo.NewPKI(t)
	chart := chartrepo.Chart{Name: "web", Version: "1.0.0", Archive: chartrepo.Package("web", "1.0.0", map[string]string{
		"cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\ndata:\n  a: b\n",
	})}
	real := chartrepo.StartRepo(t, pki, chartrepo.RepoOptions{Username: user, Password: password}, chart)
	evil := chartrepo.StartRepo(t, pki, chartrepo.RepoOptions{}, chart)

	manifest := func(url string) string {
		return `clusters:
  - name: blue
    role: active
repositories:
  - name: private
    url: ` + url + `
    username: robot
    passwordEnv: TANDEM_TEST_REPO_PASSWORD
    caFile: ` + pki.CAFile + `
releases:
  - name: web
    namespace: web
    chart: private/web
    version: 1.0.0
`
	}
	dir := t.TempDir()
	git := func(args ...string) {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-c", "user.name=t", "-c", "user.email=t@example"}, args...)...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	git("init", "-q", "-b", "main")
	writeTestFile(t, filepath.Join(dir, "tandem.yaml"), manifest(real.URL))
	git("add", "-A")
	git("commit", "-qm", "base")
	writeTestFile(t, filepath.Join(dir, "tandem.yaml"), manifest(evil.URL))
	git("commit", "-qam", "pull request")

	_, errOut, code := runCLI(t, "diff", "--against", "HEAD~1", "--manifest-dir", dir, "-o", "markdown")
	if code != 0 {
		t.Fatalf("diff --against: exit %d\n%s", code, errOut)
	}
	if !strings.Contains(errOut, `repository "private": its credentials are not used`) {
		t.Errorf("stderr does not say the credentials were held back:\n%s", errOut)
	}
	if len(evil.Requests()) == 0 {
		t.Fatal("the pull request's server got no request: the test tested nothing")
	}
	for _, r := range evil.Requests() {
		if r.Auth != "" {
			t.Errorf("the pull request's server got credentials with %s", r.Path)
		}
	}
	authorized := false
	for _, r := range real.Requests() {
		authorized = authorized || r.Auth != ""
	}
	if !authorized {
		t.Error("the base revision's repository got no credentials")
	}
}

// TestAttackTemplateBomb covers issue 11 item 7: a chart whose templates
// expand to gigabytes fails its release with an error naming it, and the
// tandem process stays small: the template runs in a render worker that is
// killed at its memory bound (1 GiB), not in tandem's own heap.
func TestAttackTemplateBomb(t *testing.T) {
	if testing.Short() {
		t.Skip("renders until a worker's memory bound")
	}
	_, errOut, code := runCLI(t, "render", "--manifest-dir", filepath.Join("testdata", "attack-template-bomb"))
	if code != 1 || !strings.Contains(errOut, `release "bomb"`) {
		t.Fatalf("render: exit %d, want 1 and an error naming release \"bomb\"; stderr:\n%s", code, errOut)
	}
	t.Log(errOut)
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	// Linux reports ru_maxrss in KiB. The bomb's string alone is 2 GiB.
	rss := ru.Maxrss << 10
	if rss > 768<<20 {
		t.Errorf("the test process peaked at %d MiB: the template ran in it", rss>>20)
	}
	t.Logf("the test process peaked at %d MiB", rss>>20)
}
