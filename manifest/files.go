package manifest

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// notExist reads better in messages than fs.ErrNotExist and still matches it with errors.Is.
type notExist struct{}

func (notExist) Error() string        { return "does not exist" }
func (notExist) Is(target error) bool { return target == fs.ErrNotExist }

// cleanRel checks that rel is a relative path that stays inside the repository and returns it
// cleaned, slash-separated ("." for the root). It does not touch the file system.
func cleanRel(rel string) (string, error) {
	switch {
	case rel == "":
		return "", errors.New("path is empty")
	case strings.ContainsRune(rel, 0):
		return "", errors.New("path contains a NUL byte")
	case path.IsAbs(rel) || filepath.IsAbs(rel) || filepath.VolumeName(rel) != "":
		return "", fmt.Errorf("%w (absolute path; use one relative to the repository root)", ErrOutsideRepo)
	}
	c := path.Clean(filepath.ToSlash(rel))
	if c == ".." || strings.HasPrefix(c, "../") {
		return "", fmt.Errorf("%w (the path climbs out with \"..\")", ErrOutsideRepo)
	}
	return c, nil
}

// within reports whether p is root or below it; both must be absolute and symlink-free.
func within(root, p string) bool {
	rel, err := filepath.Rel(root, p)
	if err != nil || filepath.IsAbs(rel) {
		return false
	}
	return rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// inGitDir reports whether p, at or below root (both absolute and symlink-free), lies in a
// directory or file named .git: git's own data (a checkout's config holds CI credentials) and
// nested repositories are never part of the manifest repository's content.
func inGitDir(root, p string) bool {
	rel, err := filepath.Rel(root, p)
	if err != nil {
		return false
	}
	for _, part := range strings.Split(filepath.ToSlash(rel), "/") {
		if isGitName(part) {
			return true
		}
	}
	return false
}

// isGitName reports whether a path element names git's data. File systems that ignore case
// (macOS, Windows) open .GIT as .git.
func isGitName(name string) bool { return strings.EqualFold(name, ".git") }

// errGitDir says why a path into .git is refused.
var errGitDir = fmt.Errorf("%w (.git is not part of it)", ErrOutsideRepo)

// realRoot is the repository root with symlinks resolved: the yardstick for "inside".
func (m *Manifest) realRoot() (string, error) {
	if m.Dir == "" {
		return "", errors.New("manifest has no repository directory")
	}
	root, err := filepath.EvalSymlinks(m.Dir)
	if err != nil {
		return "", fmt.Errorf("repository root: %w", err)
	}
	return root, nil
}

// resolve returns rel's path under m.Dir and the real path it resolves to, after checking
// that neither "..", an absolute path nor a symlink takes it out of the repository.
func (m *Manifest) resolve(rel string) (abs, real string, err error) {
	c, err := cleanRel(rel)
	if err != nil {
		return "", "", err
	}
	root, err := m.realRoot()
	if err != nil {
		return "", "", err
	}
	abs = filepath.Join(m.Dir, filepath.FromSlash(c))
	real, err = filepath.EvalSymlinks(abs)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", "", notExist{}
		}
		return "", "", err
	}
	if !within(root, real) {
		return "", "", fmt.Errorf("%w (through a symlink)", ErrOutsideRepo)
	}
	if inGitDir(root, real) {
		return "", "", errGitDir
	}
	return abs, real, nil
}

// Path returns the absolute path of rel inside the manifest repository, after checking that it
// exists and that neither "..", an absolute path nor a symlink takes it outside the repository.
// Use it for chart directories; run CheckTree on them before handing them to Helm.
func (m *Manifest) Path(rel string) (string, error) {
	abs, _, err := m.resolve(rel)
	if err != nil {
		return "", fmt.Errorf("%q: %w", rel, err)
	}
	return abs, nil
}

