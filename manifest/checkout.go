package manifest

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// maxSymlinkTarget bounds a symlink blob; real targets are short paths.
const maxSymlinkTarget = 4096

// writeCommit writes a commit's files into the empty directory dst, as writeTree does.
func writeCommit(c *object.Commit, dst string) error {
	tree, err := c.Tree()
	if err != nil {
		return err
	}
	return writeTree(tree, dst)
}

// writeTree writes a git tree's files into the empty directory dst: regular and executable
// files read-only, symlinks as symlinks, submodules left out. A path with "..", ".git" or an
// empty part is refused, and nothing is ever written through a symlink: a crafted tree that
// holds both a symlink "a" and a file "a/b" fails instead of writing outside dst.
func writeTree(tree *object.Tree, dst string) error {
	made := map[string]bool{".": true}
	return tree.Files().ForEach(func(f *object.File) error {
		if err := checkTreePath(f.Name); err != nil {
			return err
		}
		if err := mkdirs(dst, path.Dir(f.Name), made); err != nil {
			return err
		}
		target := filepath.Join(dst, filepath.FromSlash(f.Name))
		switch f.Mode {
		case filemode.Symlink:
			if f.Size > maxSymlinkTarget {
				return fmt.Errorf("%q: symlink target over %d bytes", f.Name, maxSymlinkTarget)
			}
			link, err := f.Contents()
			if err != nil {
				return fmt.Errorf("%q: %w", f.Name, err)
			}
			return os.Symlink(link, target)
		case filemode.Executable:
			return writeBlob(f, target, 0o555)
		case filemode.Regular, filemode.Deprecated:
			return writeBlob(f, target, 0o444)
		default:
			return nil
		}
	})
}

func writeBlob(f *object.File, target string, perm os.FileMode) error {
	r, err := f.Reader()
	if err != nil {
		return fmt.Errorf("%q: %w", f.Name, err)
	}
	defer r.Close()
	// O_EXCL also refuses to follow a symlink already at target.
	out, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, r); err != nil {
		_ = out.Close()
		return fmt.Errorf("%q: %w", f.Name, err)
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
