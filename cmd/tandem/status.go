package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
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
			var picked []manifest.Cluster
			for _, c := range m.Clusters {
				if len(only) == 0 || slices.Contains(only, c.Name) {
					picked = append(picked, c)
				}
			}
			out, err := readStatuses(ctx, connector(g, s, 50, 100), m.ID, picked)
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

// readStatuses reads every cluster concurrently. It returns a row per
// cluster, in order, and the errors of those it could not read, one per
// cluster (each already naming its cluster).
func readStatuses(ctx context.Context, connect reconciler.Connector, manifestID string, picked []manifest.Cluster) ([]clusterStatus, error) {
	out := make([]clusterStatus, len(picked))
	errs := make([]error, len(picked))
	var wg sync.WaitGroup
	for i, c := range picked {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i], errs[i] = readStatus(ctx, connect, manifestID, c)
		}()
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

// readStatus reads one cluster's row; on error the row holds what was read
// and the error's text.
func readStatus(ctx context.Context, connect reconciler.Connector, manifestID string, c manifest.Cluster) (clusterStatus, error) {
	cs := clusterStatus{Name: c.Name, Role: string(c.Role), Releases: []releaseStatus{}}
	fail := func(err error) (clusterStatus, error) {
		cs.Error = err.Error()
		return cs, err
	}
	t, err := connect(ctx, c)
	if err != nil {
		return fail(err)
	}
	cs.State, err = t.ReadState(ctx, manifestID)
	if err != nil {
		return fail(err)
	}
	rels, err := t.ListReleases(ctx, map[string]string{reconciler.LabelManagedBy: reconciler.ManagedByValue})
	if err != nil {
		return fail(err)
	}
	for _, r := range rels {
		cs.Releases = append(cs.Releases, releaseStatus{Name: r.Name, Namespace: r.Namespace, Revision: r.Revision, Status: r.Status,
			Chart: r.Chart, ChartVersion: r.ChartVersion, Updated: r.Updated})
	}
	sort.Slice(cs.Releases, func(i, j int) bool {
		return cs.Releases[i].Namespace+"/"+cs.Releases[i].Name < cs.Releases[j].Namespace+"/"+cs.Releases[j].Name
	})
	return cs, nil
}

func writeStatus(w io.Writer, out []clusterStatus) error {
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
