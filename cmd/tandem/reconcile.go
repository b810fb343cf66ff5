package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/tandem-gitops/tandem/clusters"
	"github.com/tandem-gitops/tandem/manifest"
	"github.com/tandem-gitops/tandem/reconciler"
	"github.com/tandem-gitops/tandem/render"
)

// applyFlags are the settings of a run that writes to clusters, shared by
// reconcile and serve.
type applyFlags struct {
	concurrency    int
	maxPrune       float64
	allowMassPrune bool
	lockTimeout    time.Duration
	lockDuration   time.Duration
	qps            float32
	burst          int
	detectDrift    bool
	correctDrift   bool
	clusterTimeout time.Duration
	standbyGuard   string
}

func (f *applyFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.IntVar(&f.concurrency, "concurrency", 16, "releases of one wave applied at once per cluster")
	fl.Float64Var(&f.maxPrune, "max-prune", 25, "refuse to prune more than this percentage of a cluster's tandem-owned releases")
	fl.BoolVar(&f.allowMassPrune, "allow-mass-prune", false, "lift --max-prune")
	fl.DurationVar(&f.lockTimeout, "lock-timeout", 2*time.Minute, "how long to wait for another tandem holding a cluster's lock")
	fl.DurationVar(&f.lockDuration, "lock-duration", 30*time.Second, "lease duration of the cluster lock; a crashed run's lock expires after this")
	fl.BoolVar(&f.detectDrift, "detect-drift", true, "compare unchanged releases with the cluster and report drifted objects (one dry run per object)")
	fl.BoolVar(&f.correctDrift, "correct-drift", false, "put drifted objects back to the desired state, without a new Helm revision")
	fl.DurationVar(&f.clusterTimeout, "cluster-timeout", time.Hour, "bound everything done on one cluster in this run (0: no bound beyond each release's timeout)")
	fl.Float32Var(&f.qps, "kube-qps", 50, "client-side API requests per second per cluster")
	fl.IntVar(&f.burst, "kube-burst", 100, "client-side API request burst per cluster")
	fl.StringVar(&f.standbyGuard, "standby-guard", string(reconciler.GuardEnforce), "on Standby clusters, an admission policy that refuses scaling up what tandem holds at zero: enforce, warn or off (off removes it)")
}

func (f *applyFlags) check() error {
	if f.maxPrune < 0 || f.maxPrune > 100 {
		return fmt.Errorf("--max-prune must be a percentage between 0 and 100, not %v", f.maxPrune)
	}
	if _, err := reconciler.ParseGuardMode(f.standbyGuard); err != nil {
		return err
	}
	return nil
}

// options are the reconciler's options for one run; each run gets its own
// RunID and lock holder.
func (f *applyFlags) options() reconciler.Options {
	opts := reconciler.DefaultOptions()
	opts.Plan.MaxPrune = f.maxPrune / 100
	opts.Plan.AllowMassPrune = f.allowMassPrune
	opts.Concurrency = f.concurrency
	opts.LockTimeout = f.lockTimeout
	opts.LockDuration = f.lockDuration
	opts.DetectDrift = f.detectDrift
	opts.CorrectDrift = f.correctDrift
	opts.RunID = newRunID()
	opts.Holder = holderID(opts.RunID)
	opts.ClusterTimeout = f.clusterTimeout
	opts.StandbyGuard, _ = reconciler.ParseGuardMode(f.standbyGuard) // checked by check
	return opts
}

type reconcileFlags struct {
	source     sourceFlags
	apply      applyFlags
	clusters   []string
	releases   []string
	dryRun     bool
	sourceLost []string
	profile    profileFlags
}

