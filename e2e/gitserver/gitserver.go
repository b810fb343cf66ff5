package gitserver

import (
	"bytes"
	"crypto/subtle"
	"fmt"
	"io"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
)

// Server is a git smart-HTTP server on 127.0.0.1. Its counters are safe for concurrent use.
type Server struct {
	git      string
	root     string // GIT_PROJECT_ROOT: the bare repositories live here as NAME.git
	home     string // HOME for every git process, so no user configuration leaks in
	user     string
	password string
	srv      *httptest.Server

	requests atomic.Int64
	bytes    atomic.Int64
	// commits numbers the commits PushDir makes; it sets their dates, so that two pushes
	// of the same tree still make different commits.
	commits atomic.Int64
}

// Start runs a server that demands user and password with HTTP basic auth on every request
// (no auth at all when user is empty). t.Cleanup stops it. Without git, Start skips the test.
func Start(t testing.TB, user, password string) *Server {
	t.Helper()
	git, err := exec.LookPath("git")
	if err != nil {
		t.Skipf("gitserver needs the git command: %v", err)
	}
	s := &Server{git: git, root: t.TempDir(), home: t.TempDir(), user: user, password: password}
	backend := &cgi.Handler{
		Path: git,
		Args: []string{"http-backend"},
		Dir:  s.root,
		Env: append(s.baseEnv(),
			"GIT_PROJECT_ROOT="+s.root,
			"GIT_HTTP_EXPORT_ALL=1",
		),
		// http-backend complains on stderr about what it answers with a 404 anyway.
		Stderr: io.Discard,
	}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		if !s.authorized(r) {
			w.Header().Set("WWW-Authenticate", `Basic realm="gitserver"`)
			http.Error(w, "authentication required", http.StatusUnauthorized)
			return
		}
		backend.ServeHTTP(&countingWriter{ResponseWriter: w, n: &s.bytes}, r)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *Server) authorized(r *http.Request) bool {
	if s.user == "" {
		return true
	}
	u, p, ok := r.BasicAuth()
	userOK := subtle.ConstantTimeCompare([]byte(u), []byte(s.user)) == 1
	passOK := subtle.ConstantTimeCompare([]byte(p), []byte(s.password)) == 1
	return ok && userOK && passOK
}

// countingWriter counts the response bytes the server sends.
type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (w *countingWriter) Write(p []byte) (int, error) {
	n, err := w.ResponseWriter.Write(p)
	w.n.Add(int64(n))
	return n, err
}

func (w *countingWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// URL returns the repository's clone URL, http://127.0.0.1:PORT/NAME.git, without credentials.
func (s *Server) URL(repo string) string { return s.srv.URL + "/" + repo + ".git" }

// Requests returns how many HTTP requests the server has answered, refused ones included.
func (s *Server) Requests() int { return int(s.requests.Load()) }

// BytesServed returns how many response body bytes the server has sent.
func (s *Server) BytesServed() int64 { return s.bytes.Load() }

var repoName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*$`)

// dir returns a repository's directory on disk.
func (s *Server) dir(t testing.TB, repo string) string {
	t.Helper()
	if !repoName.MatchString(repo) || strings.Contains(repo, "..") {
		t.Fatalf("gitserver: invalid repository name %q", repo)
	}
	return filepath.Join(s.root, filepath.FromSlash(repo)+".git")
}

// CreateRepo creates an empty bare repository whose default branch is main and that accepts
// pushes over HTTP.
func (s *Server) CreateRepo(t testing.TB, repo string) {
	t.Helper()
	dir := s.dir(t, repo)
	s.run(t, "", nil, "init", "--quiet", "--bare", "--initial-branch=main", dir)
	s.SetConfig(t, repo, "http.receivepack", "true")
}

// SetConfig sets a git configuration value in a repository, e.g.
// uploadpack.allowReachableSHA1InWant to let clients fetch a commit by its hash.
func (s *Server) SetConfig(t testing.TB, repo, key, value string) {
	t.Helper()
	s.run(t, "", nil, "--git-dir="+s.dir(t, repo), "config", key, value)
}

// PushDir commits the contents of dir (symlinks included, .gitignore ignored) as the new tip of
// branch, on top of the branch's current tip if it has one, and returns the commit's SHA. It
// writes to the repository directly, so it does not count as requests.
func (s *Server) PushDir(t testing.TB, repo, branch, dir, message string) string {
	t.Helper()
	dir, err := filepath.Abs(dir)
	if err != nil {
		t.Fatalf("gitserver: %v", err)
	}
	gitDir := "--git-dir=" + s.dir(t, repo)
	index := []string{"GIT_INDEX_FILE=" + filepath.Join(t.TempDir(), "index")}
	s.run(t, dir, index, gitDir, "--work-tree="+dir, "add", "--all", "--force", ".")
	tree := s.run(t, "", index, gitDir, "write-tree")
	args := []string{gitDir, "commit-tree", tree, "-m", message}
	ref := "refs/heads/" + branch
	parent, err := s.output("", nil, gitDir, "rev-parse", "--verify", "--quiet", ref+"^{commit}")
	if err == nil {
		args = append(args, "-p", parent)
	}
	n := s.commits.Add(1)
	date := fmt.Sprintf("%d +0000", 1700000000+n)
	sha := s.run(t, "", []string{"GIT_AUTHOR_DATE=" + date, "GIT_COMMITTER_DATE=" + date}, args...)
	s.run(t, "", nil, gitDir, "update-ref", ref, sha)
	return sha
}

// SetBranch points branch at sha, as a force-push does.
func (s *Server) SetBranch(t testing.TB, repo, branch, sha string) {
	t.Helper()
	s.run(t, "", nil, "--git-dir="+s.dir(t, repo), "update-ref", "refs/heads/"+branch, sha)
}

// Tag points a lightweight tag at sha.
func (s *Server) Tag(t testing.TB, repo, tag, sha string) {
	t.Helper()
	s.run(t, "", nil, "--git-dir="+s.dir(t, repo), "update-ref", "refs/tags/"+tag, sha)
}

// AnnotatedTag creates an annotated tag object for sha, as `git tag -a` does for releases.
func (s *Server) AnnotatedTag(t testing.TB, repo, tag, sha, message string) {
	t.Helper()
	s.run(t, "", nil, "--git-dir="+s.dir(t, repo), "tag", "--annotate", "--message", message, tag, sha)
}

// baseEnv isolates git from the machine's configuration and names the committer.
func (s *Server) baseEnv() []string {
	return []string{
		"HOME=" + s.home,
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL=" + os.DevNull,
		"GIT_AUTHOR_NAME=gitserver",
		"GIT_AUTHOR_EMAIL=gitserver@example.com",
		"GIT_COMMITTER_NAME=gitserver",
		"GIT_COMMITTER_EMAIL=gitserver@example.com",
		"PATH=" + os.Getenv("PATH"),
	}
}

func (s *Server) output(dir string, env []string, args ...string) (string, error) {
	cmd := exec.Command(s.git, args...)
	cmd.Dir = dir
	cmd.Env = append(s.baseEnv(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(stdout.String()), nil
}

func (s *Server) run(t testing.TB, dir string, env []string, args ...string) string {
	t.Helper()
	out, err := s.output(dir, env, args...)
	if err != nil {
		t.Fatalf("gitserver: %v", err)
	}
	return out
}
