package reconciler

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/tandem-gitops/tandem/clusters"
	"github.com/tandem-gitops/tandem/manifest"
)

// swCompleted says a switchover record shows every phase done.
func swCompleted(sw *clusters.SwitchoverState) bool {
	return sw != nil && sw.Phase >= PhaseCount && sw.PhaseDone
}

// roleInEffect is the role a cluster's own record says its objects are
// rendered for ("" without a record). A record that shows a completed
// switchover involving the cluster means the switchover's target role for
// it, whatever its Role field still says: the records of a finished
// switchover are settled one after the other, and a run killed between
// the two writes leaves one cluster's record behind. Reading that record's
// old Role would plan the switchover again from phase 1, on clusters
// already past phase 5 (every DNS weight to 0, or CronJobs resumed on the
// closed source).
func roleInEffect(name string, st *clusters.State) manifest.Role {
	if st == nil {
		return ""
	}
	if sw := st.Switchover; swCompleted(sw) {
		switch {
		case slices.Contains(sw.To, name):
			return manifest.RoleActive
		case slices.Contains(sw.From, name):
			return manifest.RoleStandby
		}
	}
	return manifest.Role(st.Role)
}

// underWay is the switchover a record shows started and not completed.
func underWay(st *clusters.State) *clusters.SwitchoverState {
	if st == nil || st.Switchover == nil || swCompleted(st.Switchover) {
		return nil
	}
	return st.Switchover
}

// foreignSwitchover says whether a record holds a switchover under way
// other than p that reached phase 2: that cluster is at that phase, not at
// the roles before p, so running p from its first phase would render it as
// if it were (close a cluster that serves, or open one that is scaled
// down). Until phase 2 nothing served from that switchover's target, and
// p (or the plain reconcile) renders it again, as staleSwitchover allows.
func foreignSwitchover(p *SwitchoverPlan, states map[string]*clusters.State) string {
	names := make([]string, 0, len(states))
	for name := range states {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		sw := underWay(states[name])
		if sw == nil || (slices.Equal(sw.From, p.From) && slices.Equal(sw.To, p.To)) {
			continue
		}
		if sw.Phase >= PhaseOpen {
			return fmt.Sprintf("cluster %s's state record shows the switchover %s → %s in phase %d (%s), not the switchover %s that tandem.yaml asks for: set the roles of that switchover again to finish it first; nothing done",
				name, strings.Join(sw.From, ","), strings.Join(sw.To, ","), sw.Phase, sw.PhaseName, p.Title())
		}
	}
	return ""
}
