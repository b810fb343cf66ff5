package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sort"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/tandem-gitops/tandem/clusters"
	"github.com/tandem-gitops/tandem/manifest"
	"github.com/tandem-gitops/tandem/reconciler"
)

// clusterStatus is one cluster's row of `tandem status`; its JSON is the -o json schema.
type clusterStatus struct {
	Name     string          `json:"name"`
	Role     string          `json:"role"`
	State    *clusters.State `json:"state,omitempty"`
	Releases []releaseStatus `json:"releases"`
	Error    string          `json:"error,omitempty"`
}

type releaseStatus struct {
	Name         string    `json:"name"`
	Namespace    string    `json:"namespace"`
	Revision     int       `json:"revision"`
	Status       string    `json:"status"`
	Chart        string    `json:"chart"`
	ChartVersion string    `json:"chartVersion"`
	Updated      time.Time `json:"updated"`
}

func newStatusCmd(g *globalFlags, s streams) *cobra.Command {
	f := &sourceFlags{}
	var only []string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show, per cluster, the applied commit and each tandem release's revision and status",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			m, _, err := f.load(ctx)
			if err != nil {
				return err
			}
			connect := connector(g, s, 50, 100)
			var picked []manifest.Cluster
			for _, c := range m.Clusters {
				if len(only) == 0 || slices.Contains(only, c.Name) {
					picked = append(picked, c)
				}
			}
			out := make([]clusterStatus, len(picked))
			var wg sync.WaitGroup
			for i, c := range picked {
				wg.Add(1)
				go func() {
					defer wg.Done()
					out[i] = readStatus(ctx, connect, c)
				}()
			}
			wg.Wait()
			if g.output == "json" {
				enc := json.NewEncoder(s.Out)
				enc.SetIndent("", "  ")
				return enc.Encode(out)
			}
			writeStatus(s.Out, out)
			for _, c := range out {
				if c.Error != "" {
					return &exitError{code: exitFailure}
				}
			}
			return nil
		},
	}
	f.register(cmd)
	cmd.Flags().StringSliceVar(&only, "cluster", nil, "only these clusters (repeatable)")
	return cmd
}

func readStatus(ctx context.Context, connect reconciler.Connector, c manifest.Cluster) clusterStatus {
	cs := clusterStatus{Name: c.Name, Role: string(c.Role), Releases: []releaseStatus{}}
	t, err := connect(ctx, c)
	if err != nil {
		cs.Error = err.Error()
		return cs
	}
	cs.State, err = t.ReadState(ctx)
	if err != nil {
		cs.Error = err.Error()
		return cs
	}
	rels, err := t.ListReleases(ctx, map[string]string{reconciler.LabelManagedBy: reconciler.ManagedByValue})
	if err != nil {
		cs.Error = err.Error()
		return cs
	}
	for _, r := range rels {
		cs.Releases = append(cs.Releases, releaseStatus{Name: r.Name, Namespace: r.Namespace, Revision: r.Revision, Status: r.Status,
			Chart: r.Chart, ChartVersion: r.ChartVersion, Updated: r.Updated})
	}
	sort.Slice(cs.Releases, func(i, j int) bool {
		return cs.Releases[i].Namespace+"/"+cs.Releases[i].Name < cs.Releases[j].Namespace+"/"+cs.Releases[j].Name
	})
	return cs
}

func writeStatus(w io.Writer, out []clusterStatus) {
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
			lastErr = "unreachable: " + c.Error
		}
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
	_ = tw.Flush()
}
