package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

func newValidateCmd(g *globalFlags, s streams) *cobra.Command {
	f := &sourceFlags{}
	cmd := &cobra.Command{
		Use:   "validate",
		Short: "Load, validate and render the whole manifest; print every problem",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			m, rev, err := f.load(ctx)
			if err != nil {
				return validationFailed(s, problemsOf(err))
			}
			v, err := g.pipeline(s, 50, 100).Validate(ctx, m)
			if err != nil {
				return validationFailed(s, flatten(err))
			}
			for _, w := range m.Warnings() {
				fmt.Fprintln(s.Err, "warning: "+w)
			}
			fmt.Fprintf(s.Out, "ok: manifest %s: %d clusters, %d releases, %d renders, %d objects\n",
				rev.short(), v.Clusters, v.Releases, v.Renders, v.Objects)
			return nil
		},
	}
	f.register(cmd)
	return cmd
}

func validationFailed(s streams, problems []string) error {
	for _, p := range problems {
		fmt.Fprintln(s.Err, p)
	}
	return &exitError{code: exitFailure, err: fmt.Errorf("%d problem(s) found", len(problems))}
}

// flatten lists the independent errors of an aggregate (errors.Join puts
// one per line).
func flatten(err error) []string {
	return strings.Split(err.Error(), "\n")
}
