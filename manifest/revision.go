package manifest

import (
	"errors"
	"fmt"

	"github.com/go-git/go-git/v5"
)

// DirRevision returns the commit checked out in the git work tree that holds
// dir, and whether that work tree has uncommitted changes. A directory outside
// any git repository has no revision: it returns "", false, nil.
func DirRevision(dir string) (commit string, dirty bool, err error) {
	repo, err := git.PlainOpenWithOptions(dir, &git.PlainOpenOptions{DetectDotGit: true, EnableDotGitCommonDir: true})
	if errors.Is(err, git.ErrRepositoryNotExists) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("open git repository of %s: %w", dir, err)
	}
	head, err := repo.Head()
	if err != nil {
		return "", false, nil // a repository without commits yet
	}
	wt, err := repo.Worktree()
	if err != nil {
		return head.Hash().String(), false, nil
	}
	st, err := wt.Status()
	if err != nil {
		return head.Hash().String(), false, nil
	}
	return head.Hash().String(), !st.IsClean(), nil
}
