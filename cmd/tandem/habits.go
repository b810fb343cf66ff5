package main

import (
	"fmt"
	"runtime/debug"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/tandem-gitops/tandem/manifest"
)

// outputFormats are the -o values each command accepts ("" always means the
// first). A command not listed takes no -o at all. The root command checks
// -o against this before any command runs, so no command ignores a format
// it does not know, and shell completion offers these.
var outputFormats = map[string][]string{
	"render":     {"yaml", "json"},
	"reconcile":  {"text", "json"},
	"status":     {"text", "json"},
	"diff":       {"text", "json", "markdown"},
	"comment":    {"text", "json"},
	"switchover": {"text", "markdown", "json"},
	"drill":      {"text", "markdown", "json"},
	"version":    {"text", "json"},
}

// checkOutput refuses an -o value cmd does not support.
func checkOutput(cmd *cobra.Command, output string) error {
	if output == "" {
		return nil
	}
	formats := outputFormats[cmd.Name()]
	if slices.Contains(formats, output) {
		return nil
	}
	if len(formats) == 0 {
		return fmt.Errorf("tandem %s has no output formats (-o %s)", cmd.Name(), output)
	}
	return fmt.Errorf("unknown output format %q for tandem %s (want %s)", output, cmd.Name(), strings.Join(formats, ", "))
}

// registerCompletions adds dynamic shell completion to every command of
// root: -o offers the command's formats; --cluster and --release offer the
// names in the manifest that --manifest-dir (default: the current
// directory) holds. A manifest that does not load offers nothing; a --repo
// manifest is not cloned for a completion.
func registerCompletions(root *cobra.Command) {
	_ = root.RegisterFlagCompletionFunc("output", func(cmd *cobra.Command, _ []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
		return outputFormats[cmd.Name()], cobra.ShellCompDirectiveNoFileComp
	})
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for name, names := range map[string]func(*manifest.Manifest) []string{"cluster": clusterNames, "release": releaseNames} {
			if c.LocalFlags().Lookup(name) == nil {
				continue
			}
			_ = c.RegisterFlagCompletionFunc(name, func(cmd *cobra.Command, _ []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
				m := completionManifest(cmd.Flags())
				if m == nil {
					return nil, cobra.ShellCompDirectiveNoFileComp
				}
				return names(m), cobra.ShellCompDirectiveNoFileComp
			})
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

// completionManifest loads the manifest a command's flags name, or nil.
func completionManifest(fl *pflag.FlagSet) *manifest.Manifest {
	if f := fl.Lookup("repo"); f != nil && f.Value.String() != "" {
		return nil
	}
	dir := "."
	if f := fl.Lookup("manifest-dir"); f != nil && f.Value.String() != "" {
		dir = f.Value.String()
	}
	m, err := manifest.Load(dir, manifest.DefaultLoadOptions())
	if err != nil {
		return nil
	}
	return m
}

func clusterNames(m *manifest.Manifest) []string {
	out := make([]string, 0, len(m.Clusters))
	for _, c := range m.Clusters {
		out = append(out, c.Name+"\t"+string(c.Role))
	}
	return out
}

func releaseNames(m *manifest.Manifest) []string {
	var out []string
	for _, r := range m.Releases {
		if !slices.ContainsFunc(out, func(s string) bool { return strings.HasPrefix(s, r.Name+"\t") }) {
			out = append(out, r.Name+"\t"+r.Namespace)
		}
	}
	return out
}

// versionString is main.version when the build stamped it (make build),
// else the module version `go install …@v1.2.3` records in the binary, else
// "dev" (a build from a checkout).
func versionString() string {
	bi, _ := debug.ReadBuildInfo()
	return versionOf(version, bi)
}

func versionOf(stamped string, bi *debug.BuildInfo) string {
	if stamped != "dev" && stamped != "" {
		return stamped
	}
	if bi != nil && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}
