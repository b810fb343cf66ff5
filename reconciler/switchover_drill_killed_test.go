package reconciler

import (
	"strings"
	"testing"

	"github.com/tandem-gitops/tandem/clusters"
)

// Finding 10: a drill killed on its way there (past phase 1) leaves
// records a reconcile refuses (the roles in git are the roles in effect;
// a switchover in another direction is half way). The messages say
// exactly what to run, and it works: the next `tandem drill --to green`
// returns the clusters to the roles in git first.
func TestKilledDrillReturnsOnTheNextDrill(t *testing.T) {
	log := &opLog{}
	fakes := swFakes(log)
	seed(t, fakes)
	for _, f := range fakes {
		f.mu.Lock()
		st := *f.state
		st.Switchover = &clusters.SwitchoverState{From: []string{"blue"}, To: []string{"green"}, Phase: PhaseClose, PhaseName: "close", Drill: true}
		f.state = &st
		f.mu.Unlock()
	}
	rep := reconcileLost(t, gitManifest(), fakes, "")
	if len(rep.Failed()) != 2 || !strings.Contains(rep.Clusters[0].Error, "an interrupted drill") || !strings.Contains(rep.Clusters[0].Error, "tandem drill --to green") {
		t.Fatalf("reconcile: %+v", rep.Clusters)
	}
	log.ops = nil
	d := drill(t, fakes, 0)
	if d.Return == nil || !d.Return.Completed || !d.RolesInGit || d.Passed || !strings.Contains(d.Error, "returned the clusters to the roles in git") || !strings.Contains(d.Error, "run the drill again") {
		t.Fatalf("drill after a killed one: %+v", d)
	}
	if got := writes(log); len(got) == 0 || got[0] != "blue upgrade web" {
		t.Errorf("writes %v, want the way back from warming blue", got)
	}
	for name, role := range map[string]string{"blue": "active", "green": "standby"} {
		if st := fakes[name].state; st.Role != role || st.Switchover != nil {
			t.Errorf("%s's record: role %q switchover %+v", name, st.Role, st.Switchover)
		}
	}
	if rep := reconcileLost(t, gitManifest(), fakes, ""); rep.Switchover != nil || len(rep.Failed()) > 0 {
		t.Errorf("reconcile after: %+v %+v", rep.Switchover, rep.Clusters)
	}
	if d := drill(t, fakes, 0); !d.Passed {
		t.Errorf("the drill again: %+v", d)
	}
}
