package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
)

// version is stamped by the Makefile with -ldflags "-X main.version=...".
var version = "dev"

// streams are the command's standard streams, injected so tests can capture them.
type streams struct {
	In       io.Reader
	Out, Err io.Writer
}

// globalFlags are the flags every command shares.
type globalFlags struct {
	kubeconfig string
	output     string
	verbosity  int
}

// Exit codes: 0 success, 1 failure, 2 differences found (diff --exit-code).
const (
	exitOK      = 0
	exitFailure = 1
	exitDiff    = 2
)

// exitError carries an exit code other than 1 up to run.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}
func (e *exitError) Unwrap() error { return e.err }

// run builds the command tree, executes it and maps the outcome to an exit code.
func run(ctx context.Context, args []string, s streams) int {
	root := newRootCmd(s)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			printError(s.Err, ee.err)
		}
		return ee.code
	}
	printError(s.Err, err)
	return exitFailure
}

// printError writes err as one "error: " line per problem. Errors that hold
// several problems (errors.Join, manifest.ValidationError, render.RenderAll's)
// put each on its own line, already naming its cluster and release, so a line
// of the message is a problem; an indented line details the one above and is
// printed as it is.
func printError(w io.Writer, err error) {
	for _, line := range strings.Split(err.Error(), "\n") {
		switch {
		case strings.TrimSpace(line) == "":
		case strings.HasPrefix(line, " "), strings.HasPrefix(line, "\t"):
			fmt.Fprintln(w, line)
		default:
			fmt.Fprintf(w, "error: %s\n", line)
		}
	}
}

func newRootCmd(s streams) *cobra.Command {
	g := &globalFlags{}
	root := &cobra.Command{
		Use:   "tandem",
		Short: "Keep Active and Standby Kubernetes clusters in step with a git manifest of Helm charts",
		Long: `tandem renders every Helm chart of a manifest repository for every cluster, with
Standby clusters holding every object at zero replicas and DNS weight 0, and
applies them to all clusters in parallel as real Helm releases.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return checkOutput(cmd, g.output)
		},
	}
	root.SetOut(s.Out)
	root.SetErr(s.Err)
	root.SetIn(s.In)
	pf := root.PersistentFlags()
	pf.StringVar(&g.kubeconfig, "kubeconfig", "", "kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
	pf.StringVarP(&g.output, "output", "o", "", "output format (depends on the command)")
	pf.CountVarP(&g.verbosity, "verbose", "v", "more log output on stderr (-v info, -vv debug)")

	root.AddCommand(
		newVersionCmd(g, s),
		newValidateCmd(g, s),
		newRenderCmd(g, s),
		newReconcileCmd(g, s),
		newStatusCmd(g, s),
		newDiffCmd(g, s),
		newCommentCmd(g, s),
		newServeCmd(g, s),
		newRenderWorkerCmd(s),
		newSwitchoverCmd(g, s),
		newDrillCmd(g, s),
		newVendorCmd(g, s),
	)
	registerCompletions(root)
	return root
}

// logger writes structured logs to stderr; quiet unless -v.
func (g *globalFlags) logger(s streams) *slog.Logger {
	level := slog.LevelWarn
	switch {
	case g.verbosity >= 2:
		level = slog.LevelDebug
	case g.verbosity == 1:
		level = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(s.Err, &slog.HandlerOptions{Level: level}))
}

// cacheDir is where tandem keeps git clones and downloaded charts.
func cacheDir() string {
	if d := os.Getenv("TANDEM_CACHE_DIR"); d != "" {
		return d
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "tandem")
	}
	return filepath.Join(os.TempDir(), "tandem-cache")
}

func newVersionCmd(g *globalFlags, s streams) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print tandem's version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if g.output == "json" {
				return writeJSON(s.Out, map[string]string{"version": versionString()})
			}
			_, err := fmt.Fprintf(s.Out, "tandem %s\n", versionString())
			return err
		},
	}
}
