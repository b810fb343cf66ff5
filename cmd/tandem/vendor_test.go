package main

import (
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
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
	writeTree(t, dir, files)
	// A clone of a repository whose default branch holds this tandem.yaml:
	// its repository is reviewed and gets its credentials.
	git := gitIn(t, dir)
	git("init", "-q", "-b", "main")
	git("add", "-A")
	git("commit", "-qm", "base")
	git("update-ref", "refs/remotes/origin/main", "HEAD")
	git("symbolic-ref", "refs/remotes/origin/HEAD", "refs/remotes/origin/main")
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

// gitIn returns a function running git in dir that fails t on error and
// returns git's trimmed output.
func gitIn(t *testing.T, dir string) func(args ...string) string {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("no git")
	}
	return func(args ...string) string {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-c", "user.name=t", "-c", "user.email=t@example"}, args...)...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
}

// TestVendorSendsNoCredentialsAPullRequestNamed: a pull request adds a
// repository on a host it controls, with passwordEnv naming a variable of
// the person who runs tandem vendor on its checkout (and a dependency from
// it). tandem vendor sends that repository no Authorization header, and says
// so, while the repository the reviewed revision declares still
// authenticates; the default reviewed revision is origin/HEAD, --against
// names another (HEAD: the user vouches for the change), and without one no
// repository gets credentials.
func TestVendorSendsNoCredentialsAPullRequestNamed(t *testing.T) {
	const password = "vendor-Passw0rd-s3cret"
	const stolen = "ghp_STOLEN-token-0123456789"
	t.Setenv("TANDEM_TEST_VENDOR_PASSWORD", password)
	t.Setenv("TANDEM_TEST_VENDOR_CI_TOKEN", stolen)
	pki := chartrepo.NewPKI(t)
	pkg := func(name string) chartrepo.Chart {
		return chartrepo.Chart{Name: name, Version: "1.0.0", Archive: chartrepo.Package(name, "1.0.0", map[string]string{
			"cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: " + name + "\n",
		})}
	}
	const repos = `clusters:
  - name: blue
    role: active
releases:
  - name: app
    namespace: app
    chart: ./charts/app
repositories:
  - name: private
    url: %s
    username: robot
    passwordEnv: TANDEM_TEST_VENDOR_PASSWORD
    caFile: %s
`
	const added = `  - name: foreign
    url: %s
    username: robot
    passwordEnv: TANDEM_TEST_VENDOR_CI_TOKEN
    caFile: %s
`
	const appChart = "apiVersion: v2\nname: app\nversion: 0.1.0\ndependencies:\n  - name: web\n    version: \"^1.0.0\"\n    repository: \"@private\"\n"
	const toolDep = "  - name: tool\n    version: \"^1.0.0\"\n    repository: \"@foreign\"\n"

	for _, tc := range []struct {
		name string
		// remote gives the clone an origin/HEAD at the reviewed commit.
		remote bool
		args   []string
		// foreignAuth: the added repository gets credentials.
		foreignAuth bool
		// fails: the private repository gets none, so vendor fails.
		fails bool
		notes []string
		// after are git commands run once the pull request is committed.
		after [][]string
		// worktree runs vendor in a linked work tree (git worktree add).
		worktree bool
		// refused: vendor stops with this error before fetching anything.
		refused string
	}{
		{name: "default origin/HEAD", remote: true, notes: []string{`repository "foreign": its credentials are not used: it is new or changed since origin/HEAD`}},
		{name: "--against the reviewed commit", args: []string{"--against", "main~1"}, notes: []string{`repository "foreign": its credentials are not used: it is new or changed since main~1`}},
		{name: "--against HEAD vouches for the change", args: []string{"--against", "HEAD"}, foreignAuth: true},
		// A tag or branch may be named origin/HEAD: a tag comes with `git
		// fetch` of a fork's remote, a branch with `gh pr checkout` of a
		// pull request so named. Git and go-git take either before
		// refs/remotes/origin/HEAD.
		{name: "a tag named origin/HEAD", remote: true, after: [][]string{{"tag", "origin/HEAD", "HEAD"}}, notes: []string{`repository "foreign": its credentials are not used: it is new or changed since origin/HEAD`}},
		{name: "a branch named origin/HEAD", remote: true, after: [][]string{{"branch", "origin/HEAD", "HEAD"}}, notes: []string{`repository "foreign": its credentials are not used: it is new or changed since origin/HEAD`}},
		{name: "--against a name a tag shadows", remote: true, after: [][]string{{"tag", "origin/main", "HEAD"}}, args: []string{"--against", "origin/main"}, refused: `"origin/main" is ambiguous`},
		{name: "in a linked work tree", remote: true, worktree: true, notes: []string{`repository "foreign": its credentials are not used: it is new or changed since origin/HEAD`}},
		{name: "no reviewed revision", fails: true, notes: []string{`repository "private": its credentials are not used: there is no reviewed revision`, `repository "foreign": its credentials are not used`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			private := chartrepo.StartRepo(t, pki, chartrepo.RepoOptions{Username: "robot", Password: password}, pkg("web"))
			foreign := chartrepo.StartRepo(t, pki, chartrepo.RepoOptions{}, pkg("tool"))
			dir := t.TempDir()
			writeTree(t, dir, map[string]string{
				"tandem.yaml":                  fmt.Sprintf(repos, private.URL, pki.CAFile),
				"charts/app/Chart.yaml":        appChart,
				"charts/app/templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\n",
			})
			git := gitIn(t, dir)
			git("init", "-q", "-b", "main")
			git("add", "-A")
			git("commit", "-qm", "reviewed")
			if tc.remote {
				git("update-ref", "refs/remotes/origin/main", "HEAD")
				git("symbolic-ref", "refs/remotes/origin/HEAD", "refs/remotes/origin/main")
			}
			// The pull request.
			writeTree(t, dir, map[string]string{
				"tandem.yaml":           fmt.Sprintf(repos+added, private.URL, pki.CAFile, foreign.URL, pki.CAFile),
				"charts/app/Chart.yaml": appChart + toolDep,
			})
			git("commit", "-qam", "pull request")
			for _, a := range tc.after {
				git(a...)
			}
			if tc.worktree {
				wt := filepath.Join(t.TempDir(), "wt")
				git("worktree", "add", "-q", "--detach", wt, "HEAD")
				dir = wt
			}

			out, errOut, code := runCLI(t, append([]string{"vendor", "--update", "--manifest-dir", dir}, tc.args...)...)
			t.Logf("vendor: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
			for _, o := range []string{out, errOut} {
				if strings.Contains(o, stolen) || strings.Contains(o, password) {
					t.Errorf("output holds a secret: %s", o)
				}
			}
			for _, n := range tc.notes {
				if !strings.Contains(errOut, "note: "+n) {
					t.Errorf("stderr lacks the note %q", n)
				}
			}
			var foreignAuths []string
			for _, r := range foreign.Requests() {
				foreignAuths = append(foreignAuths, r.Auth)
			}
			if tc.refused != "" {
				if code == 0 || !strings.Contains(errOut, tc.refused) {
					t.Errorf("vendor: exit %d; want a refusal saying %q", code, tc.refused)
				}
				if n := len(foreignAuths) + len(private.Requests()); n > 0 {
					t.Errorf("vendor refused yet sent %d requests", n)
				}
				return
			}
			wantStolen := "Basic " + base64.StdEncoding.EncodeToString([]byte("robot:"+stolen))
			if got := slices.Contains(foreignAuths, wantStolen); got != tc.foreignAuth {
				t.Errorf("the added repository got the credentials: %v, want %v (Authorization headers: %q)", got, tc.foreignAuth, foreignAuths)
			}
			if !tc.foreignAuth {
				for _, a := range foreignAuths {
					if a != "" {
						t.Errorf("the added repository got an Authorization header: %q", a)
					}
				}
			}
			if len(foreignAuths) == 0 && !tc.fails {
				t.Errorf("the added repository saw no request")
			}
			if tc.fails {
				if code == 0 {
					t.Errorf("vendor: exit 0; want a failure: the private repository gets no credentials")
				}
				// The last line, where the eye goes, says why the 401.
				if !strings.Contains(errOut, "(fetched without credentials, as the notes above say: private, foreign)") {
					t.Errorf("the error does not say which repositories were fetched without credentials")
				}
				for _, r := range private.Requests() {
					if r.Auth != "" {
						t.Errorf("the private repository got credentials without a reviewed revision: %q", r.Auth)
					}
				}
				return
			}
			if code != 0 {
				t.Fatalf("vendor: exit %d", code)
			}
			wantPrivate := "Basic " + base64.StdEncoding.EncodeToString([]byte("robot:"+password))
			if !slices.ContainsFunc(private.Requests(), func(r chartrepo.Request) bool { return r.Auth == wantPrivate }) {
				t.Errorf("the reviewed repository was not sent its credentials")
			}
			for _, f := range []string{"charts/app/charts/web-1.0.0.tgz", "charts/app/charts/tool-1.0.0.tgz"} {
				if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
					t.Errorf("not vendored: %v", err)
				}
			}
		})
	}
}
