package manifest

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// ExportOptions bound what ExportRevision writes.
type ExportOptions struct {
	// MaxFileBytes rejects larger files (0: 16 MiB).
	MaxFileBytes int64
}

// ExportRevision writes the manifest directory dir as it was at rev into dest,
// and returns the resolved commit. dir is a directory inside a git work tree
// (the repository root or a subdirectory of it); rev is anything git can
// resolve: a branch, a remote branch such as origin/main, a tag, or a commit
// SHA. Only dir's subtree is written. Symlinks are written as symlinks, so
// Load's checks still catch ones that point outside the repository.
func ExportRevision(dir, rev, dest string, opts ExportOptions) (string, error) {
	if opts.MaxFileBytes <= 0 {
		opts.MaxFileBytes = 16 << 20
	}
	repo, err := git.PlainOpenWithOptions(dir, &git.PlainOpenOptions{DetectDotGit: true})
	if err != nil {
		return "", fmt.Errorf("open git repository of %s: %w", dir, err)
	}
	wt, err := repo.Worktree()
	if err != nil {
		return "", fmt.Errorf("git work tree of %s: %w", dir, err)
	}
	absDir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	root, err := filepath.EvalSymlinks(wt.Filesystem.Root())
	if err != nil {
		return "", err
	}
	if d, err := filepath.EvalSymlinks(absDir); err == nil {
		absDir = d
	}
	rel, err := filepath.Rel(root, absDir)
	if err != nil {
		return "", err
	}
	hash, err := repo.ResolveRevision(plumbing.Revision(rev))
	if err != nil {
		return "", fmt.Errorf("resolve %q in %s: %w", rev, root, err)
	}
	commit, err := repo.CommitObject(*hash)
	if err != nil {
		return "", fmt.Errorf("commit %s: %w", hash, err)
	}
	tree, err := commit.Tree()
	if err != nil {
		return "", fmt.Errorf("tree of %s: %w", hash, err)
	}
	if rel != "." {
		tree, err = tree.Tree(filepath.ToSlash(rel))
		if err != nil {
			return "", fmt.Errorf("%s at %s: %w", rel, hash.String()[:7], err)
		}
	}
	err = tree.Files().ForEach(func(f *object.File) error {
		if f.Size > opts.MaxFileBytes {
			return fmt.Errorf("%s: %d bytes is over the %d-byte limit", f.Name, f.Size, opts.MaxFileBytes)
		}
		path := filepath.Join(dest, filepath.FromSlash(f.Name))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		r, err := f.Reader()
		if err != nil {
			return err
		}
		defer r.Close()
		if f.Mode == filemode.Symlink {
			target, err := io.ReadAll(r)
			if err != nil {
				return err
			}
			return os.Symlink(string(target), path)
		}
		out, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, r); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
	if err != nil {
		return "", fmt.Errorf("export %s at %s: %w", rel, hash.String()[:7], err)
	}
	return hash.String(), nil
}
