package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/spf13/cobra"

	"github.com/tandem-gitops/tandem/manifest"
	"github.com/tandem-gitops/tandem/reconciler"
)

// defaultVendorBase is the revision vendor takes as reviewed when --against
// is not given: the remote's default branch, as `git clone` records it. Not
// HEAD nor HEAD's upstream: on a pull request's checkout (gh pr checkout, a
// CI job) both are the pull request itself.
//
// It is looked up by its full name, refs/remotes/origin/HEAD: a tag or
// branch named origin/HEAD (a fork's tag fetched with its remote, a pull
// request's branch so named) would otherwise be taken first.
const defaultVendorBase = "origin/HEAD"

const defaultVendorBaseRef = "refs/remotes/origin/HEAD"

func newVendorCmd(_ *globalFlags, s streams) *cobra.Command {
	var dir, against string
	var update bool
	cmd := &cobra.Command{
		Use:   "vendor",
		Short: "Fetch every local chart's dependencies into its charts/, as Chart.lock pins them",
		Long: `vendor fetches the dependencies each local chart's Chart.yaml declares into the chart's
charts/ directory, from the repositories tandem.yaml declares (with their access settings), at
exactly the versions Chart.lock pins (helm dependency build). A Chart.lock out of step with
Chart.yaml is refused. --update resolves Chart.yaml's version ranges anew and rewrites Chart.lock
(helm dependency update). Commit the result: renders never fetch anything.

Credentials (passwordEnv, passwordFile, client certificates, the registry login) are used only
for repositories declared exactly alike in tandem.yaml at a reviewed revision: --against REV,
by default origin/HEAD (the remote's default branch). A repository a branch or pull request adds
or changes is fetched anonymously, and a note says so: a checkout cannot send your tokens or
files to a host it chose. With no reviewed revision (no origin/HEAD, not a git repository) no
repository gets credentials. After reviewing a change that adds one, --against HEAD trusts it.

file:// dependencies must stay inside the manifest repository (no absolute paths, no "..", no
symlinks out of it, no .git); a chart that has one outside is refused and nothing is written.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" {
				dir = "."
			}
			m, err := manifest.Load(dir, manifest.DefaultLoadOptions())
			if err != nil {
				return validationFailed(s, problemsOf(err))
			}
			dropped, err := dropUnreviewedVendorCredentials(m, dir, against, s)
			if err != nil {
				return fmt.Errorf("vendor: %w", err)
			}
			dirs, err := reconciler.Vendor(m, reconciler.VendorOptions{
				Update: update, RegistryConfig: os.Getenv("HELM_REGISTRY_CONFIG"), Out: s.Err,
			})
			for _, d := range dirs {
				if rel, rerr := filepath.Rel(m.Dir, d); rerr == nil {
					d = rel
				}
				fmt.Fprintf(s.Out, "vendored: %s\n", d)
			}
			if err != nil && len(dropped) > 0 {
				// A 401 is the usual outcome; the notes above say why.
				return fmt.Errorf("vendor: %w (fetched without credentials, as the notes above say: %s)", err, strings.Join(dropped, ", "))
			}
			if err != nil {
				return fmt.Errorf("vendor: %w", err)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "manifest-dir", "", "the manifest repository's working tree (default: the current directory)")
	cmd.Flags().BoolVar(&update, "update", false, "resolve Chart.yaml's version ranges anew and rewrite Chart.lock (helm dependency update)")
	cmd.Flags().StringVar(&against, "against", "", "the reviewed revision: only repositories declared alike in its tandem.yaml get credentials (default "+defaultVendorBase+"; without one, none do)")
	return cmd
}

// dropUnreviewedVendorCredentials removes from m the credentials of every
// repository not declared alike in tandem.yaml at the reviewed revision
// (against, else defaultVendorBase), and says so on stderr. An explicit
// revision that cannot be loaded is an error; a missing default means no
// repository is reviewed.
func dropUnreviewedVendorCredentials(m *manifest.Manifest, dir, against string, s streams) ([]string, error) {
	rev, ref := against, against
	if rev == "" {
		rev, ref = defaultVendorBase, defaultVendorBaseRef
	}
	base, commit, err := loadRevision(dir, ref)
	if err != nil {
		if against != "" {
			return nil, err
		}
		base = nil
	}
	dropped := m.DropUnreviewedCredentials(base)
	for _, name := range dropped {
		if base == nil {
			fmt.Fprintf(s.Err, "note: repository %q: its credentials are not used: there is no reviewed revision to compare tandem.yaml with\n", name)
			continue
		}
		fmt.Fprintf(s.Err, "note: repository %q: its credentials are not used: it is new or changed since %s (%s), and only reviewed repositories get credentials; --against REV names another reviewed revision\n", name, rev, shortSHA(commit))
	}
	if base == nil && len(dropped) > 0 {
		hint := ""
		if errors.Is(err, plumbing.ErrReferenceNotFound) {
			// A repository created with git init and pushed, or a CI
			// checkout: the clone has no origin/HEAD.
			hint = "; or set origin/HEAD with git remote set-head origin --auto"
		}
		fmt.Fprintf(s.Err, "note: no reviewed revision (%v): name one with --against REV, e.g. --against origin/main%s\n", err, hint)
	}
	return dropped, nil
}

// loadRevision loads the manifest directory dir as it is at rev, exported
// from git into a temporary directory removed before it returns.
func loadRevision(dir, rev string) (*manifest.Manifest, string, error) {
	tmp, err := os.MkdirTemp("", "tandem-vendor-base-")
	if err != nil {
		return nil, "", err
	}
	defer os.RemoveAll(tmp)
	commit, err := manifest.ExportRevision(dir, rev, filepath.Join(tmp, "manifest"))
	if err != nil {
		return nil, "", err
	}
	m, err := manifest.Load(filepath.Join(tmp, "manifest"), manifest.DefaultLoadOptions())
	if err != nil {
		return nil, "", fmt.Errorf("manifest at %s: %w", rev, err)
	}
	return m, commit, nil
}
