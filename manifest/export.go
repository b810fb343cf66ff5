package manifest

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
)

// ExportRevision writes the manifest directory dir as it was at rev into dest,
// and returns the resolved commit. dir is a directory inside a git work tree
// (the repository root or a subdirectory of it); rev is anything git can
// resolve: a branch, a remote branch such as origin/main, a tag, or a commit
// SHA. Only dir's subtree is written, into dest, which must not exist or be
// empty; paths that would escape dest are refused. Symlinks are written as
// symlinks, so Load's checks still catch ones that point outside the repository.
func ExportRevision(dir, rev, dest string) (string, error) {
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
	if err := os.MkdirAll(dest, 0o755); err != nil {
		return "", err
	}
	err = writeTree(repo.Storer, tree, dest, defaultExportLimits())
	if err != nil {
		return "", fmt.Errorf("export %s at %s: %w", rel, hash.String()[:7], err)
	}
	return hash.String(), nil
}
