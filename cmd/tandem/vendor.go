package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/tandem-gitops/tandem/manifest"
	"github.com/tandem-gitops/tandem/reconciler"
)

func newVendorCmd(_ *globalFlags, s streams) *cobra.Command {
	var dir string
	var update bool
	cmd := &cobra.Command{
		Use:   "vendor",
		Short: "Fetch every local chart's dependencies into its charts/, as Chart.lock pins them",
		Long: `vendor fetches the dependencies each local chart's Chart.yaml declares into the chart's
charts/ directory, from the repositories tandem.yaml declares (with their access settings), at
exactly the versions Chart.lock pins (helm dependency build). A Chart.lock out of step with
Chart.yaml is refused. --update resolves Chart.yaml's version ranges anew and rewrites Chart.lock
(helm dependency update). Commit the result: renders never fetch anything.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" {
				dir = "."
			}
			m, err := manifest.Load(dir, manifest.DefaultLoadOptions())
			if err != nil {
				return validationFailed(s, problemsOf(err))
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
			if err != nil {
				return fmt.Errorf("vendor: %w", err)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "manifest-dir", "", "the manifest repository's working tree (default: the current directory)")
	cmd.Flags().BoolVar(&update, "update", false, "resolve Chart.yaml's version ranges anew and rewrite Chart.lock (helm dependency update)")
	return cmd
}
