package manifest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/storer"
)

// ExportRevision writes the manifest directory dir as it was at rev into dest,
// and returns the resolved commit. dir is a directory inside a git work tree
// (the repository root or a subdirectory of it); rev is anything git can
// resolve: a branch, a remote branch such as origin/main, a tag, or a commit
// SHA. Only dir's subtree is written, into dest, which must not exist or be
// empty; paths that would escape dest are refused. Symlinks are written as
// symlinks, so Load's checks still catch ones that point outside the repository.
func ExportRevision(dir, rev, dest string) (string, error) {
	// EnableDotGitCommonDir: a linked work tree (git worktree add) keeps
	// its refs and objects in the main repository's .git.
	repo, err := git.PlainOpenWithOptions(dir, &git.PlainOpenOptions{DetectDotGit: true, EnableDotGitCommonDir: true})
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
	if err := checkUnambiguous(repo, rev); err != nil {
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

// checkUnambiguous refuses a revision whose name git would take from one of
// several references that point at different commits: a tag or branch named
// origin/main (a fork's tag comes with a plain `git fetch` of its remote; a
// pull request's branch can be named so) is taken before
// refs/remotes/origin/main, by git with a warning and by go-git silently, so
// the "reviewed" revision would be the pull request itself.
func checkUnambiguous(repo *git.Repository, rev string) error {
	// The reference is what comes before a suffix (main~1, v1^{commit},
	// main@{1}, main:path); no reference name holds ~, ^ or :, nor "@{".
	name := rev
	if i := strings.IndexAny(name, "~^:"); i >= 0 {
		name = name[:i]
	}
	if i := strings.Index(name, "@{"); i >= 0 {
		name = name[:i]
	}
	if name == "" {
		return nil
	}
	var found []string
	commits := map[plumbing.Hash]bool{}
	for _, rule := range plumbing.RefRevParseRules {
		full := fmt.Sprintf(rule, name)
		ref, err := storer.ResolveReference(repo.Storer, plumbing.ReferenceName(full))
		if err != nil {
			continue
		}
		h := ref.Hash()
		if tag, err := repo.TagObject(h); err == nil {
			if c, err := tag.Commit(); err == nil {
				h = c.Hash
			}
		}
		found = append(found, full)
		commits[h] = true
	}
	if len(commits) > 1 {
		return fmt.Errorf("revision %q is ambiguous: %s point at different commits; name the full reference (such as refs/remotes/origin/main) or a commit", string(name), strings.Join(found, ", "))
	}
	return nil
}
