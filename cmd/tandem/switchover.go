package main

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tandem-gitops/tandem/manifest"
	"github.com/tandem-gitops/tandem/reconciler"
	"github.com/tandem-gitops/tandem/render"
)

type switchoverFlags struct {
	dir  string
	to   []string
	plan bool
}

func newSwitchoverCmd(g *globalFlags, s streams) *cobra.Command {
	f := &switchoverFlags{}
	cmd := &cobra.Command{
		Use:   "switchover --to CLUSTER",
		Short: "Make a Standby cluster Active: edit tandem.yaml's roles, or print the switchover's runbook (--plan)",
		Long: `switchover --to green makes green Active and every cluster Active today Standby, by editing the
roles in tandem.yaml in place (nothing else in the file changes). Commit and push the change: the
next reconcile sees roles that differ from those in effect on the clusters and runs the switchover,
phase by phase, holding both clusters' locks:

  1 warm        the target's workloads get their replicas (DNS weight 0, CronJobs suspended); wait healthy
  2 open        the target's DNS weight rises: both clusters serve
  3 close       the source's DNS weight goes to 0; wait dns.drainSeconds (record TTL + deregistration delay)
  4 singletons  the source's CronJobs are suspended, then the target's resumed
  5 cool        the source's workloads go to zero

--plan prints that runbook with the exact objects and fields each phase changes on each cluster,
from the same code that runs it, and changes nothing (-o text, markdown or json).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch g.output {
			case "", "text", "markdown", "json":
			default:
				return fmt.Errorf("unknown output format %q (want text, markdown or json)", g.output)
			}
			if len(f.to) == 0 {
				return errors.New("--to names the cluster to make Active")
			}
			dir := f.dir
			if dir == "" {
				dir = "."
			}
			m, err := manifest.Load(dir, manifest.DefaultLoadOptions())
			if err != nil {
				return err
			}
			inEffect := reconciler.GitRoles(m)
			next, err := switchoverRoles(m, f.to)
			if err != nil {
				return err
			}
			target := *m
			target.Clusters = slices.Clone(m.Clusters)
			for i := range target.Clusters {
				target.Clusters[i].Role = next[target.Clusters[i].Name]
			}
			plan, err := reconciler.RenderSwitchover(cmd.Context(), &target, render.New(renderOptions()), inEffect)
			if err != nil {
				return err
			}
			if plan == nil {
				return fmt.Errorf("nothing to switch: %s already Active in %s", strings.Join(f.to, ", "), manifest.FileName)
			}
			if !f.plan {
				if len(plan.Blocked) > 0 {
					return fmt.Errorf("%s left as it is: the switchover %s cannot run:\n%s", manifest.FileName, plan.Title(), strings.Join(plan.Blocked, "\n"))
				}
				roles := map[string]manifest.Role{}
				for _, c := range plan.Involved() {
					roles[c] = next[c]
				}
				if _, err := manifest.SetRoles(filepath.Join(dir, manifest.FileName), roles); err != nil {
					return err
				}
				fmt.Fprintf(s.Err, "%s: roles changed (%s); commit and push it — the next reconcile runs this switchover:\n\n",
					filepath.Join(dir, manifest.FileName), roleChanges(plan))
			}
			if err := writeSwitchoverPlan(s.Out, g.output, plan); err != nil {
				return err
			}
			if len(plan.Blocked) > 0 {
				return &exitError{code: exitFailure, err: fmt.Errorf("the switchover %s is blocked (see above)", plan.Title())}
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.dir, "manifest-dir", "", "the manifest repository checkout whose tandem.yaml to edit (default: the current directory)")
	fl.StringSliceVar(&f.to, "to", nil, "the cluster(s) to make Active; the clusters Active now become Standby")
	fl.BoolVar(&f.plan, "plan", false, "print the runbook and change nothing")
	return cmd
}

// switchoverRoles are the roles after making the clusters in to Active:
// every other Active cluster becomes Standby.
func switchoverRoles(m *manifest.Manifest, to []string) (reconciler.Roles, error) {
	next := reconciler.Roles{}
	for _, name := range to {
		if _, ok := m.Cluster(name); !ok {
			return nil, fmt.Errorf("--to: no cluster %q in %s", name, manifest.FileName)
		}
	}
	for _, c := range m.Clusters {
		next[c.Name] = c.Role
		if slices.Contains(to, c.Name) {
			next[c.Name] = manifest.RoleActive
		} else if c.Role == manifest.RoleActive {
			next[c.Name] = manifest.RoleStandby
		}
	}
	return next, nil
}

func roleChanges(p *reconciler.SwitchoverPlan) string {
	var parts []string
	for _, c := range p.From {
		parts = append(parts, c+" active → standby")
	}
	for _, c := range p.To {
		parts = append(parts, c+" standby → active")
	}
	return strings.Join(parts, ", ")
}

func writeSwitchoverPlan(w io.Writer, format string, p *reconciler.SwitchoverPlan) error {
	return writeFormatted(w, format, p, func() string { return switchoverMarkdown(p) }, func() string { return switchoverText(p) })
}

// phaseSummary says in words what a phase does on a cluster and what it waits for.
func phaseSummary(p *reconciler.SwitchoverPlan, ph reconciler.Phase, st reconciler.PhaseStep) string {
	switch ph.Number {
	case reconciler.PhaseWarm:
		return fmt.Sprintf("scale up %s's scale-to-zero releases; DNS weight stays 0, CronJobs stay suspended; wait until healthy", st.Cluster)
	case reconciler.PhaseOpen:
		return fmt.Sprintf("raise %s's DNS weight to %d: both clusters serve", st.Cluster, p.ActiveWeight)
	case reconciler.PhaseClose:
		return fmt.Sprintf("set %s's DNS weight to 0; then wait dns.drainSeconds (%d s: record TTL + load balancer deregistration delay)", st.Cluster, p.DrainSeconds)
	case reconciler.PhaseSingletons:
		if slices.Contains(p.From, st.Cluster) {
			return fmt.Sprintf("suspend %s's CronJobs (first)", st.Cluster)
		}
		return fmt.Sprintf("resume %s's CronJobs (only after the source's are suspended)", st.Cluster)
	case reconciler.PhaseCool:
		return fmt.Sprintf("scale %s's scale-to-zero releases to zero", st.Cluster)
	}
	return ""
}

func switchoverText(p *reconciler.SwitchoverPlan) string {
	var b strings.Builder
	fmt.Fprintf(&b, "switchover %s   dns.drainSeconds %d   activeWeight %d\n", p.Title(), p.DrainSeconds, p.ActiveWeight)
	for _, bl := range p.Blocked {
		fmt.Fprintf(&b, "BLOCKED: %s\n", bl)
	}
	for _, w := range p.Warnings {
		fmt.Fprintf(&b, "WARNING: %s\n", w)
	}
	for _, ph := range p.Phases {
		for _, st := range ph.Steps {
			fmt.Fprintf(&b, "phase %d  %-10s  %-6s %s\n", ph.Number, ph.Name, st.Cluster, phaseSummary(p, ph, st))
			changes, relabelled := shownChanges(st)
			if len(changes) == 0 {
				fmt.Fprintf(&b, "%22s(no object changes)\n", "")
			}
			for _, c := range changes {
				fmt.Fprintf(&b, "%22s%-14s %s  %s: %s → %s\n", "", c.release, c.Object, c.Field, orNone(c.From), orNone(c.To))
			}
			if relabelled != "" {
				fmt.Fprintf(&b, "%22s%s\n", "", relabelled)
			}
		}
	}
	return b.String()
}

func switchoverMarkdown(p *reconciler.SwitchoverPlan) string {
	var b strings.Builder
	fmt.Fprintf(&b, "### Switchover %s\n\n", p.Title())
	fmt.Fprintf(&b, "DNS weight of the new Active cluster: **%d**; drain wait after closing the source: **%d s** (`dns.drainSeconds`: it must cover the records' TTL plus the load balancer's deregistration delay).\n\n", p.ActiveWeight, p.DrainSeconds)
	if len(p.Blocked) > 0 {
		b.WriteString("**Blocked:**\n\n")
		for _, bl := range p.Blocked {
			fmt.Fprintf(&b, "- %s\n", bl)
		}
		b.WriteString("\n")
	}
	for _, w := range p.Warnings {
		fmt.Fprintf(&b, "> [!WARNING]\n> %s\n\n", w)
	}
	for _, ph := range p.Phases {
		fmt.Fprintf(&b, "#### Phase %d: %s\n\n", ph.Number, ph.Name)
		for _, st := range ph.Steps {
			fmt.Fprintf(&b, "**%s**: %s.\n\n", st.Cluster, phaseSummary(p, ph, st))
			changes, relabelled := shownChanges(st)
			if len(changes) == 0 {
				b.WriteString("No object changes.\n\n")
			} else {
				b.WriteString("| release | object | field | from | to |\n|---|---|---|---|---|\n")
				for _, c := range changes {
					fmt.Fprintf(&b, "| %s | %s | `%s` | %s | %s |\n", c.release, c.Object, c.Field, mdValue(c.From), mdValue(c.To))
				}
				b.WriteString("\n")
			}
			if relabelled != "" {
				b.WriteString(relabelled + "\n\n")
			}
		}
	}
	return b.String()
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func mdValue(s string) string {
	if s == "" {
		return "(none)"
	}
	return "`" + strings.ReplaceAll(s, "|", `\|`) + "`"
}

// shownChange is a field change with its release, for printing.
type shownChange struct {
	release string
	reconciler.FieldChange
}

// shownChanges lists a step's changes for a person: the role label every
// object of a release carries is summarised in one line instead of one
// line per object (-o json lists them all).
func shownChanges(st reconciler.PhaseStep) ([]shownChange, string) {
	label := fmt.Sprintf("metadata.labels[%q]", render.LabelRole)
	var out []shownChange
	n, from, to := 0, "", ""
	for _, rel := range st.Releases {
		for _, c := range rel.Changes {
			if c.Field == label {
				n, from, to = n+1, c.From, c.To
				continue
			}
			out = append(out, shownChange{rel.Name, c})
		}
	}
	if n == 0 {
		return out, ""
	}
	return out, fmt.Sprintf("and the %s label of %d objects: %s → %s", render.LabelRole, n, orNone(from), orNone(to))
}
