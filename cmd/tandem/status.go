package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/tandem-gitops/tandem/reconciler"
)

func newStatusCmd(g *globalFlags, s streams) *cobra.Command {
	f := &sourceFlags{}
	var only []string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show, per cluster, the applied commit and each tandem release's revision and status",
		Long: `status shows, per cluster, the applied commit and each tandem release's revision and
status. It exits 1 when a cluster cannot be read (unreachable, or its state unreadable), in
every output format, after printing what it could read.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch g.output {
			case "", "json":
			default:
				return fmt.Errorf("unknown output format %q (want json, or none for a table)", g.output)
			}
			ctx := cmd.Context()
			m, _, err := f.load(ctx)
			if err != nil {
				return err
			}
			out, err := g.pipeline(s, 50, 100).Status(ctx, m, reconciler.Selection{Clusters: only})
			if out == nil && err != nil {
				return err
			}
			var werr error
			if g.output == "json" {
				enc := json.NewEncoder(s.Out)
				enc.SetIndent("", "  ")
				werr = enc.Encode(out)
			} else {
				werr = writeStatus(s.Out, out)
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

func writeStatus(w io.Writer, out []reconciler.ClusterStatus) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CLUSTER\tROLE\tAPPLIED\tAT\tRELEASES\tDRIFTED\tLAST ERROR")
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
			applied = shortSHA(c.State.Commit)
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
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d/%d ok\t%s\t%s\n", c.Name, c.Role, applied, at, ok, len(c.Releases), drifted, lastErr)
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
