package main

import (
	"os"
	"runtime"

	"github.com/spf13/cobra"
	"github.com/tandem-gitops/tandem/render"
)

// newRenderWorkerCmd is the render worker tandem starts of itself when
// render.Options.Isolation is set (see renderIsolation): it renders what
// its parent sends on stdin and answers on stdout, until stdin ends. It is
// not meant to be run by hand.
func newRenderWorkerCmd(s streams) *cobra.Command {
	return &cobra.Command{
		Use:    "render-worker",
		Short:  "Render Helm templates for a parent tandem process (internal)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return render.ServeWorker(cmd.Context(), s.In, s.Out)
		},
	}
}

// renderIsolation runs render workers as this very binary's render-worker
// command. On Linux /proc/self/exe is the running binary even if its file
// was replaced or removed since it started (an upgrade in place), so parent
// and worker always speak the same protocol.
func renderIsolation() (*render.Isolation, error) {
	exe := "/proc/self/exe"
	if runtime.GOOS != "linux" {
		var err error
		if exe, err = os.Executable(); err != nil {
			return nil, err
		}
	}
	return &render.Isolation{Command: []string{exe, "render-worker"}}, nil
}
