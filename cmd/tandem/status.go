package main

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/tandem-gitops/tandem/clusters"
	"github.com/tandem-gitops/tandem/reconciler"
)

func newStatusCmd(g *globalFlags, s streams) *cobra.Command {
	f := &sourceFlags{}
	var only []string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show, per cluster, roles, any switchover, live DNS weights, the applied commit and each release's status",
		Long: `status shows, per cluster, its role in git and the role in effect (what its objects were last
rendered for), any switchover under way and its phase, the live DNS weight per hostname and how
many CronJobs are suspended (both read back from the cluster's objects), the applied commit and
each tandem release's revision and status. It exits 1 when a cluster cannot be read (unreachable,
or its state unreadable), in every output format, after printing what it could read.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch g.output {
			case "", "text", "json":
			default:
				return fmt.Errorf("unknown output format %q (want text or json)", g.output)
			}
			ctx := cmd.Context()
			m, _, err := f.load(ctx)
			if err != nil {
				return err
			}
			p := g.pipeline(s, 50, 100)
			p.Connect = reconciler.ConnectOnce(p.Connect) // the live read reuses the status read's connections
			out, err := p.Status(ctx, m, reconciler.Selection{Clusters: only})
			if out == nil && err != nil {
				return err
			}
			live, lerr := reconciler.ReadLive(ctx, m, p.Connect, out)
			err = errors.Join(err, lerr)
			rows := make([]statusRow, len(out))
			for i := range out {
				rows[i] = statusRow{ClusterStatus: out[i], Live: &live[i]}
			}
			var werr error
			if g.output == "json" {
				werr = writeJSON(s.Out, rows)
			} else {
				werr = writeStatus(s.Out, rows)
			}
			// A cluster that could not be read fails the command in every
			// format: a script reading -o json must not take it for healthy.
			return errors.Join(err, werr)
		},
	}
	f.register(cmd)
	cmd.Flags().StringSliceVar(&only, "cluster", nil, "only these clusters (repeatable)")
	return cmd
}

// statusRow is one cluster in `tandem status -o json`: the status
// fields, and under "live" the roles, switchover and what it serves.
type statusRow struct {
	reconciler.ClusterStatus
	Live *reconciler.LiveStatus `json:"live,omitempty"`
}

func writeStatus(w io.Writer, out []statusRow) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CLUSTER\tROLE (GIT)\tROLE (LIVE)\tSWITCHOVER\tWEIGHTS\tCRONJOBS\tAPPLIED\tAT\tRELEASES\tDRIFTED\tLAST ERROR")
	for _, c := range out {
		applied, at, lastErr, drifted := "-", "-", "-", "-"
		if c.State != nil {
			n := 0
			for _, r := range c.State.Releases {
				if len(r.Drifted) > 0 && !r.Corrected {
					n++
				}
			}
			drifted = fmt.Sprint(n)
			applied = appliedColumn(c.State)
			at = c.State.AppliedAt.UTC().Format("2006-01-02 15:04:05")
			if c.State.LastError != "" {
				lastErr = c.State.LastError
			}
		}
		if c.Error != "" {
			// The row names the cluster; the error says why it could not be read.
			lastErr = strings.TrimPrefix(c.Error, fmt.Sprintf("cluster %q: ", c.Name))
		}
		// A table row is one line, whatever the error held.
		lastErr = strings.ReplaceAll(lastErr, "\n", "; ")
		ok := 0
		for _, r := range c.Releases {
			if r.Status == "deployed" {
				ok++
			}
		}
		inEffect, sw, weights, crons := liveColumns(c.Live)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d/%d ok\t%s\t%s\n", c.Name, c.Role, inEffect, sw, weights, crons,
			applied, at, ok, len(c.Releases), drifted, lastErr)
	}
	_ = tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CLUSTER\tNAMESPACE\tRELEASE\tREVISION\tSTATUS\tCHART\tUPDATED")
	for _, c := range out {
		for _, r := range c.Releases {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s-%s\t%s\n", c.Name, r.Namespace, r.Name, r.Revision, r.Status, r.Chart, r.ChartVersion,
				r.Updated.UTC().Format("2006-01-02 15:04:05"))
		}
	}
	return tw.Flush()
}

// appliedColumn is the commit a cluster holds: the last run's, when that
// run applied all of it (State.AppliedCommit); otherwise the last run's with
// "(partial)" — it failed, was restricted with --release, or applied a tree
// with uncommitted files, so the cluster holds part of that commit and part
// of what was there before (a record written before tandem kept
// appliedCommit says the same until its next complete run).
func appliedColumn(st *clusters.State) string {
	if st.Commit == "" {
		return "-"
	}
	if st.AppliedCommit == st.Commit {
		return shortSHA(st.Commit)
	}
	return shortSHA(st.Commit) + " (partial)"
}

// liveColumns are the role in effect, the switchover, the weights per
// hostname and the CronJobs of a status row, "-" where unknown.
func liveColumns(l *reconciler.LiveStatus) (inEffect, switchover, weights, crons string) {
	inEffect, switchover, weights, crons = "-", "-", "-", "-"
	if l == nil {
		return
	}
	if l.RoleInEffect != "" {
		inEffect = l.RoleInEffect
	}
	if sw := l.Switchover; sw != nil {
		switchover = fmt.Sprintf("%s→%s phase %d/%d %s", strings.Join(sw.From, ","), strings.Join(sw.To, ","), sw.Phase, reconciler.PhaseCount, sw.PhaseName)
		switch {
		case sw.Blocked != "":
			switchover += " BLOCKED"
		case len(sw.Skipped) > 0:
			switchover += fmt.Sprintf(" (%d skipped)", len(sw.Skipped))
		case sw.PhaseDone:
			switchover += " done"
		}
		for _, l := range sw.SourceLost {
			switchover += fmt.Sprintf(" %s declared lost by %s at %s", l.Cluster, l.By, l.At.Format("2006-01-02 15:04:05"))
		}
	}
	if l.Error == "" {
		var hs []string
		for h, w := range l.DNSWeights {
			hs = append(hs, fmt.Sprintf("%s=%d", h, w))
		}
		slices.Sort(hs)
		if len(hs) > 0 {
			weights = strings.Join(hs, ",")
		}
		crons = fmt.Sprintf("%d/%d suspended", l.CronJobsSuspended, l.CronJobs)
	}
	return
}
