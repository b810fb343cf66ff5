package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tandem-gitops/tandem/reconciler"
)

type drillFlags struct {
	source sourceFlags
	apply  applyFlags
	to     []string
}

func newDrillCmd(g *globalFlags, s streams) *cobra.Command {
	f := &drillFlags{}
	cmd := &cobra.Command{
		Use:   "drill --to CLUSTER",
		Short: "Rehearse a switchover: to the Standby and back in one command, timed, with the invariants checked",
		Long: `drill --to green switches green over to Active and back, from the manifest as it is: the same
five phases a reconcile runs when the roles in git change, twice, holding every involved cluster's
lock from the first phase to the last (a tandem serve daemon waits for it). tandem.yaml is not
edited: the roles are overridden for the drill only.

After every phase the drill reads the live objects of both clusters and checks the invariants: for
every DNS name some weight is up, a cluster whose weight is up has the release behind it available,
no CronJob runs unsuspended on two clusters. The report gives each phase's time and how long until
the target served with full weight (-o text, markdown or json).

If anything fails, the drill returns the clusters to the roles in git. It refuses to start while
the roles in effect differ from git or a switchover is under way. Exit code 0 only if the drill
passed: every phase done both ways and no invariant violated.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch g.output {
			case "", "text", "markdown", "json":
			default:
				return fmt.Errorf("unknown output format %q (want text, markdown or json)", g.output)
			}
			if len(f.to) == 0 {
				return fmt.Errorf("--to names the Standby cluster to rehearse the switchover to")
			}
			if err := f.apply.check(); err != nil {
				return err
			}
			ctx := cmd.Context()
			m, rev, err := f.source.load(ctx)
			if err != nil {
				return err
			}
			p := g.pipeline(s, f.apply.qps, f.apply.burst)
			// A manifest that does not render reaches no cluster.
			if _, err := p.Render(ctx, m, reconciler.Selection{}); err != nil {
				return &reconciler.NotAppliedError{Err: err}
			}
			opts := f.apply.options()
			opts.Commit, opts.Ref = rev.Commit, rev.Ref
			opts.Logger = g.logger(s)
			opts.Progress = newProgress(s.Err).event
			opts.Renderer = p.Renderer
			opts.DetectDrift, opts.CorrectDrift = false, false
			fmt.Fprintf(s.Err, "tandem drill  manifest %s%s  to %s\n", rev.short(), refSuffix(rev), strings.Join(f.to, ","))
			rep := reconciler.Drill(ctx, m, p.Connect, f.to, opts)
			if err := writeDrill(s.Out, g.output, rep); err != nil {
				return err
			}
			if !rep.Passed {
				return &exitError{code: exitFailure, err: fmt.Errorf("%s", rep.Error)}
			}
			return nil
		},
	}
	f.source.register(cmd)
	f.apply.register(cmd)
	cmd.Flags().StringSliceVar(&f.to, "to", nil, "the Standby cluster(s) to switch over to and back from")
	return cmd
}

func writeDrill(w io.Writer, format string, r *reconciler.DrillReport) error {
	return writeFormatted(w, format, r, func() string { return drillMarkdown(r) }, func() string { return drillText(r) })
}

// phaseLabel names a leg's phases by what they act on: "warm green".
func phaseLabel(sr *reconciler.SwitchoverReport, ph reconciler.PhaseReport) string {
	on := sr.To
	switch ph.Number {
	case reconciler.PhaseClose, reconciler.PhaseCool:
		on = sr.From
	case reconciler.PhaseSingletons:
		return ph.Name
	}
	return ph.Name + " " + strings.Join(on, ",")
}

func legLine(sr *reconciler.SwitchoverReport) string {
	var parts []string
	for _, ph := range sr.Phases {
		t := seconds(time.Duration(ph.Duration))
		if ph.Skipped != "" {
			t = "skipped"
		}
		parts = append(parts, phaseLabel(sr, ph)+" "+t)
	}
	line := strings.Join(parts, " · ")
	if msg := legFailure(sr); msg != "" {
		line += "\n    FAILED: " + msg
	}
	return line
}

func legFailure(sr *reconciler.SwitchoverReport) string {
	if sr.Completed {
		return ""
	}
	return sr.Failure()
}

func drillText(r *reconciler.DrillReport) string {
	var b strings.Builder
	from, to := strings.Join(r.From, ","), strings.Join(r.To, ",")
	fmt.Fprintf(&b, "drill %s → %s → %s   manifest %s\n", from, to, from, shortSHA(r.Commit))
	if r.There != nil {
		fmt.Fprintf(&b, "  there: %s", legLine(r.There))
		if r.ServingAfter > 0 {
			fmt.Fprintf(&b, "   serving on %s after %s", to, seconds(time.Duration(r.ServingAfter)))
		}
		b.WriteString("\n")
	}
	if r.Back != nil {
		fmt.Fprintf(&b, "  back:  %s\n", legLine(r.Back))
	}
	if r.Return != nil {
		fmt.Fprintf(&b, "  return to the roles in git: %s\n", legLine(r.Return))
	}
	if r.Checks > 0 || len(r.Violations) > 0 {
		if len(r.Violations) == 0 {
			fmt.Fprintf(&b, "  invariants held after every phase (%d checks): weights never all zero, weighted releases available, no CronJob unsuspended on two clusters\n", r.Checks)
		} else {
			fmt.Fprintf(&b, "  %d invariant violations in %d checks:\n", len(r.Violations), r.Checks)
			for _, v := range r.Violations {
				fmt.Fprintf(&b, "    %s\n", v)
			}
		}
	}
	if r.Passed {
		fmt.Fprintf(&b, "drill passed in %s\n", seconds(time.Duration(r.Duration)))
	} else {
		fmt.Fprintf(&b, "drill FAILED after %s: %s\n", seconds(time.Duration(r.Duration)), r.Error)
	}
	return b.String()
}

func drillMarkdown(r *reconciler.DrillReport) string {
	var b strings.Builder
	from, to := strings.Join(r.From, ", "), strings.Join(r.To, ", ")
	verdict := "passed"
	if !r.Passed {
		verdict = "**failed**"
	}
	fmt.Fprintf(&b, "### Drill %s → %s → %s: %s\n\n", from, to, from, verdict)
	fmt.Fprintf(&b, "Manifest `%s`, %s in all", shortSHA(r.Commit), seconds(time.Duration(r.Duration)))
	if r.ServingAfter > 0 {
		fmt.Fprintf(&b, "; %s served with full weight after **%s**", to, seconds(time.Duration(r.ServingAfter)))
	}
	b.WriteString(".\n\n| leg | phase | on | time |\n|---|---|---|---|\n")
	for _, leg := range []struct {
		name string
		sr   *reconciler.SwitchoverReport
	}{{"there", r.There}, {"back", r.Back}, {"return", r.Return}} {
		if leg.sr == nil {
			continue
		}
		for _, ph := range leg.sr.Phases {
			t := seconds(time.Duration(ph.Duration))
			if ph.Skipped != "" {
				t = "skipped"
			}
			fmt.Fprintf(&b, "| %s | %d %s | %s | %s |\n", leg.name, ph.Number, ph.Name, strings.TrimPrefix(phaseLabel(leg.sr, ph), ph.Name+" "), t)
		}
	}
	b.WriteString("\n")
	if len(r.Violations) == 0 {
		fmt.Fprintf(&b, "Invariants held after every phase (%d checks).\n", r.Checks)
	} else {
		fmt.Fprintf(&b, "**%d invariant violations** in %d checks:\n\n", len(r.Violations), r.Checks)
		for _, v := range r.Violations {
			fmt.Fprintf(&b, "- %s\n", v)
		}
	}
	if r.Error != "" {
		fmt.Fprintf(&b, "\n**Error:** %s\n", r.Error)
	}
	return b.String()
}
