package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/tandem-gitops/tandem/cmd/tandem/internal/diffview"
	"github.com/tandem-gitops/tandem/manifest"
	"github.com/tandem-gitops/tandem/reconciler"
)

type diffFlags struct {
	source   sourceFlags
	clusters []string
	releases []string
	against  string
	// workingTree renders the working tree, uncommitted and untracked
	// files included, as the newer side of --against (local use only).
	workingTree bool
	exitCode    bool
	maxBytes    int
}

func newDiffCmd(g *globalFlags, s streams) *cobra.Command {
	f := &diffFlags{}
	cmd := &cobra.Command{
		Use:   "diff",
		Short: "Show what tandem would change: in each cluster (live), or between two git revisions (--against)",
		Long: `Without --against, diff compares what tandem would apply with what each cluster holds, using a
server-side-apply dry run per object, so API defaults and fields other controllers own are not noise.
It shows releases not installed or that would be pruned, chart and values changes, stuck releases,
and per object the changed fields (someone edited production by hand).

With --against REF, diff renders the manifest at REF and at the checked-out commit (HEAD, or --ref)
for every cluster and compares them: what merging a pull request changes per cluster. It needs no
cluster. Uncommitted and untracked files are not part of it (a pull request is its commit, and CI may
have written credentials into the working tree); --working-tree renders them too, for local use,
and the report says so.

Secret values are never shown: changed keys appear with a short hash of the old and new value.
With --exit-code: exit 0 no differences, 2 differences, 1 error.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch g.output {
			case "", "text", "json", "markdown":
			default:
				return fmt.Errorf("unknown output format %q (want text, json or markdown)", g.output)
			}
			ctx := cmd.Context()
			var rep *reconciler.DiffReport
			var sw *reconciler.SwitchoverPlan
			var err error
			if f.against != "" {
				rep, sw, err = f.diffAgainst(ctx, g, s)
			} else {
				rep, err = f.diffLive(ctx, g, s)
			}
			if err != nil {
				return err
			}
			switch g.output {
			case "json":
				if sw != nil {
					err = writeJSON(s.Out, diffWithSwitchover{DiffReport: rep, Switchover: sw})
				} else {
					err = diffview.JSON(s.Out, rep)
				}
			case "markdown":
				opts := diffview.DefaultMarkdownOptions()
				if f.maxBytes > 0 {
					opts.MaxBytes = f.maxBytes
				}
				var plan string
				if sw != nil {
					// After the report (its first line is the comment's marker), within its size limit.
					plan = "\n" + switchoverMarkdown(sw)
					opts.MaxBytes = max(opts.MaxBytes-len(plan), 1)
				}
				_, err = io.WriteString(s.Out, diffview.Markdown(rep, opts)+plan)
			default:
				if sw != nil {
					if _, err = io.WriteString(s.Out, switchoverText(sw)+"\n"); err != nil {
						return err
					}
				}
				err = diffview.Text(s.Out, rep)
			}
			if err != nil {
				return err
			}
			if failed := rep.Failed(); len(failed) > 0 {
				return &exitError{code: exitFailure, err: fmt.Errorf("could not diff %d of %d clusters: %v", len(failed), len(rep.Clusters), failed)}
			}
			if f.exitCode && rep.HasDifferences() {
				return &exitError{code: exitDiff}
			}
			return nil
		},
	}
	f.source.register(cmd)
	fl := cmd.Flags()
	fl.StringSliceVar(&f.clusters, "cluster", nil, "only these clusters (repeatable)")
	fl.StringSliceVar(&f.releases, "release", nil, "only these releases (repeatable)")
	fl.StringVar(&f.against, "against", "", "compare with the manifest at this git revision (e.g. origin/main) instead of the clusters")
	fl.BoolVar(&f.workingTree, "working-tree", false, "with --against, render the working tree with uncommitted and untracked files instead of HEAD (local use; never on untrusted content)")
	fl.BoolVar(&f.exitCode, "exit-code", false, "exit 2 when there are differences (0 none, 1 error)")
	fl.IntVar(&f.maxBytes, "max-bytes", 0, "with -o markdown, keep the report under this many bytes (default 65000, under GitHub's comment limit)")
	return cmd
}

func (f *diffFlags) selection() reconciler.Selection {
	return reconciler.Selection{Clusters: f.clusters, Releases: f.releases}
}

func (f *diffFlags) diffLive(ctx context.Context, g *globalFlags, s streams) (*reconciler.DiffReport, error) {
	m, rev, err := f.source.load(ctx)
	if err != nil {
		return nil, err
	}
	opts := reconciler.DefaultDiffOptions()
	opts.Selection = f.selection()
	return g.pipeline(s, 50, 100).DiffLive(ctx, m, opts, rev.Commit)
}

// diffWithSwitchover is `diff --against -o json` when the roles change:
// the diff report's fields, and the switchover plan beside them.
type diffWithSwitchover struct {
	*reconciler.DiffReport
	Switchover *reconciler.SwitchoverPlan `json:"switchover,omitempty"`
}

// diffAgainst loads the manifest at f.against and at the current source and
// compares them. When the two give clusters different roles, it also plans
// the switchover the change makes (nil otherwise): a role change is shown
// as the phases that will run, not as two clusters' objects flipping at once.
func (f *diffFlags) diffAgainst(ctx context.Context, g *globalFlags, s streams) (*reconciler.DiffReport, *reconciler.SwitchoverPlan, error) {
	to, toLabel, toCleanup, err := f.loadNewer(ctx, s)
	if err != nil {
		return nil, nil, err
	}
	defer toCleanup()
	from, fromCommit, cleanup, err := f.loadAgainst(ctx)
	if err != nil {
		return nil, nil, err
	}
	defer cleanup()
	for _, name := range to.DropUnreviewedCredentials(from) {
		fmt.Fprintf(s.Err, "note: repository %q: its credentials are not used: it is new or changed since %s, and only reviewed repositories get credentials\n", name, shortSHA(fromCommit))
	}
	p := g.pipeline(s, 50, 100)
	rep, err := p.DiffAgainst(ctx, from, to, f.selection(), fromCommit, toLabel)
	if err != nil {
		return nil, nil, err
	}
	base := reconciler.Roles{}
	for name, role := range reconciler.GitRoles(from) {
		if _, ok := to.Cluster(name); ok {
			base[name] = role
		}
	}
	if err := reconciler.OneChangeAtATime(from, to); err != nil {
		return nil, nil, err
	}
	sw, err := reconciler.RenderSwitchover(ctx, to, p.Renderer, base)
	if err != nil {
		return nil, nil, fmt.Errorf("plan the switchover from %s: %w", shortSHA(fromCommit), err)
	}
	return rep, sw, nil
}

// loadNewer loads the newer side of --against and returns the label the
// report gives it. With --repo that is the fetched commit; in a local
// checkout it is HEAD, exported from git, so that neither untracked files
// (a credentials file CI wrote into the working tree) nor uncommitted edits
// are rendered as the pull request's — unless --working-tree asks for the
// working tree, which the label then says.
func (f *diffFlags) loadNewer(ctx context.Context, s streams) (*manifest.Manifest, string, func(), error) {
	if f.source.repo != "" {
		m, rev, err := f.source.load(ctx)
		return m, rev.Commit, func() {}, err
	}
	dir := f.source.dir
	if dir == "" {
		dir = "."
	}
	if f.workingTree {
		m, rev, err := f.source.load(ctx)
		if err != nil {
			return nil, "", nil, err
		}
		label := "working tree"
		if rev.Commit != "" {
			label = "working tree on " + shortSHA(rev.Commit)
		}
		fmt.Fprintf(s.Err, "note: --working-tree: rendering %s, uncommitted and untracked files included\n", dir)
		return m, label, func() {}, nil
	}
	if _, dirty, err := manifest.DirRevision(dir); err == nil && dirty {
		fmt.Fprintf(s.Err, "note: rendering the commit at HEAD; uncommitted changes in %s are left out (--working-tree renders them)\n", dir)
	}
	return f.export(dir, "HEAD")
}

// loadAgainst loads the manifest at f.against: from the remote with --repo,
// else exported from the local repository into a temporary directory that
// cleanup removes.
func (f *diffFlags) loadAgainst(ctx context.Context) (*manifest.Manifest, string, func(), error) {
	if f.source.repo != "" {
		old := f.source
		old.ref = f.against
		m, rev, err := old.load(ctx)
		if err != nil {
			return nil, "", nil, fmt.Errorf("manifest at %s: %w", f.against, err)
		}
		return m, rev.Commit, func() {}, nil
	}
	dir := f.source.dir
	if dir == "" {
		dir = "."
	}
	return f.export(dir, f.against)
}

// export loads the manifest directory dir as it is at rev, exported from git
// into a temporary directory that cleanup removes.
func (f *diffFlags) export(dir, rev string) (*manifest.Manifest, string, func(), error) {
	tmp, err := os.MkdirTemp("", "tandem-against-")
	if err != nil {
		return nil, "", nil, err
	}
	cleanup := func() { _ = os.RemoveAll(tmp) }
	dest := filepath.Join(tmp, "manifest")
	commit, err := manifest.ExportRevision(dir, rev, dest)
	if err != nil {
		cleanup()
		return nil, "", nil, err
	}
	m, err := manifest.Load(dest, manifest.DefaultLoadOptions())
	if err != nil {
		cleanup()
		return nil, "", nil, fmt.Errorf("manifest at %s: %w", rev, err)
	}
	return m, commit, cleanup, nil
}
