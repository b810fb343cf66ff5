package e2etest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tandem-gitops/tandem/internal/syncbuf"
)

// Binary builds cmd/tandem once per process into a temporary directory and
// returns its path. Call Cleanup from TestMain to remove it.
type Binary struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// Path builds the binary on first use.
func (b *Binary) Path(t testing.TB) string {
	t.Helper()
	b.once.Do(func() {
		b.dir, b.err = os.MkdirTemp("", "tandem-e2e-bin-")
		if b.err != nil {
			return
		}
		b.path = filepath.Join(b.dir, "tandem")
		cmd := exec.Command("go", "build", "-o", b.path, "./cmd/tandem")
		cmd.Dir = ModuleRoot(t)
		out, err := cmd.CombinedOutput()
		if err != nil {
			b.err = errors.New("go build ./cmd/tandem: " + err.Error() + "\n" + string(out))
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

// Cleanup removes the built binary.
func (b *Binary) Cleanup() {
	if b.dir != "" {
		os.RemoveAll(b.dir)
	}
}

// ModuleRoot is the directory of tandem's go.mod.
func ModuleRoot(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("no caller information")
	}
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Result is one run of the tandem binary.
type Result struct {
	Stdout, Stderr string
	Code           int
}

// Run runs tandem with args and env (KEY=VALUE) added to the environment,
// bounded by timeout. It never fails the test for a non-zero exit: callers
// assert on Code.
func Run(t testing.TB, bin string, timeout time.Duration, env []string, args ...string) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := Result{Stdout: stdout.String(), Stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		res.Code = ee.ExitCode()
	default:
		t.Fatalf("run tandem %s: %v\nstderr:\n%s", strings.Join(args, " "), err, res.Stderr)
	}
	if ctx.Err() != nil {
		t.Fatalf("tandem %s did not finish within %s\nstderr:\n%s", strings.Join(args, " "), timeout, res.Stderr)
	}
	t.Logf("tandem %s → exit %d\nstderr:\n%s\nstdout:\n%s", strings.Join(args, " "), res.Code, res.Stderr, res.Stdout)
	return res
}

// JSON decodes a run's stdout into v.
func (r Result) JSON(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(r.Stdout), v); err != nil {
		t.Fatalf("decode stdout as JSON: %v\n%s", err, r.Stdout)
	}
}

// ManifestRepo is a private copy of examples/manifest in a git repository of
// its own, so tests can edit it and commit.
type ManifestRepo struct {
	Dir string
}

// CopyExample copies examples/manifest into a new git repository and commits it.
func CopyExample(t testing.TB) *ManifestRepo {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "manifest")
	src := filepath.Join(ModuleRoot(t), "examples", "manifest")
	if err := os.CopyFS(dir, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	r := &ManifestRepo{Dir: dir}
	r.git(t, "init", "-q", "-b", "main")
	r.Commit(t, "example manifest")
	return r
}

// Write replaces a file in the repository (relative path) without committing.
func (r *ManifestRepo) Write(t testing.TB, rel, content string) {
	t.Helper()
	p := filepath.Join(r.Dir, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Read returns a file of the repository.
func (r *ManifestRepo) Read(t testing.TB, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(r.Dir, filepath.FromSlash(rel)))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Replace edits a file in place, failing the test if old is not in it.
func (r *ManifestRepo) Replace(t testing.TB, rel, old, new string) {
	t.Helper()
	s := r.Read(t, rel)
	if !strings.Contains(s, old) {
		t.Fatalf("%s does not contain %q", rel, old)
	}
	r.Write(t, rel, strings.Replace(s, old, new, 1))
}

// Commit commits everything and returns the new commit SHA.
func (r *ManifestRepo) Commit(t testing.TB, message string) string {
	t.Helper()
	r.git(t, "add", "-A")
	r.git(t, "-c", "user.name=e2e", "-c", "user.email=e2e@tandem.dev", "commit", "-q", "--allow-empty", "-m", message)
	return strings.TrimSpace(r.git(t, "rev-parse", "HEAD"))
}

func (r *ManifestRepo) git(t testing.TB, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = r.Dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Git runs a git command in the repository and returns its output.
func (r *ManifestRepo) Git(t testing.TB, args ...string) string {
	t.Helper()
	return r.git(t, args...)
}

// SyncBuffer keeps a running process's output, written and read from
// different goroutines.
type SyncBuffer = syncbuf.Buffer
