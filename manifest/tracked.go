package manifest

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"

	"github.com/go-git/go-git/v5"
)

// ErrUntracked is the error CheckTracked wraps for a file git does not track.
var ErrUntracked = errors.New("not tracked by git")

// CheckTracked refuses a file Helm would pack from the chart directory rel (relative to the
// repository root) that the git index of the repository's work tree does not list. It reads the
// directory as Helm's loader does: following symlinks (the file checked is the one a symlink
// resolves to) and leaving out what the chart's .helmignore and Helm's defaults ignore.
//
// A working tree holds files no pull request shows: a .env, decrypted secrets listed in
// .gitignore. tandem vendor packs a file:// dependency into an archive the user commits, so a
// pull request that names such a file (a symlink to it, a Chart.yaml beside it) would have it
// published; CheckTree alone lets it pass, since it is inside the repository. Run CheckTree
// first. Outside a git work tree nothing tells the two apart, and it returns nil.
// ignoredIn gives, for the chart directory's real path, what the packer
// leaves out of it: whether it leaves out a file, by its slash-separated
// path inside the chart directory and what it resolves to (Helm's
// .helmignore rules: render.HelmIgnored). nil leaves nothing out.
func (m *Manifest) CheckTracked(rel string, ignoredIn func(dir string) (func(name string, fi fs.FileInfo) bool, error)) error {
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
	repo, err := git.PlainOpenWithOptions(root, &git.PlainOpenOptions{DetectDotGit: true, EnableDotGitCommonDir: true})
	if errors.Is(err, git.ErrRepositoryNotExists) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("open git repository of %s: %w", m.Dir, err)
	}
	wt, err := repo.Worktree()
	if err != nil {
		return fmt.Errorf("git work tree of %s: %w", m.Dir, err)
	}
	gitRoot, err := filepath.EvalSymlinks(wt.Filesystem.Root())
	if err != nil {
		return err
	}
	idx, err := repo.Storer.Index()
	if err != nil {
		return fmt.Errorf("read the git index of %s: %w", gitRoot, err)
	}
	tracked := make(map[string]bool, len(idx.Entries))
	for _, e := range idx.Entries {
		tracked[e.Name] = true
	}
	ignored := func(string, fs.FileInfo) bool { return false }
	if ignoredIn != nil {
		if ignored, err = ignoredIn(real); err != nil {
			return fmt.Errorf("%q: %w", c, err)
		}
	}
	w := trackedWalker{gitRoot: gitRoot, tracked: tracked, ignored: ignored, seen: map[string]bool{}}
	return w.walk(real, "", c, false)
}

type trackedWalker struct {
	gitRoot string
	tracked map[string]bool
	ignored func(name string, fi fs.FileInfo) bool
	seen    map[string]bool
}

// walk checks dir (a real path), which Helm names name inside the chart and
// errors name display inside the repository; linked says a symlink led there.
func (w *trackedWalker) walk(dir, name, display string, linked bool) error {
	if w.seen[dir] {
		return nil
	}
	w.seen[dir] = true
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("%q: %w", display, err)
	}
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		n := path.Join(name, e.Name())
		disp := path.Join(display, e.Name())
		fi, err := os.Lstat(p)
		if err != nil {
			return fmt.Errorf("%q: %w", disp, err)
		}
		link := linked
		if fi.Mode()&fs.ModeSymlink != 0 {
			link = true
			if p, err = filepath.EvalSymlinks(p); err != nil {
				return fmt.Errorf("%q: %w", disp, err)
			}
			if fi, err = os.Stat(p); err != nil {
				return fmt.Errorf("%q: %w", disp, err)
			}
		}
		if w.ignored(n, fi) {
			continue // Helm leaves it out
		}
		if fi.IsDir() {
			if err := w.walk(p, n, disp, link); err != nil {
				return err
			}
			continue
		}
		r, err := filepath.Rel(w.gitRoot, p)
		if err != nil || !filepath.IsLocal(r) {
			return fmt.Errorf("%q: %w (outside the git work tree %s)", disp, ErrUntracked, w.gitRoot)
		}
		if r = filepath.ToSlash(r); !w.tracked[r] {
			if link {
				return fmt.Errorf("%q: %w (it resolves to %q): only files git tracks are packed, so that no local file reaches charts/ (git add it, remove it, or list it in the chart's .helmignore)", disp, ErrUntracked, r)
			}
			return fmt.Errorf("%q: %w: only files git tracks are packed, so that no local file reaches charts/ (git add it, remove it, or list it in the chart's .helmignore)", disp, ErrUntracked)
		}
	}
	return nil
}