func newReconcileCmd(g *globalFlags, s streams) *cobra.Command {
	f := &reconcileFlags{}
	cmd := &cobra.Command{
		Use:   "reconcile",
		Short: "Apply the manifest to every cluster in parallel as Helm releases",
		Long: `reconcile renders the manifest for every cluster, then, on all clusters in parallel, installs or
upgrades each enabled release in wave order, waits for its objects to be healthy, and uninstalls the
tandem-owned releases the manifest no longer wants there (within --max-prune).

Progress goes to stderr, the summary to stdout. Exit code 0 when every cluster is applied and
healthy, 1 on any failure.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if g.output != "" && g.output != "text" && g.output != "json" {
				return fmt.Errorf("unknown output format %q (want text or json)", g.output)
			}
			if err := f.apply.check(); err != nil {
				return err
			}
			stopProfile, err := f.profile.start()
			defer func() { _ = stopProfile() }()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			m, rev, err := f.source.load(ctx)
			if err != nil {
				return err
			}
			opts := f.apply.options()
			opts.Selection = reconciler.Selection{Clusters: f.clusters, Releases: f.releases}
			opts.DryRun = f.dryRun
			opts.SourceLost = f.sourceLost
			opts.Commit, opts.Ref, opts.Uncommitted = rev.Commit, rev.Ref, rev.Dirty
			opts.Logger = g.logger(s)
			opts.Progress = newProgress(s.Err).event

			fmt.Fprintf(s.Err, "tandem reconcile  manifest %s%s  clusters %s%s\n", rev.short(), refSuffix(rev), clusterList(m, opts.Selection), dryRunSuffix(f.dryRun))
			report, err := g.pipeline(s, f.apply.qps, f.apply.burst).Reconcile(ctx, m, opts)
			if err != nil {
				return err
			}
			if g.output == "json" {
				if err := writeJSON(s.Out, report); err != nil {
					return err
				}
			} else {
				writeReconcileSummary(s.Out, report)
			}
			if failed := report.Failed(); len(failed) > 0 {
				return &exitError{code: exitFailure, err: fmt.Errorf("%s", failureLine(report, failed))}
			}
			return nil
		},
	}
	f.source.register(cmd)
	f.apply.register(cmd)
	fl := cmd.Flags()
	fl.StringSliceVar(&f.clusters, "cluster", nil, "only these clusters (repeatable)")
	fl.StringSliceVar(&f.releases, "release", nil, "only these releases (repeatable; disables pruning)")
	fl.BoolVar(&f.dryRun, "dry-run", false, "plan and report, change nothing")
	fl.StringSliceVar(&f.sourceLost, "source-lost", nil, "declare a switchover's source lost: tandem cannot reach it and you know it is down for good, not cut off; "+
		"the new Active's CronJobs resume without the source's being suspended (recorded in its state record; later runs and tandem serve keep to it)")
	f.profile.register(cmd)
	return cmd
}

// pipeline builds the load-render-apply pipeline every command runs: a
// renderer with tandem's chart cache and a connector to the kubeconfig's
// clusters.
func (g *globalFlags) pipeline(s streams, qps float32, burst int) *reconciler.Pipeline {
	return &reconciler.Pipeline{Renderer: render.New(renderOptions()), Connect: connector(g, s, qps, burst)}
}

// connector opens clusters from the kubeconfig; the only place concrete
// clusters are built.
func connector(g *globalFlags, s streams, qps float32, burst int) reconciler.Connector {
	return func(ctx context.Context, c manifest.Cluster) (reconciler.Target, error) {
		opts := clusters.DefaultOptions()
		opts.Kubeconfig = g.kubeconfig
		opts.Context = c.Context
		opts.QPS, opts.Burst = qps, burst
		opts.Logger = g.logger(s).With("cluster", c.Name)
		cl, err := clusters.Connect(ctx, c.Name, opts)
		if err != nil {
			return nil, err
		}
		return reconciler.ClusterTarget{Cluster: cl}, nil
	}
}

// holderID names this run in cluster locks: who, where, which process and
// which run; the reconciler appends the cluster.
func holderID(runID string) string {
	host, _ := os.Hostname()
	user := os.Getenv("USER")
	if user == "" {
		user = "tandem"
	}
	return fmt.Sprintf("%s@%s:%d/%s", user, host, os.Getpid(), runID)
}

// newRunID is a random token that marks this run's Helm revisions (a valid
// label value).
func newRunID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on Linux
	return hex.EncodeToString(b)
}

func refSuffix(r revision) string {
	if r.Ref == "" {
		return ""
	}
	return " (" + r.Ref + ")"
}

func dryRunSuffix(dry bool) string {
	if dry {
		return "  DRY RUN: nothing will change"
	}
	return ""
}

func clusterList(m *manifest.Manifest, sel reconciler.Selection) string {
	var parts []string
	for _, c := range m.Clusters {
		if len(sel.Clusters) == 0 || slices.Contains(sel.Clusters, c.Name) {
			parts = append(parts, fmt.Sprintf("%s(%s)", c.Name, c.Role))
		}
	}
	return strings.Join(parts, " ")
}

// progress prints one line per release event; events arrive from many goroutines.
type progress struct {
	mu sync.Mutex
	w  io.Writer
}

func newProgress(w io.Writer) *progress { return &progress{w: w} }

func (p *progress) event(e reconciler.Event) {
	var line string
	rev := revisionText(e)
	switch e.Phase {
	case "cluster":
		line = fmt.Sprintf("%-7s FAILED  %s", e.Cluster, e.Message)
	case "start":
		line = fmt.Sprintf("%-7s wave %d  %-14s %-9s %-11s started", e.Cluster, e.Wave, e.Release, e.Action, rev)
	case "waiting":
		line = fmt.Sprintf("%-7s wave %d  %-14s %-9s %-11s %s %s", e.Cluster, e.Wave, e.Release, e.Action, rev, e.Message, seconds(e.Duration))
	case "done":
		status := "healthy " + seconds(e.Duration)
		switch e.Action {
		case reconciler.ActionUnchanged:
			status = e.Message
		case reconciler.ActionPrune:
			status = "uninstalled " + seconds(e.Duration)
		}
		line = strings.TrimRight(fmt.Sprintf("%-7s wave %d  %-14s %-9s %-11s %s", e.Cluster, e.Wave, e.Release, e.Action, rev, status), " ")
	case "failed":
		line = fmt.Sprintf("%-7s wave %d  %-14s FAILED    %s", e.Cluster, e.Wave, e.Release, e.Message)
	case "skipped":
		line = fmt.Sprintf("%-7s wave %d  %-14s skipped   %s", e.Cluster, e.Wave, e.Release, e.Message)
	case "switchover":
		// The switchover's own steps (phase started, draining, done,
		// skipped, blocked); its releases report as any release does.
		line = "switchover  " + e.Message
	default:
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintln(p.w, line)
}

func revisionText(e reconciler.Event) string {
	switch {
	case e.Action == reconciler.ActionInstall && e.Revision > 0:
		return fmt.Sprintf("rev %d", e.Revision)
	case e.Action == reconciler.ActionInstall:
		return "rev -"
	case e.Action == reconciler.ActionUnchanged || e.Action == reconciler.ActionPrune:
		return fmt.Sprintf("rev %d", e.FromRevision)
	case e.Revision > 0:
		return fmt.Sprintf("rev %d→%d", e.FromRevision, e.Revision)
	default:
		return fmt.Sprintf("rev %d→", e.FromRevision)
	}
}

func seconds(d time.Duration) string { return fmt.Sprintf("%.1fs", d.Seconds()) }

func writeReconcileSummary(w io.Writer, r *reconciler.Report) {
	fmt.Fprintln(w)
	if sw := r.Switchover; sw != nil {
		fmt.Fprintln(w, switchoverSummary(sw))
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CLUSTER\tROLE\tCOMMIT\tINSTALLED\tUPGRADED\tUNCHANGED\tPRUNED\tFAILED\tSKIPPED\tDRIFTED\tAPI CALLS\tTIME")
	for _, c := range r.Clusters {
		drifted := fmt.Sprint(c.Counts.Drifted)
		if c.Counts.Corrected > 0 {
			drifted += fmt.Sprintf(" (%d corrected)", c.Counts.Corrected)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%d\t%.1fs\n", c.Name, c.Role, shortSHA(c.Commit),
			c.Counts.Installed, c.Counts.Upgraded, c.Counts.Unchanged, c.Counts.Pruned, c.Counts.Failed, c.Counts.Skipped,
			drifted, c.Requests, time.Duration(c.Duration).Seconds())
	}
	_ = tw.Flush()
	writeGuardLines(w, r)
	if r.DryRun {
		fmt.Fprintln(w, "\ndry run: nothing was changed; the counts are what a real run would do")
	}
}

// writeGuardLines says what changed in each cluster's Standby guard
// (an unchanged guard is not mentioned).
func writeGuardLines(w io.Writer, r *reconciler.Report) {
	for _, c := range r.Clusters {
		g := c.Guard
		if g == nil || g.Action == reconciler.GuardUnchanged {
			continue
		}
		verb := g.Action
		if g.Outcome == reconciler.OutcomePlanned {
			verb = "would " + verb
		}
		what := fmt.Sprintf("%s, %d workloads at zero", g.Mode, g.Scaled)
		if g.Action == reconciler.GuardRemove {
			what = "the cluster is not a Standby, or --standby-guard off"
		}
		line := fmt.Sprintf("standby guard on %s: %s (%s)", c.Name, verb, what)
		if g.Error != "" {
			line += ": failed: " + g.Error
		}
		fmt.Fprintln(w, line)
	}
}

func failureLine(r *reconciler.Report, failed []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d of %d clusters failed (%s)", len(failed), len(r.Clusters), strings.Join(failed, ", "))
	for _, c := range r.Clusters {
		if c.Failed() {
			fmt.Fprintf(&b, "\n  %s: %s", c.Name, c.Error)
		}
	}
	var ok []string
	for _, c := range r.Clusters {
		if !c.Failed() {
			ok = append(ok, c.Name)
		}
	}
	if len(ok) > 0 && !r.DryRun {
		fmt.Fprintf(&b, "\n%s applied at %s", strings.Join(ok, ", "), shortSHA(r.Commit))
	}
	return b.String()
}

func shortSHA(c string) string {
	if len(c) > 7 {
		return c[:7]
	}
	if c == "" {
		return "-"
	}
	return c
}

// switchoverSummary is one line per switchover: its phases with their
// times, and how it ended.
func switchoverSummary(sw *reconciler.SwitchoverReport) string {
	var parts []string
	for _, ph := range sw.Phases {
		if ph.Skipped != "" {
			parts = append(parts, fmt.Sprintf("%s skipped", ph.Name))
			continue
		}
		parts = append(parts, fmt.Sprintf("%s %s", ph.Name, seconds(time.Duration(ph.Duration))))
	}
	head := fmt.Sprintf("switchover %s → %s", strings.Join(sw.From, ","), strings.Join(sw.To, ","))
	if sw.ResumedAt > 0 {
		head += fmt.Sprintf(" (resumed at phase %d)", sw.ResumedAt)
	}
	end := fmt.Sprintf("completed in %s", seconds(time.Duration(sw.Duration)))
	switch {
	case sw.Blocked != "":
		end = sw.Blocked
	case sw.Error != "":
		end = sw.Error
	case sw.Serving > 0:
		end += fmt.Sprintf(", serving on %s after %s", strings.Join(sw.To, ","), seconds(time.Duration(sw.Serving)))
	}
	return head + "   " + strings.Join(parts, " · ") + "\n" + end + "\n"
}