// ReadFile reads a regular file inside the manifest repository under the same rules as Path,
// refusing files over Options.MaxFileBytes.
func (m *Manifest) ReadFile(rel string) ([]byte, error) {
	_, real, err := m.resolve(rel)
	if err != nil {
		return nil, fmt.Errorf("%q: %w", rel, err)
	}
	data, err := readLimited(real, m.Options.withDefaults().MaxFileBytes)
	if err != nil {
		return nil, fmt.Errorf("%q: %w", rel, err)
	}
	return data, nil
}

// readLimited reads a regular file of at most max bytes. It checks the size before and while
// reading, so a file that grows in between cannot slip past the limit.
func readLimited(p string, max int64) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, errors.New("not a regular file")
	}
	if fi.Size() > max {
		return nil, fmt.Errorf("%w: %d bytes, the limit is %d", ErrTooLarge, fi.Size(), max)
	}
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%w: over %d bytes", ErrTooLarge, max)
	}
	return data, nil
}

// CheckTree walks the directory rel (a local chart) and rejects what would make rendering it
// unsafe: a symlink that resolves outside the repository (Helm follows symlinks, so the render
// would read that file) or into .git, a .git entry (a chart at the repository root, a nested
// repository), a file that is neither regular nor a directory, a file over
// Options.MaxChartFileBytes, or a tree over Options.MaxChartBytes or Options.MaxChartFiles.
// Symlinked directories inside the repository are walked too, each real directory once.
func (m *Manifest) CheckTree(rel string) error {
	c, err := cleanRel(rel)
	if err != nil {
		return fmt.Errorf("%q: %w", rel, err)
	}
	_, real, err := m.resolve(c)
	if err != nil {
		return fmt.Errorf("%q: %w", rel, err)
	}
	root, err := m.realRoot()
	if err != nil {
		return err
	}
	fi, err := os.Stat(real)
	if err != nil {
		return fmt.Errorf("%q: %w", rel, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("%q: not a directory", rel)
	}
	opts := m.Options.withDefaults()
	w := treeWalker{root: root, maxFile: opts.MaxChartFileBytes, maxTotal: opts.MaxChartBytes, maxEntries: opts.MaxChartFiles, seen: map[string]bool{}}
	return w.walk(real, c)
}

type treeWalker struct {
	root              string
	maxFile, maxTotal int64
	total             int64
	entries           int
	maxEntries        int
	seen              map[string]bool
}

func (w *treeWalker) walk(dir, display string) error {
	if w.seen[dir] {
		return nil // a symlink back to a directory already walked
	}
	w.seen[dir] = true
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("%q: %w", display, err)
	}
	for _, e := range entries {
		w.entries++
		if w.entries > w.maxEntries {
			return fmt.Errorf("%q: more than %d files and directories", display, w.maxEntries)
		}
		p := filepath.Join(dir, e.Name())
		disp := path.Join(display, e.Name())
		if isGitName(e.Name()) {
			return fmt.Errorf("%q: %w", disp, errGitDir)
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return fmt.Errorf("%q: %w", disp, err)
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			target, err := filepath.EvalSymlinks(p)
			if errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("%q: symlink to a file that %w", disp, notExist{})
			}
			if err != nil {
				return fmt.Errorf("%q: %w", disp, err)
			}
			if !within(w.root, target) {
				return fmt.Errorf("%q: %w (symlink)", disp, ErrOutsideRepo)
			}
			if inGitDir(w.root, target) {
				return fmt.Errorf("%q: symlink %w", disp, errGitDir)
			}
			if fi, err = os.Stat(target); err != nil {
				return fmt.Errorf("%q: %w", disp, err)
			}
			p = target
		}
		switch {
		case fi.IsDir():
			if err := w.walk(p, disp); err != nil {
				return err
			}
		case fi.Mode().IsRegular():
			if fi.Size() > w.maxFile {
				return fmt.Errorf("%q: %w: %d bytes, the limit is %d", disp, ErrTooLarge, fi.Size(), w.maxFile)
			}
			w.total += fi.Size()
			if w.total > w.maxTotal {
				return fmt.Errorf("%q: %w: the chart is over %d bytes", display, ErrTooLarge, w.maxTotal)
			}
		default:
			return fmt.Errorf("%q: not a regular file or directory", disp)
		}
	}
	return nil
}
