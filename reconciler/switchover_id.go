package reconciler

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/tandem-gitops/tandem/clusters"
	"github.com/tandem-gitops/tandem/manifest"
)

// renamedWithRoles says why a run must stop when tandem.yaml's id changed
// in the same commit as the roles ("" when it need not). State records are
// kept per manifest id, so under a new id the roles in effect are unknown
// and a role change would be applied as a plain flip, while the pull
// request's plan (diff --against, comparing the two tandem.yaml) showed a
// switchover. A cluster without a record under m.ID whose releases belong
// to another manifest, whose record there gives the cluster another role
// or a switchover under way, is that case. Read only for clusters without
// a record (a first reconcile, or a renamed manifest).
func renamedWithRoles(ctx context.Context, m *manifest.Manifest, selected []manifest.Cluster, conns []conn, states map[string]*clusters.State) string {
	for i, c := range selected {
		if conns[i].err != nil || states[c.Name] != nil {
			continue
		}
		live, err := conns[i].t.ListReleases(ctx, nil)
		if err != nil {
			continue // the cluster's own run reports it
		}
		owners := map[string]bool{}
		for _, d := range deployedFrom(live) {
			mine := slices.ContainsFunc(m.ReleasesFor(c.Name), func(r manifest.Release) bool { return keyOfRelease(r) == d.key() })
			if o := d.owner(); mine && o != "" && o != manifestID(m.ID) {
				owners[o] = true
			}
		}
		ids := make([]string, 0, len(owners))
		for id := range owners {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		for _, id := range ids {
			st, err := conns[i].t.ReadState(ctx, id)
			if err != nil || st == nil || (st.Cluster != "" && st.Cluster != c.Name) {
				continue
			}
			was := roleInEffect(c.Name, st)
			if (was == "" || was == c.Role) && underWay(st) == nil {
				continue
			}
			idx := slices.IndexFunc(m.Clusters, func(o manifest.Cluster) bool { return o.Name == c.Name })
			return fmt.Sprintf("%s: id is %q and clusters[%d].role %s, but cluster %s's releases belong to manifest %q, whose state record there gives it role %s%s: a commit that changes id and the roles at once is refused, nothing done — change id alone first (roles as they are), then the roles in a commit of their own",
				manifest.FileName, manifestID(m.ID), idx, c.Role, c.Name, id, was, underWaySuffix(st))
		}
	}
	return ""
}

func underWaySuffix(st *clusters.State) string {
	if sw := underWay(st); sw != nil {
		return fmt.Sprintf(" and a switchover in phase %d", sw.Phase)
	}
	return ""
}

// OneChangeAtATime refuses a change of tandem.yaml from `from` to `to`
// that renames the manifest (id) and changes a cluster's role at once:
// the reconcile refuses it too (renamedWithRoles), so the pull request's
// plan must not show it as a switchover.
func OneChangeAtATime(from, to *manifest.Manifest) error {
	if manifestID(from.ID) == manifestID(to.ID) {
		return nil
	}
	var changed []string
	for i, c := range to.Clusters {
		if old, ok := from.Cluster(c.Name); ok && old.Role != c.Role {
			changed = append(changed, fmt.Sprintf("clusters[%d].role %s → %s", i, old.Role, c.Role))
		}
	}
	if len(changed) == 0 {
		return nil
	}
	return fmt.Errorf("%s: id changes from %q to %q and %s in one commit: the reconcile refuses it (state records are kept per id, so the roles in effect would be unknown) — change id alone first, then the roles in a commit of their own",
		manifest.FileName, manifestID(from.ID), manifestID(to.ID), strings.Join(changed, ", "))
}
