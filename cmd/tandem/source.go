package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/tandem-gitops/tandem/manifest"
)

// sourceFlags choose where the manifest repository comes from.
type sourceFlags struct {
	dir        string
	repo       string
	ref        string
	tokenEnv   string
	sshKeyFile string
}

func (f *sourceFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.dir, "manifest-dir", "", "a local checkout of the manifest repository (default: the current directory)")
	fl.StringVar(&f.repo, "repo", "", "git URL of the manifest repository (instead of --manifest-dir)")
	fl.StringVar(&f.ref, "ref", "main", "branch, tag or commit SHA to use with --repo")
	fl.StringVar(&f.tokenEnv, "git-token-env", "TANDEM_GIT_TOKEN", "environment variable holding an HTTPS token for --repo")
	fl.StringVar(&f.sshKeyFile, "git-ssh-key", "", "SSH private key file for --repo")
	cmd.MarkFlagsMutuallyExclusive("manifest-dir", "repo")
}

// revision says which state of the manifest repository was used.
type revision struct {
	Commit string `json:"commit,omitempty"`
	Ref    string `json:"ref,omitempty"`
	Dirty  bool   `json:"dirty,omitempty"`
}

func (r revision) short() string {
	c := r.Commit
	if len(c) > 7 {
		c = c[:7]
	}
	if c == "" {
		c = "(no git)"
	}
	if r.Dirty {
		c += "+dirty"
	}
	return c
}

// load fetches (for --repo) and loads the manifest.
func (f *sourceFlags) load(ctx context.Context) (*manifest.Manifest, revision, error) {
	dir := f.dir
	var rev revision
	if f.repo != "" {
		co, err := manifest.Fetch(ctx, manifest.GitOptions{
			URL: f.repo, Ref: f.ref, CacheDir: filepath.Join(cacheDir(), "git"),
			TokenEnv: f.tokenEnv, SSHKeyFile: f.sshKeyFile,
		})
		if err != nil {
			return nil, rev, err
		}
		dir, rev = co.Dir, revision{Commit: co.Commit, Ref: f.ref}
	} else {
		if dir == "" {
			dir = "."
		}
		commit, dirty, err := manifest.DirRevision(dir)
		if err != nil {
			return nil, rev, err
		}
		rev = revision{Commit: commit, Dirty: dirty}
	}
	m, err := manifest.Load(dir, manifest.DefaultLoadOptions())
	if err != nil {
		return nil, rev, err
	}
	return m, rev, nil
}

// problemsOf lists a validation error's problems one per line, or the error itself.
func problemsOf(err error) []string {
	var ve *manifest.ValidationError
	if errors.As(err, &ve) {
		out := make([]string, 0, len(ve.Problems))
		for _, p := range ve.Problems {
			out = append(out, p.String())
		}
		return out
	}
	return []string{fmt.Sprint(err)}
}
