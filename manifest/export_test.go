package manifest_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/tandem-gitops/tandem/manifest"
)

// gitRun runs git in dir with a fixed identity.
func gitRun(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-c", "user.email=t@example.com", "-c", "user.name=t", "-c", "commit.gpgsign=false"}, args...)...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
}

// TestExportRevisionRefusesHugeBlob: a pull request commits a file of zeros that git stores
// in a few KiB. Exporting its commit (the PR side of diff --against) must refuse it from the
// object's header, naming the file, without reading it into memory: go-git reads a blob whole,
// so a 4 GiB one took the plan's process down (600 MiB of zeros peaked at 2.8 GiB).
func TestExportRevisionRefusesHugeBlob(t *testing.T) {
	repo := repoFiles(t, map[string]string{
		"tandem.yaml":         "clusters: []\n",
		"charts/x/Chart.yaml": "apiVersion: v2\nname: x\nversion: 0.1.0\n",
		"charts/x/link":       "->Chart.yaml",
	})
	f, err := os.Create(filepath.Join(repo, "docs", "zeros.bin"))
	if errors.Is(err, os.ErrNotExist) {
		if err = os.MkdirAll(filepath.Join(repo, "docs"), 0o755); err == nil {
			f, err = os.Create(filepath.Join(repo, "docs", "zeros.bin"))
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	const size = 48 << 20
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	_ = f.Close()
	gitRun(t, repo, "init", "-q")
	gitRun(t, repo, "add", "-A")
	gitRun(t, repo, "commit", "-q", "-m", "zeros")

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err = manifest.ExportRevision(repo, "HEAD", filepath.Join(t.TempDir(), "out"))
	runtime.ReadMemStats(&after)
	if err == nil || !errors.Is(err, manifest.ErrTooLarge) || !strings.Contains(err.Error(), "docs/zeros.bin") {
		t.Fatalf("ExportRevision = %v, want ErrTooLarge naming docs/zeros.bin", err)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 16<<20 {
		t.Errorf("the export allocated %d MiB: it read the %d MiB blob", grew>>20, size>>20)
	}

	// Without the file, the same tree exports: files, symlinks, nothing else.
	gitRun(t, repo, "rm", "-q", "docs/zeros.bin")
	gitRun(t, repo, "commit", "-q", "-m", "no zeros")
	out := filepath.Join(t.TempDir(), "out")
	if _, err := manifest.ExportRevision(repo, "HEAD", out); err != nil {
		t.Fatalf("ExportRevision: %v", err)
	}
	got := readTree(t, out)
	want := map[string]string{
		"tandem.yaml":         "clusters: []\n",
		"charts/x/Chart.yaml": "apiVersion: v2\nname: x\nversion: 0.1.0\n",
		"charts/x/link":       "->Chart.yaml",
	}
	if len(got) != len(want) {
		t.Errorf("exported %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
}
