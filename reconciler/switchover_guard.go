package reconciler

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tandem-gitops/tandem/clusters"
	"github.com/tandem-gitops/tandem/manifest"
)

// stayActive are the clusters of selected that are Active in m and not
// one of p's targets: they serve before and after the switchover. Only
// read (their live objects, their records), never locked or written.
func stayActive(m *manifest.Manifest, p *SwitchoverPlan, selected []manifest.Cluster, conns []conn) []*swCluster {
	var out []*swCluster
	for i, c := range selected {
		role := c.Role
		if mc, ok := m.Cluster(c.Name); ok {
			role = mc.Role
		}
		if role != manifest.RoleActive || slices.Contains(p.To, c.Name) || slices.Contains(p.From, c.Name) {
			continue
		}
		out = append(out, &swCluster{c: c, t: conns[i].t, uid: conns[i].uid, err: conns[i].err})
	}
	return out
}

// sourceReleases are the releases p's sources run, once each, in manifest order.
func sourceReleases(m *manifest.Manifest, p *SwitchoverPlan) []manifest.Release {
	var out []manifest.Release
	seen := map[ReleaseKey]bool{}
	for _, src := range p.From {
		for _, rel := range m.ReleasesFor(src) {
			if k := keyOfRelease(rel); !seen[k] {
				seen[k] = true
				out = append(out, rel)
			}
		}
	}
	return out
}

// unready says why the clusters Active after p cannot take over what its
// sources serve, from their state records: one has never been reconciled
// (no record: e.g. added to tandem.yaml as Active in the same commit that
// demotes the source), or its record lacks a release the sources run that
// is enabled on it. The switchover would otherwise close the source before
// anything serves elsewhere. Such a cluster is reconciled as Standby
// first, then switched. records holds the records read under the locks;
// the others are read here. An unreachable cluster that stays Active is
// not counted (phase 3's live check needs another one to serve).
func unready(ctx context.Context, m *manifest.Manifest, p *SwitchoverPlan, records map[string]*clusters.State, targets, stay []*swCluster) []string {
	var bad []string
	for _, x := range append(slices.Clone(targets), stay...) {
		st, ok := records[x.c.Name]
		if !ok {
			if !x.ok() {
				continue
			}
			var err error
			if st, err = x.t.ReadState(ctx, m.ID); err != nil {
				bad = append(bad, fmt.Sprintf("cluster %s: read state record: %v", x.c.Name, err))
				continue
			}
		}
		if st == nil {
			bad = append(bad, fmt.Sprintf("cluster %s is Active after it but has never been reconciled (no state record): reconcile it as Standby first, then switch", x.c.Name))
			continue
		}
		var missing []string
		for _, rel := range sourceReleases(m, p) {
			if !enabled(m, x.c, rel) {
				continue
			}
			if !slices.ContainsFunc(st.Releases, func(rs clusters.ReleaseState) bool { return rs.Namespace == rel.Namespace && rs.Name == rel.Name }) {
				missing = append(missing, keyOfRelease(rel).String())
			}
		}
		if len(missing) > 0 {
			bad = append(bad, fmt.Sprintf("cluster %s is Active after it but does not hold %s, which %s serves: reconcile it as Standby with that release first, then switch",
				x.c.Name, strings.Join(missing, ", "), strings.Join(p.From, ", ")))
		}
	}
	return bad
}

// servedElsewhere reads live, before the sources close, that for every
// release the sources run some cluster Active after the switchover has
// the release's workloads available: at least one workload where the
// source has any, and none without replicas or available pods. The same
// read as the drill's invariant checks. It returns why not ("" when
// every release is served).
func (r *run) servedElsewhere(ctx context.Context, p *SwitchoverPlan, sources, active []*swCluster) string {
	read := func(x *swCluster) (*clusters.Serving, error) {
		rctx, cancel := context.WithTimeout(x.context(ctx), 30*time.Second)
		defer cancel()
		return readServing(rctx, r.m, x.t)
	}
	srcHas := map[string]bool{}
	for _, x := range sources {
		s, err := read(x)
		if err != nil {
			return fmt.Sprintf("cannot read what source %s serves: %v", x.c.Name, err)
		}
		for _, w := range s.Workloads {
			srcHas[w.Release] = true
		}
	}
	live := map[string]*clusters.Serving{}
	var unread []string
	for _, x := range active {
		if !x.ok() {
			unread = append(unread, fmt.Sprintf("%s: %v", x.c.Name, x.err))
			continue
		}
		s, err := read(x)
		if err != nil {
			unread = append(unread, fmt.Sprintf("%s: %v", x.c.Name, err))
			continue
		}
		live[x.c.Name] = s
	}
	var bad []string
	for _, rel := range sourceReleases(r.m, p) {
		k := keyOfRelease(rel).String()
		served := false
		for _, x := range active {
			s := live[x.c.Name]
			if s == nil || !enabled(r.m, x.c, rel) || !s.Available(k) {
				continue
			}
			if srcHas[k] && !slices.ContainsFunc(s.Workloads, func(w clusters.WorkloadState) bool { return w.Release == k }) {
				continue
			}
			served = true
			break
		}
		if !served {
			bad = append(bad, "release "+k)
		}
	}
	if len(bad) == 0 {
		return ""
	}
	msg := fmt.Sprintf("%s not available on any cluster Active after the switchover", strings.Join(bad, ", "))
	if len(unread) > 0 {
		msg += " (not read: " + strings.Join(unread, "; ") + ")"
	}
	return msg
}

// context is the cluster's lock context when it holds one, else ctx.
func (x *swCluster) context(ctx context.Context) context.Context {
	if x.ctx != nil {
		return x.ctx
	}
	return ctx
}
