package manifest

import (
	"errors"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestPathAndReadFile(t *testing.T) {
	dir := t.TempDir()
	outside := t.TempDir()
	writeFile(t, filepath.Join(dir, "values", "a.yaml"), "a: 1\n")
	writeFile(t, filepath.Join(dir, "values", "big.yaml"), strings.Repeat("x", 101))
	writeFile(t, filepath.Join(outside, "secret"), "s3cr3t\n")
	symlink(t, "a.yaml", filepath.Join(dir, "values", "link.yaml"))
	symlink(t, filepath.Join(outside, "secret"), filepath.Join(dir, "values", "leak.yaml"))
	symlink(t, outside, filepath.Join(dir, "ext"))
	// The repository root itself may be reached through a symlink.
	linkedRoot := filepath.Join(t.TempDir(), "repo")
	symlink(t, dir, linkedRoot)

	tests := []struct {
		name     string
		root     string
		rel      string
		wantData string
		wantErr  error  // checked with errors.Is
		wantMsg  string // the whole error message
	}{
		{name: "plain file", root: dir, rel: "values/a.yaml", wantData: "a: 1\n"},
		{name: "dot slash", root: dir, rel: "./values/a.yaml", wantData: "a: 1\n"},
		{name: "inner dot dot", root: dir, rel: "values/../values/a.yaml", wantData: "a: 1\n"},
		{name: "symlink inside", root: dir, rel: "values/link.yaml", wantData: "a: 1\n"},
		{name: "root through a symlink", root: linkedRoot, rel: "values/a.yaml", wantData: "a: 1\n"},
		{
			name: "dot dot escape", root: dir, rel: "../etc/passwd", wantErr: ErrOutsideRepo,
			wantMsg: `"../etc/passwd": outside the manifest repository (the path climbs out with "..")`,
		},
		{
			name: "absolute", root: dir, rel: "/etc/passwd", wantErr: ErrOutsideRepo,
			wantMsg: `"/etc/passwd": outside the manifest repository (absolute path; use one relative to the repository root)`,
		},
		{
			name: "symlinked file outside", root: dir, rel: "values/leak.yaml", wantErr: ErrOutsideRepo,
			wantMsg: `"values/leak.yaml": outside the manifest repository (through a symlink)`,
		},
		{
			name: "symlinked directory outside", root: dir, rel: "ext/secret", wantErr: ErrOutsideRepo,
			wantMsg: `"ext/secret": outside the manifest repository (through a symlink)`,
		},
		{
			name: "missing", root: dir, rel: "values/nope.yaml", wantErr: fs.ErrNotExist,
			wantMsg: `"values/nope.yaml": does not exist`,
		},
		{
			name: "too large", root: dir, rel: "values/big.yaml", wantErr: ErrTooLarge,
			wantMsg: `"values/big.yaml": file is too large: 101 bytes, the limit is 100`,
		},
		{name: "directory", root: dir, rel: "values", wantMsg: `"values": not a regular file`},
		{name: "empty", root: dir, rel: "", wantMsg: `"": path is empty`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &Manifest{Dir: tt.root, Options: LoadOptions{MaxFileBytes: 100}}
			data, err := m.ReadFile(tt.rel)
			if tt.wantMsg == "" {
				if err != nil {
					t.Fatalf("ReadFile: %v", err)
				}
				if diff := cmp.Diff(tt.wantData, string(data)); diff != "" {
					t.Errorf("content mismatch (-want +got):\n%s", diff)
				}
				p, err := m.Path(tt.rel)
				if err != nil {
					t.Fatalf("Path: %v", err)
				}
				if want := filepath.Join(tt.root, filepath.Clean(tt.rel)); p != want {
					t.Errorf("Path = %q, want %q", p, want)
				}
				return
			}
			if err == nil {
				t.Fatalf("ReadFile succeeded, want %q", tt.wantMsg)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("error %v is not %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.wantMsg, err.Error()); diff != "" {
				t.Errorf("message mismatch (-want +got):\n%s", diff)
			}
			if strings.Contains(err.Error(), "s3cr3t") {
				t.Errorf("error leaks file content: %v", err)
			}
		})
	}
}

func TestPathRejectsEscapes(t *testing.T) {
	dir := t.TempDir()
	symlink(t, t.TempDir(), filepath.Join(dir, "out"))
	m := &Manifest{Dir: dir}
	for _, rel := range []string{"..", "../x", "a/../../x", "/", "out", "out/x"} {
		if p, err := m.Path(rel); err == nil {
			t.Errorf("Path(%q) = %q, want an error", rel, p)
		}
	}
	if p, err := m.Path("."); err != nil || p != dir {
		t.Errorf("Path(\".\") = %q, %v; want the root", p, err)
	}
}

func TestCheckTree(t *testing.T) {
	outside := t.TempDir()
	writeFile(t, filepath.Join(outside, "secret"), "s\n")
	tests := []struct {
		name    string
		setup   func(t *testing.T, dir string)
		wantMsg string // "" for success
	}{
		{name: "plain chart"},
		{
			name: "symlink to a sibling chart inside the repository",
			setup: func(t *testing.T, dir string) {
				symlink(t, "../../other", filepath.Join(dir, "charts", "web", "other"))
			},
		},
		{
			name: "symlinked file outside",
			setup: func(t *testing.T, dir string) {
				symlink(t, filepath.Join(outside, "secret"), filepath.Join(dir, "charts", "web", "secret"))
			},
			wantMsg: `"charts/web/secret": outside the manifest repository (symlink)`,
		},
		{
			name: "symlinked directory outside",
			setup: func(t *testing.T, dir string) {
				symlink(t, outside, filepath.Join(dir, "charts", "web", "templates", "ext"))
			},
			wantMsg: `"charts/web/templates/ext": outside the manifest repository (symlink)`,
		},
		{
			name: "escape found through a symlinked directory inside the repository",
			setup: func(t *testing.T, dir string) {
				symlink(t, filepath.Join(outside, "secret"), filepath.Join(dir, "other", "leak"))
				symlink(t, "../../other", filepath.Join(dir, "charts", "web", "other"))
			},
			wantMsg: `"charts/web/other/leak": outside the manifest repository (symlink)`,
		},
		{
			name: "file too large",
			setup: func(t *testing.T, dir string) {
				writeFile(t, filepath.Join(dir, "charts", "web", "big"), strings.Repeat("x", 65))
			},
			wantMsg: `"charts/web/big": file is too large: 65 bytes, the limit is 64`,
		},
		{
			name: "named pipe",
			setup: func(t *testing.T, dir string) {
				if err := mkfifo(filepath.Join(dir, "charts", "web", "pipe")); err != nil {
					t.Skipf("no named pipes here: %v", err)
				}
			},
			wantMsg: `"charts/web/pipe": not a regular file or directory`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, filepath.Join(dir, "charts", "web", "Chart.yaml"), "name: web\n")
			writeFile(t, filepath.Join(dir, "other", "Chart.yaml"), "name: other\n")
			if tt.setup != nil {
				tt.setup(t, dir)
			}
			m := &Manifest{Dir: dir, Options: LoadOptions{MaxChartFileBytes: 64}}
			err := m.CheckTree("charts/web")
			if tt.wantMsg == "" {
				if err != nil {
					t.Fatalf("CheckTree: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("CheckTree succeeded, want %q", tt.wantMsg)
			}
			if diff := cmp.Diff(tt.wantMsg, err.Error()); diff != "" {
				t.Errorf("message mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCheckTreeEntryLimit(t *testing.T) {
	dir := t.TempDir()
	for i := range 10 {
		writeFile(t, filepath.Join(dir, "chart", "templates", "f"+strconv.Itoa(i)), "")
	}
	m := &Manifest{Dir: dir, Options: LoadOptions{MaxChartFiles: 11}}
	if err := m.CheckTree("chart"); err != nil {
		t.Fatalf("11 entries with a limit of 11: %v", err)
	}
	m.Options.MaxChartFiles = 10
	err := m.CheckTree("chart")
	if err == nil || err.Error() != `"chart/templates": more than 10 files and directories` {
		t.Fatalf("want the entry limit, got %v", err)
	}
}
