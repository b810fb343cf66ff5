package manifest

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
)

// maxSymlinkTarget bounds a symlink blob; real targets are short paths.
const maxSymlinkTarget = 4096

// exportLimits bound what writeTree writes. A commit comes from a pull request as often as
// from a reviewed branch, and git stores a file of zeros in a few KiB however large it is:
// go-git reads a blob whole into memory, so an unbounded one would take the process down
// (and fill the disk) before any of Load's limits is reached.
type exportLimits struct {
	// maxFile bounds one file; tandem itself reads none over MaxChartFileBytes (5 MiB).
	maxFile int64
	// maxTotal bounds the files together, maxEntries the files and directories.
	maxTotal   int64
	maxEntries int
	// maxTree bounds one directory's git tree object (about 40 bytes an entry).
	maxTree int64
}

func defaultExportLimits() exportLimits {
	return exportLimits{maxFile: 32 << 20, maxTotal: 512 << 20, maxEntries: 100000, maxTree: 8 << 20}
}

// writeCommit writes a commit's files into the empty directory dst, as writeTree does.
func writeCommit(s storer.EncodedObjectStorer, c *object.Commit, dst string) error {
	tree, err := c.Tree()
	if err != nil {
		return err
	}
	return writeTree(s, tree, dst, defaultExportLimits())
}

// writeTree writes a git tree's files into the empty directory dst: regular and executable
// files read-only, symlinks as symlinks, submodules left out. A path with "..", ".git" or an
// empty part is refused, and nothing is ever written through a symlink: a crafted tree that
// holds both a symlink "a" and a file "a/b" fails instead of writing outside dst. Each
// object's size is read from its header before the object is, and a file, a directory or the
// whole tree past lim is refused, naming the path.
func writeTree(s storer.EncodedObjectStorer, tree *object.Tree, dst string, lim exportLimits) error {
	w := treeWriter{s: s, lim: lim, made: map[string]bool{".": true}}
	w.sizer, _ = s.(objectSizer)
	return w.write(tree, "", dst)
}

// objectSizer reads an object's size from its header (go-git's filesystem storage does).
type objectSizer interface {
	EncodedObjectSize(plumbing.Hash) (int64, error)
}

type treeWriter struct {
	s       storer.EncodedObjectStorer
	sizer   objectSizer // nil: objects are sized once read (in-memory storage)
	lim     exportLimits
	made    map[string]bool
	total   int64
	entries int
}

// size returns the size of object h without reading it, when the storage can.
func (w *treeWriter) size(h plumbing.Hash) (int64, bool, error) {
	if w.sizer == nil {
		return 0, false, nil
	}
	n, err := w.sizer.EncodedObjectSize(h)
	return n, err == nil, err
}

func (w *treeWriter) write(tree *object.Tree, prefix, dst string) error {
	for _, e := range tree.Entries {
		name := path.Join(prefix, e.Name)
		if prefix == "" {
			name = e.Name
		}
		if err := checkTreePath(name); err != nil {
			return err
		}
		if w.entries++; w.entries > w.lim.maxEntries {
			return fmt.Errorf("the tree holds more than %d files and directories", w.lim.maxEntries)
		}
		switch e.Mode {
		case filemode.Dir:
			n, known, err := w.size(e.Hash)
			if err != nil {
				return fmt.Errorf("%q: %w", name, err)
			}
			if known && n > w.lim.maxTree {
				return fmt.Errorf("%q: a directory of %d bytes of git tree, the limit is %d", name, n, w.lim.maxTree)
			}
			sub, err := object.GetTree(w.s, e.Hash)
			if err != nil {
				return fmt.Errorf("%q: %w", name, err)
			}
			if err := w.write(sub, name, dst); err != nil {
				return err
			}
		case filemode.Symlink, filemode.Executable, filemode.Regular, filemode.Deprecated:
			if err := w.file(name, e, dst); err != nil {
				return err
			}
		}
	}
	return nil
}

func (w *treeWriter) file(name string, e object.TreeEntry, dst string) error {
	check := func(n int64) error {
		if e.Mode == filemode.Symlink {
			if n > maxSymlinkTarget {
				return fmt.Errorf("%q: symlink target over %d bytes", name, maxSymlinkTarget)
			}
			return nil
		}
		if n > w.lim.maxFile {
			return fmt.Errorf("%q: %w: %d bytes, the limit for a file of the manifest repository is %d MiB", name, ErrTooLarge, n, w.lim.maxFile>>20)
		}
		return nil
	}
	n, known, err := w.size(e.Hash)
	if err != nil {
		return fmt.Errorf("%q: %w", name, err)
	}
	if known {
		if err := check(n); err != nil {
			return err
		}
	}
	blob, err := object.GetBlob(w.s, e.Hash)
	if err != nil {
		return fmt.Errorf("%q: %w", name, err)
	}
	if err := check(blob.Size); err != nil {
		return err
	}
	if w.total += blob.Size; w.total > w.lim.maxTotal {
		return fmt.Errorf("%q: %w: the files add up to more than %d MiB", name, ErrTooLarge, w.lim.maxTotal>>20)
	}
	if err := mkdirs(dst, path.Dir(name), w.made); err != nil {
		return err
	}
	target := filepath.Join(dst, filepath.FromSlash(name))
	switch e.Mode {
	case filemode.Symlink:
		f := object.NewFile(name, e.Mode, blob)
		link, err := f.Contents()
		if err != nil {
			return fmt.Errorf("%q: %w", name, err)
		}
		return os.Symlink(link, target)
	case filemode.Executable:
		return writeBlob(name, blob, target, 0o555)
	default:
		return writeBlob(name, blob, target, 0o444)
	}
}

func writeBlob(name string, b *object.Blob, target string, perm os.FileMode) error {
	r, err := b.Reader()
	if err != nil {
		return fmt.Errorf("%q: %w", name, err)
	}
	defer r.Close()
	// O_EXCL also refuses to follow a symlink already at target.
	out, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, r); err != nil {
		_ = out.Close()
		return fmt.Errorf("%q: %w", name, err)
	}
	return out.Close()
}

func checkTreePath(name string) error {
	if name == "" || strings.HasPrefix(name, "/") || strings.ContainsRune(name, 0) {
		return fmt.Errorf("tree holds an invalid path %q", name)
	}
	for _, part := range strings.Split(name, "/") {
		if part == "" || part == "." || part == ".." || strings.EqualFold(part, ".git") {
			return fmt.Errorf("tree holds an unsafe path %q", name)
		}
	}
	return nil
}

// mkdirs creates dir (slash-separated, relative to root) one part at a time, refusing any part
// that exists as something other than a directory this checkout made.
func mkdirs(root, dir string, made map[string]bool) error {
	if made[dir] {
		return nil
	}
	if err := mkdirs(root, path.Dir(dir), made); err != nil {
		return err
	}
	p := filepath.Join(root, filepath.FromSlash(dir))
	fi, err := os.Lstat(p)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := os.Mkdir(p, 0o755); err != nil {
			return err
		}
	case err != nil:
		return err
	case !fi.IsDir():
		return fmt.Errorf("tree path %q passes through a symlink or file", dir)
	}
	made[dir] = true
	return nil
}
